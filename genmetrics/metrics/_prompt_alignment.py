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

NO_PROMPT = ("no prompt given for this sample (a .txt of the same name beside it, "
             "--prompts prompts.jsonl, or Evaluator.update(..., prompts=[...]))")


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


class PromptAlignment(PerPairMean):
    """Base class: per item ``100 cos`` of item and prompt embeddings on a text+item
    backbone; subclasses set ``spec`` and :meth:`item_embeddings`."""

    state_reductions = {**PerPairMean.state_reductions, "truncated": "sum", "prompts": "sum"}
    merge_ignores = frozenset({"device"})
    _backbone: Any = None

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
                outcomes[k] = Failed(NO_PROMPT)
            elif isinstance(prompt, Unusable):
                outcomes[k] = Failed(prompt.reason)
            elif not prompt.strip():
                outcomes[k] = Failed("empty prompt")
            else:
                todo.append(k)
        if todo:
            items = self.item_embeddings(samples, todo)
            texts, truncated = self.backbone.encode_text([prompts[k] for k in todo])
            self.state["truncated"] += int(truncated)
            self.state["prompts"] += len(todo)
            values = cosines(items, texts)
            if self.options["clamp"] == "pair":
                values = np.maximum(values, 0.0)
            for k, value in zip(todo, values.tolist(), strict=True):
                outcomes[k] = value
        self.record(outcomes)  # type: ignore[arg-type]

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        results = super().compute(per_sample)
        for result in results.values():
            result.value = max(result.value, 0.0)  # a no-op under clamp="pair"
            if self.state["truncated"]:
                result.components["truncated_prompts"] = int(self.state["truncated"])
        return results

    def value_from_totals(self, result: str, totals: Any, n: int) -> Any:
        return np.maximum(super().value_from_totals(result, totals, n), 0.0)

    def warnings(self) -> list[str]:
        count = int(self.state["truncated"])
        if not count:
            return []
        context = self.backbone.signature().get("text", "the text tower's context")
        return [f"{count} of {int(self.state['prompts'])} prompts were longer than the "
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
