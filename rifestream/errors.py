"""The one exception type for problems a user can fix (bad file, URL, flag or config key).

The CLI prints such an error as one line, ``rifestream CMD: error: MESSAGE``,
and exits with status 2; anything else is a bug and keeps its traceback.
"""


class RifestreamError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""
