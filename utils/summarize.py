"""`python -m utils.summarize SAVE_DIR`: the sweep table, kept under its documented name (analysis/sweep.py)."""

import sys

from analysis.sweep import main, read_rows

__all__ = ["main", "read_rows"]

if __name__ == "__main__":
    sys.exit(main())
