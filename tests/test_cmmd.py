"""CMMD: parity with google-research cmmd's ``distance.mmd``, written out from its source.

Their formula (cmmd/distance.py, σ = 10, scale = 1000; the embeddings are scenic CLIP's
``encode_image``, L2-normalised) is transcribed in numpy in ``tests/cmmd_reference.py``
(the bench's CMMD row uses it too), dense; it is run once in float64 and once in float32
(JAX's default dtype, what their code computes in). Ours is blocked
and float64, so it must equal the float64 transcription to rounding, and the float32
one to float32's rounding of the kernel means.
"""

from __future__ import annotations

import numpy as np
import pytest

from genmetrics.metrics.image._mmd import l2_normalised, rbf_mmd
from tests.cmmd_reference import google_research_mmd


def clip_like(n: int, seed: int, shift: float = 0.0, dim: int = 768) -> np.ndarray:
    """Rows shaped like CLIP ViT-L/14 image embeddings: 768-d, unit norm, a strong shared
    direction (pairwise cosines ~0.4-0.8, as real CLIP embeddings of photos), a
    low-rank "content" part and noise; ``shift`` moves the content distribution."""
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(123).normal(size=(33, dim))
    common, topics = base[0], base[1:]
    weights = rng.normal(size=(n, 32)) * np.linspace(1.0, 0.2, 32) + shift * np.linspace(
        1, 0, 32)
    rows = 6.0 * common / np.linalg.norm(common) * np.sqrt(dim) / 8 + weights @ topics / 8
    rows += rng.normal(scale=0.5, size=(n, dim))
    return l2_normalised(rows).astype(np.float32)


@pytest.fixture(scope="module")
def sets():
    return clip_like(257, 0), clip_like(301, 1, shift=0.6)


def test_rows_look_like_clip_embeddings(sets):
    x, _ = sets
    cos = x @ x.T
    off = cos[~np.eye(len(x), dtype=bool)]
    assert 0.3 < off.mean() < 0.9 and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-6)


def test_equals_google_research_formula(sets):
    x, y = sets
    theirs64 = google_research_mmd(y, x)  # main.py: mmd(ref_embs, eval_embs)
    theirs32 = google_research_mmd(y, x, np.float32)
    ours = rbf_mmd(y, x)
    assert theirs64 > 0.05  # a real distance, not rounding noise
    assert ours == pytest.approx(theirs64, rel=1e-9)
    # float32 (theirs, under JAX) differs from float64 by its rounding of kernel means
    # ~0.99: ~1e-7 each, times 1000 -> a few 1e-4 absolute at most
    assert abs(ours - theirs32) < 5e-4
    # symmetric, zero on identical sets
    assert rbf_mmd(x, y) == pytest.approx(ours, rel=1e-12)
    assert abs(rbf_mmd(x, x)) < 1e-9


@pytest.mark.parametrize("budget", [1, 257, 1000, 300 * 300, 1 << 23])
def test_blocks_do_not_change_the_value(sets, budget):
    x, y = sets
    assert rbf_mmd(y, x, budget=budget) == pytest.approx(google_research_mmd(y, x), rel=1e-10)


def test_other_sigma_and_scale(sets):
    x, y = sets
    got = rbf_mmd(y[:50], x[:40], sigma=0.5, scale=1.0)
    gamma = 1 / (2 * 0.5**2)

    def k(a, b):
        d = ((a[:, None, :].astype(np.float64) - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-gamma * d).mean()

    want = k(y[:50], y[:50]) + k(x[:40], x[:40]) - 2 * k(y[:50], x[:40])
    assert got == pytest.approx(want, rel=1e-9)


def test_metric_streams_batches_and_merges(sets):
    from genmetrics.metrics.image.cmmd import CMMD

    x, y = sets
    want = google_research_mmd(y, x)
    one = CMMD(device="cpu")
    one.state["features"].append(x)
    one.state["ref_features"].append(y)
    assert one.compute_value() == pytest.approx(want, rel=1e-9)
    a, b = CMMD(device="cpu"), CMMD(device="cpu")
    for i, start in enumerate(range(0, len(x), 64)):  # uneven batches, split over two states
        (a if i % 2 else b).state["features"].append(x[start:start + 64])
    a.state["ref_features"].extend([y[:100], y[100:]])
    a.merge(b)
    got = a.compute_value()  # rows in another order: MMD does not depend on order
    assert got == pytest.approx(want, rel=1e-9)


def test_unnormalised_rows_are_normalised_like_scenic_clip(sets):
    from genmetrics.metrics.image.cmmd import CMMD

    x, y = sets
    metric = CMMD(device="cpu")
    metric.state["features"].append(x * 7.0)  # scale changes nothing after normalising
    metric.state["ref_features"].append(y * 0.3)
    assert metric.compute_value() == pytest.approx(google_research_mmd(y, x), rel=1e-9)
    raw = CMMD(device="cpu", normalize=False)
    raw.state["features"].append(x * 7.0)
    raw.state["ref_features"].append(y * 0.3)
    assert raw.compute_value() == pytest.approx(google_research_mmd(y * 0.3, x * 7.0), rel=1e-9)


def test_bad_rows_and_empty_sides_are_metric_errors():
    from genmetrics.errors import MetricError
    from genmetrics.metrics.image.cmmd import CMMD

    with pytest.raises(MetricError, match="NaN"):
        rbf_mmd(np.array([[np.nan, 0.0]]), np.ones((2, 2)))
    metric = CMMD(device="cpu")
    metric.state["features"].append(np.ones((3, 4), np.float32))
    with pytest.raises(MetricError, match="references"):
        metric.compute()
