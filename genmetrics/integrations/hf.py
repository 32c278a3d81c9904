"""Hugging Face ``Trainer``: text metrics as ``compute_metrics``, image metrics per evaluation.

**Text generation** (``Seq2SeqTrainer`` with ``predict_with_generate=True``):
:func:`compute_metrics_factory` returns a ``compute_metrics`` that decodes the generated
ids and the labels (``-100`` becomes the pad id; special tokens dropped; stripped) and
scores them with an :class:`~genmetrics.Evaluator`; the Trainer logs the flat dict of
floats it returns as ``eval_bleu``, ``eval_rouge1``, ``eval_chrf``... ::

    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments
    from genmetrics.integrations.hf import compute_metrics_factory

    trainer = Seq2SeqTrainer(
        model=model, processing_class=tokenizer, train_dataset=train, eval_dataset=val,
        args=Seq2SeqTrainingArguments("out", predict_with_generate=True,
                                      eval_strategy="epoch", metric_for_best_model="bleu"),
        compute_metrics=compute_metrics_factory(tokenizer, ("bleu", "rouge", "chrf")))
    trainer.train()   # eval_bleu (sacrebleu, 0-100), eval_rouge1/2/L/Lsum (0-1), eval_chrf

Under DDP the Trainer gathers the predictions before ``compute_metrics``, so every rank
holds all of them: the Evaluator here is ``sync="none"`` (no collective call; each rank
scores the full set once, not world-size times).

**Image generation**: :class:`ImageGenerationCallback` runs after every evaluation:
``generate(model)`` yields batches of images (or ``(images, references)`` pairs), an
Evaluator scores them and the numbers are logged through ``trainer.log`` (every
``report_to`` integration receives them) and added to the evaluation's metrics (so
``metric_for_best_model="genmetrics/psnr"`` works)::

    from genmetrics import Evaluator
    from genmetrics.integrations.hf import ImageGenerationCallback

    def generate(model):                      # called under torch.no_grad(), eval mode
        for noise, targets in eval_batches:  # N x 3 x H x W, uint8 or float in [0, 1]
            yield model.sample(noise), targets

    ImageGenerationCallback(Evaluator(["fid", "psnr"], modality="image",
                                      reference_stats="skimage-photos"),
                            generate).attach(trainer)
    trainer.train()   # logs eval_genmetrics/fid, eval_genmetrics/psnr at every evaluation

Under DDP every rank runs the callback: let ``generate`` yield each rank's own share and
keep the Evaluator's default ``sync="auto"`` (the ranks are combined), or yield the same
images on every rank with ``sync="none"``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

try:
    from transformers import TrainerCallback
except ModuleNotFoundError as exc:  # a hint, not a bare "No module named 'transformers'"
    if not (exc.name or "transformers").startswith("transformers"):
        raise
    raise ModuleNotFoundError(
        "genmetrics.integrations.hf needs Hugging Face transformers, in the text extra: "
        "pip install 'genmetrics[text]'", name=exc.name) from exc

from genmetrics.errors import UsageError
from genmetrics.loggers import DEFAULT_PREFIX, scalars

if TYPE_CHECKING:
    from genmetrics.evaluator import Evaluator
    from genmetrics.scorecard import Scorecard

#: what HF's evaluation loop pads predictions and labels with
IGNORE_INDEX = -100
TEXT_METRICS = ("bleu", "rouge", "chrf")


class GenerationMetrics:
    """A ``compute_metrics`` for generated text (see :func:`compute_metrics_factory`)."""

    def __init__(self, tokenizer: Any, metrics: Sequence[str] = TEXT_METRICS, *,
                 options: dict[str, dict[str, Any]] | None = None, prefix: str = "",
                 components: bool = False, skip_special_tokens: bool = True,
                 postprocess: Callable[[str], str] | None = None) -> None:
        from genmetrics.evaluator import Evaluator

        if tokenizer is None or not hasattr(tokenizer, "batch_decode"):
            raise UsageError("compute_metrics_factory needs the tokenizer that made the "
                             "labels (anything with batch_decode)")
        self.tokenizer = tokenizer
        # predictions reach compute_metrics gathered over the ranks: no collective call
        self.evaluator = Evaluator(list(metrics), modality="text", options=options,
                                   sync="none")
        self.prefix, self.components = prefix, components
        self.skip_special_tokens = skip_special_tokens
        self.postprocess = postprocess
        #: the scorecard of the last call (None before the first one)
        self.scorecard: Scorecard | None = None

    def decode(self, ids: Any) -> list[str]:
        """Token ids (``N x L``, padded with ``-100``) -> stripped strings."""
        import numpy as np

        if isinstance(ids, tuple):  # (generated ids, ...) from some models
            ids = ids[0]
        array = np.asarray(ids)
        if array.dtype.kind == "f":
            raise UsageError(
                f"compute_metrics got float predictions of shape {array.shape} (logits?): "
                "generate text for it, e.g. Seq2SeqTrainer with "
                "Seq2SeqTrainingArguments(predict_with_generate=True)")
        if array.ndim != 2:
            raise UsageError(f"expected token ids of shape N x L, got shape {array.shape}")
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        array = np.where(array < 0, pad if pad is not None else 0, array)
        texts = self.tokenizer.batch_decode(array.tolist(),
                                            skip_special_tokens=self.skip_special_tokens)
        texts = [text.strip() for text in texts]
        return [self.postprocess(t) for t in texts] if self.postprocess else texts

    def __call__(self, eval_pred: Any) -> dict[str, float]:
        """Decode ``eval_pred.predictions`` and ``label_ids``; the scores as a flat dict."""
        labels = getattr(eval_pred, "label_ids", None)
        if labels is None:
            raise UsageError("compute_metrics got no labels: the references are the decoded "
                             "label ids (give the eval dataset a 'labels' column)")
        hypotheses, references = self.decode(eval_pred.predictions), self.decode(labels)
        self.evaluator.reset()
        self.evaluator.update(hypotheses, references)
        card = self.evaluator.compute()
        self.evaluator.reset()
        self.scorecard = card
        if card.errors:
            warnings.warn(f"genmetrics: metrics failed, left out of compute_metrics: "
                          f"{card.errors}", UserWarning, stacklevel=2)
        if self.components:
            return scalars(card, self.prefix, sep="_")
        # a missing value is nan (not None): left out, as scalars() leaves it out
        return {f"{self.prefix}{name}": float(r.value) for name, r in card.metrics.items()
                if r.value is not None and math.isfinite(r.value)}


def compute_metrics_factory(tokenizer: Any, metrics: Sequence[str] = TEXT_METRICS, *,
                            options: dict[str, dict[str, Any]] | None = None,
                            prefix: str = "", components: bool = False,
                            skip_special_tokens: bool = True,
                            postprocess: Callable[[str], str] | None = None
                            ) -> GenerationMetrics:
    """A ``compute_metrics(eval_pred) -> dict[str, float]`` for generated text.

    ``metrics``: text metric names (BLEU 0-100 as sacrebleu, ROUGE F-measures 0-1 as
    rouge-score under ``rouge1`` ... ``rougeLsum``, chrF 0-100); ``options``: per metric,
    as in :func:`genmetrics.score`; ``components``: also each metric's components
    (``bleu_bp``...) and counts of skipped inputs and failed metrics; ``postprocess``:
    applied to each decoded string. The last scorecard (with signatures) stays on the
    returned object's ``scorecard``.
    """
    return GenerationMetrics(tokenizer, metrics, options=options, prefix=prefix,
                             components=components, skip_special_tokens=skip_special_tokens,
                             postprocess=postprocess)


#: ``generate(model)`` yields image batches, or ``(images, references)`` pairs
Generate = Callable[[Any], Iterable[Any]]


class ImageGenerationCallback(TrainerCallback):
    """Score images generated after every evaluation (see the module docstring).

    ``generate(model)`` runs under ``torch.no_grad()`` with the model in eval mode (its
    mode is restored after). ``prefix``: of the logged names. Call :meth:`attach` with
    the Trainer (the callback logs through ``trainer.log``); without it the numbers only
    join the metrics ``trainer.evaluate()`` returns.
    """

    def __init__(self, evaluator: Evaluator, generate: Generate, *,
                 prefix: str = "eval_" + DEFAULT_PREFIX) -> None:
        if evaluator.modality != "image":
            raise UsageError(f"ImageGenerationCallback needs an image Evaluator, not "
                             f"{evaluator.modality}")
        self.evaluator = evaluator
        self.generate = generate
        self.prefix = prefix
        self.trainer: Any = None
        #: the scorecard of the last evaluation (None before the first one)
        self.scorecard: Scorecard | None = None
        self._warned = False

    def attach(self, trainer: Any) -> ImageGenerationCallback:
        """Add this callback to ``trainer`` and log through it; returns the callback."""
        trainer.add_callback(self)
        self.trainer = trainer
        return self

    def on_evaluate(self, args: Any, state: Any, control: Any, model: Any = None,
                    metrics: dict[str, float] | None = None, **kwargs: Any) -> None:
        import torch

        if model is None:
            raise UsageError("ImageGenerationCallback: the Trainer passed no model")
        self.evaluator.reset()
        training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for batch in self.generate(model):
                    images, references = batch if isinstance(batch, tuple) else (batch, None)
                    self.evaluator.update(images, references)
        finally:
            model.train(training)
        card = self.evaluator.compute()  # on every rank: a collective call with sync="auto"
        self.evaluator.reset()
        self.scorecard = card
        values = scalars(card, self.prefix)
        if metrics is not None:
            metrics.update(values)
        if self.trainer is not None:
            self.trainer.log(dict(values))
        elif not self._warned:
            self._warned = True
            warnings.warn("ImageGenerationCallback is not attached to a Trainer: its "
                          "numbers join trainer.evaluate()'s metrics but are not logged; "
                          "use callback.attach(trainer)", UserWarning, stacklevel=2)
