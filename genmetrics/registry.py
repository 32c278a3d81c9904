"""The metric registry: a lazy ``name -> "module:Class"`` table.

Nothing is imported until a metric is asked for. Built-in metrics are listed in
``BUILTIN``; third-party packages add theirs through the entry-point group
``genmetrics.metrics``, for example in their ``pyproject.toml``::

    [project.entry-points."genmetrics.metrics"]
    wordcount = "my_package.metrics:WordCount"

Adding a built-in metric means: its module, one line in ``BUILTIN``, its test.

    >>> get_metric("bleu").spec.kind
    'paired'
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from functools import cache, lru_cache
from importlib.metadata import entry_points

from genmetrics.errors import UsageError
from genmetrics.metric import Metric, MetricSpec

ENTRY_POINT_GROUP = "genmetrics.metrics"

BUILTIN: dict[str, str] = {
    "bleu": "genmetrics.metrics.text.bleu:BLEU",
    "chrf": "genmetrics.metrics.text.chrf:ChrF",
    "meteor": "genmetrics.metrics.text.meteor:METEOR",
    "perplexity": "genmetrics.metrics.text.perplexity:Perplexity",
    "mcd": "genmetrics.metrics.audio.mcd:MCD",
    "pesq": "genmetrics.metrics.audio.pesq:PESQ",
    "si_snr": "genmetrics.metrics.audio.snr:SISNR",
    "snr": "genmetrics.metrics.audio.snr:SNR",
    "stoi": "genmetrics.metrics.audio.stoi:STOI",
    "rouge": "genmetrics.metrics.text.rouge:ROUGE",
    "fid": "genmetrics.metrics.image.fid:FID",
    "sfid": "genmetrics.metrics.image.sfid:SFID",
    "kid": "genmetrics.metrics.image.kid:KID",
    "inception_score": "genmetrics.metrics.image.inception_score:InceptionScore",
    "ssim": "genmetrics.metrics.image.ssim:SSIM",
    "psnr": "genmetrics.metrics.image.psnr:PSNR",
    "precision_recall": "genmetrics.metrics.image.precision_recall:PrecisionRecall",
    "density_coverage": "genmetrics.metrics.image.density_coverage:DensityCoverage",
    "vendi": "genmetrics.metrics.image.vendi:Vendi",
}

#: result names that select the built-in metric computing them (``--metrics precision``
#: runs ``precision_recall``): each is one of its target's ``spec.outputs``, which
#: ``tests/test_registry.py`` checks.
ALIASES: dict[str, str] = {
    "precision": "precision_recall",
    "recall": "precision_recall",
    "density": "density_coverage",
    "coverage": "density_coverage",
}


@lru_cache(maxsize=1)
def _plugin_targets() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def targets() -> dict[str, str]:
    """Every known metric name with its ``module:Class`` target; built-ins win on a clash."""
    table = dict(_plugin_targets())
    table.update(BUILTIN)
    return dict(sorted(table.items()))


def refresh() -> None:
    """Forget the cached entry points (after installing a plugin in a running process)."""
    _plugin_targets.cache_clear()
    get_metric.cache_clear()


def canonical(names: Iterable[str]) -> list[str]:
    """Metric names with each alias replaced by its metric, each metric once, in order.

    >>> canonical(["fid", "precision", "recall"])
    ['fid', 'precision_recall']
    """
    out: list[str] = []
    for name in names:
        name = name if name in targets() else ALIASES.get(name, name)
        if name not in out:
            out.append(name)
    return out


def _unknown(name: str) -> UsageError:
    close = difflib.get_close_matches(name, [*targets(), *ALIASES], n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return UsageError(f"unknown metric {name!r}.{hint} See `genmetrics list`.")


@cache
def get_metric(name: str) -> type[Metric]:
    """Import and return the metric class registered under ``name`` (or an alias)."""
    if name not in targets() and name in ALIASES:
        return get_metric(ALIASES[name])
    target = targets().get(name)
    if target is None:
        raise _unknown(name)
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(
            f"metric {name!r} cannot be loaded from {target} ({exc}). "
            "Is its extra installed? Try: pip install 'genmetrics[all]'"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Metric)):
        raise UsageError(f"metric {name!r} ({target}) is not a genmetrics.Metric subclass")
    if cls.spec.name != name:
        raise UsageError(f"metric {target} is registered as {name!r} but names itself "
                         f"{cls.spec.name!r}")
    return cls


def list_metrics(modality: str | None = None) -> list[MetricSpec]:
    """Specs of every registered metric, optionally of one modality, sorted by name."""
    specs = [get_metric(name).spec for name in targets()]
    return [s for s in specs if modality is None or s.modality == modality]
