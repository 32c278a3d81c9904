"""Per-sample metric state as typed numpy rows, grown in chunks.

A metric that keeps a few numbers per sample (BLEU's n-gram counts, ROUGE's precision,
recall and F) would spend about 1 KB per sample on Python lists of ints and floats.
:class:`Rows` keeps them in numpy arrays of one dtype instead: appended batches are
copied into a chunk that doubles up to about 1 MiB, full chunks are frozen (read-only)
and :meth:`Rows.array` concatenates them into one array when the state is read. Integer
rows start narrow (e.g. ``int32``) and widen to ``int64`` when a value needs it, so no
count is ever truncated.

``Rows`` is the value of a ``"cat"`` state field named in ``Metric.state_dtypes``:
:func:`cat_states` concatenates partial states in order (merge, ``torch.distributed``
gather); it pickles and deep-copies as one compact array.

    >>> r = Rows("int32")
    >>> r.append([[1, 2], [3, 4]]); r.append([[5, 6]])
    >>> len(r), r.array().tolist()
    (3, [[1, 2], [3, 4], [5, 6]])
    >>> r.append([[2**40, 0]]); r.dtype.name     # widened, not truncated
    'int64'
    >>> cat_states([r, Rows.of([[7, 8]], "int32")]).tolist()[-2:]
    [[1099511627776, 0], [7, 8]]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["Rows", "cat_states"]

CHUNK_BYTES = 1 << 20  # a full chunk holds about this many bytes
FIRST_ROWS = 16  # capacity of a fresh chunk; it doubles up to a full chunk


class Rows:
    """Append-only rows of one numpy dtype (row shape fixed by the first rows)."""

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __init__(self, dtype: Any = "float64", row_shape: tuple[int, ...] | None = None) -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype.kind not in "iuf":
            raise TypeError(f"Rows holds integers or floats, not {self.dtype}")
        self.row_shape = None if row_shape is None else tuple(row_shape)
        self._frozen: list[np.ndarray] = []  # full chunks, read-only, in order
        self._frozen_rows = 0
        self._tail: np.ndarray | None = None  # the chunk being filled
        self._fill = 0

    @classmethod
    def of(cls, values: Any, dtype: Any = "float64") -> Rows:
        """Rows holding ``values`` (a ``Rows``, an array or a list of rows; a copy)."""
        if isinstance(values, Rows):
            values = values.array()
        rows = cls(dtype)
        block = np.asarray(values)
        if block.dtype == object:  # e.g. None among floats (NaN), or ints past int64
            block = np.asarray(values, dtype=rows.dtype)
        rows.append(block)
        return rows

    # -- size ------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._frozen_rows + self._fill

    @property
    def nbytes(self) -> int:
        """Bytes held, spare capacity of the chunk being filled included."""
        tail = 0 if self._tail is None else self._tail.nbytes
        return sum(c.nbytes for c in self._frozen) + tail

    # -- writing ---------------------------------------------------------------------
    def append(self, rows: Any) -> None:
        """Add rows: an array-like of shape ``(k, *row_shape)`` (``k`` may be 0)."""
        block = np.asarray(rows)
        if block.ndim == 0:
            raise ValueError("Rows.append takes a sequence of rows, not one number")
        if block.dtype.kind not in "biuf":
            raise TypeError(f"rows must be numbers, not {block.dtype}")
        if len(block) == 0:
            return
        if self.row_shape is None:
            self.row_shape = block.shape[1:]
        elif block.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {block.shape[1:]} do not fit rows of shape "
                             f"{self.row_shape}")
        self._fit(block)
        done = 0
        while done < len(block):
            tail = self._room(len(block) - done)
            take = min(len(tail) - self._fill, len(block) - done)
            tail[self._fill:self._fill + take] = block[done:done + take]
            self._fill += take
            done += take

    def _fit(self, block: np.ndarray) -> None:
        """Widen integer storage when ``block`` holds a value it cannot represent."""
        if self.dtype.kind == "f":
            return
        if block.dtype.kind == "f":
            raise TypeError(f"cannot store floats in {self.dtype} rows")
        info = np.iinfo(self.dtype)
        low, high = int(block.min()), int(block.max())
        if info.min <= low and high <= info.max:
            return
        wide = np.dtype(np.int64)
        if not (np.iinfo(wide).min <= low and high <= np.iinfo(wide).max):
            raise OverflowError(f"value {high if high > info.max else low} does not fit int64")
        self._set_dtype(wide)

    def _set_dtype(self, dtype: np.dtype) -> None:
        frozen = []
        for chunk in self._frozen:
            chunk = chunk.astype(dtype)
            chunk.flags.writeable = False
            frozen.append(chunk)
        self._frozen = frozen
        if self._tail is not None:
            self._tail = self._tail.astype(dtype)
        self.dtype = dtype

    def _chunk_rows(self) -> int:
        row_bytes = self.dtype.itemsize * int(np.prod(self.row_shape or (), dtype=np.int64))
        return max(FIRST_ROWS, CHUNK_BYTES // max(row_bytes, 1))

    def _room(self, wanted: int) -> np.ndarray:
        """The chunk to write into, with room for at least one more row."""
        full = self._chunk_rows()
        tail = self._tail
        if tail is not None and self._fill < len(tail):
            if self._fill + wanted <= len(tail) or len(tail) >= full:
                return tail
        if tail is not None and len(tail) >= full:  # full chunk: freeze it
            tail.flags.writeable = False
            self._frozen.append(tail)
            self._frozen_rows += len(tail)
            self._tail, self._fill, tail = None, 0, None
        size = len(tail) if tail is not None else 0
        capacity = min(full, max(FIRST_ROWS, 2 * size, self._fill + wanted))
        grown = np.empty((capacity, *(self.row_shape or ())), dtype=self.dtype)
        if tail is not None:
            grown[:self._fill] = tail[:self._fill]
        self._tail = grown
        return grown

    # -- reading ---------------------------------------------------------------------
    def array(self) -> np.ndarray:
        """All rows as one read-only array (``n x *row_shape``); it becomes the storage,
        so reading twice costs one concatenation."""
        parts = list(self._frozen)
        if self._fill:
            parts.append(self._tail[:self._fill])  # type: ignore[index]
        if len(parts) == 1 and not self._fill:
            return parts[0]
        if not parts:
            empty = np.empty((0, *(self.row_shape or ())), dtype=self.dtype)
            empty.flags.writeable = False
            return empty
        whole = np.concatenate(parts)
        whole.flags.writeable = False
        self._frozen, self._frozen_rows = [whole], len(whole)
        self._tail, self._fill = None, 0
        return whole

    def tolist(self) -> list[Any]:
        """The rows as (nested) Python lists of ints or floats."""
        return self.array().tolist()

    def iter_lists(self, block: int = 8192) -> Iterator[Any]:
        """Each row as a Python list (or number), converted ``block`` rows at a time."""
        whole = self.array()
        for start in range(0, len(whole), block):
            yield from whole[start:start + block].tolist()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Rows):
            return NotImplemented
        a, b = self.array(), other.array()
        if len(a) == 0 or len(b) == 0:
            return len(a) == len(b)
        equal_nan = a.dtype.kind == "f" and b.dtype.kind == "f"
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=equal_nan))

    def __repr__(self) -> str:
        return f"Rows({len(self)} x {self.row_shape or ()}, {self.dtype.name})"

    # -- copies and pickles: one compact array -------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"dtype": self.dtype.str, "row_shape": self.row_shape, "data": self.array()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["dtype"], state["row_shape"])  # type: ignore[misc]
        data = np.asarray(state["data"], dtype=self.dtype)
        if len(data):  # a fresh array of the copy or unpickling: frozen, not copied again
            data.flags.writeable = False
            self._frozen, self._frozen_rows = [data], len(data)

    @classmethod
    def concat(cls, parts: Sequence[Rows]) -> Rows:
        """The rows of ``parts`` one after the other (a new ``Rows``; chunks are shared,
        which is safe: they are read-only)."""
        shapes = {p.row_shape for p in parts if len(p)}
        if len(shapes) > 1:
            raise ValueError(f"cannot concatenate rows of shapes {sorted(shapes)}")
        if not shapes:  # only empty parts: keep a declared shape, if any
            shapes = {next((p.row_shape for p in parts if p.row_shape is not None), None)}
        dtype = np.result_type(*(p.dtype for p in parts)) if parts else np.dtype("float64")
        out = cls(dtype, shapes.pop())
        for part in parts:
            if not len(part):
                continue
            chunk = part.array()
            if chunk.dtype != dtype:
                chunk = chunk.astype(dtype)
                chunk.flags.writeable = False
            out._frozen.append(chunk)
            out._frozen_rows += len(chunk)
        return out


def cat_states(parts: Sequence[Any]) -> Any:
    """Concatenate the values of a ``"cat"`` state field in order: ``Rows`` into one
    ``Rows``, anything else (lists) into one list."""
    if parts and isinstance(parts[0], Rows):
        return Rows.concat([p if isinstance(p, Rows) else Rows.of(p, parts[0].dtype)
                            for p in parts])
    return [x for part in parts for x in part]
