"""The built-in demo datasets (`train.py --demo [synthetic|room]`), generated once into their folder."""

import json
from pathlib import Path

from audio_data import room, synthetic

def demo_kind(value: bool | str | None) -> str | None:
    """--demo's value; runs saved before the room dataset existed stored True or False."""
    if value is True:
        return "synthetic"
    return value or None


def ensure_demo_data(out: str | Path, kind: str = "synthetic") -> Path:
    """Generate demo dataset `kind` with its default settings under `out` unless a complete one is there (its
    marker file, written last, describes exactly those settings)."""
    out = Path(out)
    module = {"synthetic": synthetic, "room": room}[kind]
    try:
        if json.loads((out / synthetic.MARKER).read_text()) == module.DEFAULT:
            return out
    except (OSError, ValueError):  # missing or damaged: write the dataset (again)
        pass
    print(f"Generating the {kind} demo dataset in {out} ...", flush=True)
    return module.generate(out)
