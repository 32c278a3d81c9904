"""The Hugging Face Trainer recipes: compute_metrics_factory and ImageGenerationCallback.

Everything is built offline: a word-level tokenizer over a 12-word vocabulary and a tiny
random T5 from its config, trained for a few steps on a copy task.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")

import sacrebleu  # noqa: E402
import torch  # noqa: E402
from rouge_score import rouge_scorer  # noqa: E402

from genmetrics import Evaluator  # noqa: E402
from genmetrics.errors import UsageError  # noqa: E402
from genmetrics.integrations.hf import ImageGenerationCallback, compute_metrics_factory  # noqa: E402,E501
from tests.conftest import REPO  # noqa: E402

WORDS = "the cat dog sat ran on a mat log big small red".split()
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    """A word-level tokenizer (pad 0, eos 1, unk 2) that appends </s>, made offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>",
                                                eos_token="</s>", unk_token="<unk>")


@pytest.fixture
def one_thread() -> Any:
    """Tiny models run thousands of small ops: one torch thread is faster, and steady on a
    busy machine (two spinning threads on shared cores are not)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _reference_scores(hyps: list[str], refs: list[str]) -> dict[str, float]:
    """BLEU and chrF from sacrebleu, ROUGE F-measures (mean) from rouge-score."""
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES))
    rows = [scorer.score(r, h) for h, r in zip(hyps, refs, strict=True)]
    out = {"bleu": sacrebleu.corpus_bleu(hyps, [refs]).score,
           "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score}
    for kind in ROUGE_TYPES:
        out[kind] = math.fsum(row[kind].fmeasure for row in rows) / len(rows)
    return out


def _padded(tokenizer: Any, texts: list[str], pad: int) -> np.ndarray:
    ids = [tokenizer(t).input_ids for t in texts]
    width = max(map(len, ids)) + 2
    return np.array([row + [pad] * (width - len(row)) for row in ids])


def test_importing_the_integrations_loads_no_framework() -> None:
    code = ("import sys, genmetrics, genmetrics.integrations as gi; "
            "assert 'GenmetricsCallback' in dir(gi); "
            "print(sorted(m for m in ('lightning', 'transformers', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_compute_metrics_decodes_ids_padded_with_minus_100(tokenizer: Any) -> None:
    """Known strings in, padded as the Trainer pads them: the scores are sacrebleu's and
    rouge-score's on exactly those strings."""
    hyps = ["the cat sat on the mat", "a big dog ran", "red log", "the small cat ran on a log"]
    refs = ["the cat sat on a mat", "a big red dog ran", "a red log", "the small cat sat"]
    preds = _padded(tokenizer, hyps, tokenizer.pad_token_id)
    preds[1, -1] = -100  # generated ids padded across batches
    labels = _padded(tokenizer, refs, -100)
    compute = compute_metrics_factory(tokenizer)
    got = compute(transformers.EvalPrediction(predictions=preds, label_ids=labels))
    assert got == _reference_scores(hyps, refs)
    assert got["bleu"] > 10  # not a vacuous zero
    assert compute.scorecard.metrics["bleu"].n == 4
    tuple_preds = transformers.EvalPrediction(predictions=(preds, None), label_ids=labels)
    wide = compute_metrics_factory(tokenizer, ["bleu"], components=True, prefix="gm_")(
        tuple_preds)
    assert wide["gm_bleu"] == got["bleu"] and "gm_bleu_bp" in wide and wide["gm_errors"] == 0
    with pytest.raises(UsageError, match="predict_with_generate"):
        compute(transformers.EvalPrediction(predictions=np.zeros((4, 3, 15), np.float32),
                                            label_ids=labels))


