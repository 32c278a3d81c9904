"""`torchrun --nproc-per-node 2 -m genmetrics score ...` (gloo, CPU) equals one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, cli_env
from tests.photos import DEGRADATIONS, resize_longer_side, save_png, tiles

TORCHRUN = Path(sys.executable).with_name("torchrun")


def _torchrun(*args: str | Path, tmp: Path) -> subprocess.CompletedProcess:
    """torchrun with 2 processes; its ``torchelastic_*`` folders go to ``tmp`` (TMPDIR),
    not the system temporary folder, where some torch versions leave them behind."""
    env = cli_env(OMP_NUM_THREADS="1", TMPDIR=str(tmp))
    return subprocess.run([str(TORCHRUN), "--standalone", "--nproc-per-node", "2",
                           "-m", "genmetrics", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def _single(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genmetrics", *map(str, args)],
                          capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=300)


def _card(path: Path) -> dict:
    return json.loads(path.read_text())


def _same(two: dict, one: dict, rel: float) -> None:
    assert set(two["metrics"]) == set(one["metrics"])
    for name, result in one["metrics"].items():
        assert two["metrics"][name]["value"] == pytest.approx(result["value"], rel=rel), name
        assert two["metrics"][name]["n"] == result["n"]
    assert two["per_sample"]["ids"] == one["per_sample"]["ids"]
    # input digests do not depend on the number of processes (gate compares them)
    cache = ("feature_cache",)
    assert ({k: v for k, v in two["inputs"].items() if k not in cache}
            == {k: v for k, v in one["inputs"].items() if k not in cache})
    for name, result in one["metrics"].items():
        assert two["metrics"][name]["signature"].get("refs") == result["signature"].get("refs")
    assert two["environment"]["processes"].startswith("2")
    assert "processes" not in one["environment"]


pytestmark = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed")


def test_text_two_processes(tmp_path):
    for side in ("s", "r"):
        (tmp_path / side).mkdir()
    for i in range(9):
        (tmp_path / "s" / f"{i}.txt").write_text(f"sample {i} says the cat sat on mat {i % 4}")
        (tmp_path / "r" / f"{i}.txt").write_text(f"sample {i} said a cat sat on the mat")
    args = ["score", tmp_path / "s", "--reference", tmp_path / "r", "--metrics",
            "bleu,rouge,chrf,meteor", "--per-sample", "-q"]
    two = _torchrun(*args, "--out", tmp_path / "two.json", tmp=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    assert _single(*args, "--out", tmp_path / "one.json").returncode == 0
    _same(_card(tmp_path / "two.json"), _card(tmp_path / "one.json"), rel=1e-12)


def test_audio_two_processes(tmp_path):
    import soundfile as sf

    rng = np.random.default_rng(0)
    for side in ("n", "c"):
        (tmp_path / side).mkdir()
    for i in range(5):
        clean = 0.3 * np.sin(np.linspace(0, 200 + 40 * i, 16000))
        sf.write(tmp_path / "c" / f"{i}.wav", clean, 16000, subtype="DOUBLE")
        sf.write(tmp_path / "n" / f"{i}.wav", clean + 0.05 * rng.standard_normal(16000), 16000,
                 subtype="DOUBLE")
    args = ["score", "--modality", "audio", tmp_path / "n", "--reference", tmp_path / "c",
            "--metrics", "snr,si_snr,stoi", "--per-sample", "-q"]
    two = _torchrun(*args, "--out", tmp_path / "two.json", tmp=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    assert _single(*args, "--out", tmp_path / "one.json").returncode == 0
    _same(_card(tmp_path / "two.json"), _card(tmp_path / "one.json"), rel=1e-12)


def test_image_two_processes_with_random_weights(tmp_path, random_weights, monkeypatch):
    # a cache of its own: the counts below must not depend on which tests ran before
    monkeypatch.setenv("GENMETRICS_CACHE_DIR", str(tmp_path / "cache"))
    small = [resize_longer_side(t, 48) for _, t in tiles()[:10]]
    kinds = list(DEGRADATIONS.values())
    for side in ("s", "r"):
        (tmp_path / side).mkdir()
    for i, tile in enumerate(small):
        save_png(kinds[i % 4](tile), tmp_path / "s" / f"{i}.png")
        save_png(tile, tmp_path / "r" / f"{i}.png")
    weights = random_weights()
    args = ["score", "--modality", "image", tmp_path / "s", "--reference", tmp_path / "r",
            "--metrics", "fid,kid,inception_score,ssim,psnr,precision,recall,density,coverage,"
            "vendi", "--inception-weights", weights,
            "--set", "kid.subset_size=5", "--set", "inception_score.splits=2", "--workers", "0",
            "--per-sample", "-q"]
    two = _torchrun(*args, "--out", tmp_path / "two.json", tmp=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    assert _single(*args, "--out", tmp_path / "one.json").returncode == 0
    # float32 convolutions on 5-image and 10-image batches; FID of 10 images (singular
    # covariances) amplifies that: 1e-5 relative, inside the 1e-4 parity bound
    _same(_card(tmp_path / "two.json"), _card(tmp_path / "one.json"), rel=1e-5)
    # both ranks wrote their features to the cache; the one-process run read them all
    assert _card(tmp_path / "two.json")["inputs"]["feature_cache"]["extracted"] == 20
    assert _card(tmp_path / "one.json")["inputs"]["feature_cache"] == {
        **_card(tmp_path / "two.json")["inputs"]["feature_cache"], "hits": 20, "extracted": 0}
    assert not (REPO / "two.json").exists() and os.path.exists(tmp_path / "two.json")
