"""Pieces shared by the readers of every modality."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    """A sha256 over an unordered collection of inputs: each item (the parts of one
    ``add``: an id and its content) is hashed, and the digest is the sha256 of those item
    hashes **sorted**. So the same items in another order (file or line order, batch size,
    number of processes) give the same digest, and any changed, added or removed item
    changes it. The item hashes are kept (32 bytes each, :attr:`items`): shards scored by
    several processes combine into the digest of one process
    (:func:`genmetrics.distributed.combine_digests`), and checkpoints save them.

    >>> d = Digest(); d.add("a", "hello"); d.hexdigest()[:15]
    'sha256:c22fa66e'
    >>> e = Digest(); e.add("b", "bye"); e.add("a", "hello")
    >>> d.add("b", "bye"); d.hexdigest() == e.hexdigest()
    True
    """

    ITEM_SIZE = 32  # bytes of one item hash (sha256)

    def __init__(self) -> None:
        self._items = bytearray()  # the item hashes, kept: the digest sorts them
        self._hex: tuple[int, str] | None = None  # (items hashed, digest), cached

    def add(self, *parts: str | bytes) -> None:
        if parts:
            self.add_item(item_hash(*parts))

    def add_item(self, item_hash: bytes) -> None:
        """Add one item by its hash (as kept in :attr:`items`)."""
        if len(item_hash) != self.ITEM_SIZE:
            raise ValueError(f"an item hash has {self.ITEM_SIZE} bytes, not {len(item_hash)}")
        self._items += item_hash

    @property
    def items(self) -> list[bytes]:
        """The item hashes, in the order they were added."""
        size = self.ITEM_SIZE
        return [bytes(self._items[i:i + size]) for i in range(0, len(self._items), size)]

    def hexdigest(self) -> str:
        if self._hex is None or self._hex[0] != len(self._items):
            import numpy as np  # sorts a million item hashes in a tenth of a second

            # fixed-size byte strings sort as bytes do (all have the same length)
            items = np.frombuffer(bytes(self._items), dtype=f"S{self.ITEM_SIZE}")
            whole = hashlib.sha256(np.sort(items).tobytes())
            self._hex = (len(self._items), "sha256:" + whole.hexdigest())
        return self._hex[1]


def item_hash(*parts: str | bytes) -> bytes:
    """The sha256 of one digest item: its parts, each prefixed with its length (so
    ``("ab", "c")`` and ``("a", "bc")`` differ)."""
    item = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else part.encode("utf-8", "surrogatepass")
        item.update(len(data).to_bytes(8, "little"))
        item.update(data)
    return item.digest()


def anonymous_parts(sample: list[str | bytes], reference: list[str | bytes],
                    synthetic_id: bool) -> tuple[list[str | bytes], list[str | bytes]]:
    """Digest parts ``([id, *sample content], [id, *reference content])`` without an id
    that nobody gave (``synthetic_id``: a position the Evaluator made up, which depends
    on the number of processes). The sample is then hashed by its content alone, and its
    reference is tied to it by the sample's content hash instead of the id, so swapping
    two references still changes the reference digest.

        >>> anonymous_parts(["7", "a"], ["7", "b"], False)
        (['7', 'a'], ['7', 'b'])
        >>> sample, ref = anonymous_parts(["7", "a"], ["7", "b"], True)
        >>> sample, ref[0] == item_hash("a").hex(), ref[1:]
        (['a'], True, ['b'])
    """
    if not synthetic_id:
        return sample, reference
    content = sample[1:]
    return content, [item_hash(*content).hex(), *reference[1:]] if reference else []


def display_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it lies inside it, for messages and scorecards."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


PROBLEM_KEY = "\x00"  # starts the key of a discovery problem; no file's key can


@dataclass
class Discovery:
    """What a folder holds for a reader (see :func:`discover`).

    ``entries``: in sorted path order, each input file under its key (relative path
    without the extension) and each problem (two files of one name, a broken link, a
    folder that cannot be listed) as a :class:`Skipped` under a key starting with
    :data:`PROBLEM_KEY`. ``ambiguous``: names held by several files, with the reason.
    ``others``: relative paths of files with other extensions; ``notes``: folder links
    that were not followed (loops, folders met twice), with the reason.
    """

    folder: Path
    suffixes: tuple[str, ...]
    entries: dict[str, Path | Skipped] = field(default_factory=dict)
    ambiguous: dict[str, str] = field(default_factory=dict)
    others: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def files(self) -> dict[str, Path]:
        """The input files by key, in order."""
        return {k: v for k, v in self.entries.items() if isinstance(v, Path)}

    @property
    def problems(self) -> list[Skipped]:
        return [v for v in self.entries.values() if isinstance(v, Skipped)]

    def warnings(self, label: str) -> list[dict[str, str]]:
        """Run-level notes: links not followed, and files that are not inputs (named)."""
        path = printable(str(self.folder))
        notes = [{"path": path, "message": printable(f"{label}: {note}")} for note in self.notes]
        if self.others:
            notes.append({"path": path, "message": printable(
                f"{label}: {len(self.others)} file(s) without an input extension "
                f"({', '.join(self.suffixes)}) were not read: {first_few(self.others)}")})
        return notes


_COUNT_WORDS = {2: "two", 3: "three", 4: "four"}


def os_reason(exc: OSError) -> str:
    """A short reason for an OSError without the path, e.g. ``permission denied``.

    >>> os_reason(PermissionError(13, "Permission denied", "/x/a.png"))
    'permission denied'
    """
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def discover(folder: Path, suffixes: Sequence[str]) -> Discovery:
    """The files under ``folder`` with one of ``suffixes`` (any case), found recursively.

    Folder links are followed when they lead outside ``folder``, once per folder: a link
    to an enclosing folder (a loop), to a folder inside the input (already found under
    its own path) or to a folder already walked is not followed, and is named in
    :attr:`Discovery.notes`. Two files of one name (``a.png`` and ``a.jpg``) are both
    problems, as are broken links and sub-folders that cannot be listed; the input
    folder itself not listable is an :class:`InputError`.

        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for name in ("b.png", "a.png", "a.jpg", "notes.txt"):
        ...     _ = (root / name).write_bytes(b"")
        >>> found = discover(root, (".png", ".jpg"))
        >>> list(found.files), [p.path for p in found.problems], found.others
        (['b'], ['a.jpg', 'a.png'], ['notes.txt'])
        >>> found.ambiguous["a"]
        'two files named a (a.jpg, a.png): keep one'
    """
    suffixes = tuple(s.lower() for s in suffixes)
    found = Discovery(folder, suffixes)
    listing: list[tuple[str, Path | Skipped]] = []  # (key, file or problem), in order
    root_real = Path(os.path.realpath(folder))
    walked: dict[Path, str] = {root_real: "."}  # real folder -> where it was walked
    chain = [root_real]  # real paths of the folders being walked, outermost first

    def rel(path: Path) -> str:
        return display_path(path, folder)

    def link_problem(path: Path, target: Path) -> str | None:
        if any(c == target or c.is_relative_to(target) for c in chain):
            return f"symlink loop: {rel(path)} -> {target} (an enclosing folder); not followed"
        if target.is_relative_to(root_real):
            return (f"{rel(path)} -> {target}: a folder inside the input, read under its own "
                    "path; not followed")
        if target in walked:
            return f"{rel(path)} -> {target}: the same folder as {walked[target]}; not followed"
        return None

    def visit(directory: Path) -> None:
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            if directory == folder:
                raise InputError(f"{folder}: cannot list the folder ({os_reason(exc)})") from None
            listing.append((PROBLEM_KEY + rel(directory), Skipped(
                rel(directory), f"cannot list folder: {os_reason(exc)}; its files are not read")))
            return
        for entry in entries:
            path = directory / entry.name
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
                is_link = entry.is_symlink()
            except OSError:
                is_dir = is_file = is_link = False
            if is_dir:
                real = Path(os.path.realpath(path)) if is_link else chain[-1] / entry.name
                problem = link_problem(path, real) if is_link else None
                if problem is None and real in walked:
                    problem = f"{rel(path)}: the same folder as {walked[real]}; not followed"
                if problem is not None:
                    found.notes.append(problem)
                    continue
                walked[real] = rel(path)
                chain.append(real)
                visit(path)
                chain.pop()
                continue
            if path.suffix.lower() not in suffixes:
                found.others.append(rel(path))
                continue
            if is_file:
                listing.append((Path(rel(path)).with_suffix("").as_posix(), path))
                continue
            if is_link:
                reason = f"broken symbolic link (points to {os.readlink(path)})"
            else:
                reason = "not a regular file"
            listing.append((PROBLEM_KEY + rel(path), Skipped(rel(path), reason)))

    visit(folder)
    by_key: dict[str, list[Path]] = {}
    for key, item in listing:
        if isinstance(item, Path):
            by_key.setdefault(key, []).append(item)
    for key, paths in by_key.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            count = _COUNT_WORDS.get(len(paths), str(len(paths)))
            found.ambiguous[key] = f"{count} files named {key} ({names}): keep one"
    for key, item in listing:
        if isinstance(item, Path) and key in found.ambiguous:
            found.entries[PROBLEM_KEY + rel(item)] = Skipped(rel(item), found.ambiguous[key])
        else:
            found.entries[key] = item
    return found


def files_by_stem(folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    """Files under ``folder`` with one of ``suffixes`` (any case), keyed by relative path
    without the extension, in sorted order (see :func:`discover`); any problem (two files
    of one name, a broken link, a sub-folder that cannot be listed) is an InputError."""
    found = discover(folder, suffixes)
    for problem in found.problems:
        raise InputError(f"{folder}: {problem.path}: {problem.reason}")
    return found.files


SHOW_AT_MOST = 5


def first_few(names: Sequence[str]) -> str:
    """The first names of a list for an error message, with how many more there are.

    >>> first_few(["a", "b", "c", "d", "e", "f", "g"])
    'a, b, c, d, e (and 2 more)'
    """
    more = len(names) - SHOW_AT_MOST
    return ", ".join(names[:SHOW_AT_MOST]) + (f" (and {more} more)" if more > 0 else "")


def printable(name: str) -> str:
    """``name`` as text that can be written as UTF-8: the bytes of a file name that is not
    valid UTF-8 (kept by Python as surrogates) become ``\\xNN`` escapes.

    >>> import os
    >>> printable(os.fsdecode(b"caf\\xe9.png"))
    'caf\\\\xe9.png'
    """
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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
