"""The user's mistakes: one exception that every command-line entry point turns into one line.

A command that meets an input it cannot use (a missing file, a config key that does not exist,
a run directory without weights) raises UsageError with a message naming the input and what was
expected; `main` prints `error: <message>` and exits with status 2, the status argparse uses for
the same kind of mistake, with no traceback: a traceback would say the code failed, not the input.
"""


class UsageError(ValueError):
    """An input given on the command line that cannot be used as given."""
