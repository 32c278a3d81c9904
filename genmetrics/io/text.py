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

Sample text is used as stored, with two exceptions: a leading UTF-8 byte order mark
(U+FEFF, which some editors write) is dropped from every file, and the lines of a
``.txt`` line file are read as sacrebleu's command line reads them (``sacrebleu REFS -i
HYPS``): split on ``\\n`` only, each without its trailing whitespace (Python's
``str.rstrip()``: spaces, tabs, ``\\r`` and the other Unicode white space), leading
whitespace kept. So BLEU and chrF of line files equal that command on the same files.
A ``.txt`` file of one sample is used whole (only the BOM dropped), and a ``.jsonl``
``"text"`` exactly as the JSON string gives it.

Bad input is never dropped silently (``--on-error fail`` turns every skip into an error):

* a file or line that is not valid UTF-8, a ``.jsonl`` line that is not a JSON object
  or has no ``"text"``, and a sample whose reference cannot be read are skipped and
  named in the scorecard's ``skipped`` with the reason;
* a sample without a reference (a missing file in the reference folder, a missing id in
  a reference ``.jsonl``, a ``.jsonl`` row with ``"references": []`` or no reference
  field where others have references) is skipped, naming the reference it looked for
  or the reason; when no sample has one, or a reference has no sample, or line files
  differ in length, the inputs cannot be paired and that is an error;
* an empty (0-byte) file is an empty sample or reference, scored as such (an empty
  output is a real output: leaving it out would raise the score), with a warning;
* files in the folders that are not ``.txt`` are listed in one warning per folder.

