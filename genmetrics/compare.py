"""Side-by-side comparison of scorecards (``genmetrics compare A.json B.json ...``).

One row per metric, over the union of the cards' metrics in first-seen order. The
first card is the baseline: every later card gets its delta (``card - first``) and
whether its 95% CI overlaps the first card's (a distribution metric scored with
``--bootstrap`` shows its 95% *rerun interval*, ``value ± 1.96·√2·SE``, and a footnote
says so). Overlap is not a test: two CIs can overlap
while a paired test over the same samples finds the change real. So where both cards
hold per-sample statistics of a result (``score --per-sample``, the same samples), a
``paired p`` column gives the two-sided paired bootstrap p-value (1000 resamples, as the
gate's ``require_significance``, which runs it one-sided). A card that lacks a metric
shows ``-``; one that has it under ``errors`` shows ``failed`` (in CSV, a cell without
a number -- value, CI, delta, p -- or without a CI overlap is empty, so
``pandas.read_csv`` reads float columns; the ``note`` column says what failed). Unlike
``gate``, comparing results with different signatures is allowed, but it is flagged
(``≠sig`` and a footnote naming the fields); ``n``, ``bootstrap``, ``bootstrap_seed``
and ``ci_method`` are not compared.

    >>> from genmetrics.metric import MetricResult
    >>> from genmetrics.scorecard import Scorecard
    >>> def card(value, tok):
    ...     sig = {"metric": "bleu", "tokenize": tok, "n": 3}
    ...     result = MetricResult("bleu", value, 3, True, "", sig)
    ...     return Scorecard("text", {"samples": {"path": "s", "count": 3}}, {"bleu": result})
    >>> comparison = compare([card(30.0, "13a"), card(32.5, "char")], ["a.json", "b.json"])
    >>> row = comparison.rows[0]
    >>> row.delta, row.signature_differences
    ([None, 2.5], {'tokenize': ['13a', 'char']})
    >>> print(render(comparison, "markdown"))  # doctest: +NORMALIZE_WHITESPACE
    | metric | better | a.json | b.json | Δ b.json | CI overlap b.json |
    |---|:---:|---:|---:|---:|:---:|
    | bleu ≠sig | ↑ | 30.0000 | 32.5000 | +2.5000 | - |
    <BLANKLINE>
    - Δ: value − a.json's value; CI overlap: whether the 95% bootstrap CIs overlap
      a.json's (not a test; score both with --per-sample for the paired test).
    - ≠sig bleu: signatures differ in tokenize (a.json: 13a, b.json: char)
    <BLANKLINE>
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genmetrics.errors import UsageError
from genmetrics.signature import UNCOMPARED_FIELDS

FORMATS = ("table", "markdown", "csv", "json")
#: Signature fields that may differ without making two results incomparable.
SIG_MARK = "≠sig"


@dataclass
class Row:
    """One metric across all cards; every list is aligned with ``Comparison.cards``."""

    metric: str
    higher_is_better: bool | None
    status: list[str]  # "ok", "missing" or "failed"
    values: list[float | None]
    ci95: list[tuple[float, float] | None]
    errors: list[str | None]
    delta: list[float | None]  # card - first card; None for the first card
    ci_overlap: list[bool | None]  # None for the first card or when a CI is missing
    signature_differences: dict[str, list[Any]] = field(default_factory=dict)
    #: two-sided paired bootstrap p against the first card; None for the first card or
    #: where either card lacks per-sample statistics of this result
    paired_p: list[float | None] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "status": self.status,
            "values": self.values,
            "ci95": [list(ci) if ci else None for ci in self.ci95],
            "errors": self.errors,
            "delta": self.delta,
            "ci_overlap": self.ci_overlap,
            "paired_p": self.paired_p,
            "signature_differences": self.signature_differences,
        }


@dataclass
class Comparison:
    """Column names (``cards``), optional source paths, and one :class:`Row` per metric."""

    cards: list[str]
    rows: list[Row]
    paths: list[str] | None = None
    lettered: bool = False  # the names given were not unique, so columns are A, B, ...
    #: results whose intervals are rerun intervals (distribution metrics, ``--bootstrap``)
    rerun: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"cards": self.cards}
        if self.paths is not None:
            doc["paths"] = self.paths
        doc["metrics"] = [row.to_dict() for row in self.rows]
        if self.rerun:
            doc["rerun_intervals"] = self.rerun
        return doc


def _letters(i: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA (spreadsheet columns)."""
    name = ""
    i += 1
    while i:
        i, rem = divmod(i - 1, 26)
        name = chr(65 + rem) + name
    return name


