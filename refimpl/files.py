"""Files: one atomic writer for every file the package produces, the one
converter of numbers to strict JSON, and a reader of ``.npz`` files that
checks declared sizes before it decompresses anything (:func:`read_npz`).

A file is written to a temporary ``.part`` file beside its destination,
flushed to disk and renamed over it, so a crash or kill leaves either the old
file or the complete new one, never a mix. New files get the mode the user's
umask allows (as ``open`` would), not the 0600 of a temporary file. An output
path that exists and is not a regular file (a device such as /dev/null, a
fifo, a socket, a folder; links followed) is never replaced: it is refused
(:func:`check_output`, which the command line also calls before any work).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import stat
import tempfile
import zipfile
import zlib

import numpy as np

from .errors import UsageError

__all__ = [
    "atomic_write",
    "check_output",
    "not_regular",
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


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a fifo (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def not_regular(path):
    """What ``path`` is when it exists and is not a regular file (links
    followed): "a folder", "a character device", ...; None for a regular
    file or a path that does not exist (a dangling link included)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # missing, or not reachable: the write will say
        return None
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def _folder_problem(path):
    """Why the folder of ``path`` cannot be created or written into, or None."""
    folder = os.path.dirname(os.path.abspath(path))
    probe = folder
    while not os.path.lexists(probe) and probe != os.path.dirname(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        return f"{probe} is not a folder" if os.path.lexists(probe) else "no folder to write into"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"the folder {probe} is not writable"
    return None


def check_output(path, option=None):
    """Refuse, before any work, an output file that cannot be written.

    ``path`` must not exist as anything but a regular file (a device, fifo,
    socket or folder is never replaced), and its folder must exist and be
    writable or be creatable. ``option`` (e.g. ``"--json"``) is how the user
    gave the path; the message names it. Returns ``path``.

    Raises
    ------
    refimpl.errors.UsageError
    """
    path = os.fspath(path)
    name = f"{option} {path}" if option else str(path)
    if not path or path.endswith(("/", os.sep)):
        raise UsageError(f"cannot write {name or repr(path)}: not a file name")
    kind = not_regular(path)
    if kind is not None:
        raise UsageError(
            f"cannot write {name}: it is {kind}, not a regular file (an output never "
            "replaces a device, fifo, socket or folder); give a file name"
        )
    problem = _folder_problem(path)
    if problem is not None:
        raise UsageError(f"cannot write {name}: {problem}")
    return path


def _refuse_non_regular(path):
    kind = not_regular(path)
    if kind is not None:
        raise UsageError(
            f"cannot write {path}: it is {kind}, not a regular file (an output never "
            "replaces a device, fifo, socket or folder)"
        )


def atomic_write(path, write):
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then
    rename it over ``path``: a crash leaves the old file or the complete new one.

    Raises
    ------
    refimpl.errors.UsageError
        ``path`` exists and is not a regular file (checked before writing and
        again before the rename).
    OSError
        The folder cannot be created or written (the message names ``path``).
    """
    path = os.fspath(path)
    _refuse_non_regular(path)
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
        _refuse_non_regular(path)  # created meanwhile: still never replaced
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
        Not a regular file (a device, fifo or socket: never opened, so never
        read without end), not an ``.npz`` (zip) archive, a member that is not a ``.npy`` array,
        an object array, a header or data that is truncated or corrupt; the
        message names the key.
    refimpl.errors.ResourceError
        The arrays to read would exceed ``limit``.
    """
    from .budget import check, memory_budget

    path = os.fspath(path)
    kind = not_regular(path)
    if kind == "a folder":
        raise IsADirectoryError(21, "Is a directory", path)
    if kind is not None:
        raise ValueError(f"it is {kind}, not a regular file")
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
        sizes = {key: shape_bytes(shape, dtype) for key, (_, (shape, dtype)) in headers.items()}
        declared = sum(sizes.values())
        largest = max(sizes, key=sizes.get, default=None)
        named = (
            f" (largest member {largest!r}: declared shape {headers[largest][1][0]}, "
            f"{headers[largest][1][1]})"
            if largest is not None
            else ""
        )
        check(
            f"reading {what} {path}{named}",
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
