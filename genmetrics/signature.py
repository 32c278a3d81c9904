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

A terminal summary prints the short form, one line per metric (:func:`render_short`):
the options that differ from the metric's defaults, the fields that say what was
compared (``SHORT_FIELDS``), and ``#`` with a digest of every comparable field, so two
results with the same short string are comparable by the gate::

    >>> render_short({"metric": "kid", "v": "1", "subset_size": 12, "subsets": 100,
    ...               "n": 12, "ref": "folder", "torch": "2.14.1", "refs": "sha256:8f0f3450aa"},
    ...              defaults={"subset_size": None, "subsets": 100})
    'kid|subset:12|ref:folder|refs:8f0f3450|#f4fc9b30'
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
    "subset_size": "subset",
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


#: fields that may differ between two results that are still comparable (how the
#: interval was made, ``ci_method``, changes no value)
UNCOMPARED_FIELDS = frozenset({"n", "bootstrap", "bootstrap_seed", "ci_method"})


def comparable_digest(signature: dict[str, Any]) -> str:
    """8 hex digits of sha256 over the signature's comparable fields (all but
    ``UNCOMPARED_FIELDS``), independent of key order."""
    import hashlib
    import json

    kept = {k: v for k, v in signature.items() if k not in UNCOMPARED_FIELDS}
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:SHORT_DIGEST_LEN]


#: fields the short form shows (when present), what the value is measured against, in
#: the order they are left out when it must fit a width (the digest covers them); the
#: references digest is always kept
SHORT_DROP_ORDER = ("ext", "lm", "mode", "rate", "tokenize", "nrefs", "ref")
SHORT_FIELDS = (*SHORT_DROP_ORDER, "refs")


def render_short(signature: dict[str, Any], defaults: dict[str, Any] | None = None,
                 width: int | None = None) -> str:
    """The one-line form (see the module docstring): ``metric``, options that differ
    from ``defaults`` (the metric's option defaults; none known: none shown), the
    ``SHORT_FIELDS``, then ``#`` and :func:`comparable_digest`. With ``width``, fields
    of ``SHORT_DROP_ORDER`` are left out, in that order, until the line fits (changed
    options, ``refs`` and the digest stay).

        >>> sig = {"metric": "fid", "ext": "inception-v3-fid", "ref": "folder", "refs": "x"}
        >>> render_short(sig, width=32)
        'fid|ref:folder|refs:x|#b90e2f40'
    """
    defaults = defaults or {}
    parts: list[tuple[str, str]] = [("metric", str(signature.get("metric", "?")))]
    for key, value in signature.items():
        changed = key in defaults and value != defaults[key] and key not in UNCOMPARED_FIELDS
        if key in SHORT_FIELDS or changed:
            parts.append((key, f"{ABBREVIATIONS.get(key, key)}:{_render_value(value)}"))
    parts.append(("#", f"#{comparable_digest(signature)}"))
    for key in SHORT_DROP_ORDER:
        if width is None or len("|".join(text for _, text in parts)) <= width:
            break
        parts = [(k, text) for k, text in parts if k != key]
    return "|".join(text for _, text in parts)


def differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Fields whose values differ between two signature dicts (missing counts as None).

    >>> differences({"tok": "13a", "n": 3}, {"tok": "intl", "n": 3})
    {'tok': ('13a', 'intl')}
    """
    keys = list(a) + [k for k in b if k not in a]
    return {k: (a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)}
