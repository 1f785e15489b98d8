"""The one exception the data layer raises for bad input on disk or a bad data setting."""


class DataError(ValueError):
    """A one-line, user-facing problem with a dataset; the message names the file or folder.

    A ``ValueError`` so the CLI's one-line error handling covers it without knowing this module.
    """
