"""Interrupted runs: SIGINT and SIGKILL leave no scorecard and no damaged cache entry,
and the same command then resumes, extracting only the images not yet cached; a SIGINT
once the scorecard is being written leaves the whole scorecard and exit 0.

The runs are held at a known point by the runner's test hook (``GENMETRICS_TEST_HOLD``:
after the N-th batch, or after the scorecard is written), so the signal never races the
end of the run, however loaded the machine is."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genmetrics.features.cache import FeatureCache
from genmetrics.runner import TEST_HOLD_ENV
from tests.conftest import REPO, cli_env
from tests.photos import resize_longer_side, save_png, tiles

N = 24
HELD_AFTER = 2  # batches of 4: 8 images cached when the signal comes


@pytest.fixture(scope="module")
def images(tmp_path_factory, random_weights) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("interrupted")
    small = [resize_longer_side(t, 32) for _, t in tiles()]
    (root / "samples").mkdir()
    for i in range(N):
        save_png(small[i], root / "samples" / f"{i:02d}.png")
    return {"samples": root / "samples", "weights": random_weights()}


def _command(images: dict[str, Path], out: Path) -> list[str]:
    return [sys.executable, "-m", "genmetrics", "score", str(images["samples"]), "--modality",
            "image", "--metrics", "inception_score", "--inception-weights",
            str(images["weights"]), "--device", "cpu", "--workers", "0", "--batch-size", "4",
            "-q", "--out", str(out)]


@pytest.fixture(scope="module")
def clean(images, tmp_path_factory) -> dict:
    """The same run, uninterrupted and without the cache."""
    out = tmp_path_factory.mktemp("clean") / "clean.json"
    done = subprocess.run(_command(images, out) + ["--no-feature-cache"], env=cli_env(),
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())["metrics"]["inception_score"]


def _default_sigint() -> None:
    """Start the child with SIGINT's default disposition, as a shell does: an ignored
    SIGINT is inherited through exec (Python then installs no KeyboardInterrupt handler),
    and a library used by an earlier test in this pytest process may have left it ignored
    (lightning ignores it while it shuts a process group down)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*/*/*.npy"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_killed_run_leaves_no_scorecard_and_rerun_extracts_only_the_rest(images, clean,
                                                                          tmp_path, sig):
    cache = tmp_path / "cache"
    env = cli_env(GENMETRICS_CACHE_DIR=str(cache), **{TEST_HOLD_ENV: f"batch:{HELD_AFTER}"})
    out = tmp_path / "card.json"
    proc = subprocess.Popen(_command(images, out), env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    deadline = time.monotonic() + 240
    while len(_entries(cache)) < 4 * HELD_AFTER and proc.poll() is None and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr and "interrupted" in stderr
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    assert not list(tmp_path.glob("*card.json*")), "a partial scorecard was left"

    entries = _entries(cache)
    assert len(entries) == 4 * HELD_AFTER
    provenance = json.loads((entries[0].parent.parent / "provenance.json").read_text())
    reader = FeatureCache(cache, {}, provenance["layout"])
    reader.folder = entries[0].parent.parent
    assert all(reader.get(entry.stem) is not None for entry in entries), "a damaged entry"

    done = subprocess.run(_command(images, out), env=cli_env(GENMETRICS_CACHE_DIR=str(cache)),
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    card = json.loads(out.read_text())
    assert card["inputs"]["feature_cache"]["hits"] == len(entries)
    assert card["inputs"]["feature_cache"]["extracted"] == N - len(entries)

    resumed = card["metrics"]["inception_score"]
    assert resumed["value"] == clean["value"]
    assert resumed["components"] == clean["components"]


def test_sigint_while_the_scorecard_is_written_leaves_it_whole(images, clean, tmp_path):
    """Held right after the write: the SIGINT is recorded, not raised -- exit 0 and the
    same scorecard as an uninterrupted run (never a half-written file or exit 130 with a
    scorecard on disk)."""
    out = tmp_path / "card.json"
    env = cli_env(GENMETRICS_CACHE_DIR=str(tmp_path / "cache"), **{TEST_HOLD_ENV: "written"})
    proc = subprocess.Popen(_command(images, out), env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    deadline = time.monotonic() + 240
    while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    card = json.loads(out.read_text())
    assert card["metrics"]["inception_score"]["value"] == clean["value"]
