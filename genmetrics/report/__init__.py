"""``genmetrics report``: one self-contained HTML page to look at before trusting a number.

For each scorecard: the metric table (value, 95% CI, n, signature), a histogram of
every result's per-sample values, the worst-k and best-k samples of every result that
has them (images: thumbnail, reference and their difference; audio: players for both
sides; text: output, reference and a word diff), and the scorecard's ``diagnostics``
when it has some. With two or more scorecards, a comparison comes first: each metric
side by side with the delta to the first card, whether the 95% CIs overlap and, where
both cards hold per-sample statistics, the paired bootstrap test's p (the logic of
:mod:`genmetrics.compare`), and the per-sample distributions overlaid. A small-sample
FID (``components.rank_deficient``) is flagged next to its value. Precision and density
(fidelity) are shown beside recall, coverage and Vendi (diversity), with how to read
them; where the per-sample document names each sample's nearest reference
(``per_sample.nearest_reference``, e.g. of density), the samples are shown beside that
reference image (a file of the reference folder, or a row of an ADM reference batch's
``arr_0``) and its distance, a hint of memorization.

Everything is inside the one file: the stylesheet, thumbnails and plots as PNG data
URIs, and audio (mono, first seconds, at most 16 kHz) as WAV data URIs, each clip
embedded once. Samples are found from the scorecard's ``inputs`` paths (relative ones
against ``root``, default the current folder, then the scorecard's folder and its
parent); one that is gone is shown as "file not found".

    >>> import tempfile, pathlib
    >>> from genmetrics.metric import MetricResult
    >>> from genmetrics.scorecard import Scorecard
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> result = MetricResult("bleu", 31.5, 3, True, "", {"metric": "bleu", "v": 1, "n": 3,
    ...                                                   "genmetrics": "0"})
    >>> card = Scorecard("text", {"samples": {"path": "s", "count": 3}}, {"bleu": result})
    >>> card.save(folder / "card.json")
    >>> html = write_report([folder / "card.json"], folder / "report.html")
    >>> text = html.read_text("utf-8")
    >>> "<h3>Metrics</h3>" in text and "31.5000" in text and "--per-sample" in text
    True
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from genmetrics.errors import UsageError
from genmetrics.report._html import MediaStore, esc, page
from genmetrics.report.fidelity import fidelity_panel
from genmetrics.report.sections import (
    LoadedCard,
    SampleView,
    card_meta,
    comparison_section,
    diagnostics_alert,
    diagnostics_section,
    distributions,
    inputs_notes,
    metrics_table,
    samples_section,
)
from genmetrics.report.slices import slices_table

PathLike = str | os.PathLike[str]


def _letters(i: int) -> str:
    from genmetrics.compare import _letters as letters

    return letters(i)


def load_cards(cards: Sequence[Any], root: PathLike | None = None) -> list[LoadedCard]:
    """Scorecard files (or :class:`~genmetrics.scorecard.Scorecard` objects) with labels:
    file names, or ``A``, ``B``, ... when those are not unique. A bad file raises
    :class:`~genmetrics.errors.InputError`."""
    from genmetrics.scorecard import Scorecard

    if not cards:
        raise UsageError("report needs a scorecard (e.g. genmetrics report card.json "
                         "--html report.html)")
    base = Path(root) if root is not None else Path.cwd()
    loaded = []
    for i, item in enumerate(cards):
        if isinstance(item, Scorecard):
            loaded.append(LoadedCard(item, f"card {i + 1}", None, None, [base]))
            continue
        path = Path(item)
        card = Scorecard.load(path)  # InputError naming the file when it is bad
        doc = json.loads(path.read_text("utf-8"))
        folder = path.resolve().parent  # e.g. out/card.json scored from out/..
        bases = list(dict.fromkeys([base, folder, folder.parent]))
        loaded.append(LoadedCard(card, path.name, path, doc, bases))
    labels = [c.label for c in loaded]
    if len(set(labels)) != len(labels):
        for i, card in enumerate(loaded):
            card.label = _letters(i)
    return loaded


def render_report(cards: Sequence[Any], *, k: int = 5, root: PathLike | None = None) -> str:
    """The report of ``cards`` (paths or Scorecard objects) as one HTML document."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UsageError(f"k (samples shown per side) must be a positive whole number; got {k!r}")
    loaded = load_cards(cards, root)
    media = MediaStore()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = ["<h1>genmetrics report</h1>",
            f'<p class="meta">{len(loaded)} scorecard(s) · written {now} · '
            f"worst and best {k} samples per metric</p>"]
    links = ['<a href="#comparison">Comparison</a>'] if len(loaded) > 1 else []
    links += [f'<a href="#card{i}">{esc(c.label)}</a>' for i, c in enumerate(loaded, start=1)]
    body.append(f"<nav>{''.join(links)}</nav>")
    if len(loaded) > 1:
        body.append(comparison_section(loaded, k))
    for i, card in enumerate(loaded, start=1):
        view = SampleView(card, media)
        title = f"Scorecard {card.label}" if len(loaded) > 1 else f"Scorecard: {card.label}"
        body += [f'<section id="card{i}" data-card="{esc(card.label)}">',
                 f"<h2>{esc(title)}</h2>", card_meta(card), inputs_notes(card),
                 metrics_table(card), slices_table(card), fidelity_panel(card),
                 diagnostics_alert(card, f"diagnostics{i}"),
                 distributions(card), samples_section(card, k, view),
                 diagnostics_section(card, k, view, f"diagnostics{i}"), "</section>"]
    title = "genmetrics report: " + ", ".join(c.label for c in loaded)
    return page(title, "\n".join(part for part in body if part), media)


def write_report(cards: Sequence[Any], html: PathLike, *, k: int = 5,
                 root: PathLike | None = None) -> Path:
    """Write the HTML report of ``cards`` (scorecard paths, or Scorecard objects) to
    ``html`` atomically and return its path. ``k``: worst and best samples shown per
    metric; ``root``: the folder relative input paths are tried against first."""
    from genmetrics.io.common import write_text_atomically

    text = render_report(cards, k=k, root=root)
    write_text_atomically(html, text)
    return Path(html)


__all__ = ["write_report", "render_report", "load_cards"]