def test_compute_metrics_leaves_out_a_value_that_is_not_finite(
        tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A metric whose value is missing (nan, with a reason) or infinite is left out of the
    flat dict, as ``scalars`` leaves it out; the finite ones stay."""
    hyps, refs = ["the cat sat on the mat", "a big dog ran"], ["the cat sat", "a big dog"]
    compute = compute_metrics_factory(tokenizer, ["bleu", "chrf", "rouge"])
    real = compute.evaluator.compute

    def broken():
        card = real()
        card.metrics["bleu"].value, card.metrics["bleu"].reason = math.nan, "no n-gram"
        card.metrics["rouge2"].value = math.inf
        return card

    monkeypatch.setattr(compute.evaluator, "compute", broken)
    pad = tokenizer.pad_token_id
    got = compute(transformers.EvalPrediction(predictions=_padded(tokenizer, hyps, pad),
                                              label_ids=_padded(tokenizer, refs, -100)))
    assert set(got) == {"chrf", "rouge1", "rougeL", "rougeLsum"}
    assert all(math.isfinite(v) for v in got.values())
    assert got["chrf"] == _reference_scores(hyps, refs)["chrf"]


def test_a_missing_transformers_is_an_import_error_with_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without transformers, importing the recipe says which extra installs it."""
    import importlib

    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.delitem(sys.modules, "genmetrics.integrations.hf")
    with pytest.raises(ImportError, match=r"pip install 'genmetrics\[text\]'"):
        importlib.import_module("genmetrics.integrations.hf")


def test_seq2seq_trainer_logs_the_scores_of_its_decoded_predictions(
        tokenizer: Any, tmp_path: Path, one_thread: None) -> None:
    """A tiny random T5 trained 16 steps, evaluated twice with predict_with_generate: each
    logged eval_bleu/eval_rouge*/eval_chrf equals the reference libraries on the
    predictions the Trainer handed to compute_metrics, decoded here independently."""
    torch.manual_seed(0)
    config = transformers.T5Config(
        vocab_size=len(WORDS) + 3, d_model=32, d_kv=8, d_ff=64, num_layers=1,
        num_decoder_layers=1, num_heads=4, pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0)
    model = transformers.T5ForConditionalGeneration(config)
    rng = np.random.default_rng(0)
    sentences = [" ".join(rng.choice(WORDS, size=rng.integers(3, 7))) for _ in range(32)]
    data = [{"input_ids": tokenizer(s).input_ids, "labels": tokenizer(s).input_ids}
            for s in sentences]
    args = transformers.Seq2SeqTrainingArguments(
        str(tmp_path / "out"), predict_with_generate=True, generation_max_length=10,
        per_device_train_batch_size=8, per_device_eval_batch_size=4, max_steps=16,
        learning_rate=1e-2, eval_strategy="steps", eval_steps=8, save_strategy="no",
        logging_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True, seed=0)
    compute = compute_metrics_factory(tokenizer)
    seen: list[Any] = []

    def spy(eval_pred: Any) -> dict[str, float]:
        seen.append(eval_pred)
        return compute(eval_pred)

    trainer = transformers.Seq2SeqTrainer(
        model=model, args=args, train_dataset=data, eval_dataset=data[:6],
        processing_class=tokenizer, compute_metrics=spy,
        data_collator=transformers.DataCollatorForSeq2Seq(tokenizer, model))
    trainer.train()

    def decode(ids: np.ndarray) -> list[str]:
        ids = np.where(ids == -100, tokenizer.pad_token_id, ids)
        return [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]

    logged = [h for h in trainer.state.log_history if "eval_bleu" in h]
    assert [h["step"] for h in logged] == [8, 16] and len(seen) == 2
    for entry, eval_pred in zip(logged, seen, strict=True):
        hyps, refs = decode(eval_pred.predictions), decode(eval_pred.label_ids)
        assert len(hyps) == 6 and refs == sentences[:6]
        expected = _reference_scores(hyps, refs)
        assert {k: entry[f"eval_{k}"] for k in expected} == expected
    assert logged[-1]["eval_chrf"] > 0  # the model generates words of the vocabulary


class _Generator(torch.nn.Module):
    """noise (N x 8) -> images N x 3 x 16 x 16 in [0, 1]; forward gives the MSE loss."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(8, 3 * 16 * 16)

    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(noise)).view(-1, 3, 16, 16)

    def forward(self, noise: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": torch.nn.functional.mse_loss(self.sample(noise), targets)}


def test_image_callback_logs_through_the_trainer(tmp_path: Path, one_thread: None) -> None:
    """Evaluations at steps 3 and 6: the logged eval_genmetrics/psnr and ssim equal an
    Evaluator fed the same generated batches directly; evaluate() returns them too."""
    gen = torch.Generator().manual_seed(0)
    noise, targets = torch.randn(8, 8, generator=gen), torch.rand(8, 3, 16, 16, generator=gen)
    data = [{"noise": n, "targets": t} for n, t in zip(noise, targets, strict=True)]
    generated: list[list[tuple[torch.Tensor, torch.Tensor]]] = []

    def generate(model: _Generator):
        assert not model.training and not torch.is_grad_enabled()
        generated.append([])
        for start in (0, 4):
            batch = (model.sample(noise[start:start + 4]), targets[start:start + 4])
            generated[-1].append(batch)
            yield batch

    args = transformers.TrainingArguments(
        str(tmp_path / "out"), per_device_train_batch_size=4, max_steps=6, learning_rate=0.05,
        eval_strategy="steps", eval_steps=3, save_strategy="no", logging_strategy="no",
        report_to="none", use_cpu=True, disable_tqdm=True, label_names=["targets"])
    model = _Generator()
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data,
                                   eval_dataset=data[:4])
    callback = ImageGenerationCallback(
        Evaluator(["psnr", "ssim"], modality="image", device="cpu"), generate).attach(trainer)
    trainer.train()

    def direct(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        ev = Evaluator(["psnr", "ssim"], modality="image", device="cpu")
        for images, refs in batches:
            ev.update(images, refs)
        return {f"eval_genmetrics/{n}": r.value for n, r in ev.compute().metrics.items()}

    logged = [h for h in trainer.state.log_history if "eval_genmetrics/psnr" in h]
    assert [h["step"] for h in logged] == [3, 6] and len(generated) == 2
    for entry, batches in zip(logged, generated, strict=True):
        expected = direct(batches)
        assert {k: entry[k] for k in expected} == expected
    assert logged[0]["eval_genmetrics/psnr"] != logged[1]["eval_genmetrics/psnr"]
    metrics = trainer.evaluate()
    assert metrics["eval_genmetrics/psnr"] == direct(generated[-1])["eval_genmetrics/psnr"]
    assert callback.scorecard.inputs["samples"]["count"] == 8
    model.train()  # the callback gives the model back in the mode it found it in
    callback.on_evaluate(args, trainer.state, trainer.control, model=model, metrics={})
    assert model.training and len(generated) == 4
