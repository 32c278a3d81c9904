"""Pieces shared by the readers of every modality."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from genmetrics.errors import InputError


@dataclass(frozen=True)
class Skipped:
    """An input that was not scored, with the reason; it goes to the scorecard's ``skipped``."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class Unusable:
    """Stands where a reference should be when a pair cannot be compared (a reference of
    another size, or one that cannot be decoded): paired metrics record the pair as
    failed with ``reason``, while distribution metrics still use the sample."""

    reason: str


class Digest:
    """A sha256 over the inputs in the order they are scored: each item (the parts of one
    ``add``) is hashed, and the digest is the sha256 of those item hashes in order. So
    shards scored by several processes combine into the digest of one process
    (:func:`genmetrics.distributed.combine_digests`), which needs ``keep_items``.

    >>> d = Digest(); d.add("a", "hello"); d.hexdigest()[:15]
    'sha256:c22fa66e'
    """

    def __init__(self, keep_items: bool = False) -> None:
        self._hash = hashlib.sha256()
        self.keep_items = keep_items
        self.items: list[bytes] = []  # item hashes, when kept

    def add(self, *parts: str | bytes) -> None:
        if not parts:
            return
        item = hashlib.sha256()
        for part in parts:
            data = part if isinstance(part, bytes) else part.encode("utf-8", "surrogatepass")
            item.update(len(data).to_bytes(8, "little"))
            item.update(data)
        self.add_item(item.digest())

    def add_item(self, item_hash: bytes) -> None:
        """Add one item by its hash (as kept in :attr:`items`)."""
        self._hash.update(item_hash)
        if self.keep_items:
            self.items.append(item_hash)

    def hexdigest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def display_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it lies inside it, for messages and scorecards."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def files_by_stem(folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    """Files under ``folder`` with one of ``suffixes`` (any case), keyed by relative path
    without the extension, in sorted order; two files of one name are an InputError."""
    files: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in suffixes and path.is_file():
            key = path.relative_to(folder).with_suffix("").as_posix()
            if key in files:
                raise InputError(f"{folder}: {files[key].name} and {path.name} have the same "
                                 "name; keep one file per name")
            files[key] = path
    return files


SHOW_AT_MOST = 5


def first_few(names: Sequence[str]) -> str:
    """The first names of a list for an error message, with how many more there are.

    >>> first_few(["a", "b", "c", "d", "e", "f", "g"])
    'a, b, c, d, e (and 2 more)'
    """
    more = len(names) - SHOW_AT_MOST
    return ", ".join(names[:SHOW_AT_MOST]) + (f" (and {more} more)" if more > 0 else "")


def unicode_error_reason(exc: UnicodeDecodeError) -> str:
    bad = exc.object[exc.start : exc.start + 1].hex()
    return f"not valid UTF-8 (byte 0x{bad} at offset {exc.start})"


def write_text_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder and a rename.

    A reader never sees half a file; a failure leaves the old file (if any) untouched.
    An unwritable path is an :class:`InputError` naming it.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "is a folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
