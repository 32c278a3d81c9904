"""Prompts: the text each image or clip was generated from (``clipscore``, ``clap_score``).

Three ways to give them:

* ``--prompts prompts.jsonl``: one JSON object per line, ``{"id": ..., "prompt": ...}``,
  whose ids are the samples' names (relative path without the extension; for an
  ``.npy``/``.npz`` array, ``name.npz#000042`` or the index ``42``). Other fields
  (``category``...) are left for ``--group-by``. For an array input the ids may be left
  out: line ``i`` is then the prompt of image ``i`` (a ``.txt`` file, one prompt per
  line, means the same).
* for images, a ``.txt`` (UTF-8) of the same name beside each image, read when at least
  half of the files have one (a few stray ``.txt`` files are one run-level note instead);
  for audio a ``.txt`` beside a clip is its transcript, never its prompt;
* ``Evaluator.update(images, prompts=[...])``.

A sample whose prompt is missing, empty or unreadable gets
:class:`~genmetrics.io.common.Unusable` with the reason: the metrics that need a prompt
name it as failed, the others score it. Prompts that match no sample are one run-level
warning.

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "p.jsonl"
    >>> _ = f.write_text('{"id": "a", "prompt": " a cat "}\\n{"id": "b", "prompt": ""}\\n')
    >>> p = PromptFile.read(f)
    >>> p.lookup("a"), p.lookup("b"), p.lookup("c").reason.split(" in ")[0]
    ('a cat', Unusable(reason='empty prompt'), "no prompt: no id 'c'")
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from genmetrics.errors import InputError
from genmetrics.io.common import Discovery, Unusable, first_few, printable

__all__ = ["PromptFile", "claim_beside", "prompt_beside", "as_prompt"]


def as_prompt(text: object, where: str = "") -> str | Unusable:
    """A prompt as metrics get it: stripped text, or :class:`Unusable` when empty.

    >>> as_prompt("  a dog "), as_prompt("   ")
    ('a dog', Unusable(reason='empty prompt'))
    """
    if not isinstance(text, str):
        return Unusable(printable(f"the prompt{where} is {type(text).__name__}, not text"))
    text = text.strip()
    return text if text else Unusable(f"empty prompt{where}")


@dataclass
class PromptFile:
    """The prompts of ``--prompts FILE``: by id, or by line (array inputs)."""

    path: Path
    by_id: dict[str, str] | None = None
    by_line: list[str] | None = None

    @classmethod
    def read(cls, path: Path) -> PromptFile:
        """Read and check the whole file (a bad line is an error naming it)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"--prompts {path} does not exist or is not a file")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"--prompts {path}: cannot read: {exc}") from None
        if path.suffix.lower() != ".jsonl":  # plain text: one prompt per line
            while lines and not lines[-1].strip():
                lines.pop()
            return cls(path, by_line=[line.strip() for line in lines])
        by_id: dict[str, str] = {}
        by_line: list[str] = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text = row["prompt"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InputError(f"--prompts {path} line {n}: expected a JSON object "
                                 '{"id": "sample name", "prompt": "the text it was made '
                                 'from"}') from None
            if not isinstance(text, str):
                raise InputError(f"--prompts {path} line {n}: prompt is not a string")
            if "id" not in row:
                if by_id:
                    raise InputError(f"--prompts {path} line {n}: no id, while earlier "
                                     "lines have one (give every line an id, or none)")
                by_line.append(text.strip())
                continue
            if by_line:
                raise InputError(f"--prompts {path} line {n}: an id, while earlier lines "
                                 "have none (give every line an id, or none)")
            key = str(row["id"])
            if key in by_id:
                raise InputError(f"--prompts {path} line {n}: id {key!r} appears twice")
            by_id[key] = text.strip()
        if not by_id and not by_line:
            raise InputError(f"--prompts {path} holds no prompt")
        if by_id:
            return cls(path, by_id=by_id)
        return cls(path, by_line=by_line)

    def check_keys(self, keys: Iterable[str], array: bool) -> None:
        """Prompts by line need an array input (folders have no order to go by)."""
        if self.by_line is not None and not array:
            raise InputError(f"--prompts {self.path}: prompts by line (no ids) are for an "
                             ".npy/.npz input; for a folder give each line the file's name "
                             'as its id: {"id": "0001", "prompt": "..."}')
        if self.by_id is not None and not set(self.by_id) & set(keys) and not array:
            raise InputError(f"--prompts {self.path}: no id is the name of a sample (e.g. "
                             f"{first_few(sorted(keys)[:1])}); ids are file names relative "
                             "to the folder, without the extension")

    def lookup(self, key: str, index: int | None = None) -> str | Unusable:
        """The prompt of the sample ``key`` (``index``: its position in an array)."""
        if self.by_line is not None:
            if index is None or index >= len(self.by_line):
                line = "?" if index is None else index + 1
                return Unusable(printable(f"no prompt: {self.path} has no line {line} "
                                          f"(it has {len(self.by_line)})"))
            return as_prompt(self.by_line[index], f" (line {index + 1} of {self.path.name})"
                             if not self.by_line[index].strip() else "")
        assert self.by_id is not None
        for candidate in (key, None if index is None else str(index)):
            if candidate is not None and candidate in self.by_id:
                return as_prompt(self.by_id[candidate])
        return Unusable(printable(f"no prompt: no id {key!r} in {self.path}"))

    def unmatched_note(self, keys: list[str]) -> dict[str, str] | None:
        """A run-level warning for the prompts that match none of the samples ``keys``
        (an array's keys ``name.npz#000042`` also match the id ``42``)."""
        if self.by_line is not None:
            extra = len(self.by_line) - len(keys)
            if extra > 0:
                return {"path": str(self.path), "message": f"{extra} more prompt line(s) "
                        f"than the {len(keys)} samples: the extra lines match no sample"}
            return None
        assert self.by_id is not None
        known = set(keys) | {k.rsplit("#", 1)[1].lstrip("0") or "0" for k in keys if "#" in k}
        unused = sorted(k for k in self.by_id if k not in known and k.lstrip("0") not in known)
        if not unused:
            return None
        return {"path": str(self.path), "message": printable(
            f"{len(unused)} prompt(s) match no sample: {first_few(unused)}")}


def claim_beside(found: Discovery, what: str = "prompts") -> bool:
    """Whether the ``.txt`` files beside the samples (same name) are their prompts: at
    least half of the samples have one. They are then taken out of the files listed as
    "not images/audio"; fewer are a run-level note counting them."""
    txt = [o for o in found.others if o.lower().endswith(".txt")
           and Path(o).with_suffix("").as_posix() in found.files]
    if not txt:
        return False
    found.others[:] = [o for o in found.others if o not in set(txt)]
    if 2 * len(txt) >= len(found.files):
        return True
    found.notes.append(f"{len(txt)} of {len(found.files)} samples have a .txt beside them "
                       f"({first_few(txt)}), fewer than half: not read as {what} (put one "
                       "beside every sample, or pass --prompts prompts.jsonl)")
    return False


def prompt_beside(path: Path) -> str | Unusable:
    """The text of the ``.txt`` of the same name beside a sample file (any case of
    ``.txt``), stripped; :class:`Unusable` when there is none, it cannot be read or it is
    empty."""
    for suffix in (".txt", ".TXT", ".Txt"):
        txt = path.with_suffix(suffix)
        if txt.is_file():
            try:
                return as_prompt(txt.read_text(encoding="utf-8"), f" ({txt.name})")
            except (OSError, UnicodeDecodeError) as exc:
                return Unusable(printable(f"prompt {txt.name}: cannot read: {exc}"))
    return Unusable(printable(f"no prompt: no {path.with_suffix('.txt').name} beside the "
                              "file"))
