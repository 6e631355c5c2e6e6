"""The one kind of error that means the user's input cannot be used.

Raised with a message that names the file, key, channel or setting and what was expected. The
command line prints it without a traceback and exits with status 2; every other exception is a
bug and keeps its traceback.
"""


class InputError(ValueError):
    """The user's input (a file, a setting, the data) cannot be used; the message says why."""
