"""The one exception type for expected, user-caused errors."""


class InputError(Exception):
    """Bad data, flags or files. The entry points print it as one line, without a traceback."""


class TrainingStopped(Exception):
    """Training cannot go on (a non-finite loss); reported as one line, earlier outputs kept."""
