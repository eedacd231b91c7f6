"""Array and JSON I/O with the pipeline's two promises: no half-written artifact, no unpickling.

Every writer goes through ``atomic_path``: the data lands under a temporary name in the target's directory and is
renamed into place only when complete, so a failed step never leaves a plausible-looking file behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import sys
import tokenize
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

import numpy as np

from .errors import UserError

CSV_MAGIC = "# trtverify-csv 1"
# The largest .npy header read, as in the C++ reader (cpp/include/trtverify/npy.h max_header_bytes): numpy's own
# headers are under 100 bytes, and numpy's default limit answers a larger one with an allow_pickle hint.
MAX_HEADER_BYTES = 1 << 20
MAP_BYTES = 1 << 20    # NpyFile maps a range of rows at least this large instead of reading it (its docstring)
COPY_BYTES = 64 << 20  # rows copied at a time by a pass that only moves them (a shard's input, a merge)
# A write that fails for want of room: the user's to fix, not a bug (no traceback).
FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _umask_mode(path: Path) -> None:
    """mkstemp/mkdtemp create 0600/0700; give the artifact the mode a plain open() or mkdir would (results shared
    on a cluster), keeping it executable if the writer made it so (compile_cpp's binary)."""
    if path.is_symlink():  # a link to the user's own file (import in place): chmod would change their file
        return
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        executable = path.is_dir() or bool(path.stat().st_mode & 0o100)
        os.chmod(path, (0o777 if executable else 0o666) & ~umask)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp = new_temporary(target, directory=directory)
    try:
        yield tmp
        _umask_mode(tmp)
        if directory:
            if target.exists():
                remove_tree(target)
            os.replace(tmp, target)
        else:
            os.replace(tmp, target)
    except BaseException as exc:
        if tmp.is_dir():
            remove_tree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in FULL:
            raise UserError(f"could not write {target}: {os.strerror(exc.errno)}; nothing was written. Free space "
                            "(or raise the quota / file size limit) and rerun") from None
        raise


def remove_tree(path: Path, *, ignore_errors: bool = False) -> None:
    """shutil.rmtree, imported only when a folder is removed: shutil brings bz2 and lzma, 2.5-3.5 ms of
    compare's 0.2-s start, which writes files only."""
    import shutil

    shutil.rmtree(path, ignore_errors=ignore_errors)


def temporary_affixes(target: Path) -> tuple[str, str]:
    """What the name of a temporary of ``target`` starts and ends with: .NAME.RANDOM.tmp (new_temporary makes them,
    remove_stale_temporaries finds them)."""
    return f".{target.name}.", ".tmp"


def new_temporary(target: Path, *, directory: bool) -> Path:
    """A new empty file (or folder) beside ``target``, named .NAME.RANDOM.tmp and made exclusively, readable by its
    owner only, as tempfile's mkstemp and mkdtemp make theirs: tempfile's import (random, shutil, bz2, lzma) was 4 ms
    of compare's 0.2-s start (2026-12-06)."""
    prefix, suffix = temporary_affixes(target)
    while True:
        tmp = target.parent / f"{prefix}{os.urandom(8).hex()}{suffix}"
        try:
            if directory:
                os.mkdir(tmp, 0o700)
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600))
            return tmp
        except FileExistsError:   # 64 random bits: only ever another writer's name
            continue


