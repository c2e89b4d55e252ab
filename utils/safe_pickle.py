"""Reading the project's pickles without trusting them: plain containers, numbers, strings and numpy arrays only.

`pickle.load` runs whatever callable a file names, so a file planted in a shared folder could run code. This
unpickler resolves only the few numpy and builtin names that rebuilding arrays, dtypes, numpy scalars and sets
needs; any other name is refused before anything is called, and the result must consist of plain values.
Needs neither torch nor the rest of the project.
"""

import codecs
import importlib
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from utils.errors import InputError
from utils.io_utils import MB, read_regular

MAX_DEPTH = 64
PICKLE_LIMIT = 1024 * MB  # the largest pickle read (a statistics file or a history is a few MB at most)


def _numpy(module: str, name: str):
    """`numpy.core.*` (numpy 1) and `numpy._core.*` (numpy 2) name the same functions."""
    suffix = module.split(".", 2)[-1]
    for prefix in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{prefix}.{suffix}"), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {module}.{name}")


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    """Protocol 2 writes bytes as `_codecs.encode(text, "latin1")`; no other codec is admitted."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _bytes_like(kind: type):
    """Protocol 2 writes b"" as `bytes()` and a bytearray as `bytearray(text, "latin-1")`; a bare size (which
    would allocate that many bytes) is refused."""
    def build(*args):
        if args and not isinstance(args[0], (str, bytes, list)):
            raise pickle.UnpicklingError(f"refused {kind.__name__} of a {type(args[0]).__name__}")
        return kind(*args)
    return build


NUMPY_NAMES = {("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer")}
BUILTINS = {"set": set, "frozenset": frozenset, "complex": complex, "bytes": _bytes_like(bytes),
            "bytearray": _bytes_like(bytearray)}
PLAIN = (type(None), bool, int, float, complex, str, bytes, bytearray, np.generic, np.dtype)


class RestrictedUnpickler(pickle.Unpickler):
    """Admits numpy arrays, dtypes and scalars, sets, complex numbers and bytes; refuses every other name."""

    def find_class(self, module: str, name: str):
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module.startswith(("numpy._core.", "numpy.core.")) and (module.rsplit(".", 1)[-1], name) in NUMPY_NAMES:
            return _numpy(module, name)
        if module in ("builtins", "__builtin__") and name in BUILTINS:
            return BUILTINS[name]
        if module == "_codecs" and name == "encode":
            return _latin1
        raise pickle.UnpicklingError(f"refused to load {module}.{name} (only plain values and numpy arrays)")


def check_plain(value: Any, depth: int = 0) -> None:
    """Raise ValueError unless `value` is plain containers of plain values and numeric/string numpy arrays."""
    if depth > MAX_DEPTH:
        raise ValueError("nested too deeply")
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise ValueError("holds a numpy array of Python objects")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            check_plain(key, depth + 1)
            check_plain(item, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            check_plain(item, depth + 1)
    elif not isinstance(value, PLAIN):
        raise ValueError(f"holds a {type(value).__name__}")


def loads(data: bytes) -> Any:
    """The plain content of pickle bytes, unpickled with the restrictions above; errors propagate."""
    value = RestrictedUnpickler(io.BytesIO(data)).load()
    check_plain(value)
    return value


def load_pickle(path: str | Path) -> Any:
    """The plain content of a pickle written by this project; InputError naming the file for anything else."""
    data = read_regular(path, PICKLE_LIMIT)
    try:
        return loads(data)
    except RecursionError:
        raise InputError(f"{path}: not a readable pickle (nested too deeply)") from None
    except Exception as exc:  # a damaged pickle raises nearly any type; none of it may escape as a traceback
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a readable pickle of this project ({reason})") from None
