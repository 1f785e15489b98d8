"""The user-facing errors: bad input that a one-line message naming the culprit explains.

``AblateError`` is the one type the CLI prints as ``Error: <line>`` with exit code 1; anything
else is a bug and keeps its traceback. The subclasses also derive from the built-in type a
caller would expect (``ValueError`` for a bad value), so library code may catch either.
"""

import difflib
from collections.abc import Iterable


def did_you_mean(value: object, valid: Iterable[object], n: int = 3) -> str:
    """``"did you mean flow? "`` for the closest valid names (a name differing only in case
    counts), or ``""``: the one hint every unknown-name message of ablate gives."""
    names = [str(v) for v in valid]
    close = difflib.get_close_matches(str(value), names, n=n)
    close = close or [v for v in names if v.lower() == str(value).lower()][:n]
    return f"did you mean {', '.join(close)}? " if close else ""


class AblateError(Exception):
    """A user-facing error: bad input, a missing file, an unknown name."""


class ConfigError(AblateError, ValueError):
    """A config value or key that is not valid; the message names the field and the value."""


class DataError(AblateError, ValueError):
    """A problem with a dataset on disk or a data setting; the message names the file."""


class CheckpointError(AblateError, ValueError):
    """A file that is not a checkpoint ablate can load; the message names the file."""


class TrainingError(AblateError, RuntimeError):
    """Training could not go on (a NaN loss); the message names the epoch and the term."""
