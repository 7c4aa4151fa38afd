"""Files: one atomic writer for every file the package produces, the one
converter of numbers to strict JSON, and a reader of ``.npz`` files that
checks declared sizes before it decompresses anything (:func:`read_npz`).

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
import zipfile
import zlib

import numpy as np

__all__ = [
    "atomic_write",
    "write_text",
    "write_json",
    "write_csv",
    "jsonable",
    "provenance",
    "PART_SUFFIX",
    "read_npz",
    "shape_bytes",
]

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
    return write_text(
        path, json.dumps(jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"
    )


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

    return {
        "package": "refimpl",
        "version": __version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "python": platform.python_version(),
        "seed": seed,
    }


# ----------------------------------------------------------------------
# reading .npz files that may be hostile
def read_npz(path, wanted=None, limit=None, what="file"):
    """The arrays of an ``.npz`` file, read safely.

    Every member's header is read first (dtype and declared shape, no data);
    object arrays are refused naming the key; the total declared size of the
    members that will be read is checked against ``limit`` bytes (default:
    the memory budget, :func:`refimpl.budget.memory_budget`) before any data
    is decompressed; only the members named in ``wanted`` (a predicate on
    the key, or None for all) are read.

    Raises
    ------
    OSError
        The file cannot be opened (FileNotFoundError and the like).
    ValueError
        Not an ``.npz`` (zip) archive, a member that is not a ``.npy`` array,
        an object array, a header or data that is truncated or corrupt; the
        message names the key.
    refimpl.errors.ResourceError
        The arrays to read would exceed ``limit``.
    """
    from .budget import check, memory_budget

    path = os.fspath(path)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError(
            "not a readable .npz archive: truncated or corrupt bytes, or "
            "another format (a single .npy array, say)"
        ) from None
    with archive:
        headers = {}
        for info in archive.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if wanted is not None and not wanted(key):
                continue
            if not info.filename.endswith(".npy"):
                raise ValueError(f"member {info.filename!r} is not a .npy array")
            headers[key] = (info, _npy_header(archive, info, key))
        declared = sum(shape_bytes(shape, dtype) for _, (shape, dtype) in headers.values())
        check(
            f"reading {what} {path}",
            declared,
            0.0,
            (),
            {},
            memory_limit=memory_budget() if limit is None else limit,
        )
        arrays = {}
        for key, (info, (_shape, _dtype)) in headers.items():
            try:
                with archive.open(info) as fh:
                    arrays[key] = np.lib.format.read_array(fh, allow_pickle=False)
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                raise ValueError(f"{key}: truncated or corrupt data ({exc})") from None
        return arrays


def shape_bytes(shape, dtype):
    """Bytes of an array of ``shape`` and ``dtype`` (Python integers: no overflow)."""
    n = 1
    for k in shape:
        n *= int(k)
    return n * np.dtype(dtype).itemsize


def _npy_header(archive, info, key):
    """(shape, dtype) from a member's .npy header, reading the header only."""
    try:
        with archive.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version in ((2, 0), (3, 0)):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"{key}: not a readable .npy array ({exc})") from None
    if dtype.hasobject:
        raise ValueError(
            f"{key}: holds Python objects (dtype {dtype}); only numeric, bool "
            "and string arrays are read"
        )
    return tuple(shape), dtype
