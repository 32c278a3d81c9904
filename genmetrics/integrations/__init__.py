"""Recipes for training frameworks: Evaluator scores inside their evaluation hooks.

* :mod:`genmetrics.integrations.lightning` -- :class:`GenmetricsCallback`, a PyTorch
  Lightning callback fed by ``validation_step`` (``pip install "genmetrics[lightning]"``).
* :mod:`genmetrics.integrations.hf` -- for the Hugging Face ``Trainer``:
  :func:`compute_metrics_factory` (BLEU, ROUGE, chrF of generated text) and
  :class:`ImageGenerationCallback` (images generated at every evaluation).

Each framework is imported only when its recipe is used: ``import genmetrics`` (or this
package) loads neither Lightning nor transformers.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "GenmetricsCallback": "genmetrics.integrations.lightning",
    "compute_metrics_factory": "genmetrics.integrations.hf",
    "GenerationMetrics": "genmetrics.integrations.hf",
    "ImageGenerationCallback": "genmetrics.integrations.hf",
}

__all__ = ["GenerationMetrics", "GenmetricsCallback", "ImageGenerationCallback",
           "compute_metrics_factory"]

if TYPE_CHECKING:
    from genmetrics.integrations.hf import (
        GenerationMetrics,
        ImageGenerationCallback,
        compute_metrics_factory,
    )
    from genmetrics.integrations.lightning import GenmetricsCallback


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'genmetrics.integrations' has no attribute {name!r}")
    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
