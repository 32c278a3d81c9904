"""`genmetrics stats build` reads and fills the feature cache `score` uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from genmetrics.reference_stats import build_stats, load_stats
from genmetrics.runner import score
from tests.conftest import cli_env
from tests.photos import resize_longer_side, save_png, tiles

N = 10


@pytest.fixture(scope="module")
def refs(tmp_path_factory, random_weights) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stats-cache-images")
    small = [resize_longer_side(t, 32) for _, t in tiles()]
    (root / "refs").mkdir()
    for i in range(N):
        save_png(small[20 + i], root / "refs" / f"{i:02d}.png")
    return {"refs": root / "refs", "weights": random_weights()}


def _build(refs: dict[str, Path], out: Path, **kwargs):
    return build_stats(refs["refs"], "refs", out_dir=out, weights=str(refs["weights"]),
                       device="cpu", batch_size=4, **kwargs)


def test_rerun_extracts_nothing_and_writes_the_same_bytes(refs, tmp_path, monkeypatch):
    monkeypatch.setenv("GENMETRICS_CACHE_DIR", str(tmp_path / "cache"))
    first_path, first = _build(refs, tmp_path / "first")
    assert first["feature_cache"]["hits"] == 0 and first["feature_cache"]["extracted"] == N
    assert "feature_cache" not in (tmp_path / "first" / "manifest.json").read_text()

    import genmetrics.features.inception as inception
    import genmetrics.io.image as image_io

    def forbidden(*args, **kwargs):
        raise AssertionError("decoded or extracted although every feature was cached")

    monkeypatch.setattr(image_io, "decode_image", forbidden)
    monkeypatch.setattr(inception.InceptionExtractor, "extract", forbidden)
    second_path, second = _build(refs, tmp_path / "second")
    assert second["feature_cache"] == {**first["feature_cache"], "hits": N, "extracted": 0}
    assert second_path.read_bytes() == first_path.read_bytes()
    assert second["sha256"] == first["sha256"]


def test_score_and_stats_build_share_one_namespace(refs, tmp_path, monkeypatch):
    monkeypatch.setenv("GENMETRICS_CACHE_DIR", str(tmp_path / "cache"))
    card = score(refs["refs"], refs["refs"], modality="image", metrics=["fid"], workers=0,
                 inception_weights=refs["weights"], device="cpu", diagnostics=False)
    assert card.inputs["feature_cache"]["extracted"] == N  # the same files on both sides
    _, entry = _build(refs, tmp_path / "stats")
    assert entry["feature_cache"]["path"] == card.inputs["feature_cache"]["path"]
    assert (entry["feature_cache"]["hits"], entry["feature_cache"]["extracted"]) == (N, 0)


def test_without_the_cache_nothing_is_stored_and_the_statistics_are_equal(
        refs, tmp_path, monkeypatch):
    monkeypatch.setenv("GENMETRICS_CACHE_DIR", str(tmp_path / "cache"))
    cached_path, _ = _build(refs, tmp_path / "cached")
    monkeypatch.setenv("GENMETRICS_CACHE_DIR", str(tmp_path / "unused"))
    fresh_path, fresh = _build(refs, tmp_path / "fresh", feature_cache=False)
    assert "feature_cache" not in fresh and not (tmp_path / "unused").exists()
    assert fresh_path.read_bytes() == cached_path.read_bytes()
    assert load_stats(fresh_path).n == N


def test_cli_flag_and_summary_line(refs, tmp_path, run_cli):
    env = cli_env(GENMETRICS_CACHE_DIR=str(tmp_path / "cache"))
    args = ["stats", "build", refs["refs"], "--name", "refs", "--out-dir", tmp_path / "out",
            "--inception-weights", refs["weights"], "--device", "cpu", "-q"]
    off = run_cli(*args, "--no-feature-cache", env=env)
    assert off.returncode == 0, off.stderr
    assert "feature cache" not in off.stdout and not (tmp_path / "cache").exists()
    on = run_cli(*args, env=env)
    assert on.returncode == 0, on.stderr
    assert f"feature cache: 0 hit(s), {N} extracted" in on.stdout
