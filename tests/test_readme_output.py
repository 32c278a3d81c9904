"""The README's example output is what a real run prints, so it cannot drift.

The digests in signatures cover library versions, so an upgrade (sacrebleu, nltk,
torch, transformers) or a new genmetrics version changes them: the failure message
holds the lines to paste into the README.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from genmetrics.runner import score
from genmetrics.scorecard import Scorecard
from tests.conftest import DEMO_TEXT, REPO, cli_env

README = REPO / "README.md"


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start:end if end >= 0 else None]


def test_signature_example_is_the_text_demos_bleu_signature() -> None:
    card = score(DEMO_TEXT / "samples", DEMO_TEXT / "references", metrics=["bleu"])
    real = card.metrics["bleu"].signature_str
    assert real.startswith("bleu|") and "|refs:" in real
    shown = re.findall(r"`(bleu\|[^`]*)`", _section("## Scorecards and signatures"))
    assert shown == [real], f"README: replace {shown} with `{real}`"


@pytest.mark.slow
def test_demo_summary_is_what_make_demo_prints(tmp_path: Path, default_lm: Path) -> None:
    """The text demo's summary at the top of the README: every line but the ``...`` rows
    is a line of the real output of ``make demo``'s command, in the same order."""
    block = re.search(r"prints a summary table for each:\n\n```\n(.*?)```",
                      README.read_text(encoding="utf-8"), re.S).group(1)
    shown = [line.rstrip() for line in block.splitlines()
             if line.strip() and not re.match(r"^\W*\.\.\.", line.strip("│ "))]
    done = subprocess.run(
        [sys.executable, "-m", "genmetrics", "score", "--modality", "text",
         DEMO_TEXT / "samples", "--reference", DEMO_TEXT / "references",
         "--out", tmp_path / "demo-text.json", "--per-sample"],
        capture_output=True, text=True, env=cli_env(COLUMNS="100"), cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    real = [line.rstrip() for line in done.stdout.splitlines()]
    card = Scorecard.load(tmp_path / "demo-text.json")
    assert not card.errors and not card.unavailable, (card.errors, card.unavailable)
    assert len(shown) >= 15 and any("|refs:" in line for line in shown)
    missing = [line for line in shown if line not in real]
    assert not missing, "README lines no real run prints:\n" + "\n".join(missing) + \
        "\n\nthe real output:\n" + "\n".join(real)
    assert [line for line in real if line in shown] == shown  # same order