Reading is lazy: ``TextSource.batches()`` reads files a batch at a time.
"""

from __future__ import annotations

import codecs
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from genmetrics.errors import InputError
from genmetrics.io.common import (
    Discovery,
    Skipped,
    anonymous_parts,
    discover,
    display_path,
    first_few,
    os_reason,
    printable,
    unicode_error_reason,
)

TEXT_SUFFIXES = (".txt",)
LINE_SUFFIXES = (".txt", ".jsonl")


@dataclass(frozen=True)
class TextPair:
    """One sample and its references (an empty list when no references were given)."""

    id: str
    text: str
    references: list[str]
    warning: str | None = None  # e.g. an empty file, scored as an empty sample
    #: the id is a position the Evaluator made up: the digests leave it out
    #: (:func:`~genmetrics.io.common.anonymous_parts`)
    synthetic_id: bool = False

    def metric_inputs(self) -> tuple[str, list[str]]:
        """What metrics get: the sample and its list of references."""
        return self.text, self.references

    def digest_parts(self) -> tuple[list[str], list[str]]:
        """What identifies the sample and the references, for the input digests."""
        return anonymous_parts([self.id, self.text], [self.id, *self.references],
                               self.synthetic_id)


BOM = "\ufeff"


def strip_bom(text: str) -> str:
    """``text`` without one leading byte order mark (U+FEFF), as every reader reads files.

        >>> strip_bom("\\ufeffThe cat"), strip_bom("The\\ufeffcat")
        ('The cat', 'The\\ufeffcat')
    """
    return text[1:] if text.startswith(BOM) else text


def _read_utf8(path: Path) -> str:
    return strip_bom(path.read_bytes().decode("utf-8"))


# -- folders --------------------------------------------------------------------
@dataclass
class _Scan:
    """The ``.txt`` files of one folder by relative path with the extension (as text
    samples are named; :func:`printable`), and the entries that cannot be read (broken
    links, folders that cannot be listed); found by :func:`~genmetrics.io.common.discover`."""

    folder: Path
    files: dict[str, Path]
    problems: dict[str, Skipped]
    found: Discovery

    @property
    def names(self) -> list[str]:
        return sorted(self.files)


def _scan(folder: Path) -> _Scan:
    found = discover(folder, TEXT_SUFFIXES)
    files, problems = {}, {}
    for item in found.entries.values():
        if isinstance(item, Path):
            files[printable(display_path(item, folder))] = item
        elif (Path(item.path).with_suffix("").as_posix() in found.ambiguous
              and (folder / item.path).is_file()):
            # a.txt and a.TXT: two names here (the suffix is kept)
            files[printable(item.path)] = folder / item.path
        else:
            name = printable(item.path)
            problems[name] = Skipped(name, item.reason)
    return _Scan(folder, files, problems, found)


@dataclass
class _RefSet:
    """One reference set: a reference folder, or one of its sub-folders."""

    path: Path
    files: dict[str, Path]
    problems: dict[str, Skipped]


def _reference_sets(scan: _Scan, wanted: set[str]) -> tuple[list[_RefSet], list[str]]:
    """The reference sets in one reference folder (itself, or those of its sub-folders
    that hold a sample name), and its ``.txt`` files that are in none of them."""
    if wanted & (set(scan.files) | set(scan.problems)):
        return [_RefSet(scan.folder, scan.files, scan.problems)], []
    groups: dict[str, _RefSet] = {}
    for name in scan.names + list(scan.problems):
        if "/" in name:
            sub, rest = name.split("/", 1)
            group = groups.setdefault(sub, _RefSet(scan.files.get(name, scan.folder / name)
                                                   .parents[rest.count("/")], {}, {}))
            if name in scan.problems:
                group.problems[rest] = scan.problems[name]
            else:
                group.files[rest] = scan.files[name]
    sets = [g for _, g in sorted(groups.items())
            if wanted & (set(g.files) | set(g.problems))]
    if not sets:
        example = sorted(wanted)[0]
        raise InputError(f"no reference in {scan.folder} matches a sample name (e.g. "
                         f"{example}); references pair with samples by relative path")
    chosen = {printable(display_path(g.path, scan.folder)) for g in sets}
    stray = [n for n in scan.names if n.split("/", 1)[0] not in chosen or "/" not in n]
    return sets, stray


class FolderSource:
    """Samples from a folder of ``.txt`` files, references from folders of the same names."""

    def __init__(self, samples: Path, references: Sequence[Path]) -> None:
        self.root = samples
        self.scan = _scan(samples)
        self.names = self.scan.names
        if not self.names and not self.scan.problems:
            others = self.scan.found.others
            held = f" (it holds {len(others)} other file(s): {first_few(others)})" if others else ""
            raise InputError(f"no .txt files found in {samples}{held}; put one sample per "
                             ".txt file there, or give a .txt or .jsonl file with one sample "
                             "per line")
        self.order = sorted([*self.names, *self.scan.problems])
        wanted = set(self.order)
        self.reference_scans = [_scan(r) for r in references]
        self.reference_sets: list[_RefSet] = []
        self.stray: list[tuple[Path, list[str]]] = []  # reference files in no set
        for scan in self.reference_scans:
            sets, stray = _reference_sets(scan, wanted)
            self.reference_sets += sets
            if stray:
                self.stray.append((scan.folder, stray))
        if self.reference_sets:
            self._check_pairing()

    def _check_pairing(self) -> None:
        """References without a sample are an error (samples without one are skipped)."""
        wanted = set(self.order)  # a sample that cannot be read still has its reference
        extra = [
            f"{printable(s.path.name)}/{n}"
            for s in self.reference_sets
            for n in sorted(s.files)
            if n not in wanted
        ]
        if extra:
            raise InputError(
                f"{len(extra)} reference(s) have no sample in {self.root}: {first_few(extra)}"
            )

    def __len__(self) -> int:
        return len(self.order)

    @property
    def has_references(self) -> bool:
        return bool(self.reference_sets)

    def warnings(self) -> list[dict[str, str]]:
        """Run-level notes: files in the sample or reference folders that were not read
        (other extensions; ``.txt`` files outside the reference sets; entries of the
        reference folders that cannot be read and pair with no sample)."""
        notes = self.scan.found.warnings("samples")
        for scan in self.reference_scans:
            notes += scan.found.warnings("reference")
        for folder, stray in self.stray:
            notes.append({"path": str(folder), "message": (
                f"reference: {len(stray)} .txt file(s) are in no reference set (the "
                f"sub-folders that hold sample names) and were not read: {first_few(stray)}")})
        wanted = set(self.order)
        for ref_set in self.reference_sets:
            for name, problem in ref_set.problems.items():
                if name not in wanted:
                    notes.append({"path": str(ref_set.path / name),
                                  "message": f"reference: {problem.reason}"})
        return [{k: printable(v) for k, v in note.items()} for note in notes]

    def __iter__(self) -> Iterator[TextPair | Skipped]:
        for name in self.order:
            if name in self.scan.problems:
                yield self.scan.problems[name]
                continue
            try:
                text = _read_utf8(self.scan.files[name])
            except UnicodeDecodeError as exc:
                yield Skipped(name, unicode_error_reason(exc))
                continue
            except OSError as exc:
                yield Skipped(name, f"cannot read: {os_reason(exc)}")
                continue
            notes = ["empty file, scored as an empty sample"] if not text else []
            refs: list[str] = []
            problem = None
            for ref_set in self.reference_sets:
                ref_path = printable(str(ref_set.files.get(name, ref_set.path / name)))
                if name in ref_set.problems:
                    problem = f"reference {ref_path}: {ref_set.problems[name].reason}"
                    continue
                if name not in ref_set.files:
                    continue
                try:
                    refs.append(_read_utf8(ref_set.files[name]))
                except UnicodeDecodeError as exc:
                    problem = f"reference {ref_path}: {unicode_error_reason(exc)}"
                except OSError as exc:
                    problem = f"reference {ref_path}: cannot read: {os_reason(exc)}"
                else:
                    if not refs[-1]:
                        notes.append(f"reference {ref_path} is an empty file, scored as an "
                                     "empty reference")
            if problem:
                yield Skipped(name, problem)
            elif self.reference_sets and not refs:
                looked = " or ".join(printable(str(s.path / name)) for s in self.reference_sets)
                yield Skipped(name, f"no reference: {looked} does not exist")
            else:
                yield TextPair(name, text, refs, "; ".join(notes) or None)


# -- line files -------------------------------------------------------------------
@dataclass
class LineRecord:
    """One line of a ``.txt`` or ``.jsonl`` file: its ``text`` (``None`` when unusable,
    then ``error`` says why), its ``id`` and ``references`` (``.jsonl`` only;
    ``reference_field``: the row has a ``"references"`` or ``"reference"`` key)."""

    id: str | None
    text: str | None
    references: list[str]
    error: str | None = None
    reference_field: bool = False


def _parse_line(path: Path, raw: bytes, jsonl: bool) -> LineRecord:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return LineRecord(None, None, [], unicode_error_reason(exc))
    if not jsonl:  # as sacrebleu's command line: `line.rstrip()` (sacrebleu.py, main)
        return LineRecord(None, line.rstrip(), [])
    line = line.rstrip("\r\n")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return LineRecord(None, None, [], f"not valid JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(obj, dict):
        return LineRecord(None, None, [], "a JSON object is expected on each line")
    ident = obj.get("id")
    ident = None if ident is None else str(ident)
    refs = obj.get("references", [])
    if "reference" in obj:
        refs = [obj["reference"]]
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        return LineRecord(ident, None, [], '"references" must be a list of strings')
    text = obj.get("text")
    if text is not None and not isinstance(text, str):
        return LineRecord(ident, None, refs, '"text" must be a string')
    return LineRecord(ident, text, refs, reference_field="references" in obj or "reference" in obj)


def read_lines(path: Path) -> Iterator[tuple[int, LineRecord]]:
    """``(line number, record)`` for each line of a ``.txt`` (a sample per line) or
    ``.jsonl`` file (blank lines skipped), parsed as scoring parses them; the report
    looks samples up with it too. A leading byte order mark is dropped; ``.txt`` lines
    lose their trailing whitespace, as sacrebleu's command line reads them.

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "s.jsonl"
        ...     _ = path.write_text('{"id": "a", "text": "hi", "reference": "yo"}\\n\\n[1]\\n')
        ...     lines = list(read_lines(path))
        >>> [(n, r.id, r.text, r.references) for n, r in lines]
        [(1, 'a', 'hi', ['yo']), (3, None, None, [])]
        >>> lines[1][1].error
        'a JSON object is expected on each line'
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "h.txt"
        ...     _ = path.write_bytes("\\ufeffThe cat \\t\\r\\n  sat\\n".encode())
        ...     [r.text for _, r in read_lines(path)]
        ['The cat', '  sat']
    """
    jsonl = path.suffix.lower() == ".jsonl"
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]  # a byte order mark is not text
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
        for _, line in read_lines(samples):
            self._count += 1
            self.inline_references = self.inline_references or bool(line.references)
            if line.error is None:
                ids.append(line.id)
        sample_ids = self._sample_ids(ids)
        self._by_id: list[dict[str, LineRecord] | None] = [
            self._index_by_id(ref, sample_ids) for ref in self.reference_files]

    def _sample_ids(self, ids: list[str | None]) -> list[str] | None:
        """The sample ids when every readable line has one (pair by id), else None."""
        if not ids or any(i is None for i in ids):
            return None
        dupes = sorted(i for i, count in Counter(ids).items() if count > 1)
        if dupes:
            raise InputError(f"{self.path}: duplicate ids {first_few(dupes)}")
        return ids  # type: ignore[return-value]

    def _index_by_id(self, ref: Path, sample_ids: list[str] | None) -> dict[str, LineRecord] | None:
        """Pair by id when samples and this reference file both carry ids; else by line."""
        numbered = list(read_lines(ref))
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
        if not set(sample_ids) & set(index):
            raise InputError(f"no id in {ref} matches a sample id (e.g. {sample_ids[0]}); "
                             "lines pair by \"id\" when both files have ids")
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
        name = printable(self.path.name)
        ref_iters = [read_lines(r) if idx is None else None
                     for r, idx in zip(self.reference_files, self._by_id, strict=True)]
        for number, line in read_lines(self.path):
            ref_lines = [next(it)[1] if it is not None else None for it in ref_iters]
            label = f"{name}:{number}" if line.id is None else f"{name}:{number} (id {line.id})"
            if line.error:
                yield Skipped(label, line.error)
                continue
            if line.text is None:
                yield Skipped(label, 'no "text" field')
                continue
            refs = list(line.references)
            why = ['"references" is an empty list'] if line.reference_field else []
            problem = None
            for ref_path, idx, ref_line in zip(
                self.reference_files, self._by_id, ref_lines, strict=True
            ):
                if idx is not None:
                    ref_line = idx.get(line.id)  # type: ignore[arg-type]
                    if ref_line is None:
                        problem = f"no reference: id {line.id} is not in {ref_path}"
                        break
                assert ref_line is not None
                if ref_line.error:
                    problem = f"reference {ref_path.name}: {ref_line.error}"
                    continue
                refs.extend(ref_line.references)
                if ref_line.text is not None:
                    refs.append(ref_line.text)
                elif not ref_line.references:
                    why.append(f'"references" is an empty list in {printable(ref_path.name)}'
                               if ref_line.reference_field else
                               f'its line in {printable(ref_path.name)} has no "text"')
            if not problem and self.has_references and not refs:
                # a row without any reference would fail every paired metric of the run
                problem = "no reference: " + ("; ".join(why) or
                                              'no "references" or "reference" field')
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
