"""genmetrics: one evaluation suite for generative models.

The public API is small and imported lazily (``import genmetrics`` loads no metric)::

    >>> import genmetrics
    >>> card = genmetrics.score("demo/text/samples", reference="demo/text/references")
    >>> round(card.metrics["bleu"].value, 2) >= 0
    True

Names: :func:`score`, :class:`Evaluator` (training loops), :class:`Scorecard`,
:func:`get_metric`, :func:`list_metrics`, and, for writing plugins, :class:`Metric`,
:class:`MetricSpec`, :class:`Option`, :class:`MetricResult`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

_EXPORTS = {
    "score": "genmetrics.runner",
    "Evaluator": "genmetrics.evaluator",
    "Scorecard": "genmetrics.scorecard",
    "get_metric": "genmetrics.registry",
    "list_metrics": "genmetrics.registry",
    "Metric": "genmetrics.metric",
    "MetricSpec": "genmetrics.metric",
    "MetricResult": "genmetrics.metric",
    "Option": "genmetrics.metric",
    "GenmetricsError": "genmetrics.errors",
}

__all__ = [
    "__version__",
    "score",
    "Evaluator",
    "Scorecard",
    "get_metric",
    "list_metrics",
    "Metric",
    "MetricSpec",
    "MetricResult",
    "Option",
    "GenmetricsError",
]

if TYPE_CHECKING:
    from genmetrics.errors import GenmetricsError
    from genmetrics.evaluator import Evaluator
    from genmetrics.metric import Metric, MetricResult, MetricSpec, Option
    from genmetrics.registry import get_metric, list_metrics
    from genmetrics.runner import score
    from genmetrics.scorecard import Scorecard


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'genmetrics' has no attribute {name!r}")
    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
