"""BLEU and chrF of ``.txt`` line files equal the ``sacrebleu`` command on the same files.

Users check a number by running ``sacrebleu REFS -i HYPS -m chrf`` on the files they
gave genmetrics, so line files are read as that command reads them: lines split on
``\\n``, trailing whitespace removed (its ``line.rstrip()``), a leading byte order mark
dropped. sacrebleu's command keeps a BOM as a character unless given ``-e utf-8-sig``,
so the files with a BOM are compared with ``-e utf-8-sig`` (on BOM-free files the two
encodings read the same). The command prints ``-w 12`` decimals; values must agree to
that rounding (half a unit in the last printed place).
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from genmetrics.runner import score
from tests.textcorpus import make_pairs, perturb

WIDTH = 12
TRAILING = ["", "", " ", "  ", "\t", " \t ", "\r", "\u00a0", "\u3000 "]


def _sacrebleu_command() -> str:
    here = Path(sys.executable).with_name("sacrebleu")
    found = str(here) if here.is_file() else shutil.which("sacrebleu")
    if found is None:
        pytest.skip("the sacrebleu command is not installed")
    return found


def _write(path: Path, lines: list[str], bom: bool) -> Path:
    data = "\n".join(lines) + "\n"
    path.write_bytes(("\ufeff" if bom else "").encode() + data.encode("utf-8"))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Hypotheses and two reference files with stray trailing whitespace on both sides;
    the ``bom`` set has a BOM on the hypotheses and the first reference file."""
    root = tmp_path_factory.mktemp("cli")
    rng = random.Random(20)
    pairs = make_pairs(80, seed=20, multiline=False)
    hyps = [h + rng.choice(TRAILING) for h, _ in pairs]
    refs1 = [r[0] + rng.choice(TRAILING) for _, r in pairs]
    refs2 = [perturb(r[0], rng, 0.3) + rng.choice(TRAILING) for _, r in pairs]
    hyps[5] = "  leading spaces stay, " + hyps[5]
    refs1[7] = refs1[7].replace(" ", "\t", 2)
    out = {}
    for bom in (False, True):
        tag = "bom" if bom else "plain"
        out[f"{tag}/hyps"] = _write(root / f"{tag}-hyps.txt", hyps, bom)
        out[f"{tag}/refs1"] = _write(root / f"{tag}-refs1.txt", refs1, bom)
        out[f"{tag}/refs2"] = _write(root / f"{tag}-refs2.txt", refs2, False)
    return out


CASES = {
    # id: (genmetrics metric and options, sacrebleu command arguments)
    "bleu": ("bleu", {}, ["-m", "bleu"]),
    "chrf": ("chrf", {}, ["-m", "chrf"]),
    "chrf-whitespace": ("chrf", {"whitespace": True}, ["-m", "chrf", "--chrf-whitespace"]),
    "chrf++-whitespace": ("chrf", {"whitespace": True, "word_order": 2},
                          ["-m", "chrf", "--chrf-whitespace", "--chrf-word-order", "2"]),
}


@pytest.mark.parametrize("tag", ["plain", "bom"])
@pytest.mark.parametrize("nrefs", [1, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_line_files_score_as_the_sacrebleu_command(files, case, nrefs, tag):
    metric, options, args = CASES[case]
    refs = [files[f"{tag}/refs1"], files[f"{tag}/refs2"]][:nrefs]
    done = subprocess.run(
        [_sacrebleu_command(), *map(str, refs), "-i", str(files[f"{tag}/hyps"]), *args,
         "-b", "-w", str(WIDTH), "-e", "utf-8-sig"],
        capture_output=True, text=True, check=True)
    theirs = float(done.stdout.strip())
    card = score(files[f"{tag}/hyps"], refs, metrics=[metric], options={metric: options},
                 diagnostics=False)
    assert not card.errors and not card.skipped
    ours = card.metrics[metric].value
    assert abs(ours - theirs) <= 0.5 * 10**-WIDTH + 1e-13 * abs(theirs), (ours, theirs)
    assert 20 < theirs < 99  # a real comparison, not 0 against 0 or 100 against 100


def test_identical_text_with_a_byte_order_mark_scores_100(tmp_path):
    """The case of the issue: the same text, one side saved with a BOM."""
    lines = [h for h, _ in make_pairs(20, seed=4, multiline=False) if h]
    hyps = _write(tmp_path / "hyps.txt", lines, bom=True)
    refs = _write(tmp_path / "refs.txt", lines, bom=False)
    card = score(hyps, [refs], metrics=["bleu", "chrf"], diagnostics=False)
    assert card.metrics["bleu"].value == pytest.approx(100.0, abs=1e-9)
    assert card.metrics["chrf"].value == pytest.approx(100.0, abs=1e-9)
    folder_s, folder_r = tmp_path / "s", tmp_path / "r"
    for folder, bom in ((folder_s, b"\xef\xbb\xbf"), (folder_r, b"")):
        folder.mkdir()
        for i, line in enumerate(lines):
            (folder / f"{i:02d}.txt").write_bytes(bom + line.encode())
    card = score(folder_s, [folder_r], metrics=["bleu", "chrf"], diagnostics=False)
    assert card.metrics["bleu"].value == pytest.approx(100.0, abs=1e-9)
    assert card.metrics["chrf"].value == pytest.approx(100.0, abs=1e-9)
