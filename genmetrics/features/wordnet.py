"""WordNet 3.0 through NLTK, from the asset manager, loaded once per process.

    >>> wn = load_wordnet()                          # doctest: +SKIP
    >>> wn.synsets("dog")[0].name()                  # doctest: +SKIP
    'dog.n.01'
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def load_wordnet() -> Any:
    """An ``nltk`` WordNet corpus reader over the asset ``wordnet``.

    The asset's root is added to ``nltk.data.path``: NLTK only reads corpora from
    folders on its data path.
    """
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    from genmetrics.assets import locate

    found = locate("wordnet")
    root = str(found.path)
    if root not in nltk.data.path:
        nltk.data.path.append(root)
    import warnings

    with warnings.catch_warnings():  # "multilingual functions are not available": expected
        warnings.simplefilter("ignore", UserWarning)
        return WordNetCorpusReader(nltk.data.find("corpora/wordnet", paths=[root]), None)


def wordnet_digest() -> str | None:
    """The sha256 digest of the WordNet files in use (None outside the genmetrics cache)."""
    from genmetrics.assets import locate

    return locate("wordnet").digest
