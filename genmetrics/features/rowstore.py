"""Feature rows kept for bootstrap intervals: memory-mapped ``.npy`` files of one run.

With ``--bootstrap N`` (N > 0) the distribution metrics keep the feature rows of the
samples and of the reference set (FID and sFID only then; KID and the k-NN metrics
always keep them), and their intervals are computed from those rows. A
:class:`RowStore` writes them to disk as they come, so they are not held in RAM: 50,000
pool3 rows are 400 MB a side. Layout::

    <feature cache root>/rows/<run id>/<output>-<side>.npy

(``<output>``: ``2048`` for pool3, ``mixed_6-conv`` for sFID's spatial features;
``<side>``: ``samples`` or ``references``), in the folder of the feature cache
(``$GENMETRICS_CACHE_DIR``, else ``$GENMETRICS_HOME/features``). Each file is a plain
``.npy`` array (``np.load(path, mmap_mode="r")``); the scorecard's ``rows`` field names
them. Creating a run's folder removes the oldest run folders beyond the
:data:`KEEP_RUNS` most recent (never one written to in the last hour);
``genmetrics cache clear`` removes them all, as does deleting the ``rows`` folder.

A batch's rows are appended once per output and side, however many metrics keep them:
:meth:`RowStore.add` returns a read-only memory-mapped view of the rows just written and
gives the same view back for the very same array (the features one Inception pass
shares between FID, KID and the k-NN metrics). :meth:`RowStore.stack` turns a metric's
list of those views back into one array without reading them: the whole file, mapped.

    >>> import tempfile
    >>> store = RowStore(Path(tempfile.mkdtemp()) / "run")
    >>> chunk = np.arange(6, dtype=np.float32).reshape(2, 3)
    >>> view = store.add("2048", "samples", chunk)
    >>> store.add("2048", "samples", chunk) is view  # a second metric, the same batch
    True
    >>> more = store.add("2048", "samples", chunk + 6)
    >>> rows = store.stack([view, more], "2048", "samples")
    >>> type(rows).__name__, rows.shape, rows[3].tolist()
    ('memmap', (4, 3), [9.0, 10.0, 11.0])
    >>> sorted(store.paths()["2048"])
    ['samples']
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: run folders kept: creating a new one removes the oldest beyond this many
KEEP_RUNS = 5
#: a run folder written to this recently is never removed (another run may be using it)
BUSY_S = 3600.0
#: bytes of the ``.npy`` header reserved at the start of every file (rewritten in place
#: with the final shape when the rows are read)
HEADER_BYTES = 128
MAGIC = b"\x93NUMPY\x01\x00"
SIDES = ("samples", "references")


def rows_root() -> Path:
    """Where run folders of kept rows live: ``rows/`` in the feature cache's folder."""
    from genmetrics.features.cache import ROWS_DIR, cache_root

    return cache_root() / ROWS_DIR


def rows_size(root: Path | None = None) -> tuple[int, int]:
    """(run folders, bytes) of the rows kept under ``root`` (default :func:`rows_root`)."""
    root = rows_root() if root is None else Path(root)
    if not root.is_dir():
        return 0, 0
    runs = [p for p in root.iterdir() if p.is_dir()]
    return len(runs), sum(f.stat().st_size for run in runs for f in run.glob("*.npy"))


def clear_rows(root: Path | None = None) -> tuple[int, int]:
    """Delete every run folder of kept rows; return (run folders, bytes) removed. Only
    folders holding nothing but ``.npy`` files are removed."""
    root = rows_root() if root is None else Path(root)
    runs = bytes_ = 0
    if not root.is_dir():
        return 0, 0
    for run in [p for p in root.iterdir() if p.is_dir()]:
        files = list(run.iterdir())
        if any(f.suffix != ".npy" or not f.is_file() for f in files):
            continue
        bytes_ += sum(f.stat().st_size for f in files)
        shutil.rmtree(run, ignore_errors=True)
        runs += 1
    return runs, bytes_


def _header(dtype: np.dtype, rows: int, width: int) -> bytes:
    """A version 1.0 ``.npy`` header of exactly :data:`HEADER_BYTES` bytes."""
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                 "shape": (rows, width)})
    room = HEADER_BYTES - len(MAGIC) - 2
    if len(text) >= room:
        raise ValueError(f"a .npy header for shape {(rows, width)} does not fit")
    body = text + " " * (room - 1 - len(text)) + "\n"
    return MAGIC + room.to_bytes(2, "little") + body.encode("latin1")


