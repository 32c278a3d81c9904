"""The image gate demo (``make demo``) at a small size: two seeds of the same toy
generator pass the gate, its blurred output fails it and the failure names FID."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import REPO, TEST_DEVICE

sys.path.insert(0, str(REPO / "scripts"))

#: images per folder: at 60 the blur's FID increase is ~2x the bootstrap difference's
#: allowance (at 150, what ``make demo`` uses, ~5x; at 40 only ~1.1x): measured, see the
#: README's gate demo. 240 Inception passes, ~45 s of CPU with the weights' conversion.
N = 60


@pytest.fixture(scope="module")
def demo_cards(tmp_path_factory, real_weights):
    """The demo's three scorecards (FID only, ``--bootstrap 200``) on disk."""
    from make_gate_demo import write_all

    from genmetrics.runner import score

    root = tmp_path_factory.mktemp("gate-demo")
    folders = write_all(root, N)
    cards = {}
    for run in ("run1", "run2", "blurred"):
        card = score(folders[run], folders["references"], modality="image", metrics=["fid"],
                     bootstrap=200, inception_weights=real_weights, device=TEST_DEVICE,
                     diagnostics=False)
        cards[run] = root / f"{run}.json"
        card.save(cards[run])
    return cards


@pytest.mark.slow
def test_same_generator_passes_and_blurred_fails_naming_fid(run_cli, demo_cards):
    fid = {run: json.loads(path.read_text())["metrics"]["fid"] for run, path in
           demo_cards.items()}
    assert fid["run1"]["components"]["interval"]["replicates"] == 200
    assert fid["blurred"]["value"] > fid["run1"]["value"]  # blur is worse
    rerun = run_cli("gate", demo_cards["run2"], "--baseline", demo_cards["run1"])
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "gate passed" in rerun.stdout
    assert "bootstrap difference, same references" in " ".join(rerun.stdout.split())
    blurred = run_cli("gate", demo_cards["blurred"], "--baseline", demo_cards["run1"])
    assert blurred.returncode == 1, blurred.stdout + blurred.stderr
    assert "gate failed: fid" in blurred.stdout
    assert "REGRESSION" in blurred.stdout