def remove_stale_temporaries(target: Path) -> None:
    """Remove what a killed writer of ``target`` left (SIGKILL skips atomic_path's cleanup). Snakemake runs one job
    per output at a time, so a temporary of this target that exists now belongs to no live writer."""
    prefix, suffix = temporary_affixes(target)
    with os.scandir(target.parent) as entries:
        stale = [Path(e.path) for e in entries if e.name.startswith(prefix) and e.name.endswith(suffix)
                 and len(e.name) >= len(prefix) + len(suffix)]
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            remove_tree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as .npy atomically (never pickled: object arrays are refused)."""
    array = np.asarray(array)
    if array.dtype.hasobject:
        raise UserError(f"refusing to write {path}: object arrays would need pickling")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        # C order always: np.save keeps a Fortran-ordered array's layout, which the C++ reader refuses.
        np.save(fh, np.asarray(array, order="C"), allow_pickle=False)


def load_npy(
    path: str | os.PathLike[str],
    *,
    what: str = "array",
    dtype: str | np.dtype[Any] | None = None,
    ndim: int | None = None,
    finite: bool = False,
) -> np.ndarray:
    """Load a .npy written by numpy without ever unpickling; every failure is a UserError naming the file.

    ``dtype`` and ``ndim`` are checked when given; ``finite`` rejects NaN and Inf values.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} file {p} does not exist; run the step that writes it, or fix the path in config.yaml")
    try:
        read_npy_header(p, what)
    except OSError as exc:
        raise UserError(f"{what} file {p} could not be read ({exc}); check its permissions or regenerate it") from None
    array = _np_load(p, what, mmap=False)
    if dtype is not None and array.dtype != np.dtype(dtype):
        raise UserError(f"{what} file {p} has dtype {array.dtype}, expected {np.dtype(dtype)}")
    if ndim is not None and array.ndim != ndim:
        raise UserError(f"{what} file {p} has shape {array.shape} ({array.ndim} dimensions), expected {ndim}")
    if finite:
        check_finite(array, what, p)
    return array


def _np_load(p: Path, what: str, *, mmap: bool) -> np.ndarray:
    """np.load without unpickling, every failure a UserError naming the file; ``mmap`` maps instead of reading (an
    empty array is read: it has nothing to map)."""
    try:
        array = np.load(p, allow_pickle=False, mmap_mode="r" if mmap else None, max_header_size=MAX_HEADER_BYTES)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise UserError(
                f"{what} file {p} holds pickled Python objects; trtverify never unpickles files. "
                "Save a plain numeric array with numpy.save"
            ) from None
        if mmap and "empty" in str(exc):  # mmap refuses a file with no data after the header
            return _np_load(p, what, mmap=False)
        raise UserError(f"{what} file {p} is not a valid .npy file ({exc}); regenerate it") from None
    except (OSError, EOFError) as exc:
        raise UserError(f"{what} file {p} could not be read ({exc}); it may be truncated: regenerate it") from None
    except Exception as exc:
        # np.load imports zipfile only for what starts like an .npz archive (importing it here cost every program
        # 5 ms): only then can this be its BadZipFile, the archive not being one
        zipfile = sys.modules.get("zipfile")
        if zipfile is None or not isinstance(exc, zipfile.BadZipFile):
            raise
        raise UserError(f"{what} file {p} is not a .npy file (it starts like an .npz archive but is not one: "
                        f"{exc}); save a single array with numpy.save") from None
    if not isinstance(array, np.ndarray):
        close = getattr(array, "close", None)
        if close is not None:
            close()
        raise UserError(f"{what} file {p} is an .npz archive, expected a single .npy array")
    return array


def check_finite(batch: np.ndarray, what: str, path: str | os.PathLike[str], start: int | None = None) -> None:
    """Refuse NaN and Inf, naming the first bad index; ``start``: the batch's first sample in the file (the counts
    are then those of this batch, the first one with a bad value)."""
    if batch.dtype.kind != "f":
        return
    bad = ~np.isfinite(batch)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        first = (first[0] + (start or 0), *first[1:])
        scope = "" if start is None else f" counted in samples {start}..{start + len(batch) - 1}"
        raise UserError(
            f"{what} file {path} contains {int(np.isnan(batch).sum())} NaN and {int(np.isinf(batch).sum())} Inf "
            f"values (first at index {first}){scope}; the step that wrote it produced invalid numbers"
        )


