"""The report's slice table (``--group-by``): one row per slice with its n, one column
per result, the overall values first.

    >>> from genmetrics.metric import MetricResult
    >>> from genmetrics.scorecard import Scorecard
    >>> from genmetrics.report.sections import LoadedCard
    >>> r = lambda v, n: MetricResult("bleu", v, n, True, "", {"metric": "bleu"})
    >>> card = Scorecard("text", {}, {"bleu": r(40.0, 3)}, slices={"by": "topic",
    ...     "unlabelled": 0, "groups": {"news": {"n": 3, "metrics": {"bleu": r(40.0, 3)}}}})
    >>> "<td>news</td><td class=\\"num\\">3</td>" in slices_table(LoadedCard(card, "A"))
    True
"""

from __future__ import annotations

import math
from typing import Any

from genmetrics.report._html import esc, number


def _cell(result: Any) -> str:
    if result is None:
        return "<td>-</td>"
    if math.isfinite(result.value):
        return f'<td class="num">{number(result.value)}</td>'
    return f'<td class="failed" title="{esc(result.reason or "")}">null</td>'


def slices_table(card: Any) -> str:
    """The slice table of a :class:`~genmetrics.report.sections.LoadedCard` ("" when its
    scorecard has no slices). A null cell's title gives the reason."""
    slices = getattr(card.card, "slices", None)
    if not slices or not slices.get("groups"):
        return ""
    names: dict[str, None] = dict.fromkeys(card.card.metrics)
    for group in slices["groups"].values():
        names.update(dict.fromkeys(group["metrics"]))
    head = "<tr><th>" + esc(slices["by"]) + "</th><th>n</th>" + "".join(
        f"<th>{esc(n)}</th>" for n in names) + "</tr>"
    overall = card.count()
    rows = ["<tr><td><b>overall</b></td><td class=\"num\">"
            f"{'-' if overall is None else overall}</td>"
            + "".join(_cell(card.card.metrics.get(n)) for n in names) + "</tr>"]
    for value, group in slices["groups"].items():
        rows.append(f"<tr><td>{esc(value)}</td><td class=\"num\">{group['n']}</td>"
                    + "".join(_cell(group["metrics"].get(n)) for n in names) + "</tr>")
    notes = []
    reasons = {f"{value}: {name}: {r.reason}" for value, g in slices["groups"].items()
               for name, r in g["metrics"].items() if not math.isfinite(r.value)}
    if reasons:
        notes.append("<p class=\"note\">null: " + "; ".join(esc(x) for x in sorted(reasons))
                     + "</p>")
    if slices.get("unlabelled"):
        notes.append(f"<p class=\"note\">{slices['unlabelled']} sample(s) have no "
                     f"{esc(slices['by'])}: in the overall values only.</p>")
    return (f"<h3>Slices by {esc(slices['by'])}</h3><table class=\"metrics slices\">"
            + head + "".join(rows) + "</table>" + "".join(notes))
