"""The README's example output, compared exactly (``make test-slow``).

``tests/test_readme_output.py`` checks the same lines in the fast suite with library
versions and ``#`` digests normalised, and only BLEU, chrF and ROUGE of the summary.
Here every line must be what a real run prints today: the text demo scored by ``make
demo``'s command (every default text metric, in a fresh process) and the demo's full
BLEU signature. An upgrade (sacrebleu, nltk, torch, transformers, rouge-score-rs) or a
new genmetrics version changes them; the failure message holds the lines to paste into
the README.

Assets (WordNet, the default LM) are built from local sources into a temporary
``GENMETRICS_HOME``, as the fast suite does: ``make test-slow`` does not need ``make
assets``, and the user's own cache is neither read nor written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_readme_output import readme_bleu_signatures, readme_summary

REPO = Path(__file__).resolve().parent.parent
DEMO_TEXT = REPO / "demo" / "text"


@pytest.fixture(scope="module")
def own_home(tmp_path_factory):
    """A GENMETRICS_HOME (and feature cache) of this module's own."""
    saved = {k: os.environ.get(k) for k in ("GENMETRICS_HOME", "GENMETRICS_CACHE_DIR")}
    os.environ["GENMETRICS_HOME"] = str(tmp_path_factory.mktemp("gmhome"))
    os.environ["GENMETRICS_CACHE_DIR"] = str(tmp_path_factory.mktemp("feature-cache"))
    try:
        yield Path(os.environ["GENMETRICS_HOME"])
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.mark.slow
def test_signature_example_is_exactly_the_text_demos(own_home: Path) -> None:
    from genmetrics.runner import score

    card = score(DEMO_TEXT / "samples", DEMO_TEXT / "references", metrics=["bleu"])
    real = card.metrics["bleu"].signature_str
    shown = readme_bleu_signatures()
    print(f"\nREADME BLEU signature: `{real}`")
    assert shown == [real], f"README (## Scorecards and signatures): replace {shown} " \
        f"with `{real}`"


@pytest.mark.slow
def test_demo_summary_is_exactly_what_make_demo_prints(tmp_path: Path, own_home: Path) -> None:
    """The text demo's summary at the top of the README: every line but the ``...`` rows
    is a line of the real output of ``make demo``'s command, in the same order."""
    from genmetrics.assets import resolve
    from genmetrics.scorecard import Scorecard

    resolve("smollm2-135m")  # a default text run includes perplexity once its LM is built
    shown = readme_summary()
    done = subprocess.run(
        [sys.executable, "-m", "genmetrics", "score", "--modality", "text",
         DEMO_TEXT / "samples", "--reference", DEMO_TEXT / "references",
         "--out", tmp_path / "demo-text.json", "--per-sample"],
        capture_output=True, text=True, env=dict(os.environ, COLUMNS="100"), cwd=REPO,
        timeout=600)
    assert done.returncode == 0, done.stderr
    real = [line.rstrip() for line in done.stdout.splitlines()]
    card = Scorecard.load(tmp_path / "demo-text.json")
    assert not card.errors and not card.unavailable, (card.errors, card.unavailable)
    assert len(shown) >= 15 and any("|refs:" in line for line in shown)
    missing = [line for line in shown if line not in real]
    assert not missing, "README lines no real run prints:\n" + "\n".join(missing) + \
        "\n\nthe real output (paste its lines into the README's block, keeping the " \
        "`...` rows):\n" + "\n".join(real)
    assert [line for line in real if line in shown] == shown  # same order
