"""What a run reads: one description of its inputs, built by the CLI, ``score()`` and the
:class:`~genmetrics.evaluator.Evaluator` alike.

    >>> from genmetrics.inputs import Inputs
    >>> inputs = Inputs.of("demo/text/samples", "demo/text/references")
    >>> inputs.samples.name, [p.name for p in inputs.references]
    ('samples', ['references'])
    >>> from genmetrics.runner import score
    >>> score(inputs, metrics=["bleu"]).inputs["samples"]["count"]
    8

Adding an input kind touches its reader (``genmetrics/io/``) and this description: a
per-item input (what a metric can ``need``: a clip's transcript, an image's prompt) is
one row of :data:`PER_ITEM`, and the runner hands each given one to the reader by its
field name; no signature on the way down changes.

* ``samples``: a folder or file of samples; ``references``: folders or line files
  paired with them (or, for images, the reference distribution of FID/KID);
  ``reference_stats``: precomputed FID/KID statistics (a name or ``.npz``).
* Per-item inputs: ``transcripts`` and ``speaker_reference`` (audio, text-to-speech),
  ``prompts`` (images and audio generated from a prompt: ``{"id", "prompt"}`` lines).
* ``metadata``: a JSON Lines file of ``{"id", ...}`` (ids as the samples', file names
  without the extension), whose fields ``group_by`` can name; ``group_by``: score every
  metric per value of that field (a *slice*) as well as overall. The field is read
  from ``metadata`` when given, else from ``prompts`` (see :mod:`genmetrics.slices`).
* How to read them: ``workers`` (image decode processes) and ``on_error`` (``"skip"``
  an unreadable input, listed under the scorecard's ``skipped``, or ``"fail"``).

The Evaluator reads no files; it takes ``reference_stats`` and ``group_by`` (each
batch then brings its ``groups=``) from the same description.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from genmetrics.errors import UsageError

PathLike = str | os.PathLike[str]

#: how an unreadable input is handled: listed under ``skipped``, or the run stops
ON_ERROR = ("skip", "fail")

#: per-item inputs: field -> (the need name metrics declare, modalities, the CLI flag)
PER_ITEM: dict[str, tuple[str, tuple[str, ...], str]] = {
    "transcripts": ("transcript", ("audio",), "--transcripts"),
    "speaker_reference": ("speaker_reference", ("audio",), "--speaker-reference"),
    "prompts": ("prompt", ("image", "audio"), "--prompts"),
}


def _path(value: PathLike | None) -> Path | None:
    return None if value is None else Path(value)


@dataclass(frozen=True)
class Inputs:
    """What one run reads (see the module docstring).

    >>> Inputs.of("s/", ["r1/", "r2/"], group_by="category", metadata="m.jsonl").group_by
    'category'
    >>> Inputs.of("s/", group_by="category").check()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    genmetrics.errors.UsageError: --group-by category reads a field of --metadata ...
    """

    samples: Path
    references: tuple[Path, ...] = ()
    reference_stats: str | None = None
    transcripts: Path | None = None
    speaker_reference: Path | None = None
    prompts: Path | None = None
    metadata: Path | None = None
    group_by: str | None = None
    workers: int | None = None
    on_error: str = "skip"

    @classmethod
    def of(cls, samples: PathLike, reference: PathLike | Sequence[PathLike] | None = None,
           **given: Any) -> Inputs:
        """Paths as given to the CLI or :func:`~genmetrics.runner.score` (strings,
        ``PathLike``; one reference or several), normalised to :class:`Path`."""
        if reference is None:
            refs: tuple[Path, ...] = ()
        elif isinstance(reference, (str, os.PathLike)):
            refs = (Path(reference),)
        else:
            refs = tuple(Path(r) for r in reference)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise TypeError(f"Inputs has no field(s) {', '.join(unknown)}")
        for key in ("transcripts", "speaker_reference", "prompts", "metadata"):
            if key in given:
                given[key] = _path(given[key])
        if given.get("reference_stats") is not None:
            given["reference_stats"] = str(given["reference_stats"])
        return cls(Path(samples), refs, **given)

    def with_(self, **changes: Any) -> Inputs:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def check(self, modality: str | None = None) -> None:
        """Refuse what cannot be read, before anything is: a missing path, an unknown
        ``on_error``, a per-item input for a modality that has none, ``group_by``
        without a file to read it from."""
        if self.on_error not in ON_ERROR:
            raise UsageError(f"--on-error {self.on_error!r}: choose skip or fail")
        for key in ("metadata",):
            path = getattr(self, key)
            if path is not None and not path.is_file():
                raise UsageError(f"--{key} {path}: no such file")
        if self.group_by is not None:
            if not self.group_by.strip():
                raise UsageError("--group-by needs a field name, e.g. --group-by category")
            if self.metadata is None and self.prompts is None:
                raise UsageError(f"--group-by {self.group_by} reads a field of --metadata "
                                 "meta.jsonl or --prompts prompts.jsonl; pass one of them")
        if modality is None:
            return
        for key, (_, modalities, flag) in PER_ITEM.items():
            if getattr(self, key) is not None and modality not in modalities:
                raise UsageError(f"{flag} is for {' and '.join(modalities)} samples, not "
                                 f"{modality}")

    def per_item(self) -> dict[str, Path]:
        """The per-item inputs given, by field name (what the runner passes to the
        reader).

        >>> Inputs.of("clips/", transcripts="t.jsonl").per_item()
        {'transcripts': PosixPath('t.jsonl')}
        """
        return {k: getattr(self, k) for k in PER_ITEM if getattr(self, k) is not None}

    def slice_source(self) -> Path | None:
        """The JSON Lines file ``group_by`` reads (metadata first, else prompts)."""
        if self.group_by is None:
            return None
        return self.metadata if self.metadata is not None else self.prompts


__all__ = ["Inputs", "PER_ITEM", "ON_ERROR"]
