"""BERTScore parity with the ``bert-score`` package (0.3.13) on tiny random encoders.

roberta-large cannot be downloaded here, so the tests build a tiny random BERT (a
WordPiece vocabulary trained on the fixture prose) and a tiny random RoBERTa (byte-level
BPE) from configs, ``save_pretrained`` them with their tokenizers, and load each folder
through exactly the code path a real model takes -- and bert-score loads the same
folder (``model_type=<folder>, num_layers=N``: it accepts a local path as it is, no
monkeypatching). Tolerance: 2e-6 absolute on P, R and F1 (both compute in float32;
ours pads differently and applies the weights in float64).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from genmetrics.errors import MetricUnavailable, UsageError
from tests.textcorpus import make_pairs, paragraphs

torch = pytest.importorskip("torch")
bert_score = pytest.importorskip("bert_score")

TOL = 2e-6


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def shared_direction(model):
    """Give every layer's output a common component, as trained encoders have (their
    token embeddings all point into one cone: roberta-large's cosines average ~0.83, the
    baseline). A random encoder lacks it, so a token's best cosine can be negative,
    where bert-score's padded maximum (0 at padded entries) departs from the true
    maximum this module takes (see its docstring)."""
    with torch.no_grad():
        for layer in model.encoder.layer:
            layer.output.LayerNorm.bias.fill_(0.6)
    return model


def save_tiny_bert(folder: Path) -> Path:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertModel, BertTokenizer

    wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.train_from_iterator(paragraphs(), trainers.WordPieceTrainer(
        vocab_size=600, show_progress=False,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    folder.mkdir(parents=True, exist_ok=True)
    vocab = sorted(wp.get_vocab().items(), key=lambda kv: kv[1])
    (folder / "vocab.txt").write_text("".join(f"{t}\n" for t, _ in vocab), encoding="utf-8")
    tokenizer = BertTokenizer(vocab=str(folder / "vocab.txt"), model_max_length=128)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=4,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=130)
    shared_direction(BertModel(config)).save_pretrained(folder)
    return folder


def save_tiny_roberta(folder: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe.train_from_iterator(paragraphs(), trainers.BpeTrainer(
        vocab_size=500, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    folder.mkdir(parents=True, exist_ok=True)
    bpe.model.save(str(folder))  # vocab.json, merges.txt
    tokenizer = RobertaTokenizer(vocab=str(folder / "vocab.json"),
                                 merges=str(folder / "merges.txt"), model_max_length=128)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(1)
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=3,
                           num_attention_heads=2, intermediate_size=64,
                           max_position_embeddings=132, pad_token_id=tokenizer.pad_token_id)
    shared_direction(RobertaModel(config)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory) -> Path:
    return save_tiny_roberta(tmp_path_factory.mktemp("tiny-roberta"))


def corpus(n: int, seed: int = 3, refs: int = 1) -> tuple[list[str], list[list[str]]]:
    # bert-score 0.3.13 fails on an empty text under transformers 5 (it calls the
    # removed build_inputs_with_special_tokens), so the parity corpus has none
    pairs = [(h, r) for h, r in make_pairs(n, seed=seed, max_refs=refs)
             if h.strip() and all(x.strip() for x in r)]
    return [h for h, _ in pairs], [list(r) for _, r in pairs]


def ours(folder: Path, hyps, refs, *, per_sample=True, batch=None, **options):
    from genmetrics.metrics.text.bertscore import BERTScore

    m = BERTScore(model=str(folder), device="cpu", **options)
    step = batch or len(hyps)
    for i in range(0, len(hyps), step):
        m.update(hyps[i:i + step], refs[i:i + step])
    return m, m.compute(per_sample=per_sample)["bertscore"]


def theirs(folder: Path, hyps, refs, layer: int, **kw):
    refs_arg = [r[0] for r in refs] if all(len(r) == 1 for r in refs) else refs
    p, r, f = bert_score.score(hyps, refs_arg, model_type=str(folder), num_layers=layer,
                               device="cpu", nthreads=0, **kw)
    return p.tolist(), r.tolist(), f.tolist()


def assert_equal(metric, got, want):
    scores = metric.scores()
    for k, name in enumerate("PRF"):
        diff = max(abs(s[k] - w) for s, w in zip(scores, want[k], strict=True))
        assert diff < TOL, f"{name} differs by {diff}"
    assert got.value == pytest.approx(sum(want[2]) / len(want[2]), abs=TOL)
    assert got.components["precision"] == pytest.approx(sum(want[0]) / len(want[0]), abs=TOL)


@pytest.mark.parametrize("idf", [False, True])
@pytest.mark.parametrize("layer", [2, 4])
def test_bert_equals_bert_score(tiny_bert, idf, layer):
    hyps, refs = corpus(120)
    m, got = ours(tiny_bert, hyps, refs, layer=layer, idf=idf)
    assert_equal(m, got, theirs(tiny_bert, hyps, refs, layer, idf=idf))
    assert got.signature["layer"] == layer and got.signature["idf"] is idf
    assert got.signature["model_digest"].startswith("sha256:")


@pytest.mark.parametrize("idf", [False, True])
def test_roberta_equals_bert_score(tiny_roberta, idf):
    hyps, refs = corpus(80, seed=5)
    m, got = ours(tiny_roberta, hyps, refs, layer=3, idf=idf)
    assert m.encoder().prefix_space  # RoBERTa: a space before the text, as sent_encode
    assert_equal(m, got, theirs(tiny_roberta, hyps, refs, 3, idf=idf))


def test_several_references_take_each_best(tiny_bert):
    hyps, refs = corpus(40, seed=7, refs=3)
    assert any(len(r) > 1 for r in refs)
    m, got = ours(tiny_bert, hyps, refs, layer=3, idf=True)
    assert_equal(m, got, theirs(tiny_bert, hyps, refs, 3, idf=True))


def test_baseline_rescale_equals_bert_score(tiny_bert, tmp_path):
    baseline = tmp_path / "tiny.tsv"
    baseline.write_text("LAYER,P,R,F\n" + "".join(
        f"{i},{0.5 + i / 20},{0.45 + i / 25},{0.47 + i / 22}\n" for i in range(5)))
    hyps, refs = corpus(60, seed=9)
    m, got = ours(tiny_bert, hyps, refs, layer=3, rescale_with_baseline=True,
                  baseline=str(baseline))
    want = theirs(tiny_bert, hyps, refs, 3, rescale_with_baseline=True, lang="en",
                  baseline_path=str(baseline))
    assert_equal(m, got, want)
    assert got.signature["baseline"] == "tiny.tsv"


def test_shipped_baseline_is_read_as_bert_score_reads_it():
    import pandas as pd

    from genmetrics.metrics.text.bertscore import baseline_row, default_baseline

    path = default_baseline("roberta-large", "en")
    assert path.is_file()
    for layer in (0, 17, 24):
        want = pd.read_csv(path).iloc[layer].to_numpy()[1:]
        assert baseline_row(path, layer) == pytest.approx(list(want), abs=0)


def test_batches_do_not_change_values(tiny_bert):
    hyps, refs = corpus(50, seed=11)
    whole, _ = ours(tiny_bert, hyps, refs, layer=3)
    parts, _ = ours(tiny_bert, hyps, refs, layer=3, batch=7, batch_size=3,
                    batch_tokens=64)
    for a, b in zip(whole.scores(), parts.scores(), strict=True):
        assert a == pytest.approx(b, abs=1e-6)


def test_empty_candidate_scores_zero(tiny_bert):
    m, got = ours(tiny_bert, ["", "the cat sat on the mat"], [["a reference"], [""]],
                  layer=2)
    assert m.scores() == [(0.0, 0.0, 0.0), (0.0, 0.0, 0.0)]
    assert got.value == 0.0


def test_idf_needs_the_references_of_the_whole_run(tiny_bert):
    """idf weights come from every reference, also when fed in several batches."""
    hyps, refs = corpus(30, seed=13)
    m, _ = ours(tiny_bert, hyps, refs, layer=2, idf=True, batch=4)
    want = theirs(tiny_bert, hyps, refs, 2, idf=True)
    assert max(abs(s[2] - w) for s, w in zip(m.scores(), want[2], strict=True)) < TOL


def test_missing_default_model_is_unavailable_with_the_fetch_command(tmp_path, monkeypatch):
    from genmetrics.metrics.text.bertscore import BERTScore

    monkeypatch.setenv("GENMETRICS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(MetricUnavailable, match="assets fetch roberta-large"):
        BERTScore().preflight()


def test_bad_options_are_clear(tiny_bert, tmp_path):
    from genmetrics.metrics.text.bertscore import BERTScore

    with pytest.raises(UsageError, match="no known default layer"):
        BERTScore(model=str(tiny_bert)).preflight()
    with pytest.raises(UsageError, match="no baseline file"):
        BERTScore(model=str(tiny_bert), layer=2, rescale_with_baseline=True).preflight()
    with pytest.raises(UsageError, match="does not exist"):
        BERTScore(model=str(tmp_path / "nope"), layer=2).preflight()
    with pytest.raises(UsageError, match="between 0 and 4"):
        BERTScore(model=str(tiny_bert), layer=9, device="cpu").encoder()


def test_cli_scores_bertscore_and_it_is_not_a_default(tiny_bert, tmp_path):
    import json

    from typer.testing import CliRunner

    from genmetrics.cli import app
    from genmetrics.runner import default_metrics

    assert "bertscore" not in default_metrics("text", True)
    hyps, refs = corpus(6, seed=15)
    hyps = [" ".join(h.split()) for h in hyps]  # one sample per line
    refs = [[" ".join(r[0].split())] for r in refs]
    (tmp_path / "h.txt").write_text("\n".join(hyps) + "\n", encoding="utf-8")
    (tmp_path / "r.txt").write_text("\n".join(r[0] for r in refs) + "\n", encoding="utf-8")
    out = tmp_path / "card.json"
    done = CliRunner().invoke(app, [
        "score", "--modality", "text", str(tmp_path / "h.txt"), "-r", str(tmp_path / "r.txt"),
        "--metrics", "bertscore", "--set", f"bertscore.model={tiny_bert}",
        "--set", "bertscore.layer=2", "--set", "bertscore.idf=true", "--out", str(out),
        "--quiet"])
    assert done.exit_code == 0, done.output
    card = json.loads(out.read_text())
    want = theirs(tiny_bert, hyps, refs, 2, idf=True)
    assert card["metrics"]["bertscore"]["value"] == pytest.approx(
        sum(want[2]) / len(want[2]), abs=TOL)


def test_default_model_resolves_from_the_hugging_face_cache(tiny_roberta, tmp_path,
                                                             monkeypatch):
    """The default model takes the real path: the local HF cache (here a tiny RoBERTa
    laid out as the cached roberta-large), and rescaling reads the baseline bert-score
    ships for roberta-large."""
    import shutil

    from genmetrics.metrics.text.bertscore import BERTScore

    hub = tmp_path / "hf"
    repo = hub / "models--FacebookAI--roberta-large"
    shutil.copytree(tiny_roberta, repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("GENMETRICS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub))
    hyps, refs = corpus(20, seed=17)
    metric = BERTScore(layer=3, rescale_with_baseline=True, device="cpu")
    metric.preflight()
    metric.update(hyps, refs)
    got = metric.compute()["bertscore"]
    assert got.signature["model"] == "roberta-large"
    assert got.signature["baseline"] == "roberta-large.tsv"
    want = theirs(tiny_roberta, hyps, refs, 3, rescale_with_baseline=True, lang="en",
                  baseline_path=str(metric._baseline_path()))
    assert_equal(metric, got, want)
