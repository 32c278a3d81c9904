"""What ``clipscore`` and ``clap_score`` share: ``100 * cos(E(item), E(prompt))`` per item
on a backbone with a text tower, averaged; the mean floored at 0.

Per item the value is ``100 * cos`` of the backbone's projected item embedding and its
prompt's text embedding (torchmetrics' ``_clip_score_update``). The corpus value is the
mean of those, floored at 0: ``max(mean, 0)``, as torchmetrics' ``CLIPScore.compute``
does (option ``clamp="mean"``). ``clamp="pair"`` floors each item instead,
``100 * max(cos, 0)`` (Hessel et al.'s per-image CLIP-S without their weight 2.5).

An item without a usable prompt (none given, empty, unreadable) is named as failed with
the reason; the others are scored. Prompts longer than the text tower's context (77
tokens for CLIP) are cut to it by the tokenizer (which keeps the end-of-text token the
pooled embedding is read at; torchmetrics cuts ``input_ids`` after tokenising, which
drops it, its issues #2000 and #2883): one warning counts them, and the policy is in the
signature (``text``).

The state is per sample (its value or failure, whether its prompt was encoded, whether it
was truncated; CLAP: whether the clip was cut), so a slice (``--group-by``) is scored from
the overall run's rows (:meth:`~genmetrics.metric.Metric.restricted`): each prompt and
each item goes through its tower once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from genmetrics.errors import UsageError
from genmetrics.io.common import Unusable
from genmetrics.metric import MetricResult, Option, library_version
from genmetrics.metrics._per_pair import Failed, PerPairMean

CLAMP_OPTION = Option(
    "clamp", "mean", "where the floor at 0 goes: mean (torchmetrics' CLIPScore: max(mean of "
    "100 cos, 0)) or pair (each item 100 max(cos, 0), Hessel et al.'s CLIP-S without w)")
CLAMPS = ("mean", "pair")

NO_PROMPT = ("no prompt given for this sample (--prompts prompts.jsonl, "
             "Evaluator.update(..., prompts=[...]){beside})")


def weights_option(backbone: str, model: str) -> Option:
    """The ``weights`` option of a metric on backbone ``backbone`` (a ``model`` folder).

        >>> weights_option("clap", "CLAP").help.split(";")[1]
        ' default: $GENMETRICS_CLAP_WEIGHTS, the asset cache, the Hugging Face cache'
    """
    from genmetrics.features.backbones import weights_env

    return Option("weights", None, f"the {model} model folder (save_pretrained); default: "
                  f"${weights_env(backbone)}, the asset cache, the Hugging Face cache; its "
                  "digest goes into the signature", affects_values=False)


def cosines(items: np.ndarray, texts: np.ndarray) -> np.ndarray:
    """Row-wise ``100 * cos`` (float64) of two ``N x D`` embedding arrays, each row scaled
    to unit L2 norm first (torchmetrics' order of operations, in float64).

        >>> cosines(np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[3.0, 0.0], [1.0, 0.0]]))
        array([100.,   0.])
    """
    a = np.asarray(items, np.float64)
    b = np.asarray(texts, np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return 100.0 * np.einsum("ij,ij->i", a, b)


def truncated_flags(backbone: Any, texts: list[str], count: Any) -> np.ndarray:
    """Per text, 1 where the backbone's ``encode_text`` cut it to the context: its
    per-text flags when it returns them, else from its count (none, all; in between the
    backbone's tokenizer says which, else each text is encoded alone).

        >>> truncated_flags(None, ["a", "b"], 0).tolist(), truncated_flags(None, ["a"], 1).tolist()
        ([0, 0], [1])
    """
    if not isinstance(count, (int, np.integer)):
        return np.asarray(count, np.int8).reshape(len(texts))
    if count in (0, len(texts)):
        return np.full(len(texts), 1 if count else 0, np.int8)
    tokenizer = getattr(getattr(backbone, "processor", None), "tokenizer", None)
    context = getattr(backbone, "context", None)
    if tokenizer is not None and context:
        return np.array([len(ids) > context for ids in tokenizer(texts)["input_ids"]],
                        np.int8)
    return np.array([bool(backbone.encode_text([text])[1]) for text in texts], np.int8)


class PromptAlignment(PerPairMean):
    """Base class: per item ``100 cos`` of item and prompt embeddings on a text+item
    backbone; subclasses set ``spec`` and :meth:`item_embeddings`."""

    # per sample: 1 where its prompt was encoded (``prompts``), and cut to the context
    state_reductions = {**PerPairMean.state_reductions, "truncated": "cat", "prompts": "cat"}
    state_dtypes = {**PerPairMean.state_dtypes, "truncated": "int8", "prompts": "int8"}
    sample_fields = (*PerPairMean.sample_fields, "truncated", "prompts")
    merge_ignores = frozenset({"device"})
    _backbone: Any = None

    @classmethod
    def takes_run_option(cls, option: str, given: dict[str, Any]) -> bool:
        """``--inception-weights`` is not this metric's model folder."""
        return option != "weights" and super().takes_run_option(option, given)

    @property
    def backbone_name(self) -> str:
        return str(self.options["features"])

    @property
    def backbone(self) -> Any:
        """The backbone named by ``features`` (loaded once per process)."""
        if self._backbone is None:
            from genmetrics.features.backbones import get_backbone

            backbone = get_backbone(self.backbone_name, self.options.get("device", "auto"),
                                    self.options.get("weights") or None)
            if not getattr(backbone, "has_text", False):
                raise UsageError(f"{self.spec.name}.features={self.backbone_name}: that "
                                 "backbone has no text tower (choose one that has, e.g. "
                                 f"{self.spec.option('features').default})")
            if backbone.modality != self.spec.modality:
                raise UsageError(f"{self.spec.name}.features={self.backbone_name}: a "
                                 f"{backbone.modality} backbone, not an {self.spec.modality} "
                                 "one")
            self._backbone = backbone
        return self._backbone

    def preflight(self) -> None:
        if self.options["clamp"] not in CLAMPS:
            raise UsageError(f"{self.spec.name}.clamp={self.options['clamp']!r}: choose "
                             f"{' or '.join(CLAMPS)}")
        self.backbone  # noqa: B018 - a missing model is BackboneUnavailable here

    def default_unavailable(self) -> str | None:
        """A default run leaves the metric out when its model is missing (the reason ends
        with the fetch command)."""
        from genmetrics.errors import GenmetricsError

        try:
            self.backbone  # noqa: B018
        except GenmetricsError as exc:
            return str(exc)
        except ImportError as exc:
            return f"{self.spec.name} needs {exc.name or exc}: pip install 'genmetrics[all]'"
        return None

    def prompts_of(self, samples: Sequence[Any]) -> list[Any]:
        """Each sample's prompt: a string, :class:`Unusable` or None."""
        raise NotImplementedError

    def item_embeddings(self, samples: Sequence[Any], todo: list[int]) -> np.ndarray:
        """The backbone's embeddings of ``samples[k]`` for ``k`` in ``todo``."""
        raise NotImplementedError

    def update(self, samples: Sequence[Any],
               references: Sequence[Sequence[Any]] | None = None) -> None:
        prompts = self.prompts_of(samples)
        outcomes: list[float | Failed | None] = [None] * len(samples)
        todo: list[int] = []
        for k, prompt in enumerate(prompts):
            if prompt is None:
                outcomes[k] = Failed(NO_PROMPT.format(beside=(
                    ", or a .txt of the same name beside it"
                    if self.spec.modality == "image" else "")))
            elif isinstance(prompt, Unusable):
                outcomes[k] = Failed(prompt.reason)
            elif not prompt.strip():
                outcomes[k] = Failed("empty prompt")
            else:
                todo.append(k)
        encoded, truncated = np.zeros(len(samples), np.int8), np.zeros(len(samples), np.int8)
        if todo:
            items = self.item_embeddings(samples, todo)
            chosen = [prompts[k] for k in todo]
            texts, count = self.backbone.encode_text(chosen)
            encoded[todo], truncated[todo] = 1, truncated_flags(self.backbone, chosen, count)
            values = cosines(items, texts)
            if self.options["clamp"] == "pair":
                values = np.maximum(values, 0.0)
            for k, value in zip(todo, values.tolist(), strict=True):
                outcomes[k] = value
        self.record(outcomes)  # type: ignore[arg-type]
        self.state["prompts"].append(encoded)
        self.state["truncated"].append(truncated)

    def count(self, field: str) -> int:
        """How many samples have 1 in the per-sample state ``field``."""
        return int(self.state[field].array().sum()) if len(self.state[field]) else 0

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        results = super().compute(per_sample)
        for result in results.values():
            result.value = max(result.value, 0.0)  # a no-op under clamp="pair"
            if self.count("truncated"):
                result.components["truncated_prompts"] = self.count("truncated")
        return results

    def value_from_totals(self, result: str, totals: Any, n: int) -> Any:
        return np.maximum(super().value_from_totals(result, totals, n), 0.0)

    def warnings(self) -> list[str]:
        count = self.count("truncated")
        if not count:
            return []
        context = self.backbone.signature().get("text", "the text tower's context")
        return [f"{count} of {self.count('prompts')} prompts were longer than the "
                f"{self.backbone_name} text tower's context and were truncated to it "
                f"({context}, end token kept; see the signature's text field)"]

    def signature_extra(self) -> dict[str, Any]:
        sig = dict(self.backbone.signature())
        sig.pop("backbone", None)
        return {"backbone": self.backbone_name, **sig}

    def libraries(self) -> dict[str, str]:
        return {"torch": library_version("torch"),
                "transformers": library_version("transformers")}

    def close(self) -> None:
        self._backbone = None