def _overlap(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool | None:
    if a is None or b is None:
        return None
    return a[0] <= b[1] and b[0] <= a[1]


PAIRED_REPLICATES = 1000


def _paired(card: Any, first: Any, name: str) -> float | None:
    """Two-sided paired bootstrap p of ``name`` between ``card`` and ``first``; None when
    they cannot be paired (no per-sample statistics, other samples, unknown metric)."""
    from genmetrics.recompute import paired_p

    if name not in card.metrics or name not in first.metrics:
        return None
    try:  # paired_p raises when either card lacks per-sample statistics of ``name``
        return paired_p(card, first, name, replicates=PAIRED_REPLICATES, two_sided=True)
    except Exception:  # noqa: BLE001 - not pairable: the column says "-"
        return None


def compare(cards: Sequence[Any], names: Sequence[str], paths: Sequence[str] | None = None
            ) -> Comparison:
    """Compare scorecards against the first one.

    ``names`` label the columns (usually file names); if they are not unique, the
    columns are named ``A``, ``B``, ... and ``paths`` (if given) says which is which.
    """
    if len(cards) < 2:
        raise UsageError(f"compare needs at least two scorecards (got {len(cards)})")
    if len(names) != len(cards):
        raise UsageError(f"{len(cards)} scorecards but {len(names)} names")
    labels = list(names) if len(set(names)) == len(names) else [_letters(i)
                                                                for i in range(len(cards))]
    # Rows: every result name, then failed metrics that no result row stands for.
    order: dict[str, None] = {}
    for card in cards:
        order.update(dict.fromkeys(card.metrics))
    family: dict[str, str] = {}  # result name -> metric name in its signature
    for card in cards:
        for name, result in card.metrics.items():
            family.setdefault(name, str(result.signature.get("metric", name)))
    covered = set(order) | set(family.values())
    for card in cards:
        order.update(dict.fromkeys(k for k in card.errors if k not in covered))
    from genmetrics.recompute import is_rerun_interval

    rerun = [name for name in order if any(
        name in card.metrics and card.metrics[name].ci95 is not None
        and is_rerun_interval(card.metrics[name]) for card in cards)]
    rows = [_row(name, family.get(name, name), cards) for name in order]
    return Comparison(labels, rows + _slice_rows(cards, family),
                      list(paths) if paths is not None else None, labels != list(names),
                      rerun)


def _slice_rows(cards: Sequence[Any], family: dict[str, str]) -> list[Row]:
    """One row per slice and result (``bleu [category=news]``) when the cards hold slices
    by the same field (``--group-by``); a card without that slice shows it missing."""
    from genmetrics.gate import slice_card, slice_name
    from genmetrics.scorecard import Scorecard

    by = next((c.slices["by"] for c in cards if getattr(c, "slices", None)), None)
    if by is None:
        return []
    values: dict[str, dict[str, None]] = {}  # slice value -> its result names, in order
    for card in cards:
        if getattr(card, "slices", None) and card.slices["by"] == by:
            for value, group in card.slices["groups"].items():
                values.setdefault(value, {}).update(dict.fromkeys(group["metrics"]))
    rows = []
    for value, names in values.items():
        parts = [slice_card(c, value) if getattr(c, "slices", None) and c.slices["by"] == by
                 and value in c.slices["groups"] else Scorecard(c.modality, {}) for c in cards]
        for name in names:
            row = _row(name, family.get(name, name), parts)
            row.metric = slice_name(name, by, value)
            rows.append(row)
    return rows


def _row(name: str, family: str, cards: Sequence[Any]) -> Row:
    results = [card.metrics.get(name) for card in cards]
    errors = [None if r is not None else card.errors.get(name, card.errors.get(family))
              for r, card in zip(results, cards, strict=True)]
    status = ["ok" if r is not None else "failed" if e is not None else "missing"
              for r, e in zip(results, errors, strict=True)]
    values = [r.value if r is not None else None for r in results]
    ci95 = [tuple(r.ci95) if r is not None and r.ci95 is not None else None for r in results]
    first = values[0]
    delta: list[float | None] = [None] + [
        v - first if v is not None and first is not None else None for v in values[1:]]
    overlap = [None] + [_overlap(ci95[0], ci) for ci in ci95[1:]]
    direction = next((r.higher_is_better for r in results if r is not None), None)
    present = [r.signature for r in results if r is not None]
    fields = dict.fromkeys(k for sig in present for k in sig if k not in UNCOMPARED_FIELDS)
    diffs = {}
    for key in fields:
        seen = [sig.get(key) for sig in present]
        if any(v != seen[0] for v in seen):
            diffs[key] = [r.signature.get(key) if r is not None else None for r in results]
    paired = [None] + [_paired(card, cards[0], name) for card in cards[1:]]
    return Row(name, direction, status, values, ci95, errors, delta, overlap,  # type: ignore[arg-type]
               diffs, paired)


# ---------------------------------------------------------------- rendering


def _value_cell(row: Row, i: int, with_ci: bool = True) -> str:
    if row.status[i] != "ok":
        return "-" if row.status[i] == "missing" else "failed"
    text = f"{row.values[i]:.4f}"
    ci = row.ci95[i]
    return f"{text} ({ci[0]:.4f}–{ci[1]:.4f})" if with_ci and ci else text


def _delta_cell(delta: float | None) -> str:
    return "-" if delta is None else f"{delta:+.4f}"


def _overlap_cell(overlap: bool | None) -> str:
    return "-" if overlap is None else "yes" if overlap else "no"


def _p_cell(p: float | None) -> str:
    return "-" if p is None else f"{p:.3g}"


def paired_columns(comparison: Comparison) -> set[int]:
    """Indices of the cards with a paired p-value for at least one result."""
    return {i for row in comparison.rows for i, p in enumerate(row.paired_p) if p is not None}


def _better_cell(row: Row, words: bool = False) -> str:
    if row.higher_is_better is None:
        return "?"
    if words:
        return "higher" if row.higher_is_better else "lower"
    return "↑" if row.higher_is_better else "↓"


def _show(value: Any) -> str:
    """A signature value for a footnote; digests shortened as in signature strings."""
    if isinstance(value, str) and value.startswith("sha256:"):
        return value[7:15]
    return "-" if value is None else value if isinstance(value, str) else json.dumps(value)


def _sig_note(row: Row, cards: list[str]) -> str:
    parts = []
    for key, values in row.signature_differences.items():
        shown = ", ".join(f"{c}: {_show(v)}"
                          for c, v, s in zip(cards, values, row.status, strict=True) if s == "ok")
        parts.append(f"{key} ({shown})")
    return f"signatures differ in {'; '.join(parts)}"


def _notes(comparison: Comparison) -> list[str]:
    """Footnotes of the text formats: legend, signature differences, failures."""
    cards, first = comparison.cards, comparison.cards[0]
    notes = []
    if comparison.lettered:
        sources = comparison.paths or [f"card {i + 1}" for i in range(len(cards))]
        pairs = zip(cards, sources, strict=True)
        notes.append("cards: " + ", ".join(f"{c} = {p}" for c, p in pairs))
    legend = (f"Δ: value − {first}'s value; CI overlap: whether the 95% bootstrap CIs "
              f"overlap {first}'s (not a test")
    if paired_columns(comparison):
        notes.append(f"{legend}); paired p: two-sided paired bootstrap test against "
                     f"{first} over the per-sample statistics both cards hold "
                     f"({PAIRED_REPLICATES} resamples of the same samples; the gate's "
                     "require_significance runs it one-sided); - where they cannot be "
                     "paired (statistics missing or of other samples).")
    else:
        notes.append(f"{legend}; score both with --per-sample for the paired test).")
    if comparison.rerun:
        notes.append(f"rerun intervals ({', '.join(comparison.rerun)}): value ± 1.96·√2·SE, "
                     "where another run of the same model would land (95%); by default "
                     "the gate fails a result worse by more than the baseline's half-width, "
                     "or, against the same references, by more than 1.96·SE of the bootstrap "
                     "difference.")
    differing: dict[str, list[str]] = {}  # the same differences, for several metrics
    for row in comparison.rows:
        if row.signature_differences:
            differing.setdefault(_sig_note(row, cards), []).append(row.metric)
    for note, metrics in differing.items():
        notes.append(f"{SIG_MARK} {', '.join(metrics)}: {note}")
    failed: dict[tuple[str, str], list[str]] = {}  # (card, reason) -> metrics
    for row in comparison.rows:
        for card, error in zip(cards, row.errors, strict=True):
            if error is not None:
                failed.setdefault((card, error), []).append(row.metric)
    for (card, error), metrics in failed.items():
        notes.append(f"failed in {card}: {', '.join(metrics)}: {error}")
    return notes


def _text_table(comparison: Comparison) -> tuple[list[str], list[list[str]], str]:
    cards = comparison.cards
    paired = paired_columns(comparison)
    header, align = ["metric", "better", cards[0]], "lcr"
    for i, card in enumerate(cards[1:], start=1):
        header += [card, f"Δ {card}", f"CI overlap {card}"]
        align += "rrc"
        if i in paired:
            header.append(f"paired p {card}")
            align += "r"
    rows = []
    for row in comparison.rows:
        name = f"{row.metric} {SIG_MARK}" if row.signature_differences else row.metric
        cells = [name, _better_cell(row), _value_cell(row, 0)]
        for i in range(1, len(cards)):
            cells += [_value_cell(row, i), _delta_cell(row.delta[i]),
                      _overlap_cell(row.ci_overlap[i])]
            if i in paired:
                cells.append(_p_cell(row.paired_p[i]))
        rows.append(cells)
    return header, rows, align


def _csv_number(value: float | None) -> str:
    """A CSV cell: the number at full precision, or empty when there is none (so
    ``pandas.read_csv`` reads a float column with NaN there, not strings)."""
    return "" if value is None else repr(float(value))


def _csv_table(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    cards = comparison.cards
    paired = paired_columns(comparison)
    header = ["metric", "better"]
    for i, card in enumerate(cards):
        header += [card, f"{card} ci95 low", f"{card} ci95 high"]
        if i:
            header += [f"{card} delta", f"{card} ci overlap"]
        if i in paired:
            header.append(f"{card} paired p")
    header.append("note")
    rows = []
    for row in comparison.rows:
        cells = [row.metric, _better_cell(row, words=True)]
        for i in range(len(cards)):
            ci = row.ci95[i]
            value = row.values[i] if row.status[i] == "ok" else None
            cells += [_csv_number(value), _csv_number(ci[0] if ci else None),
                      _csv_number(ci[1] if ci else None)]
            if i:
                overlap = row.ci_overlap[i]
                cells += [_csv_number(row.delta[i]),
                          "" if overlap is None else _overlap_cell(overlap)]
            if i in paired:
                cells.append(_csv_number(row.paired_p[i]))
        note = [f"{SIG_MARK} {_sig_note(row, cards)}"] if row.signature_differences else []
        note += [f"failed in {c}: {e}" for c, e in zip(cards, row.errors, strict=True)
                 if e is not None]
        if row.metric in comparison.rerun:
            note.append("ci95: rerun interval, value ± 1.96·√2·SE")
        rows.append(cells + ["; ".join(note)])
    return header, rows


def render(comparison: Comparison, fmt: str = "table", width: int | None = None) -> str:
    """The comparison as text: ``table`` (rich), ``markdown``, ``csv`` or ``json``.

    ``width`` bounds the rich table (``None``: its natural width). Text ends with a newline.
    """
    from genmetrics import tables

    if fmt == "json":
        return json.dumps(comparison.to_dict(), indent=2, ensure_ascii=False,
                          allow_nan=False) + "\n"
    if fmt == "csv":
        return tables.to_csv(*_csv_table(comparison))
    header, rows, align = _text_table(comparison)
    notes = _notes(comparison)
    if fmt == "markdown":
        return (tables.markdown(header, rows, align) + "\n\n"
                + "".join(f"- {note}\n" for note in notes))
    if fmt == "table":
        table = tables.rich_table(header, rows, align)
        return tables.render_rich(table, width) + "".join(f"{note}\n" for note in notes)
    raise UsageError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def run_compare(paths: Sequence[str | os.PathLike[str]], fmt: str = "table",
                out: str | os.PathLike[str] | None = None) -> str:
    """What ``genmetrics compare`` does: load, compare, render; write ``out`` if given.

    Returns the rendered text. Errors are :class:`UsageError` / :class:`InputError`.
    """
    from genmetrics.scorecard import Scorecard

    if fmt not in FORMATS:
        raise UsageError(f"--format takes one of {', '.join(FORMATS)}; got {fmt!r}")
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise UsageError(f"compare needs at least two scorecards (got {len(paths)})")
    cards = [Scorecard.load(p) for p in paths]
    comparison = compare(cards, [p.name for p in paths], [str(p) for p in paths])
    width = None
    if out is None and fmt == "table" and sys.stdout.isatty():
        width = shutil.get_terminal_size().columns
    text = render(comparison, fmt, width)
    if out is not None:
        from genmetrics.io.common import write_text_atomically

        write_text_atomically(out, text)
    return text
