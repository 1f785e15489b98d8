"""The ``ablate`` command: a thin Typer layer over the ``ablate`` and ``model`` libraries."""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from ablate.cli_data import app as data_app
from ablate.cli_eval import check_eval_command, eval_command
from ablate.cli_report import report_command, viz_command
from ablate.cli_run import run, study_app
from ablate.cli_runs import app as runs_app
from ablate.cli_tune import tune_command
from ablate.errors import AblateError

USER_ERRORS = (AblateError, ValueError, FileNotFoundError, PermissionError, NotADirectoryError)


class _OneLineErrors(TyperGroup):
    """Turn every user error raised by any command into ``Error: <one line>`` and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            text = str(exc).strip().splitlines()
            typer.echo(f"Error: {text[0] if text else type(exc).__name__}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    name="ablate",
    cls=_OneLineErrors,
    help="Prove, variant by variant, which change to an RGB-T counting model moves which GAME "
    "metric.\n\nExample: ablate study run studies/demo.toml",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("run")(run)
app.add_typer(study_app, name="study")
app.add_typer(runs_app, name="runs")
app.command("eval")(eval_command)
app.command("check-eval")(check_eval_command)
app.command("tune")(tune_command)
app.command("report")(report_command)
app.command("viz")(viz_command)
app.add_typer(data_app, name="data")


def main() -> None:
    app()