class NpyReader:
    """A .npy file read batch by batch: memory holds one batch, never the file (a 50,000-image test set is GBs).

    C-order data is read with pread (no mapping whose touched pages would count as the process's memory); other
    layouts through a memory map, copied to C order one batch at a time. Every check of ``load_npy`` applies.
    """

    def __init__(self, path: str | os.PathLike[str], *, what: str = "array", dtype: str | None = None,
                 finite: bool = False) -> None:
        self.path, self.what, self.finite = Path(path), what, finite
        if not self.path.is_file():
            raise UserError(f"{what} file {self.path} does not exist; run the step that writes it, or fix the path "
                            "in config.yaml")
        try:
            read_npy_header(self.path, what)
        except OSError as exc:
            raise UserError(f"{what} file {self.path} could not be read ({exc}); check its permissions or "
                            "regenerate it") from None
        self.array = _np_load(self.path, what, mmap=True)
        self.shape, self.dtype = tuple(self.array.shape), self.array.dtype
        if dtype is not None and self.dtype != np.dtype(dtype):
            raise UserError(f"{what} file {self.path} has dtype {self.dtype}, expected {np.dtype(dtype)}")
        if not self.shape:
            raise UserError(f"{what} file {self.path} holds a scalar; expected an array of samples (N, ...)")
        mapped = isinstance(self.array, np.memmap)
        self.offset = int(getattr(self.array, "offset", 0))
        self.c_order = mapped and self.array.flags.c_contiguous
        self.row_bytes = math.prod(self.shape[1:]) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def layout(self) -> str:
        if self.array.flags.c_contiguous:
            return "C order"
        return "Fortran order" if self.array.flags.f_contiguous else "strided"

    def read(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Samples ``start:stop`` as a C-order array of the file's dtype; into ``out`` when given (C-order files: a
        TensorRT runner's pinned input buffer, so the batch reaches the device without another host copy)."""
        stop = min(stop, len(self))
        if self.c_order:  # read straight into the batch's own memory: no intermediate bytes object
            shape = (stop - start, *self.shape[1:])
            usable = out is not None and out.shape == shape and out.dtype == self.dtype and out.flags.c_contiguous
            batch: np.ndarray = out if out is not None and usable else np.empty(shape, self.dtype)
            view, at = batch.data.cast("B"), self.offset + start * self.row_bytes
            with open(self.path, "rb") as fh:
                while view.nbytes:
                    got = os.preadv(fh.fileno(), [view], at)
                    if got == 0:
                        raise UserError(f"{self.what} file {self.path} ended early (it shrank while being read); "
                                        "regenerate it")
                    view, at = view[got:], at + got
        else:
            batch = np.array(self.array[start:stop], order="C")
        if self.finite:
            check_finite(batch, self.what, self.path, start)
        return batch

    def rows_per(self, nbytes: int) -> int:
        """How many samples make about ``nbytes`` (at least one): a batch size for a pass that is not inference."""
        return max(1, nbytes // max(1, self.row_bytes))

    def batches(self, size: int, stop: int | None = None, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """(first index, batch) over samples ``start`` to ``stop`` (all by default)."""
        end = len(self) if stop is None else min(stop, len(self))
        for first in range(start, end, size):
            yield first, self.read(first, min(first + size, end))


class NpyFile:
    """A .npy file read by ranges of rows: never unpickles, never maps the whole file.

    ``np.load(mmap_mode="r")`` would do for correctness, but pages of a mapped file count in the process's resident
    memory once read, so a pass over 100,000 samples would hold every page it touched. A range of at least
    ``MAP_BYTES`` is mapped on its own instead (read-only, no copy), and unmapped when the last array that views it is
    gone, so memory is the batches in use. Mapping skips what reading into a fresh buffer costs: the kernel zeroing
    each new page, then copying the file's pages into it (a fifth of compare's CPU time on 0.8 GB,
    docs/benchmarks.md). Smaller ranges, and files that cannot be mapped, are read with ``pread``. Fortran-ordered and
    version-3 files fall back to a memory map of the whole file.

    Python's mmap refuses a range past the end of the file (it is then read, and the read reports the truncation);
    a file truncated in place while one of its ranges is mapped would end the process with SIGBUS, but the
    pipeline's writers replace files by renaming (atomic_path), never in place.
    """

    def __init__(self, path: str | os.PathLike[str], *, what: str = "array") -> None:
        self.path, self.what = Path(path), what
        self._fd: int | None = None
        self._map: np.ndarray | None = None
        self._mappable = True
        if not self.path.is_file():
            raise UserError(f"{what} file {self.path} does not exist; run the step that writes it, or fix the path")
        try:
            header = read_npy_header(self.path, what)
        except OSError as exc:
            raise UserError(f"{what} file {self.path} could not be read ({exc}); check it") from None
        if header is None:
            raise UserError(f"{what} file {self.path} is an .npz archive, expected a single .npy array")
        shape, fortran, dtype, self._offset = header
        if shape is None or (fortran and len(shape) > 1):
            mapped = self._open_map()
            shape, dtype = mapped.shape, mapped.dtype
        self.shape, self.dtype = tuple(int(d) for d in shape), np.dtype(dtype)
        self._row_items = math.prod(self.shape[1:])
        if self._map is None:   # opened here, so that threads may read ranges at once (compare's output profile)
            self._fd = os.open(self.path, os.O_RDONLY)

    def _open_map(self) -> np.ndarray:
        try:
            self._map = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise UserError(f"{self.what} file {self.path} could not be read ({exc}); regenerate it") from None
        return self._map

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 0

    def __getitem__(self, key: slice) -> np.ndarray:
        """Rows ``key.start:key.stop`` (step 1) as an array of their own (read-only where mapped)."""
        if not isinstance(key, slice) or key.step not in (None, 1) or not self.shape:
            raise TypeError("NpyFile supports only row ranges [start:stop]")
        start, stop, _ = key.indices(self.shape[0])
        stop = max(start, stop)
        if self._map is not None:
            return np.array(self._map[start:stop])
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        row_bytes = self._row_items * self.dtype.itemsize
        size, at = (stop - start) * row_bytes, self._offset + start * row_bytes
        if size >= MAP_BYTES and self._mappable:
            try:
                return self._mapped(self._fd, at, size, stop - start)
            except (OSError, ValueError):   # a file system that cannot map files, or a truncated one: read
                self._mappable = False
        rows = np.empty((stop - start,) + self.shape[1:], dtype=self.dtype)   # not zeroed: every byte is read
        view, done = rows.reshape(-1).view(np.uint8).data, 0
        while done < size:
            n = os.preadv(self._fd, [view[done:]], at + done)
            if n == 0:
                raise UserError(f"{self.what} file {self.path} ended early; it is truncated: regenerate it")
            done += n
        return rows

    def _mapped(self, fd: int, at: int, size: int, rows: int) -> np.ndarray:
        """``size`` bytes from ``at`` as a read-only array of ``rows`` rows over a mapping of just them (the array
        keeps the mapping; it is unmapped with the last view of it)."""
        import mmap     # here: only compare's large reads need it

        base = at - at % mmap.ALLOCATIONGRANULARITY    # a mapping starts on a page
        window = mmap.mmap(fd, at - base + size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, offset=base)
        return np.frombuffer(window, self.dtype, rows * self._row_items, at - base).reshape((rows,) + self.shape[1:])

    def take(self, indices: Iterable[int]) -> np.ndarray:
        """Rows at the given indices (a handful: one read each)."""
        rows = [self[int(i):int(i) + 1] for i in indices]
        return np.concatenate(rows) if rows else np.zeros((0,) + self.shape[1:], dtype=self.dtype)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "NpyFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


class NpyWriter:
    """Rows written batch by batch into the final .npy: a header for the full shape, then pwrite at each batch's
    offset, renamed into place by ``close`` (atomic_path) only when every row is there. Nothing is concatenated,
    and dirty pages stay the kernel's, not the process's (a writable memmap would count them as its memory)."""

    def __init__(self, path: str | os.PathLike[str], rows: int, dtype: Any = np.float32) -> None:
        self.path, self.rows, self.dtype = Path(path), rows, np.dtype(dtype)
        self._atomic = atomic_path(self.path)
        self.tmp = self._atomic.__enter__()
        self.fh = open(self.tmp, "r+b")
        self.written, self.offset = 0, 0
        self.row_shape: tuple[int, ...] | None = None

    def _header(self, row_shape: tuple[int, ...]) -> None:
        self.row_shape = row_shape
        np.lib.format.write_array_header_1_0(self.fh, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                       "fortran_order": False, "shape": (self.rows, *row_shape)})
        self.offset = self.fh.tell()
        self.fh.truncate(self.offset + self.rows * math.prod(row_shape) * self.dtype.itemsize)

    def write(self, batch: np.ndarray) -> None:
        """Append ``batch`` (converted to the writer's dtype, C order) after the rows written so far."""
        batch = np.ascontiguousarray(batch, dtype=self.dtype)
        if self.row_shape is None:
            self._header(tuple(batch.shape[1:]))
        if tuple(batch.shape[1:]) != self.row_shape or self.written + len(batch) > self.rows:
            raise ValueError(f"batch {batch.shape} does not fit rows {self.written}.. of {self.rows} rows "
                             f"{self.row_shape}")
        os.pwrite(self.fh.fileno(), batch.data.cast("B"), self.offset + self.written * batch[:1].nbytes)
        self.written += len(batch)

    def close(self) -> None:
        """Rename into place; refuses (and removes the temporary) when rows are missing."""
        if self.row_shape is None:  # no batch came: an empty (0, 0) array, as np.zeros((0, 0)) saved
            self._header((0,))
        self.fh.close()
        if self.written != self.rows:
            self.abort(ValueError(f"{self.path}: {self.written} of {self.rows} rows written"))
        self._atomic.__exit__(None, None, None)

    def abort(self, exc: BaseException) -> None:
        """Remove the temporary and raise ``exc`` (translated to a UserError when the disk is full)."""
        self.fh.close()
        self._atomic.__exit__(type(exc), exc, exc.__traceback__)
        raise exc

    def __enter__(self) -> "NpyWriter":
        return self

    def __exit__(self, typ: Any, exc: Any, tb: Any) -> None:
        if exc is None:
            self.close()
        else:
            self.abort(exc)


class NpyHeader(NamedTuple):
    shape: tuple[int, ...] | None  # None for a version-3 file (numpy's own reader checks it)
    fortran_order: bool
    dtype: np.dtype[Any] | None
    offset: int  # where the data starts


def read_npy_header(path: str | os.PathLike[str], what: str = "array") -> NpyHeader | None:
    """Read and check a .npy header without loading data; None for an .npz archive (callers refuse it by type).

    Names what is wrong before numpy reads the file: empty, not .npy at all, a pickle, object dtype (would need
    unpickling), or truncated. Without this, numpy reports a text file as "pickled data" (its fallback when the magic
    string is missing) and a truncated file as an unspecific read failure.
    """
    p = Path(path)
    with open(p, "rb") as fh:
        head = fh.read(6)
        if not head:
            raise UserError(f"{what} file {p} is empty (0 bytes); it is truncated: regenerate it")
        if head.startswith(b"PK"):
            return None
        if head[:1] == b"\x80":
            raise UserError(f"{what} file {p} is a Python pickle, not a .npy file; trtverify never unpickles files. "
                            "Save a plain numeric array with numpy.save")
        if len(head) < len(np.lib.format.MAGIC_PREFIX) and np.lib.format.MAGIC_PREFIX.startswith(head):
            raise UserError(f"{what} file {p} is truncated: {len(head)} bytes, not even a .npy header; regenerate it")
        if head != np.lib.format.MAGIC_PREFIX:
            raise UserError(f"{what} file {p} is not a .npy file (it lacks the NumPy magic string); "
                            "regenerate it with numpy.save")
        fh.seek(0)
        try:
            version = np.lib.format.read_magic(fh)
            _check_header_length(fh, version, p, what)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh, max_header_size=MAX_HEADER_BYTES)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh, max_header_size=MAX_HEADER_BYTES)
            else:
                return NpyHeader(None, False, None, fh.tell())
        except (ValueError, SyntaxError, tokenize.TokenError) as exc:  # numpy parses the header with Python's tokenizer
            if str(exc).startswith("EOF"):
                raise UserError(f"{what} file {p} is truncated inside its header ({exc}); regenerate it") from None
            raise UserError(f"{what} file {p} is not a valid .npy file ({exc}); regenerate it") from None
        offset = fh.tell()
    if any(d < 0 for d in shape):
        raise UserError(f"{what} file {p} is not a valid .npy file (negative dimension in shape {tuple(shape)}); "
                        "regenerate it")
    if dtype.hasobject:
        raise UserError(f"{what} file {p} holds pickled Python objects; trtverify never unpickles files. "
                        "Save a plain numeric array with numpy.save")
    needed = offset + math.prod(shape) * dtype.itemsize
    size = p.stat().st_size
    if size < needed:
        raise UserError(f"{what} file {p} is truncated: {size} bytes, its header promises {needed}; regenerate it")
    if size > needed:  # the same words as the C++ reader (cpp/src/npy.cpp check_data_size)
        raise UserError(f"{what} file {p}: {size - needed} bytes of trailing garbage after the {needed - offset} "
                        f"bytes of data that shape {tuple(shape)} of {dtype} needs (the header lies about the shape, "
                        "or something was appended); regenerate it")
    return NpyHeader(tuple(int(d) for d in shape), bool(fortran), dtype, offset)


