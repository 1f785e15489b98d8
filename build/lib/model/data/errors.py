"""The data layer's user-facing error (defined with the others in ``model.errors``)."""

from model.errors import DataError

__all__ = ["DataError"]
