"""Text input: find samples and their references, pair them, decode them as UTF-8.

Accepted layouts (``samples`` / ``references``):

* **Folders of ``.txt`` files**, one sample per file, paired by relative path:
  ``samples/a/1.txt`` <-> ``refs/a/1.txt``. Several references per sample: give
  several reference folders (``-r refs1 -r refs2``), or one folder whose
  sub-folders are reference sets (``refs/a/1.txt``, ``refs/b/1.txt``) -- used when
  no sample path is found directly under it.
* **One ``.txt`` file**, one sample per line, paired by line number with each
  reference ``.txt`` file (one reference set per file).
* **One ``.jsonl`` file**, one JSON object per line: ``{"text": ...}`` plus an
  optional ``"id"``, and optionally the references inline as ``"references": [...]``
  or ``"reference": "..."``. Reference ``.jsonl`` files hold ``{"id", "text"}`` or
  ``{"id", "references"}`` and pair by ``id`` when both sides have ids, else by line.
  Blank lines in ``.jsonl`` files are ignored; in ``.txt`` files they are empty samples.

Sample text is used exactly as stored (files whole; lines without their line break).
Every sample needs at least one reference; an unpaired name is an error that lists
the first few. A file or line that is not valid UTF-8 or not valid JSON is skipped
and named in the scorecard, never dropped silently.

Reading is lazy: ``TextSource.batches()`` reads files a batch at a time.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from genmetrics.errors import InputError
from genmetrics.io.common import Skipped, display_path, first_few, unicode_error_reason

TEXT_SUFFIXES = (".txt",)
LINE_SUFFIXES = (".txt", ".jsonl")


@dataclass(frozen=True)
class TextPair:
    """One sample and its references (an empty list when no references were given)."""

    id: str
    text: str
    references: list[str]
    warning = None  # text pairs are used as they are

    def metric_inputs(self) -> tuple[str, list[str]]:
        """What metrics get: the sample and its list of references."""
        return self.text, self.references

    def digest_parts(self) -> tuple[list[str], list[str]]:
        """What identifies the sample and the references, for the input digests."""
        return [self.id, self.text], [self.id, *self.references]


def _read_utf8(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


# -- folders --------------------------------------------------------------------
def _text_files(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.suffix.lower() in TEXT_SUFFIXES and p.is_file()
    )


def _reference_sets(folder: Path, names: list[str]) -> list[Path]:
    """The reference sets inside one reference folder (itself, or its sub-folders)."""
    if any((folder / name).is_file() for name in names):
        return [folder]
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir())
    sets = [d for d in subdirs if any((d / name).is_file() for name in names)]
    if not sets:
        raise InputError(
            f"no reference in {folder} matches a sample name (e.g. {names[0]}); references "
            "pair with samples by relative path"
        )
    return sets


class FolderSource:
    def __init__(self, samples: Path, references: Sequence[Path]) -> None:
        self.root = samples
        self.names = _text_files(samples)
        if not self.names:
            raise InputError(f"no .txt files found in {samples}")
        self.reference_sets = [s for r in references for s in _reference_sets(r, self.names)]
        if self.reference_sets:
            self._check_pairing()

    def _check_pairing(self) -> None:
        wanted = set(self.names)
        missing = [n for n in self.names if not any((s / n).is_file() for s in self.reference_sets)]
        if missing:
            raise InputError(
                f"{len(missing)} sample(s) have no reference: {first_few(missing)}. "
                f"Looked in: {', '.join(str(s) for s in self.reference_sets)}"
            )
        extra = [
            f"{display_path(s / n, s.parent)}"
            for s in self.reference_sets
            for n in _text_files(s)
            if n not in wanted
        ]
        if extra:
            raise InputError(
                f"{len(extra)} reference(s) have no sample in {self.root}: {first_few(extra)}"
            )

    def __len__(self) -> int:
        return len(self.names)

    @property
    def has_references(self) -> bool:
        return bool(self.reference_sets)

    def __iter__(self) -> Iterator[TextPair | Skipped]:
        for name in self.names:
            try:
                text = _read_utf8(self.root / name)
            except UnicodeDecodeError as exc:
                yield Skipped(name, unicode_error_reason(exc))
                continue
            except OSError as exc:
                yield Skipped(name, f"cannot read: {exc.strerror or exc}")
                continue
            refs: list[str] = []
            problem = None
            for ref_set in self.reference_sets:
                ref_path = ref_set / name
                if not ref_path.is_file():
                    continue
                try:
                    refs.append(_read_utf8(ref_path))
                except UnicodeDecodeError as exc:
                    problem = f"reference {ref_path}: {unicode_error_reason(exc)}"
                except OSError as exc:
                    problem = f"reference {ref_path}: cannot read: {exc.strerror or exc}"
            if problem:
                yield Skipped(name, problem)
            else:
                yield TextPair(name, text, refs)


# -- line files -------------------------------------------------------------------
@dataclass
class _Line:
    id: str | None
    text: str | None
    references: list[str]
    error: str | None = None


def _parse_line(path: Path, raw: bytes, jsonl: bool) -> _Line:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _Line(None, None, [], unicode_error_reason(exc))
    line = line.rstrip("\r\n")
    if not jsonl:
        return _Line(None, line, [])
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return _Line(None, None, [], f"not valid JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(obj, dict):
        return _Line(None, None, [], "a JSON object is expected on each line")
    ident = obj.get("id")
    ident = None if ident is None else str(ident)
    refs = obj.get("references", [])
    if "reference" in obj:
        refs = [obj["reference"]]
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        return _Line(ident, None, [], '"references" must be a list of strings')
    text = obj.get("text")
    if text is not None and not isinstance(text, str):
        return _Line(ident, None, refs, '"text" must be a string')
    return _Line(ident, text, refs)


def _read_lines(path: Path) -> Iterator[tuple[int, _Line]]:
    jsonl = path.suffix.lower() == ".jsonl"
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if jsonl and not raw.strip():
                continue
            yield number, _parse_line(path, raw, jsonl)


class LineFileSource:
    """Samples from one .txt/.jsonl file; references from other line files or inline."""

    def __init__(self, samples: Path, references: Sequence[Path]) -> None:
        self.path = samples
        self.reference_files = list(references)
        for ref in self.reference_files:
            if ref.is_dir() or ref.suffix.lower() not in LINE_SUFFIXES:
                raise InputError(
                    f"{samples} holds one sample per line, so each reference must be a "
                    f".txt or .jsonl file too; got {ref}"
                )
        self._count = 0
        self.inline_references = False
        ids = []  # of the readable lines
        for _, line in _read_lines(samples):
            self._count += 1
            self.inline_references = self.inline_references or bool(line.references)
            if line.error is None:
                ids.append(line.id)
        sample_ids = self._sample_ids(ids)
        self._by_id: list[dict[str, _Line] | None] = [
            self._index_by_id(ref, sample_ids) for ref in self.reference_files]

    def _sample_ids(self, ids: list[str | None]) -> list[str] | None:
        """The sample ids when every readable line has one (pair by id), else None."""
        if not ids or any(i is None for i in ids):
            return None
        dupes = sorted(i for i, count in Counter(ids).items() if count > 1)
        if dupes:
            raise InputError(f"{self.path}: duplicate ids {first_few(dupes)}")
        return ids  # type: ignore[return-value]

    def _index_by_id(self, ref: Path, sample_ids: list[str] | None) -> dict[str, _Line] | None:
        """Pair by id when samples and this reference file both carry ids; else by line."""
        numbered = list(_read_lines(ref))
        lines = [line for _, line in numbered]
        parsed = [ln for ln in lines if ln.error is None]
        with_ids = [ln for ln in parsed if ln.id is not None]
        if sample_ids is not None and with_ids and len(with_ids) < len(parsed):
            raise InputError(f"{ref}: some lines have an \"id\" and some do not; give every "
                             "line an id, or none (then lines pair by number)")
        if sample_ids is None or not with_ids:
            count = len(lines)
            if count != self._count:
                raise InputError(
                    f"{self.path} has {self._count} lines but {ref} has {count}; "
                    "line files pair by line number"
                )
            return None
        dupes = sorted(i for i, count in Counter(ln.id for ln in with_ids).items() if count > 1)
        if dupes:
            raise InputError(f"{ref}: duplicate ids {first_few(dupes)}")
        bad = [n for n, ln in numbered if ln.error is not None]
        if bad:
            raise InputError(f"{ref}: line(s) {first_few([str(b) for b in bad])} cannot be "
                             "read, so their ids are unknown; fix them to pair by id")
        index = {ln.id: ln for ln in with_ids}  # type: ignore[misc]
        missing = [i for i in sample_ids if i not in index]
        if missing:
            raise InputError(f"{len(missing)} id(s) have no reference in {ref}: "
                             f"{first_few(missing)}")
        extra = sorted(set(index) - set(sample_ids))
        if extra:
            raise InputError(f"{len(extra)} id(s) in {ref} have no sample: {first_few(extra)}")
        return index

    def __len__(self) -> int:
        return self._count

    @property
    def has_references(self) -> bool:
        return bool(self.reference_files) or self.inline_references

    def __iter__(self) -> Iterator[TextPair | Skipped]:
        name = self.path.name
        ref_iters = [_read_lines(r) if idx is None else None
                     for r, idx in zip(self.reference_files, self._by_id, strict=True)]
        for number, line in _read_lines(self.path):
            ref_lines = [next(it)[1] if it is not None else None for it in ref_iters]
            label = f"{name}:{number}" if line.id is None else f"{name}:{number} (id {line.id})"
            if line.error:
                yield Skipped(label, line.error)
                continue
            if line.text is None:
                yield Skipped(label, 'no "text" field')
                continue
            refs = list(line.references)
            problem = None
            for ref_path, idx, ref_line in zip(
                self.reference_files, self._by_id, ref_lines, strict=True
            ):
                if idx is not None:
                    ref_line = idx[line.id]  # type: ignore[index]
                assert ref_line is not None
                if ref_line.error:
                    problem = f"reference {ref_path.name}: {ref_line.error}"
                    continue
                refs.extend(ref_line.references)
                if ref_line.text is not None:
                    refs.append(ref_line.text)
            if problem:
                yield Skipped(label, problem)
            else:
                yield TextPair(line.id or str(number), line.text, refs)


TextSource = FolderSource | LineFileSource


def open_text(samples: Path, references: Sequence[Path] = ()) -> TextSource:
    """Open a text input (see the module docstring for the layouts)."""
    samples = Path(samples)
    references = [Path(r) for r in references]
    for path in [samples, *references]:
        if not path.exists():
            raise InputError(f"{path} does not exist")
    if samples.is_dir():
        bad = [str(r) for r in references if not r.is_dir()]
        if bad:
            raise InputError(f"{samples} is a folder, so references must be folders too; "
                             f"got {', '.join(bad)}")
        return FolderSource(samples, references)
    if samples.suffix.lower() in LINE_SUFFIXES:
        return LineFileSource(samples, references)
    raise InputError(f"{samples}: text input must be a folder of .txt files, a .txt file or "
                     "a .jsonl file")
