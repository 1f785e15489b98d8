"""How the ``ablate`` command reports what went wrong: the one error formatter.

- bad input (any ``AblateError``) and bad arguments (click's usage errors): one line
  ``Error: ...`` on stderr, exit code 1;
- anything else is a bug in ablate: exit code 2, a short line that says so, and the traceback
  saved to a file (printed too when ``ABLATE_TRACEBACK=1``) so it is never lost.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback

import click
import typer

try:  # Typer >= 0.20 vendors click; its exceptions are not click's
    from typer._click import exceptions as _typer_click
except ImportError:  # pragma: no cover - an older Typer raises click's own
    _typer_click = click.exceptions

from ablate.errors import AblateError

USAGE_ERRORS = (click.UsageError, _typer_click.UsageError)
CLICK_ERRORS = (click.ClickException, _typer_click.ClickException)
ABORTS = (click.exceptions.Abort, typer.Abort)
# ``ablate study`` alone: the message is the group's help, which is what the user asked for.
NO_ARGS = tuple(getattr(module, "NoArgsIsHelpError", ()) for module in
                (click.exceptions, _typer_click) if hasattr(module, "NoArgsIsHelpError"))

USER_ERROR_EXIT = 1
BUG_EXIT = 2


def one_line(text: str) -> str:
    """A message as one line: later lines joined with "; ", surrounding space dropped."""
    parts = [part.strip() for part in str(text).strip().splitlines() if part.strip()]
    return "; ".join(parts)


def usage_line(exc: Exception) -> str:
    """``ablate viz: No such option: -1 (see ablate viz --help)``."""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "ablate"
    return f"{where}: {one_line(_with_value(exc))} (see {where} --help)"


def _with_value(exc: Exception) -> str:
    """Typer checks a value's type with pydantic, whose message omits the value given:
    ``Invalid value for 'run_id': 'abc' is not valid; it should be a valid integer, ...``."""
    errors = getattr(exc.__cause__, "errors", None)
    try:
        first = errors()[0] if callable(errors) else {}
    except (TypeError, ValueError, IndexError):
        first = {}
    message = exc.format_message()
    said = getattr(exc, "message", "")
    if "input" not in first or not said or said not in message:
        return message
    msg = str(first.get("msg", "")).removeprefix("Input ")
    return message.replace(said, f"{first['input']!r} is not valid; it {msg}", 1)


def save_traceback(exc: BaseException) -> str:
    """Write the traceback of a bug to a file in the temporary folder; return its path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    fd, path = tempfile.mkstemp(prefix=f"ablate-bug-{stamp}-", suffix=".txt")
    with os.fdopen(fd, "w") as handle:
        handle.write(f"ablate {' '.join(sys.argv[1:])}\n\n")
        handle.write("".join(traceback.format_exception(exc)))
    return path


def report(exc: BaseException) -> int:
    """Print ``exc`` the way its kind asks for and return the exit code."""
    if isinstance(exc, AblateError):
        click.echo(f"Error: {one_line(str(exc)) or type(exc).__name__}", err=True)
        return USER_ERROR_EXIT
    if isinstance(exc, NO_ARGS):
        click.echo(exc.format_message())
        return 0
    if isinstance(exc, USAGE_ERRORS):
        click.echo(f"Error: {usage_line(exc)}", err=True)
        return USER_ERROR_EXIT
    if isinstance(exc, CLICK_ERRORS):
        click.echo(f"Error: {one_line(exc.format_message())}", err=True)
        return USER_ERROR_EXIT
    path = save_traceback(exc)
    if os.environ.get("ABLATE_TRACEBACK"):
        traceback.print_exception(exc, file=sys.stderr)
    click.echo(f"Bug: {type(exc).__name__}: {one_line(str(exc))[:300]}", err=True)
    click.echo(f"This is a bug in ablate, not bad input; the traceback is in {path} "
               "(ABLATE_TRACEBACK=1 prints it). Please report it with that file.", err=True)
    return BUG_EXIT
