"""The ``ablate`` command: a thin Typer layer over the ``ablate`` and ``model`` libraries."""

from __future__ import annotations

import click
import typer
from typer.core import TyperGroup

from ablate.cli_data import app as data_app
from ablate.errors import AblateError

USER_ERRORS = (AblateError, ValueError, FileNotFoundError, PermissionError, NotADirectoryError)


class _OneLineErrors(TyperGroup):
    """Turn every user error raised by any command into ``Error: <one line>`` and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            text = str(exc).strip().splitlines()
            raise click.ClickException(text[0] if text else type(exc).__name__) from None


app = typer.Typer(
    name="ablate",
    cls=_OneLineErrors,
    help="Prove, variant by variant, which change to an RGB-T counting model moves which GAME "
    "metric.\n\nExample: ablate study run studies/demo.toml",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app, name="data")


def main() -> None:
    app()
