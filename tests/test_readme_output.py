"""The README's example output is what a real run prints, so it cannot drift.

Signatures hold library versions (sacrebleu, nltk, torch, transformers, rouge-score-rs,
genmetrics itself) and their ``#`` digests cover them, so an upgrade or a new genmetrics
version changes them. These fast tests compare everything else -- the structure, the
field names and order, the options, the values, the references digest -- with the
version fields (``gm:0.2.0|sacrebleu:2.6.0``) and ``#`` digests normalised: a release
upstream does not turn CI red. ``make test-slow`` compares the lines exactly
(``loadtests/test_readme_output_exact.py``) and prints the lines to paste into the
README when they changed.

The text demo's summary is checked here in process, for the metrics that score in under
a second (BLEU, chrF, ROUGE); METEOR's and perplexity's lines (WordNet, the default LM)
are checked by the exact test in ``make test-slow``, which runs ``make demo``'s command.
"""

from __future__ import annotations

import re

import pytest

from genmetrics.runner import score
from tests.conftest import DEMO_TEXT, REPO

README = REPO / "README.md"
DIGEST = re.compile(r"#[0-9a-f]{8}\b")
#: metrics of the text demo cheap enough to score here (METEOR and perplexity: test-slow)
CHEAP = ["bleu", "chrf", "rouge"]


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start:end if end >= 0 else None]


def readme_bleu_signatures() -> list[str]:
    """The full BLEU signature strings shown under "Scorecards and signatures"."""
    return re.findall(r"`(bleu\|[^`]*)`", section("## Scorecards and signatures"))


def version_fields(result) -> set[str]:
    """The rendered keys of ``result``'s signature that hold a library or genmetrics
    version (``gm``, ``sacrebleu``...): ``genmetrics`` and the metric's libraries."""
    from genmetrics.registry import get_metric
    from genmetrics.signature import ABBREVIATIONS

    libraries = get_metric(str(result.signature["metric"]))().libraries()
    return {ABBREVIATIONS.get(k, k) for k in ("genmetrics", *libraries)}


def without_versions(signature_str: str, fields: set[str]) -> str:
    """``signature_str`` with the values of ``fields`` replaced by ``*``.

    >>> without_versions("bleu|tok:13a|gm:0.2.0|sacrebleu:2.6.0|refs:03afdb3e",
    ...                  {"gm", "sacrebleu"})
    'bleu|tok:13a|gm:*|sacrebleu:*|refs:03afdb3e'
    """
    parts = signature_str.split("|")
    return "|".join([parts[0]] + [f"{p.partition(':')[0]}:*" if p.partition(":")[0] in fields
                                  else p for p in parts[1:]])


def readme_summary() -> list[str]:
    """The text demo's summary shown at the top of the README: its lines but the
    ``...`` rows."""
    block = re.search(r"prints a summary table for each:\n\n```\n(.*?)```",
                      README.read_text(encoding="utf-8"), re.S).group(1)
    return [line.rstrip() for line in block.splitlines()
            if line.strip() and not re.match(r"^\W*\.\.\.", line.strip("│ "))]


def normalised(line: str) -> str:
    """A summary line with ``#`` digests as ``#xxxxxxxx`` and runs of spaces as one (the
    column widths follow the longest metric name of the run).

    >>> normalised(" bleu        bleu|tok:13a|refs:03afdb3e|#b8da579b")
    'bleu bleu|tok:13a|refs:03afdb3e|#xxxxxxxx'
    """
    return " ".join(DIGEST.sub("#xxxxxxxx", line).split())


def _first_word(line: str) -> str:
    words = line.strip("│┃ ").split()
    return words[0] if words else ""


def test_signature_example_is_the_text_demos_bleu_signature() -> None:
    """The README's full BLEU signature is the text demo's, field by field; only the
    version fields may differ (an upgrade: ``make test-slow`` says what to paste)."""
    card = score(DEMO_TEXT / "samples", DEMO_TEXT / "references", metrics=["bleu"])
    result = card.metrics["bleu"]
    real = result.signature_str
    assert real.startswith("bleu|") and "|refs:" in real and "|gm:" in real
    fields = version_fields(result)
    assert {"gm", "sacrebleu"} <= fields
    shown = readme_bleu_signatures()
    assert [without_versions(s, fields) for s in shown] == [without_versions(real, fields)], (
        f"README: replace {shown} with `{real}`")


@pytest.mark.parametrize("readme, real", [
    ("bleu|tok:13a|gm:0.2.0|sacrebleu:2.6.0|refs:03afdb3e",
     "bleu|tok:13a|gm:0.3.0|sacrebleu:2.7.1|refs:03afdb3e"),
])
def test_versions_alone_may_differ(readme: str, real: str) -> None:
    """The normalisation forgives versions and nothing else: an option, a field's name
    or order, or the references digest still differ."""
    fields = {"gm", "sacrebleu"}
    assert without_versions(readme, fields) == without_versions(real, fields)
    for changed in (real.replace("tok:13a", "tok:intl"), real.replace("refs:03afdb3e", "refs:x"),
                    real.replace("|tok:13a", "") + "|tok:13a", real.replace("sacrebleu:", "sb:")):
        assert without_versions(readme, fields) != without_versions(changed, fields)
    assert normalised("│ bleu │ 55.5 │ - │ 8 │ ↑ │") != normalised("│ bleu │ 55.6 │ - │ 8 │ ↑ │")


def test_demo_summary_lines_of_the_fast_metrics(capsys, monkeypatch) -> None:
    """The README's summary of the text demo, for BLEU, chrF and ROUGE: the title, the
    table header, their rows (value, CI, n, direction) and short signatures are lines of
    the summary a real run prints (``print_summary``, 100 columns), in the same order,
    digests and spacing normalised. The exact lines: ``make test-slow``."""
    from genmetrics.cli import print_summary

    monkeypatch.setenv("COLUMNS", "100")
    card = score(DEMO_TEXT / "samples", DEMO_TEXT / "references", metrics=CHEAP,
                 per_sample=True)
    assert not card.errors and not card.unavailable, (card.errors, card.unavailable)
    print_summary(card, None)
    real = [normalised(line) for line in capsys.readouterr().out.splitlines()]
    shown = readme_summary()
    table_metrics = {_first_word(line) for line in shown if line.startswith("│")}
    assert {"bleu", "chrf", "meteor", "perplexity", "rouge1"} <= table_metrics
    not_scored = table_metrics - set(card.metrics)  # METEOR, perplexity: test-slow
    kept = [normalised(line) for line in shown
            if re.search(r"\w", line) and _first_word(line) not in not_scored]
    assert len(kept) >= 9 and any("|refs:" in line for line in kept)
    assert sum(line.startswith("│ ") for line in kept) == 3  # bleu, chrf, rouge1 rows
    missing = [line for line in kept if line not in real]
    assert not missing, "README lines no real run prints:\n" + "\n".join(missing) + \
        "\n\nthe real output (normalised):\n" + "\n".join(real)
    assert [line for line in real if line in kept] == kept  # same order
