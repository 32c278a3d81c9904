"""Untrusted files: crafted pickles never run (statistics, image arrays; the weights and
the feature cache have their own tests in test_inception.py and test_feature_cache.py),
and a run writes nothing outside --out and the feature cache."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from genmetrics.errors import InputError
from tests.conftest import REPO, cli_env
from tests.photos import resize_longer_side, save_png, tiles


class _Payload:
    """Unpickling this makes a folder: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def _evil_object_array(marker: Path) -> np.ndarray:
    array = np.empty(1, dtype=object)
    array[0] = _Payload(marker)
    return array


def test_the_payload_is_live(tmp_path):
    marker = tmp_path / "live"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.is_dir()


def test_statistics_with_a_pickled_payload_are_refused_without_running_it(tmp_path):
    from genmetrics.reference_stats import load_stats

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.npz"
    np.savez(evil, mu=np.zeros(3), sigma=np.eye(3), n=np.int64(5),
             meta=_evil_object_array(marker))
    with pytest.raises(InputError):
        load_stats(evil)
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_image_arrays_with_a_pickled_payload_are_refused_without_running_it(tmp_path, suffix):
    from genmetrics.runner import score

    marker = tmp_path / "pwned"
    path = tmp_path / f"samples{suffix}"
    if suffix == ".npy":
        np.save(path, _evil_object_array(marker), allow_pickle=True)
    else:
        np.savez(path, arr_0=_evil_object_array(marker))
    with pytest.raises(InputError, match="samples"):
        score(path, modality="image", metrics=["inception_score"])
    assert not marker.exists()


def _snapshot(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("modality", ["image", "text"])
def test_a_run_writes_only_its_scorecard_and_the_feature_cache(tmp_path, run_cli, modality,
                                                              random_weights):
    """HOME, GENMETRICS_HOME, TMPDIR and the working folder all point inside tmp_path;
    after a run the only new files are the scorecard and (images) the feature cache."""
    inputs = tmp_path / "inputs"
    if modality == "image":
        (inputs / "samples").mkdir(parents=True)
        for i, (_, tile) in enumerate(tiles()[:12]):  # IS needs >= 10 (its splits)
            save_png(resize_longer_side(tile, 32), inputs / "samples" / f"{i}.png")
        weights = random_weights()
        args = ["--metrics", "inception_score", "--inception-weights", str(weights),
                "--device", "cpu", "--workers", "0"]
    else:
        (inputs / "samples").mkdir(parents=True)
        (inputs / "refs").mkdir()
        for i in range(3):
            (inputs / "samples" / f"{i}.txt").write_text(f"the cat sat on mat {i}")
            (inputs / "refs" / f"{i}.txt").write_text(f"the cat sat on the mat {i}")
        args = ["--reference", str(inputs / "refs"), "--metrics", "bleu,rouge"]
    for folder in ("home", "gmhome", "tmp", "cwd", "cache", "out"):
        (tmp_path / folder).mkdir()
    before = _snapshot(tmp_path)
    env = cli_env(HOME=str(tmp_path / "home"), GENMETRICS_HOME=str(tmp_path / "gmhome"),
                  TMPDIR=str(tmp_path / "tmp"), GENMETRICS_CACHE_DIR=str(tmp_path / "cache"),
                  XDG_CACHE_HOME=str(tmp_path / "home" / ".cache"),
                  PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(REPO))
    out = tmp_path / "out" / "card.json"
    done = run_cli("score", inputs / "samples", "--modality", modality, *args, "-q",
                   "--out", out, env=env, cwd=tmp_path / "cwd")
    assert done.returncode == 0, done.stderr
    new = _snapshot(tmp_path) - before
    outside = sorted(str(p.relative_to(tmp_path)) for p in new
                     if p != out and (tmp_path / "cache") not in p.parents)
    assert outside == [], f"written outside --out and the cache: {outside}"
    assert out in new
    if modality == "image":
        assert any((tmp_path / "cache") in p.parents for p in new)
