"""Reproducibility signatures: a dict first, a short string rendered from it.

The dict is the source of truth and is stored in the scorecard; the string is a
compact, human-readable rendering in the spirit of sacrebleu's signature::

    >>> render({"metric": "bleu", "tokenize": "13a", "lowercase": False, "nrefs": 1,
    ...         "refs": "sha256:9f86d081884c7d65"})
    'bleu|tok:13a|lc:no|nrefs:1|refs:9f86d081'

Rules: the ``metric`` entry leads without a key; long keys are abbreviated
(``ABBREVIATIONS``); booleans render as yes/no; digests
(``sha256:...``) are cut to 8 hex digits; nested dicts render as ``key:a=1,b=2``;
``None`` renders as ``-``.
"""

from __future__ import annotations

from typing import Any

DIGEST_PREFIX = "sha256:"

#: Short keys used in the rendered string (the dict keeps the full names).
ABBREVIATIONS = {
    "tokenize": "tok",
    "smooth_method": "smooth",
    "smooth_value": "sv",
    "lowercase": "lc",
    "max_ngram_order": "ngram",
    "char_order": "nc",
    "word_order": "nw",
    "whitespace": "space",
    "eps_smoothing": "eps",
    "use_stemmer": "stem",
    "rouge_type": "type",
    "aggregate": "agg",
    "genmetrics": "gm",
    "sacrebleu": "sacrebleu",
}
SHORT_DIGEST_LEN = 8


def _render_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ",".join(f"{k}={_render_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ",".join(_render_value(v) for v in value)
    text = str(value)
    if text.startswith(DIGEST_PREFIX):
        return text[len(DIGEST_PREFIX) : len(DIGEST_PREFIX) + SHORT_DIGEST_LEN]
    return text


def render(signature: dict[str, Any]) -> str:
    """Render a signature dict as ``metric|key:value|...`` (see the module docstring)."""
    parts = [str(signature.get("metric", "?"))]
    parts += [
        f"{ABBREVIATIONS.get(key, key)}:{_render_value(v)}"
        for key, v in signature.items()
        if key != "metric"
    ]
    return "|".join(parts)


#: fields that may differ between two results that are still comparable
UNCOMPARED_FIELDS = frozenset({"n", "bootstrap", "seed"})


def differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Fields whose values differ between two signature dicts (missing counts as None).

    >>> differences({"tok": "13a", "n": 3}, {"tok": "intl", "n": 3})
    {'tok': ('13a', 'intl')}
    """
    keys = list(a) + [k for k in b if k not in a]
    return {k: (a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)}
