"""The error every data problem raises: bad input, named by its file, folder or key."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data; the message names the file, folder or key."""
