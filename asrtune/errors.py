"""The one exception type for user mistakes and bad input.

The CLI catches :class:`AsrtuneError`, prints its message on one line and exits with
code 2; anything else is a bug and keeps its traceback.
"""


class AsrtuneError(Exception):
    """A problem the user can fix: a missing file, a bad flag, an unknown model."""
