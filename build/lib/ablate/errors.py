"""The user-facing errors of ablate: ``AblateError`` (from ``model.errors``) and its kinds.

The CLI prints any ``AblateError`` as one ``Error:`` line with exit code 1; every other
exception is a bug and is reported as one (exit code 2, with the traceback kept).
"""

from model.errors import AblateError, CheckpointError, ConfigError, DataError, TrainingError


class StudyError(AblateError):
    """A study file that cannot be read or resolved; the message names the file and key."""


class DatabaseError(AblateError):
    """A runs database that cannot be opened, read or written; the message names the URL."""


class PluginError(AblateError):
    """A plugin module or file that cannot be imported; the message names it."""


class UsageError(AblateError):
    """A bad command-line argument or option; the message names it."""


__all__ = [
    "AblateError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DatabaseError",
    "PluginError",
    "StudyError",
    "TrainingError",
    "UsageError",
]
