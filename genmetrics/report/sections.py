"""The sections of the report: metric table, distributions, worst and best samples,
diagnostics (one set per scorecard) and the comparison of several scorecards."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from genmetrics.report._html import MediaStore, esc, number
from genmetrics.report.fidelity import fidelity_comparison
from genmetrics.report.media import SampleFinder, audio_html, images_html, text_html
from genmetrics.report.plots import finite, histogram
from genmetrics.scorecard import small_sample_note

NO_PER_SAMPLE = ("No per-sample values in this scorecard: score with --per-sample to see "
                 "samples.")


@dataclass
class LoadedCard:
    """A scorecard, its column label, where it came from and its raw JSON (if read from
    a file), and the folders its relative input paths are tried against."""

    card: Any  # genmetrics.scorecard.Scorecard
    label: str
    path: Path | None = None
    doc: dict[str, Any] | None = None
    bases: list[Path] = field(default_factory=list)

    @property
    def diagnostics(self) -> dict[str, Any] | None:
        found = getattr(self.card, "diagnostics", None)
        if found is None and self.doc is not None:
            found = self.doc.get("diagnostics")
        return found if isinstance(found, dict) and found else None

    @property
    def per_sample(self) -> dict[str, Any] | None:
        found = self.card.per_sample
        return found if isinstance(found, dict) else None

    def sample_values(self) -> dict[str, list[Any]]:
        """Per-sample values by result name ({} without ``--per-sample``)."""
        values = (self.per_sample or {}).get("values")
        return {k: v for k, v in values.items() if isinstance(v, list)} \
            if isinstance(values, dict) else {}

    def count(self) -> int | None:
        samples = self.card.inputs.get("samples", {})
        count = samples.get("count") if isinstance(samples, dict) else None
        return count if isinstance(count, int) else None


@cache
def _kind(family: str, modality: str | None = None) -> str | None:
    """``paired`` / ``distribution`` from the registry, None for an unknown metric."""
    try:
        from genmetrics.registry import get_metric

        return get_metric(family, modality).spec.kind
    except Exception:  # noqa: BLE001 - a plugin that is not installed here: unknown
        return None


def _higher_is_better(card: LoadedCard, name: str) -> bool:
    result = card.card.metrics.get(name)
    return True if result is None else bool(result.higher_is_better)


def _family(card: LoadedCard, name: str) -> str:
    result = card.card.metrics.get(name)
    return str(result.signature.get("metric", name)) if result is not None else name


# ------------------------------------------------------------------ header and metrics


def card_meta(card: LoadedCard) -> str:
    count = card.count()
    inputs = card.card.inputs
    parts = [esc(card.card.modality), f"{count} samples" if count is not None else "? samples"]
    parts.append(f"created {esc(card.card.created)}")
    parts.append(f"genmetrics {esc(card.card.genmetrics_version)}")
    lines = [f'<p class="meta">{" · ".join(parts)}</p>']
    rows = []
    if card.path is not None:
        rows.append(("scorecard", str(card.path)))
    for key, value in inputs.items():
        if isinstance(value, dict) and "path" in value:
            path = value["path"]
            rows.append((key, ", ".join(map(str, path)) if isinstance(path, list) else str(path)))
        elif isinstance(value, dict) and "stats" in value:
            rows.append((key, str(value["stats"])))
    if rows:
        cells = "".join(f"<tr><th>{esc(k)}</th><td><code>{esc(v)}</code></td></tr>"
                        for k, v in rows)
        lines.append(f'<table class="inputs">{cells}</table>')
    return "\n".join(lines)


def metrics_table(card: LoadedCard) -> str:
    """Value, 95% CI, n, direction, unit and signature of every result; failures too."""
    head = ("<table class=\"metrics\"><tr><th>metric</th><th>value</th><th>95% CI</th>"
            "<th>n</th><th>better</th><th>unit</th><th>signature</th></tr>")
    rows, flags = [], []
    for name, r in card.card.metrics.items():
        value = number(r.value) if math.isfinite(r.value) else \
            f'<span class="failed" title="{esc(r.reason or "")}">no value</span>'
        small = small_sample_note(r)
        if small:  # FID on fewer images than features: say so next to the number
            value += f' <span class="unavailable" title="{esc(small)}">small sample</span>'
            flags.append(f"<p class=\"note\">{esc(name)}: small sample: {esc(small)}</p>")
        ci = f"{number(r.ci95[0])} – {number(r.ci95[1])}" if r.ci95 else "-"
        rows.append(f"<tr><td>{esc(name)}</td><td class=\"num\">{value}</td>"
                    f"<td class=\"num\">{ci}</td><td class=\"num\">{r.n}</td>"
                    f"<td class=\"nowrap\">{'↑ higher' if r.higher_is_better else '↓ lower'}</td>"
                    f"<td>{esc(r.unit)}</td><td class=\"sig\">{esc(r.signature_str)}</td></tr>")
    for name, reason in card.card.errors.items():
        rows.append(f"<tr><td>{esc(name)}</td><td class=\"failed\">failed</td><td></td><td></td>"
                    f"<td></td><td></td><td class=\"sig\">{esc(reason)}</td></tr>")
    for name, reason in card.card.unavailable.items():
        rows.append(f"<tr><td>{esc(name)}</td><td class=\"unavailable\">unavailable</td>"
                    f"<td></td><td></td><td></td><td></td><td class=\"sig\">{esc(reason)}</td>"
                    "</tr>")
    if not rows:
        return "<h3>Metrics</h3><p class=\"note\">No metrics in this scorecard.</p>"
    return ("<h3>Metrics</h3>" + head + "".join(rows) + "</table>" + "".join(flags)
            + failed_pairs(card))


def failed_pairs(card: LoadedCard, shown: int = 50) -> str:
    """Per result, the pairs it could not score (its ``failed`` component), by sample id
    with the reason, folded. Older scorecards name a pair by index only: its id is then
    looked up in the per-sample ids (``#index`` without them)."""
    ids = [str(i) for i in (card.per_sample or {}).get("ids", [])]
    out = []
    for name, result in card.card.metrics.items():
        components = result.components if isinstance(result.components, dict) else {}
        failed = [e for e in components.get("failed") or [] if isinstance(e, dict)]
        if not failed:
            continue
        items = []
        for entry in failed[:shown]:
            ident, index = entry.get("id"), entry.get("index")
            if not isinstance(ident, str):
                ident = ids[index] if isinstance(index, int) and 0 <= index < len(ids) \
                    else f"#{index}"
            items.append(f"<li><code>{esc(ident)}</code>: {esc(str(entry.get('reason', '')))}"
                         "</li>")
        more = f"<li>… {len(failed) - shown} more</li>" if len(failed) > shown else ""
        out.append(f'<details class="failed-pairs" data-metric="{esc(name)}"><summary>'
                   f"{esc(name)}: {len(failed)} pair(s) not scored</summary><ul>"
                   f"{''.join(items)}{more}</ul></details>")
    return "\n".join(out)


def inputs_notes(card: LoadedCard) -> str:
    """Skipped and adjusted inputs, folded."""
    out = []
    for title, entries, key in (("skipped input(s)", card.card.skipped, "reason"),
                                ("adjusted input(s)", card.card.warnings, "message")):
        if entries:
            items = "".join(f"<li><code>{esc(e.get('path', ''))}</code>: {esc(e.get(key, ''))}"
                            "</li>" for e in entries[:50])
            more = f"<li>… {len(entries) - 50} more</li>" if len(entries) > 50 else ""
            out.append(f"<details><summary>{len(entries)} {title}</summary><ul>{items}{more}"
                       "</ul></details>")
    return "\n".join(out)


# ------------------------------------------------------------------ distributions


def _summary(values: list[float]) -> str:
    return (f"mean {number(statistics.fmean(values))}, median "
            f"{number(statistics.median(values))}, min {number(min(values))}, "
            f"max {number(max(values))}")


def distributions(card: LoadedCard) -> str:
    """One histogram per result with per-sample values, with the scorecard's value marked."""
    out = ["<h3>Distributions</h3>"]
    if card.per_sample is None:
        return out[0] + f'<p class="note">{NO_PER_SAMPLE}</p>'
    figures = []
    values = card.sample_values()
    for name, raw in values.items():
        numbers = finite(raw)
        if not numbers:
            continue
        result = card.card.metrics.get(name)
        marks = [("scorecard value", result.value)] if result is not None else []
        missing = len(raw) - len(numbers)
        note = f"; {missing} without a value" if missing else ""
        figures.append(f"<figure>{histogram(name, [(card.label, numbers)], marks)}"
                       f"<figcaption>{esc(name)}: {len(numbers)} samples{note}<br>"
                       f"{_summary(numbers)}</figcaption></figure>")
    out.append(f'<div class="plots">{"".join(figures)}</div>' if figures else
               '<p class="note">No result has per-sample values.</p>')
    without = [n for n in card.card.metrics if n not in values]
    if without:
        out.append(f'<p class="note">No per-sample values (a corpus- or distribution-level '
                   f'number): {esc(", ".join(without))}.</p>')
    return "\n".join(out)


# ------------------------------------------------------------------ worst and best


class SampleView:
    """Renders one sample (with its reference when the metric is paired), cached by id."""

    def __init__(self, card: LoadedCard, media: MediaStore) -> None:
        self.card = card
        self.media = media
        self.finder = SampleFinder(card.card.modality, card.card.inputs, card.bases)
        self._cache: dict[tuple[str, bool], str] = {}

    def html(self, ident: str, paired: bool) -> str:
        key = (ident, paired)
        if key not in self._cache:
            self._cache[key] = self._render(ident, paired)
        return self._cache[key]

    def _render(self, ident: str, paired: bool) -> str:
        sample = self.finder.sample(ident)
        refs = self.finder.references_of(ident) if paired else []
        modality = self.card.card.modality
        if modality == "image":
            return images_html(sample, refs[0] if refs else None, self.media)
        if modality == "audio":
            return audio_html(sample, refs[0] if refs else None, self.media)
        return text_html(sample, refs, diff=paired and bool(refs))

    def nearest(self, ident: str, reference: str | int | None, distance: Any,
                images: dict[str, Any] | None = None) -> str:
        """The sample beside its nearest reference: the reference's image when it has an
        id (a file of the reference folder) or is a row of ``images`` (reference
        statistics with images: an ADM batch's ``arr_0``), else its row number."""
        far = f"distance {number(float(distance), 2)}" if finite([distance]) else "no distance"
        which = esc(reference) if isinstance(reference, str) else \
            f"row {'-' if reference is None else int(reference)}"
        if self.card.card.modality != "image":
            return (self.html(ident, False) + f'<p class="caption">nearest reference {which}'
                    f" · {far}</p>")
        if isinstance(reference, int) and images is not None:
            item = self.finder.reference_row(images, reference)
            caption = f"nearest reference<br><code>{esc(item.label)}</code><br>{far}"
            return images_html(self.finder.sample(ident), item, self.media,
                               reference_caption=caption, diff=False)
        if not isinstance(reference, str):
            stats = self.card.card.inputs.get("reference_stats")
            source = (f"of the reference statistics {esc(stats.get('stats', ''))}"
                      if isinstance(stats, dict) else "of the references given in memory")
            note = (f"nearest reference:<br>{which}<br>{source}<br>(no image shown)<br>"
                    f"{far}")
            return images_html(self.finder.sample(ident), None, self.media, note=note)
        caption = f"nearest reference<br><code>{which}</code><br>{far}"
        return images_html(self.finder.sample(ident), self.finder.reference_item(reference),
                           self.media, reference_caption=caption, diff=False)


def rank(values: Sequence[Any], higher_is_better: bool, k: int
         ) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """``(worst, best)``: up to ``k`` (index, value) each, worst first / best first. A
    sample is in at most one of them (with fewer than ``2 k`` samples, the worse half is
    the worst); samples without a finite value are left out.

        >>> rank([0.5, 0.9, None, 0.1, 0.7, 0.3], True, 2)
        ([(3, 0.1), (5, 0.3)], [(1, 0.9), (4, 0.7)])
        >>> rank([3.0, 1.0, 2.0], False, 5)
        ([(0, 3.0), (2, 2.0)], [(1, 1.0)])
    """
    scored = [(i, float(v)) for i, v in enumerate(values) if finite([v])]
    # worst first; ties keep the sample order
    order = sorted(scored, key=lambda iv: (iv[1] if higher_is_better else -iv[1], iv[0]))
    worst = order[:min(k, math.ceil(len(order) / 2))]
    taken = {i for i, _ in worst}
    best = [iv for iv in reversed(order) if iv[0] not in taken][:k]
    return worst, best


def _sample_boxes(view: SampleView, ids: list[str], chosen: list[tuple[int, float]],
                  name: str, which: str, paired: bool,
                  nearest: Nearest | None = None) -> str:
    """The boxes of the ``chosen`` (index, value) samples; with ``nearest`` (each sample's
    nearest reference and distance), each beside its nearest reference."""
    boxes = []
    for position, (index, value) in enumerate(chosen, start=1):
        ident = ids[index] if index < len(ids) else f"#{index}"
        modality = view.card.card.modality
        if nearest is not None:
            refs, distances, images = nearest
            body = view.nearest(ident, refs[index] if index < len(refs) else None,
                                distances[index] if index < len(distances) else None, images)
        else:
            body = view.html(ident, paired)
        boxes.append(f'<div class="sample {esc(modality)}" data-id="{esc(ident)}" '
                     f'data-value="{value!r}"><header>{which} #{position} · '
                     f"<code>{esc(ident)}</code> · {esc(name)} = "
                     f'<span class="value">{number(value)}</span></header>'
                     f"{body}</div>")
    return "".join(boxes)


MEMORIZATION = ("A sample very close to a reference image hints that the model may have "
                "memorized it (when the references are its training images): a hint, not "
                "proof; compare the two pictures.")


#: each sample's nearest reference (id, or row), its distance, and where the images of
#: rows are (``{"path", "array"}``, or None)
Nearest = tuple[list[Any], list[Any], dict[str, Any] | None]


def nearest_of(card: LoadedCard, name: str) -> Nearest | None:
    """``(references, distances, images)`` of result ``name`` from
    ``per_sample.nearest_reference``: each sample's nearest reference id (or row number,
    for references without names), distance, and where the rows' images are (an ADM
    batch's ``arr_0``: ``{"path", "array"}``; None without images); None when the card
    has none."""
    found = ((card.per_sample or {}).get("nearest_reference") or {}).get(name)
    if not isinstance(found, dict) or not isinstance(found.get("distance"), list):
        return None
    refs = found.get("ids", found.get("rows"))
    images = found.get("images") if "rows" in found else None
    images = images if isinstance(images, dict) else None
    return (refs, found["distance"], images) if isinstance(refs, list) else None


def _nearest_intro(card: LoadedCard, name: str, distances: list[Any]) -> str:
    result = card.card.metrics.get(name)
    extractor = str((result.signature if result is not None else {}).get("ext", ""))
    space = "Inception feature space" if "inception" in extractor.lower() else \
        "the metric's feature space"
    known = finite(distances)
    median = f"; median over the samples {number(statistics.median(known), 2)}" if known else ""
    return (f'<p class="note memorization">Each sample is shown beside its nearest reference '
            f"in {space} (Euclidean distance{median}). {esc(MEMORIZATION)}</p>")


def _closest(distances: list[Any], k: int) -> list[tuple[int, float]]:
    """(index, distance) of the ``k`` samples nearest to a reference, nearest first."""
    order = sorted((float(d), i) for i, d in enumerate(distances) if finite([d]))[:k]
    return [(i, d) for d, i in order]


def _closest_boxes(view: SampleView, ids: list[str], name: str, k: int,
                   nearest: Nearest) -> str:
    """The ``k`` samples nearest to a reference: where a memorized image would be."""
    chosen = _closest(nearest[1], k)
    return (f"<h5>Closest to a reference ({len(chosen)} smallest distances)</h5>"
            f'<div class="samples" data-metric="{esc(name)}" data-rank="closest">'
            f"{_sample_boxes(view, ids, chosen, 'distance', 'closest', False, nearest)}"
            "</div>")


def samples_section(card: LoadedCard, k: int, view: SampleView) -> str:
    """Worst-k and best-k samples of each result with per-sample values."""
    out = ["<h3>Worst and best samples</h3>"]
    if card.per_sample is None:
        return out[0] + f'<p class="note">{NO_PER_SAMPLE}</p>'
    ids = [str(i) for i in card.per_sample.get("ids", [])]
    values = card.sample_values()
    if not values:
        return out[0] + '<p class="note">No result has per-sample values.</p>'
    where = view.finder.samples_label
    if view.finder.samples is None:
        tried = ", ".join(str(b) for b in card.bases)
        out.append(f'<p class="note">The sample files are not at {esc(where or "?")} (relative '
                   f"paths tried against: {esc(tried)}); give the folder they are relative to "
                   "with --root. Values are listed without them.</p>" if where != "(in memory)"
                   else '<p class="note">Scored in memory (Evaluator): no sample files to '
                   "show.</p>")
    for name, raw in values.items():
        higher = _higher_is_better(card, name)
        kind = _kind(_family(card, name), card.card.modality)
        paired = kind == "paired" or (kind is None and view.finder.has_references)
        worst, best = rank(raw, higher, k)
        low, high = ("lowest", "highest") if higher else ("highest", "lowest")
        skipped = len(raw) - len(finite(raw))
        note = f" · {skipped} sample(s) without a value left out" if skipped else ""
        result = card.card.metrics.get(name)
        if skipped and result is not None and result.components.get("failed"):
            note += " (reasons under Metrics)"
        nearest = nearest_of(card, name)
        shown = ("" if paired or nearest else " · not paired: samples shown without "
                 "references")
        out.append(f"<h4>{esc(name)}</h4><p class=\"meta\">{'higher' if higher else 'lower'} "
                   f"is better · {len(raw)} samples{note}{shown}</p>")
        if nearest is not None:
            out.append(_nearest_intro(card, name, nearest[1]))
            refs, _, images = nearest
            if images is not None:  # the rows shown, read in one pass over the array
                shown_rows = [refs[i] for i, _ in (*worst, *best, *_closest(nearest[1], k))
                              if i < len(refs)]
                view.finder.prefetch_rows(images, shown_rows)
        out.append(f"<h5>Worst {len(worst)} ({low} {esc(name)})</h5>"
                   f'<div class="samples" data-metric="{esc(name)}" data-rank="worst">'
                   f"{_sample_boxes(view, ids, worst, name, 'worst', paired, nearest)}</div>")
        out.append(f"<h5>Best {len(best)} ({high} {esc(name)})</h5>"
                   f'<div class="samples" data-metric="{esc(name)}" data-rank="best">'
                   f"{_sample_boxes(view, ids, best, name, 'best', paired, nearest)}</div>")
        if nearest is not None:
            out.append(_closest_boxes(view, ids, name, k, nearest))
    return "\n".join(out)


# ------------------------------------------------------------------ diagnostics


def _flag_ids(item: Any) -> list[str]:
    """The sample ids named by one flagged entry: ``{"id", "value", "match"?}``, or
    (read defensively) an id or a list of ids."""
    if isinstance(item, str):
        return [item]
    if isinstance(item, (list, tuple)):
        return [str(x) for x in item if isinstance(x, str)]
    if isinstance(item, dict):
        ids = _flag_ids(item.get("id", item.get("ids", [])))
        return ids + ([str(item["match"])] if isinstance(item.get("match"), str) else [])
    return []


def _flag_label(item: Any) -> str:
    """``id (value) ≈ match`` for one flagged entry.

        >>> _flag_label({"id": "a", "value": 0.25, "match": "b"}), _flag_label(["a", "b"])
        ('a (0.25) ≈ b', 'a ≈ b')
    """
    if isinstance(item, str):
        return item
    if isinstance(item, (list, tuple)) and all(isinstance(x, str) for x in item):
        return " ≈ ".join(item)
    if isinstance(item, dict) and isinstance(item.get("id"), str):
        value = item.get("value")
        text = item["id"] + (f" ({value:.4g})" if finite([value]) else "")
        return text + (f" ≈ {item['match']}" if isinstance(item.get("match"), str) else "")
    return json.dumps(item, ensure_ascii=False, default=str)


def _short(value: Any) -> str:
    """A diagnostic's number: four significant digits.

        >>> _short(1014.08), _short(0.0), _short(0.000123456), _short(None)
        ('1014', '0', '0.0001235', '-')
    """
    return f"{float(value):.4g}" if finite([value]) else number(value)


def _threshold(entry: dict[str, Any]) -> str:
    threshold = _short(entry.get("threshold"))
    sign = {"above": "> ", "below": "< "}.get(str(entry.get("direction")), "")
    baseline = entry.get("baseline")
    extra = f" (baseline {_short(baseline)})" if finite([baseline]) else ""
    return f"flag {sign}{threshold}{extra}" if sign else threshold + extra


def _alerts(found: dict[str, Any]) -> list[str]:
    """``name (N sample(s))`` for each diagnostic that flags something."""
    alerts = []
    for name, entry in found.items():
        if not isinstance(entry, dict):
            continue
        flagged = entry.get("flagged") or []
        count = entry.get("flagged_count")
        if not isinstance(count, int) or isinstance(count, bool):
            count = len(flagged) if isinstance(flagged, list) else 1
        if entry.get("alert", count > 0):
            alerts.append(f"{name} ({count} sample(s))" if count else name)
    return alerts


def diagnostics_alert(card: LoadedCard, anchor: str) -> str:
    """One line under the metric table when a diagnostic flags something."""
    found = card.diagnostics
    alerts = _alerts(found) if found else []
    if not alerts:
        return ""
    return (f'<p class="alert">Diagnostics flag: {esc(", ".join(alerts))} · '
            f'<a href="#{anchor}">see Diagnostics</a></p>')


def diagnostics_section(card: LoadedCard, k: int, view: SampleView, anchor: str = "") -> str:
    """The scorecard's ``diagnostics``: value, threshold and flagged samples of each,
    then up to ``k`` flagged samples of each shown."""
    found = card.diagnostics
    if found is None:
        return ""
    rows, shown = [], []
    alerts = _alerts(found)
    for name, entry in found.items():
        if not isinstance(entry, dict):
            rows.append(f"<tr><td>{esc(name)}</td><td colspan=\"5\"><code>"
                        f"{esc(json.dumps(entry, default=str))}</code></td></tr>")
            continue
        flagged = entry.get("flagged") or []
        flagged = flagged if isinstance(flagged, list) else [flagged]
        count = entry.get("flagged_count")
        count = count if isinstance(count, int) and not isinstance(count, bool) else len(flagged)
        alert = bool(entry.get("alert", count > 0))
        listed = ", ".join(_flag_label(f) for f in flagged[:20])
        more = f" … {count - min(20, len(flagged))} more" if count > min(20, len(flagged)) else ""
        css = ' class="failed"' if alert else ""
        rows.append(f"<tr data-diagnostic=\"{esc(name)}\"><td><span{css}>{esc(name)}</span></td>"
                    f"<td class=\"num\">{esc(_short(entry.get('value')))}</td>"
                    f"<td class=\"num\">{esc(_threshold(entry))}</td>"
                    f"<td class=\"num\"><span{css}>{count}</span></td>"
                    f"<td><code>{esc(listed)}</code>{esc(more)}</td>"
                    f"<td class=\"caption\">{esc(entry.get('description', ''))}</td></tr>")
        boxes = []
        for item in flagged[:k]:
            ids = _flag_ids(item)
            if not ids:
                continue
            media = "".join(view.html(ident, False) for ident in dict.fromkeys(ids))
            boxes.append(f'<div class="sample {esc(card.card.modality)}" data-id="{esc(ids[0])}">'
                         f"<header><code>{esc(_flag_label(item))}</code></header>{media}</div>")
        if boxes:
            shown.append(f"<h5>{esc(name)}: flagged samples</h5>"
                         f'<div class="samples" data-diagnostic="{esc(name)}">'
                         f"{''.join(boxes)}</div>")
    summary = (f'<p class="meta"><span class="failed">flagged: {esc(", ".join(alerts))}</span>'
               "</p>" if alerts else '<p class="meta">nothing flagged</p>')
    head = (f'<h3 id="{anchor}">Diagnostics</h3>' + summary + "<table><tr><th>diagnostic</th>"
            "<th>value</th><th>threshold</th><th>flagged</th><th>flagged samples</th>"
            "<th>what it measures</th></tr>")
    return head + "".join(rows) + "</table>" + "".join(shown)


# ------------------------------------------------------------------ comparison


def comparison_section(cards: list[LoadedCard], k: int = 5) -> str:
    """Every metric side by side: value (95% CI), delta to the first card, CI overlap and,
    where both cards hold per-sample statistics, the paired test's p; the logic is
    :func:`genmetrics.compare.compare`'s."""
    from genmetrics.compare import (
        SIG_MARK,
        _notes,
        _overlap_cell,
        _p_cell,
        _value_cell,
        compare,
        paired_columns,
    )

    comparison = compare([c.card for c in cards], [c.path.name if c.path else c.label
                                                   for c in cards],
                         [str(c.path) if c.path else c.label for c in cards])
    labels = comparison.cards
    paired = paired_columns(comparison)
    head = ["metric", "better", esc(labels[0])]
    for i, label in enumerate(labels[1:], start=1):
        head += [esc(label), f"Δ {esc(label)}", f"CI overlap {esc(label)}"]
        if i in paired:
            head.append(f"paired p {esc(label)}")
    rows = []
    for row in comparison.rows:
        mark = f' <span title="signatures differ">{SIG_MARK}</span>' \
            if row.signature_differences else ""
        better = "?" if row.higher_is_better is None else \
            "↑" if row.higher_is_better else "↓"
        cells = [f"<td>{esc(row.metric)}{mark}</td>", f"<td>{better}</td>",
                 f'<td class="num">{esc(_value_cell(row, 0))}</td>']
        for i in range(1, len(labels)):
            delta = row.delta[i]
            css = ""
            if delta is not None and delta != 0 and row.higher_is_better is not None:
                css = "better" if (delta > 0) == row.higher_is_better else "worse"
            text = "-" if delta is None else f"{delta:+.4f}"
            cells += [f'<td class="num">{esc(_value_cell(row, i))}</td>',
                      f'<td class="num {css}">{text}</td>',
                      f"<td>{_overlap_cell(row.ci_overlap[i])}</td>"]
            if i in paired:
                cells.append(f'<td class="num">{_p_cell(row.paired_p[i])}</td>')
        rows.append(f'<tr data-metric="{esc(row.metric)}">{"".join(cells)}</tr>')
    table = ("<table class=\"comparison\"><tr>" + "".join(f"<th>{h}</th>" for h in head)
             + "</tr>" + "".join(rows) + "</table>")
    notes = "".join(f"<li>{esc(n)}</li>" for n in _notes(comparison))
    parts = ['<h2 id="comparison">Comparison</h2>',
             f'<p class="meta">{len(cards)} scorecards; the first ({esc(labels[0])}) is the '
             "baseline of the deltas. Green: better, red: worse.</p>",
             table, f"<ul class=\"note\">{notes}</ul>"]
    parts.append(fidelity_comparison(cards, labels))
    parts.append(_overlaid_histograms(cards, labels))
    parts.append(_per_sample_changes(cards, labels, k))
    return "\n".join(parts)


def _per_sample_changes(cards: list[LoadedCard], labels: list[str], k: int) -> str:
    """For samples with the same id in the first card and a later one: how many got
    better or worse per metric, and the ``k`` largest changes each way."""
    base = cards[0]
    base_ids = [str(i) for i in (base.per_sample or {}).get("ids", [])]
    base_values = base.sample_values()
    out = []
    for card, label in zip(cards[1:], labels[1:], strict=True):
        index = {str(i): j for j, i in enumerate((card.per_sample or {}).get("ids", []))}
        for name, values in card.sample_values().items():
            if name not in base_values:
                continue
            pairs = []
            for ident, before in zip(base_ids, base_values[name], strict=False):
                j = index.get(ident)
                after = values[j] if j is not None and j < len(values) else None
                if finite([before]) and finite([after]):
                    pairs.append((ident, float(before), float(after)))
            if not pairs:
                continue
            sign = 1.0 if _higher_is_better(card, name) else -1.0
            gains = sorted(pairs, key=lambda p: sign * (p[2] - p[1]))  # worst change first
            worse = [p for p in gains if sign * (p[2] - p[1]) < 0][:k]
            better = [p for p in reversed(gains) if sign * (p[2] - p[1]) > 0][:k]
            n_worse = sum(sign * (b - a) < 0 for _, a, b in pairs)
            n_better = sum(sign * (b - a) > 0 for _, a, b in pairs)
            rows = "".join(
                f'<tr><td><code>{esc(ident)}</code></td><td class="num">{number(a)}</td>'
                f'<td class="num">{number(b)}</td><td class="num {css}">{b - a:+.4f}</td></tr>'
                for css, chosen in (("worse", worse), ("better", better))
                for ident, a, b in chosen)
            out.append(f"<details><summary>{esc(name)}, {esc(label)} vs {esc(labels[0])}: "
                       f"{n_worse} worse, {n_better} better, "
                       f"{len(pairs) - n_worse - n_better} unchanged of {len(pairs)} samples "
                       f"with the same id</summary><table><tr><th>sample</th>"
                       f"<th>{esc(labels[0])}</th><th>{esc(label)}</th><th>Δ</th></tr>{rows}"
                       "</table></details>")
    if not out:
        return ""
    return "<h3>Per-sample changes</h3>" + "".join(out)


def _overlaid_histograms(cards: list[LoadedCard], labels: list[str]) -> str:
    names: dict[str, None] = {}
    for card in cards:
        names.update(dict.fromkeys(card.sample_values()))
    figures = []
    for name in names:
        series, marks = [], []
        for card, label in zip(cards, labels, strict=True):
            numbers = finite(card.sample_values().get(name, []))
            if numbers:
                series.append((label, numbers))
                result = card.card.metrics.get(name)
                marks.append((f"{label} value", result.value if result else None))
        if len(series) >= 2:
            sizes = ", ".join(f"{label}: {len(v)}" for label, v in series)
            figures.append(f"<figure>{histogram(name, series, marks)}<figcaption>{esc(name)} "
                           f"({esc(sizes)} samples)</figcaption></figure>")
    if not figures:
        return ('<p class="note">No metric has per-sample values in two scorecards: score '
                "with --per-sample to compare distributions.</p>")
    return f'<h3>Distributions side by side</h3><div class="plots">{"".join(figures)}</div>'
