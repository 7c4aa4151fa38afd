"""Writing results: one atomic writer for every file the package produces,
and the one converter of numbers to strict JSON.

A file is written to a temporary ``.part`` file beside its destination,
flushed to disk and renamed over it, so a crash or kill leaves either the old
file or the complete new one, never a mix. New files get the mode the user's
umask allows (as ``open`` would), not the 0600 of a temporary file.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import tempfile

import numpy as np

__all__ = ["atomic_write", "write_text", "write_json", "write_csv", "jsonable", "provenance",
           "PART_SUFFIX"]

PART_SUFFIX = ".part"


def _umask_mode():
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path, write):
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then
    rename it over ``path``: a crash leaves the old file or the complete new one."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=PART_SUFFIX)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.lexists(tmp):
            os.remove(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:
            # name the user's path, not the temporary file
            raise OSError(exc.errno, exc.strerror, path) from None
        raise


def write_text(path, text):
    """Write a string (UTF-8) atomically; returns the path."""
    data = text.encode("utf-8")
    atomic_write(path, lambda fh: fh.write(data))
    return path


def jsonable(x):
    """JSON-ready copy: numpy to Python, tuples to lists, non-finite floats to
    None (strict JSON); TypeError for any other type. The one converter of
    the sweep cache, the reports and the command line's JSON output."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in (x.tolist() if isinstance(x, np.ndarray) else x)]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    if x is None or isinstance(x, str):
        return x
    raise TypeError(f"cannot convert a value of type {type(x).__name__} to JSON")


def write_json(path, obj):
    """Write ``obj`` as strict JSON (non-finite numbers become null) atomically;
    returns the path."""
    return write_text(path, json.dumps(jsonable(obj), indent=2, sort_keys=True,
                                       allow_nan=False) + "\n")


def _csv_cell(v):
    v = jsonable(v)
    if isinstance(v, float):
        return repr(v)
    return "" if v is None else v


def write_csv(path, header, rows):
    """Write a CSV with a header row atomically; returns the path."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"CSV row of length {len(row)} for a header of {len(header)}")
        w.writerow([_csv_cell(v) for v in row])
    return write_text(path, buf.getvalue())


def provenance(seed=None):
    """Package, numpy, numba and Python versions, and the seed."""
    import numba

    from . import __version__
    return {"package": "refimpl", "version": __version__, "numpy": np.__version__,
            "numba": numba.__version__, "python": platform.python_version(), "seed": seed}