class Spool:
    """Rows of one output and side, appended to one ``.npy`` file and read back mapped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dtype: np.dtype | None = None
        self.width = 0
        self.rows = 0
        self._handle: Any = None
        self._last: tuple[Any, np.ndarray] | None = None  # (array added, its view)
        self._views: list[np.ndarray] = []  # every view handed out, in order
        self._whole: np.ndarray | None = None  # the mapped file, while rows == its length
        self._wholes: list[tuple[np.ndarray, int]] = []  # mapped files handed out, views

    def add(self, chunk: Any) -> np.ndarray:
        """Append ``chunk`` (``k x width``) and return a read-only mapped view of it; the
        very same array again returns the same view without writing."""
        if self._last is not None and self._last[0] is chunk:
            return self._last[1]
        block = np.asarray(chunk)
        if block.ndim != 2:
            raise ValueError(f"rows must be 2-D, got shape {block.shape}")
        if self.dtype is None:
            self.dtype = np.dtype(np.float64 if block.dtype == np.float64 else np.float32)
            self.width = block.shape[1]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "w+b")  # noqa: SIM115 - closed by close()
            self._handle.write(_header(self.dtype, 0, self.width))
        elif self._handle is None:  # closed (its run computed): appending goes on
            self._handle = open(self.path, "r+b")  # noqa: SIM115 - closed by close()
        if block.shape[1] != self.width:
            raise ValueError(f"rows of width {block.shape[1]} do not fit rows of width "
                             f"{self.width}")
        data = np.ascontiguousarray(block, dtype=self.dtype)
        start = self.rows
        if len(data):
            self._handle.seek(0, os.SEEK_END)
            self._handle.write(data.tobytes())
            self._handle.flush()
            self.rows += len(data)
            view = np.memmap(self.path, dtype=self.dtype, mode="r",
                             offset=HEADER_BYTES + start * self.width * self.dtype.itemsize,
                             shape=(len(data), self.width))
        else:
            view = np.zeros((0, self.width), self.dtype)
        self._last = (chunk, view)
        self._views.append(view)
        return view

    def holds(self, chunks: Sequence[Any]) -> bool:
        """Whether ``chunks`` are exactly this spool's rows in order: its views, the first
        of them possibly replaced by an earlier :meth:`array` (a metric that stacked its
        rows, then kept more: an evaluation loop computing between batches)."""
        done = 0
        for i, chunk in enumerate(chunks):
            if done < len(self._views) and chunk is self._views[done]:
                done += 1
                continue
            covered = next((k for whole, k in self._wholes if whole is chunk), None)
            if i or covered is None:
                return False
            done = covered
        return done == len(self._views)

    def array(self) -> np.ndarray:
        """Every row so far, as one read-only array mapped from the file."""
        if self.dtype is None:
            return np.zeros((0, 0), np.float32)
        if self._whole is None or len(self._whole) != self.rows:
            self._handle.seek(0)
            self._handle.write(_header(self.dtype, self.rows, self.width))
            self._handle.flush()
            self._whole = np.load(self.path, mmap_mode="r") if self.rows else \
                np.zeros((0, self.width), self.dtype)
            self._wholes.append((self._whole, len(self._views)))
        return self._whole

    def close(self) -> None:
        if self._handle is not None:
            self.array()  # the header names the final shape
            self._handle.close()
            self._handle = None


class RowStore:
    """The kept rows of one run: one :class:`Spool` per output and side, in ``folder``
    (created, and old run folders pruned, when the first rows arrive)."""

    def __init__(self, folder: Path, keep: int = KEEP_RUNS) -> None:
        self.folder = Path(folder)
        self.keep = keep
        self._spools: dict[tuple[str, str], Spool] = {}
        self._files: dict[tuple[str, str], Path] = {}  # what the scorecard names
        self._serial = 0
        #: why rows could not be written (a read-only or full disk): they are then kept
        #: in memory, and the run says so in its warnings
        self.problem: str | None = None

    @classmethod
    def create(cls, root: Path | None = None, keep: int = KEEP_RUNS) -> RowStore:
        """A store for a new run under ``root`` (default :func:`rows_root`)."""
        root = rows_root() if root is None else Path(root)
        run = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        return cls(root / run, keep)

    def _file(self, output: str, side: str, suffix: str = "") -> Path:
        if not self.folder.exists():
            prune(self.folder.parent, self.keep - 1)
            self.folder.mkdir(parents=True, exist_ok=True)
        name = output.replace("/", "-").replace(os.sep, "-")
        return self.folder / f"{name}-{side}{suffix}.npy"

    def spool(self, output: str, side: str) -> Spool:
        """The spool of ``output`` (e.g. ``"2048"``) and ``side`` (``samples`` or
        ``references``)."""
        if side not in SIDES:
            raise ValueError(f"side {side!r}: choose samples or references")
        key = (output, side)
        if key not in self._spools:
            suffix = f"-{self._serial}" if self._serial else ""
            self._spools[key] = Spool(self._file(output, side, suffix))
        return self._spools[key]

    def add(self, output: str, side: str, chunk: Any) -> np.ndarray:
        """Append a batch's rows (once per array, see the module docstring); returns the
        mapped view to keep in a metric's state instead of ``chunk``."""
        if self.problem is not None:
            return chunk
        try:
            spool = self.spool(output, side)
            view = spool.add(chunk)
        except OSError as exc:  # the intervals still come, from rows held in memory
            self.problem = f"{type(exc).__name__}: {exc}"
            return chunk
        self._files[output, side] = spool.path
        return view

    def stack(self, chunks: Sequence[Any], output: str, side: str) -> np.ndarray:
        """``chunks`` as one mapped array: the spool's file when they are its views
        (nothing is read), else (rows gathered from other processes) a new file written
        one chunk at a time."""
        key = (output, side)
        spool = self._spools.get(key)
        if spool is not None and spool.holds(chunks):
            return spool.array()
        arrays = [np.asarray(c) for c in chunks]
        if not arrays:
            return np.zeros((0, 0), np.float32)
        width = arrays[0].shape[1]
        dtype = np.float64 if any(a.dtype == np.float64 for a in arrays) else np.float32
        if self.problem is None:
            try:
                return self._write(arrays, key, width, dtype)
            except OSError as exc:
                self.problem = f"{type(exc).__name__}: {exc}"
        return np.concatenate(arrays).astype(dtype, copy=False)

    def _write(self, arrays: list[np.ndarray], key: tuple[str, str], width: int,
               dtype: Any) -> np.ndarray:
        path = self._file(*key, f"-all-{uuid.uuid4().hex[:6]}")
        out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype,
                                        shape=(sum(len(a) for a in arrays), width))
        start = 0
        for a in arrays:
            out[start:start + len(a)] = a
            start += len(a)
        out.flush()
        del out
        self._files[key] = path
        return np.load(path, mmap_mode="r")

    def reset(self, side: str = "samples") -> None:
        """Start ``side``'s files afresh (an evaluation loop's next pass): later rows go
        to new files; the old ones are deleted (views already handed out stay readable)."""
        self._serial += 1
        for key in [k for k in self._spools if k[1] == side]:
            spool = self._spools.pop(key)
            spool.close()
            spool.path.unlink(missing_ok=True)
            self._files.pop(key, None)

    def paths(self) -> dict[str, dict[str, str]]:
        """``{output: {side: path}}`` of the rows kept (for the scorecard's ``rows``)."""
        out: dict[str, dict[str, str]] = {}
        for (output, side), path in self._files.items():
            out.setdefault(output, {})[side] = str(path)
        return out

    def close(self) -> None:
        """Finish every file (headers name their final shapes); views stay readable."""
        for spool in self._spools.values():
            spool.close()


def prune(root: Path, keep: int) -> list[Path]:
    """Remove the run folders under ``root`` beyond the ``keep`` most recent, except any
    written to within :data:`BUSY_S` seconds; return those removed."""
    if not root.is_dir():
        return []
    runs = []
    for folder in root.iterdir():
        if not folder.is_dir():
            continue
        stamps = [folder.stat().st_mtime] + [f.stat().st_mtime for f in folder.iterdir()]
        runs.append((max(stamps), folder))
    runs.sort(reverse=True)
    removed = []
    now = time.time()
    for stamp, folder in runs[max(keep, 0):]:
        if now - stamp < BUSY_S:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def read_rows(path: str | os.PathLike[str]) -> np.ndarray:
    """Rows a scorecard names (``card.rows[output][side]``), memory-mapped read-only."""
    return np.load(Path(path), mmap_mode="r", allow_pickle=False)


__all__ = ["RowStore", "Spool", "clear_rows", "prune", "read_rows", "rows_root", "rows_size",
           "KEEP_RUNS"]
