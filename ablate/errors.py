"""The one exception type the CLI turns into a one-line message and exit code 1."""


class AblateError(Exception):
    """A user-facing error: bad input, a missing file, an unknown name."""
