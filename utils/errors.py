"""The exception types for expected, user-caused errors, and how a command reports them."""

import sys
from collections.abc import Callable


def first_few(names: list[str], count: int = 5) -> str:
    """The first `count` names for a message, each cut to 200 characters, and … when there are more."""
    return ", ".join(name[:200] for name in names[:count]) + (" …" if len(names) > count else "")


class InputError(Exception):
    """Bad data, flags or files. The entry points print it as one line, without a traceback."""


class TrainingStopped(Exception):
    """Training cannot go on (a non-finite loss); reported as one line, earlier outputs kept."""


def run_command(body: Callable[[], int]) -> int:
    """A command's exit code: `body`'s, or 1 after one `error:` line for an expected error (InputError, and the
    ValueError of an unavailable device or a refused option), or 130 after Ctrl-C (no traceback; what was written
    before stays whole, every file being written atomically)."""
    try:
        return body()
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