def _check_header_length(fh: Any, version: tuple[int, int], p: Path, what: str) -> None:
    """Refuse an oversized header with the C++ reader's words; leaves ``fh`` where it was."""
    if version not in ((1, 0), (2, 0), (3, 0)):
        return  # numpy's read_magic already refused it; 3.0 is read by numpy with the same limit
    where = fh.tell()
    raw = fh.read(2 if version == (1, 0) else 4)
    fh.seek(where)
    length = int.from_bytes(raw, "little")
    if len(raw) in (2, 4) and length > MAX_HEADER_BYTES:
        raise UserError(f"{what} file {p}: the .npy header claims {length} bytes, more than the limit of "
                        f"{MAX_HEADER_BYTES}; it is damaged or not written by numpy.save: regenerate it")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically; NaN/Inf are refused (they are not JSON)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike[str], *, what: str = "JSON") -> Any:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} file {p} does not exist; run the step that writes it")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{what} file {p} is not valid JSON ({exc}); regenerate it") from None


def write_csv_array(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write the pipeline's CSV exchange format: a header with shape and dtype, then one row per sample.

    Floats are written with enough digits (9 for float32, 17 for float64) to read back bit-identical.
    """
    array = np.asarray(array)
    if array.ndim == 0:
        raise UserError("cannot write a 0-dimensional array as CSV")
    write_csv_batches(path, array.shape, array.dtype, [array])


def write_csv_batches(path: str | os.PathLike[str], shape: tuple[int, ...], dtype: np.dtype[Any],
                      batches: Iterable[np.ndarray]) -> None:
    """``write_csv_array`` of an array of ``shape`` given as consecutive row batches (a test set too large to hold
    in memory is written a batch at a time)."""
    if dtype.kind == "f":
        fmt = "%.9g" if dtype.itemsize <= 4 else "%.17g"
    elif dtype.kind in "iub":
        fmt = "%d"
    else:
        raise UserError(f"cannot write dtype {dtype} as CSV")
    width = math.prod(shape[1:])
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.write(f"{CSV_MAGIC} shape={','.join(str(d) for d in shape)} dtype={dtype.name}\n")
        for batch in batches:
            rows = batch.reshape(batch.shape[0], width)
            np.savetxt(fh, rows.astype(np.int64) if dtype.kind == "b" else rows, fmt=fmt, delimiter=",")


def read_csv_array(path: str | os.PathLike[str], *, what: str = "CSV") -> np.ndarray:
    """Read a file written by ``write_csv_array``, checking the row count and width against its header."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} file {p} does not exist")
    with open(p) as fh:
        header = fh.readline().strip()
        if not header.startswith(CSV_MAGIC):
            raise UserError(f"{what} file {p} lacks the '{CSV_MAGIC} shape=... dtype=...' header line")
        fields = dict(item.split("=", 1) for item in header[len(CSV_MAGIC):].split() if "=" in item)
        try:
            shape = tuple(int(d) for d in fields["shape"].split(","))
            dtype = np.dtype(fields["dtype"])
        except (KeyError, ValueError, TypeError) as exc:
            raise UserError(f"{what} file {p} has a malformed header '{header}' ({exc})") from None
        try:
            with warnings.catch_warnings():  # a zero-row file is valid: no "input contained no data" warning
                warnings.filterwarnings("ignore", message="loadtxt: input contained no data")
                data = np.loadtxt(fh, delimiter=",", dtype=dtype, ndmin=2)
        except ValueError as exc:
            raise UserError(f"{what} file {p} has a malformed row ({exc})") from None
    width = math.prod(shape[1:]) if len(shape) > 1 else 1
    if data.size == 0:
        data = data.reshape(0, width)
    if data.shape != (shape[0], width):
        raise UserError(
            f"{what} file {p} has {data.shape[0]} rows of {data.shape[1]} values; its header promises "
            f"{shape[0]} rows of {width}: the file is truncated or was edited"
        )
    return data.reshape(shape)
