"""Fidelity against diversity: precision and density (do the samples look like the
references?) beside recall, coverage and Vendi (is the references' variety covered?),
as a small table per scorecard and one row per scorecard in the comparison.

    >>> from genmetrics.metric import MetricResult
    >>> from genmetrics.scorecard import Scorecard
    >>> from genmetrics.report.sections import LoadedCard
    >>> sig = {"metric": "precision_recall", "v": 1, "n": 10, "genmetrics": "0"}
    >>> results = {"precision": MetricResult("precision", 0.9, 10, True, "", sig),
    ...            "recall": MetricResult("recall", 0.2, 10, True, "", sig)}
    >>> card = LoadedCard(Scorecard("image", {}, results), "card")
    >>> html = fidelity_panel(card)
    >>> "Fidelity and diversity" in html and "0.9000" in html and "mode collapse" in html
    True
    >>> fidelity_panel(LoadedCard(Scorecard("image", {}, {}), "empty"))
    ''
"""

from __future__ import annotations

import math
from typing import Any

from genmetrics.report._html import esc, number

#: result names of each side, shown in this order; a row pairs precision with recall
#: and density with coverage (each pair comes from the same k-NN manifolds)
FIDELITY = ("precision", "density")
DIVERSITY = ("recall", "coverage", "vendi")
NAMES = FIDELITY + DIVERSITY
SIDE = ' class="side"'  # the line between the two sides

READING = (
    "Precision and density ask whether the samples look like the references (fidelity); "
    "recall and coverage ask whether the samples cover the references' variety "
    "(diversity). High precision with low recall points to mode collapse: realistic "
    "samples that are all alike; the reverse points to varied but unrealistic samples. "
    "Precision, recall and coverage are fractions from 0 to 1; density is about 1 when "
    "samples and references come from the same distribution and can exceed 1 when samples "
    "crowd the references' dense regions. Vendi is the effective number of distinct "
    "samples (1 to n), from the samples alone.")


def has_fidelity(card: Any) -> bool:
    """Whether the card (a :class:`~genmetrics.report.sections.LoadedCard`) holds a
    result of :data:`NAMES`."""
    return any(name in card.card.metrics for name in NAMES)


def _cell(card: Any, name: str, first_of_side: bool = False) -> str:
    """One value cell: the number (and 95% CI), or why there is none; ``first_of_side``:
    a line before it (between fidelity and diversity)."""
    side = " side" if first_of_side else ""
    open_ = f'<td class="num{side}" data-metric="{esc(name)}"'
    result = card.card.metrics.get(name)
    if result is not None:
        if not math.isfinite(result.value):
            return (f'{open_}><span class="failed" title="{esc(result.reason or "")}">'
                    "no value</span></td>")
        ci = (f'<br><span class="caption">{number(result.ci95[0])} – '
              f"{number(result.ci95[1])}</span>" if result.ci95 else "")
        return f'{open_} data-value="{result.value!r}">{number(result.value)}{ci}</td>'
    for where, css, word in ((card.card.errors, "failed", "failed"),
                             (card.card.unavailable, "unavailable", "unavailable")):
        if name in where:
            return (f'{open_}><span class="{css}" title="{esc(where[name])}">{word}</span>'
                    "</td>")
    return f"{open_}>-</td>"


def _why_missing(card: Any) -> str:
    """The reasons of the panel's unavailable or failed metrics, one line each."""
    lines = [f"{name}: {reason}" for where in (card.card.unavailable, card.card.errors)
             for name, reason in where.items() if name in NAMES]
    return "".join(f'<p class="note">{esc(line)}</p>' for line in lines)


def fidelity_panel(card: Any) -> str:
    """The card's fidelity/diversity table with how to read it; '' without those metrics."""
    if not has_fidelity(card):
        return ""
    rows = []
    for left, right in zip((*FIDELITY, None), DIVERSITY, strict=True):
        cells = []
        for name in (left, right):
            if name is None:
                cells.append("<td></td><td></td>")  # vendi's row: no fidelity twin
            else:
                side = SIDE if name in DIVERSITY else ""
                cells.append(f"<th{side}>{esc(name)}</th>{_cell(card, name)}")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return ('<h3>Fidelity and diversity</h3><table class="fidelity" '
            f'data-card="{esc(card.label)}"><tr><th colspan="2">Fidelity: do the samples look '
            'like the references?</th><th colspan="2" class="side">Diversity: is the '
            f"references' variety covered?</th></tr>{''.join(rows)}</table>"
            f'<p class="note">{esc(READING)}</p>{_why_missing(card)}')


def fidelity_comparison(cards: list[Any], labels: list[str]) -> str:
    """One row per scorecard (precision, density | recall, coverage, Vendi); '' when no
    card holds those metrics."""
    if not any(has_fidelity(card) for card in cards):
        return ""
    head = ("<tr><th></th>"
            f'<th colspan="{len(FIDELITY)}">Fidelity</th>'
            f'<th colspan="{len(DIVERSITY)}" class="side">Diversity</th></tr>'
            "<tr><th>scorecard</th>" + "".join(
                f"<th{SIDE if name == DIVERSITY[0] else ''}>{esc(name)}</th>"
                for name in NAMES) + "</tr>")
    rows = [f'<tr data-card="{esc(label)}"><td>{esc(label)}</td>'
            + "".join(_cell(card, name, name == DIVERSITY[0]) for name in NAMES) + "</tr>"
            for card, label in zip(cards, labels, strict=True)]
    return ('<h3>Fidelity and diversity</h3><table class="fidelity comparison">'
            f"{head}{''.join(rows)}</table><p class=\"note\">{esc(READING)}</p>")


__all__ = ["fidelity_panel", "fidelity_comparison", "READING", "FIDELITY", "DIVERSITY"]
