"""The content-addressed feature cache: hits, exact re-extraction, provenance, CLI."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from genmetrics.features.cache import FeatureCache, cache_info, clear
from genmetrics.runner import score
from tests.photos import resize_longer_side, save_png, tiles

N = 10


@pytest.fixture(scope="module")
def folders(tmp_path_factory, random_weights) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cache-images")
    small = [resize_longer_side(t, 32) for _, t in tiles()]
    for side, offset in (("samples", 0), ("refs", 40)):
        (root / side).mkdir()
        for i in range(N):
            save_png(small[offset + i], root / side / f"{i:02d}.png")
    return {"root": root, "samples": root / "samples", "refs": root / "refs",
            "weights": random_weights()}


def _score(folders, cache_dir: Path, monkeypatch, samples: Path | None = None, **kwargs):
    monkeypatch.setenv("GENMETRICS_CACHE_DIR", str(cache_dir))
    kwargs.setdefault("diagnostics", False)  # image diagnostics read pixels: decode again
    kwargs.setdefault("metrics", ["inception_score", "kid"])
    if "kid" in kwargs["metrics"]:
        kwargs.setdefault("options", {"kid": {"subset_size": 5}})
    return score(samples or folders["samples"], folders["refs"], modality="image", workers=0,
                 inception_weights=folders["weights"], device="cpu", **kwargs)


def test_rerun_reads_every_feature_from_the_cache_and_gives_identical_values(
        folders, tmp_path, monkeypatch):
    first = _score(folders, tmp_path, monkeypatch)
    assert first.inputs["feature_cache"]["hits"] == 0
    assert first.inputs["feature_cache"]["extracted"] == 2 * N  # samples + references

    import genmetrics.io.image as image_io

    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was decoded although its features were cached")

    monkeypatch.setattr(image_io, "decode_image", no_decoding)
    second = _score(folders, tmp_path, monkeypatch)
    assert second.inputs["feature_cache"] == {**first.inputs["feature_cache"],
                                              "hits": 2 * N, "extracted": 0}
    for name, result in first.metrics.items():
        assert second.metrics[name].value == result.value, name
        assert second.metrics[name].signature == result.signature, name
    assert second.inputs["samples"]["digest"] == first.inputs["samples"]["digest"]
    assert second.inputs["reference"]["digest"] == first.inputs["reference"]["digest"]


def test_cached_values_equal_an_uncached_run(folders, tmp_path, monkeypatch):
    _score(folders, tmp_path, monkeypatch)
    cached = _score(folders, tmp_path, monkeypatch)
    fresh = _score(folders, tmp_path / "unused", monkeypatch, feature_cache=False)
    assert "feature_cache" not in fresh.inputs
    assert not (tmp_path / "unused").exists()
    for name, result in fresh.metrics.items():
        assert cached.metrics[name].value == result.value, name


def test_one_changed_sample_is_extracted_again_alone(folders, tmp_path, monkeypatch):
    import shutil

    samples = tmp_path / "samples"
    shutil.copytree(folders["samples"], samples)
    _score(folders, tmp_path / "cache", monkeypatch, samples=samples)
    image = np.asarray(__import__("PIL.Image").Image.open(samples / "03.png")).copy()
    image[0, 0] = 255 - image[0, 0]  # one pixel
    save_png(image, samples / "03.png")
    again = _score(folders, tmp_path / "cache", monkeypatch, samples=samples)
    assert again.inputs["feature_cache"]["extracted"] == 1
    assert again.inputs["feature_cache"]["hits"] == 2 * N - 1


def test_a_changed_reference_misses_the_cache(folders, tmp_path, monkeypatch):
    import shutil

    refs = tmp_path / "refs"
    shutil.copytree(folders["refs"], refs)
    moved = {**folders, "refs": refs}
    _score(moved, tmp_path / "cache", monkeypatch, metrics=["kid"])
    save_png(np.zeros((32, 32, 3), np.uint8), refs / "07.png")
    again = _score(moved, tmp_path / "cache", monkeypatch, metrics=["kid"])
    assert again.inputs["feature_cache"]["extracted"] == 1


def test_other_weights_use_another_namespace(folders, tmp_path, monkeypatch, random_weights):
    _score(folders, tmp_path, monkeypatch, metrics=["inception_score"])
    other = {**folders, "weights": random_weights(seed=1)}
    card = _score(other, tmp_path, monkeypatch, metrics=["inception_score"])
    assert card.inputs["feature_cache"]["extracted"] == N
    assert len(cache_info(tmp_path)) == 2


def test_paired_metrics_still_decode_while_features_come_from_the_cache(
        folders, tmp_path, monkeypatch):
    both = ["inception_score", "psnr"]
    first = _score(folders, tmp_path, monkeypatch, metrics=both, options={})
    second = _score(folders, tmp_path, monkeypatch, metrics=both, options={})
    assert second.inputs["feature_cache"]["extracted"] == 0
    assert second.metrics["psnr"].value == first.metrics["psnr"].value


def test_damaged_or_pickled_entries_are_misses_never_unpickled(tmp_path):
    cache = FeatureCache(tmp_path, {"ext": "t"}, {"2048": 3})
    key = "cd" * 32
    cache.put(key, {"2048": np.ones(3, np.float32)})
    entry = next(tmp_path.glob("*/cd/*.npy"))
    entry.write_bytes(entry.read_bytes()[:20])  # truncated
    assert cache.get(key) is None

    class Boom:
        def __reduce__(self):
            return (Path(tmp_path / "pwned").touch, ())

    np.save(entry, np.array([Boom()], dtype=object), allow_pickle=True)
    assert cache.get(key) is None
    assert not (tmp_path / "pwned").exists()
    entry.write_bytes(pickle.dumps(Boom()))
    assert cache.get(key) is None
    assert not (tmp_path / "pwned").exists()
    np.save(entry, np.ones(3, np.float64))  # wrong dtype
    assert cache.get(key) is None
    cache.put(key, {"2048": np.arange(3, dtype=np.float32)})  # rewritten whole
    assert cache.get(key)["2048"].tolist() == [0.0, 1.0, 2.0]


def test_clear_removes_only_cache_namespaces(tmp_path):
    cache = FeatureCache(tmp_path, {"ext": "t"}, {"2048": 2})
    cache.put("ab" * 32, {"2048": np.zeros(2, np.float32)})
    (tmp_path / "unrelated").mkdir()
    (tmp_path / "unrelated" / "keep.txt").write_text("mine")
    entries, size = clear(tmp_path)
    assert entries == 1 and size > 0
    assert (tmp_path / "unrelated" / "keep.txt").exists()
    assert [i.name for i in cache_info(tmp_path)] == ["unrelated"]


def test_cli_cache_info_clear_and_profile(folders, tmp_path, run_cli):
    from tests.conftest import cli_env

    env = cli_env(GENMETRICS_CACHE_DIR=str(tmp_path / "cache"))
    out = tmp_path / "card.json"
    done = run_cli("score", folders["samples"], "--metrics", "inception_score", "--out", out,
                   "--inception-weights", folders["weights"], "--device", "cpu", "--workers",
                   "0", "--profile", "-q", env=env)
    assert done.returncode == 0, done.stderr
    for stage in ("discover", "decode", "model", "metric", "write", "total"):
        assert stage in done.stderr
    timing = json.loads(out.read_text())["timing"]
    assert {"discover_s", "decode_s", "model_s", "metric_s", "write_s", "total_s"} <= set(timing)
    assert timing["model_s"] > 0 and timing["write_s"] > 0
    info = run_cli("cache", "info", env=env)
    assert info.returncode == 0 and "inception-v3-fid" in info.stdout and f"{N}" in info.stdout
    cleared = run_cli("cache", "clear", env=env)
    assert cleared.returncode == 0 and f"removed {N} cached feature file(s)" in cleared.stdout
    assert "empty" in run_cli("cache", "info", env=env).stdout
