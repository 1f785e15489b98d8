"""The ``ablate`` command: a thin Typer layer over the ``ablate`` and ``model`` libraries.

The ``cli_*`` modules import torch, the runs database, Optuna and matplotlib inside the
commands that use them, never at their top: Typer builds every command's options for any
``--help``, and those imports took seconds (tests/test_cli_startup.py keeps it so).
"""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from ablate.cli.data import app as data_app
from ablate.cli.diagnose import diagnose_command
from ablate.cli.errors import ABORTS, report
from ablate.cli.eval import check_eval_command, eval_command
from ablate.cli.launch import app as launch_app
from ablate.cli.report import report_command, viz_command
from ablate.cli.robustness import robustness_command
from ablate.cli.run import run, study_app
from ablate.cli.runs import app as runs_app
from ablate.cli.tune import tune_command


class _OneLineErrors(TyperGroup):
    """Every error of every command goes through ``errors_cli.report``: bad input and bad
    arguments are one ``Error:`` line with exit code 1, anything else a bug with exit code 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except ABORTS:
            typer.echo("Aborted.", err=True)
            code = 130
        except Exception as exc:  # the one place that decides user error or bug
            code = report(exc)
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


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
app.command("diagnose")(diagnose_command)
app.command("robustness")(robustness_command)
app.command("tune")(tune_command)
app.command("report")(report_command)
app.command("viz")(viz_command)
app.add_typer(data_app, name="data")
app.add_typer(launch_app, name="launch")


def main() -> None:
    app()
