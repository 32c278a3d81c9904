"""The terminal summary of `genmetrics score`: a narrow table, then one short signature
line per metric, then reasons and notes on lines of their own -- readable at 80 columns.

Golden files pin the layout (``tests/fixtures/summary/``); regenerate them with
``GENMETRICS_REGOLD=1 pytest tests/test_cli_summary.py`` after a deliberate change
and read the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from genmetrics.cli import print_summary, signature_line
from genmetrics.scorecard import Scorecard
from genmetrics.signature import comparable_digest

FIXTURES = Path(__file__).parent / "fixtures" / "summary"


@pytest.fixture
def card() -> Scorecard:
    return Scorecard.load(FIXTURES / "image_card.json")


def _summary(card: Scorecard, columns: int, capsys, monkeypatch, form: str = "short") -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    print_summary(card, "card.json", form)
    return capsys.readouterr().out


@pytest.mark.parametrize("columns", [80, 160])
def test_summary_matches_its_golden_output(card, columns, capsys, monkeypatch):
    text = _summary(card, columns, capsys, monkeypatch)
    golden = FIXTURES / f"image_summary_{columns}.txt"
    if os.environ.get("GENMETRICS_REGOLD"):
        golden.write_text(text)
    assert text == golden.read_text()
    assert max(len(line) for line in text.splitlines()) <= columns


def test_signatures_are_one_line_each_at_80_columns(card, capsys, monkeypatch):
    lines = _summary(card, 80, capsys, monkeypatch).splitlines()
    start = lines.index("signatures (--signatures full for the whole strings):")
    room = 80 - max(len(name) for name in card.metrics) - 3  # after the name column
    for name, result in card.metrics.items():
        line = lines[start + 1 + list(card.metrics).index(name)]
        assert line.split() == [name, signature_line(result, "short", room)]
        # the short form ends with the digest of every comparable field
        assert line.endswith(f"#{comparable_digest(result.signature)}")
    # reasons are sentences below the table, never squeezed into a cell
    prose = " ".join(line.strip() for line in lines)  # the terminal wraps prose at spaces
    assert f"unavailable inception_score: {card.unavailable['inception_score']}" in prose
    assert f"failed psnr: {card.errors['psnr']}" in prose


def test_short_signature_shows_changed_options_and_what_was_compared(card):
    kid = signature_line(card.metrics["kid"], "short")
    assert kid.startswith("kid|subset:12|")  # default None, 12 used: a change worth showing
    assert "|ref:folder|refs:8f0f3450|" in kid and "degree" not in kid
    assert signature_line(card.metrics["kid"], "full") == card.metrics["kid"].signature_str


def test_full_signatures_print_whole_strings(card, capsys, monkeypatch):
    text = _summary(card, 400, capsys, monkeypatch, form="full")
    for result in card.metrics.values():
        assert result.signature_str in text
    assert "signatures" not in _summary(card, 80, capsys, monkeypatch, form="none")


def test_a_long_short_signature_drops_fields_to_fit_but_keeps_the_digest(card, capsys,
                                                                         monkeypatch):
    """FID/KID against named statistics: at 80 columns the extractor name goes first
    (the digest still covers it), never the digest or the changed options."""
    kid = card.metrics["kid"]
    kid.signature["ref"] = "stats:skimage-photos"
    lines = _summary(card, 80, capsys, monkeypatch).splitlines()
    line = next(ln for ln in lines if ln.startswith(" kid "))
    assert len(line) <= 80 and "…" not in line
    assert "subset:12" in line and "ext:" not in line
    assert line.endswith(f"#{comparable_digest(kid.signature)}")
    assert "ext:inception-v3-fid" in signature_line(kid, "short")  # room: all of it
