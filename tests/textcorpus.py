"""Deterministic (hypothesis, references) pairs for text-metric tests and benchmarks.

The pairs are made by perturbing the paragraphs of ``tests/fixtures/paragraphs.txt``
(original prose: news, technical notes, narrative, dialogue, some unicode and CJK):
words are dropped, swapped, replaced by synonyms or near words, duplicated, re-cased,
punctuation is added or removed, and now and then a unicode character slips in. The
sentence structure is kept, so with ``multiline=True`` every sentence stays on its own
line in the hypothesis and in each reference (what ROUGE-Lsum expects).

Everything depends only on the arguments (one ``random.Random(seed)``), so the same
call gives the same pairs on every machine and Python version.

    >>> pairs = make_pairs(3, seed=0)
    >>> hyp, refs = pairs[0]
    >>> isinstance(hyp, str) and len(refs) == 1
    True
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "paragraphs.txt"

# A sentence ends at . ! ? or … (possibly followed by closing quotes or brackets) when
# whitespace and then a capital letter, an opening quote or a digit follow.
_SENTENCE_END = re.compile(r"(?<=[.!?…])([\"”’)]*)\s+(?=[\"“‘(]*[A-Z0-9À-ÖØ-Þ])")
_WORD_PARTS = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)

# Small built-in list of synonyms and near words (both directions are looked up).
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "said": ("stated", "told", "says", "added"),
    "asked": ("enquired", "asks", "wondered"),
    "replied": ("answered", "responded", "said"),
    "big": ("large", "huge"),
    "small": ("little", "tiny", "minor"),
    "large": ("big", "sizeable"),
    "found": ("discovered", "saw", "finds"),
    "began": ("started", "begun", "begins"),
    "start": ("begin", "starting"),
    "starting": ("beginning", "from"),
    "expected": ("predicted", "anticipated", "expects"),
    "quickly": ("rapidly", "fast", "swiftly"),
    "slowly": ("gradually", "slow"),
    "cold": ("chilly", "cool"),
    "warm": ("hot", "warmed"),
    "reported": ("announced", "reports", "noted"),
    "announced": ("declared", "said", "announces"),
    "walked": ("walking", "strolled", "went"),
    "steps": ("step", "paces"),
    "people": ("persons", "individuals", "folks"),
    "risk": ("chance", "risks"),
    "study": ("studies", "survey", "trial"),
    "results": ("findings", "result", "outcomes"),
    "cost": ("price", "costs"),
    "rose": ("increased", "climbed", "rising"),
    "fell": ("dropped", "declined", "falling"),
    "higher": ("up", "greater"),
    "lower": ("reduced", "smaller"),
    "road": ("street",),
    "street": ("road", "streets"),
    "house": ("home", "houses"),
    "bought": ("purchased", "buys"),
    "explained": ("described", "explains", "clarified"),
    "use": ("utilise", "uses", "using"),
    "uses": ("employs", "use"),
    "measure": ("measuring", "check", "measured"),
    "effective": ("efficient", "useful"),
    "reduced": ("cut", "lowered", "reduces"),
    "quietly": ("softly", "silently"),
    "amusing": ("funny", "amused"),
    "several": ("some", "many", "a few"),
    "many": ("numerous", "lots of"),
    "every": ("each",),
    "each": ("every",),
    "about": ("around", "roughly"),
    "roughly": ("about", "approximately"),
    "nearly": ("almost",),
    "almost": ("nearly",),
    "however": ("but", "though"),
    "although": ("though", "even though"),
    "because": ("since", "as"),
    "before": ("prior to", "ahead of"),
    "after": ("following", "afterwards"),
    "simple": ("easy", "simpler"),
    "problem": ("issue", "problems"),
    "flaw": ("bug", "vulnerability"),
    "bug": ("flaw", "bugs"),
    "fixed": ("patched", "fixes", "repaired"),
    "update": ("upgrade", "updating", "updated"),
    "library": ("package", "libraries"),
    "books": ("volumes", "book"),
    "letter": ("note", "letters"),
    "storm": ("gale", "storms"),
    "boat": ("vessel", "ship"),
    "harbour": ("harbor", "port"),
    "neighbours": ("neighbors", "neighbour"),
    "colour": ("color",),
    "coloured": ("colored",),
    "recognised": ("recognized",),
    "organisers": ("organizers",),
    "centimetres": ("centimeters", "cm"),
    "kilometres": ("kilometers", "km"),
    "minutes": ("mins", "minute"),
    "hours": ("hour", "hrs"),
    "week": ("weeks", "wk"),
    "year": ("years",),
    "years": ("year",),
    "twenty": ("20",),
    "two": ("2",),
    "three": ("3",),
    "four": ("4",),
    "six": ("6",),
    "percent": ("%",),
    "meeting": ("gathering", "meet"),
    "developers": ("programmers", "engineers", "developer"),
    "software": ("code",),
    "database": ("db", "databases"),
    "query": ("queries", "request"),
    "index": ("indexes", "indices"),
    "indexes": ("indices", "index"),
    "commit": ("commits", "committed"),
    "changes": ("edits", "changed", "change"),
    "scored": ("scores", "netted"),
    "match": ("game", "matches"),
    "win": ("victory", "won", "winning"),
    "teachers": ("educators", "teacher"),
    "schools": ("school",),
    "birds": ("bird",),
    "species": ("kinds", "types"),
    "blue": ("azure",),
    "sky": ("skies",),
    "oven": ("stove",),
    "serve": ("serving", "served"),
    "golden": ("brown",),
}
# Function words swap among their own kind (small, frequent edits).
_FUNCTION_WORDS: tuple[tuple[str, ...], ...] = (
    ("the", "a", "an", "this", "that"),
    ("in", "on", "at", "into", "within"),
    ("of", "for", "from", "with", "by"),
    ("and", "or", "but", "so"),
    ("he", "she", "they", "it"),
    ("his", "her", "their", "its"),
    ("is", "was", "has been", "will be"),
    ("had", "has", "have"),
    ("could", "would", "can", "might"),
)
_INFLECT_SUFFIXES = ("s", "es", "ed", "ing", "ly", "er", "ness", "ation")
_ADD_SUFFIXES = ("s", "s", "ed", "ing", "ly", "er")
_PUNCTUATION = (",", ".", ";", ":", "!", "?", " -", "...")
_UNICODE_REPLACEMENTS = {
    "'": "’",
    '"': "“",
    "-": "—",
    "e": "é",
    "a": "á",
    "o": "ö",
    "u": "ü",
    "n": "ñ",
    "c": "ç",
    "i": "í",
    "ss": "ß",
}
_UNICODE_EXTRAS = ("é", "—", "…", "’", "“", "”", "ß", "İ", "ñ", "中", "日本", "€", "½", "\u00a0")
# Syllables for made-up words that share no word with any paragraph.
_NONSENSE = ("zor", "vex", "quib", "plim", "druk", "yarn", "thox", "glib", "wuz", "kreb", "fnor")

# (name, weight) of the word-level edits ``perturb`` chooses from.
_EDITS: tuple[tuple[str, float], ...] = (
    ("drop", 0.18),
    ("swap", 0.14),
    ("substitute", 0.26),
    ("inflect", 0.07),
    ("duplicate", 0.07),
    ("case", 0.10),
    ("punct", 0.13),
    ("unicode", 0.05),
)
_PARAPHRASE_EDITS: tuple[tuple[str, float], ...] = (
    ("synonym", 0.6),
    ("inflect", 0.15),
    ("swap", 0.1),
    ("punct", 0.1),
    ("drop", 0.05),
)


@lru_cache(maxsize=1)
def _load() -> tuple[str, ...]:
    text = FIXTURE.read_text(encoding="utf-8")
    blocks = re.split(r"\n\s*\n", text.strip())
    return tuple(" ".join(b.split()) for b in blocks if b.strip())


def paragraphs() -> list[str]:
    """The fixture paragraphs, one string each (whitespace normalised to single spaces)."""
    return list(_load())


def split_sentences(paragraph: str) -> list[str]:
    """Split one paragraph into sentences (no abbreviations occur in the fixture).

    >>> split_sentences('He left. “Why?” she asked. It was 2.5 km away.')
    ['He left.', '“Why?” she asked.', 'It was 2.5 km away.']
    """
    out: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(paragraph):
        out.append(paragraph[start : m.start() + len(m.group(1))])
        start = m.end()
    out.append(paragraph[start:])
    return [s.strip() for s in out if s.strip()]


# -- word-level edits --------------------------------------------------------------
def _match_case(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _split_word(word: str) -> tuple[str, str, str]:
    m = _WORD_PARTS.match(word)
    assert m is not None  # the pattern matches every string
    return m.group(1), m.group(2), m.group(3)


def _substitute(core: str, rng: random.Random, near_words: bool = True) -> str:
    low = core.lower()
    if low in _SYNONYMS:
        return _match_case(rng.choice(_SYNONYMS[low]), core)
    for group in _FUNCTION_WORDS:
        if low in group:
            return _match_case(rng.choice([w for w in group if w != low]), core)
    reverse = [k for k, vs in _SYNONYMS.items() if low in vs]
    if reverse:
        return _match_case(rng.choice(reverse), core)
    return _typo(core, rng) if near_words else core


def _typo(core: str, rng: random.Random) -> str:
    """A near word: one letter dropped, doubled, swapped or changed."""
    if len(core) < 3:
        return core + rng.choice("sey")
    i = rng.randrange(1, len(core) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return core[:i] + core[i + 1 :]
    if kind == 1:
        return core[:i] + core[i] + core[i:]
    if kind == 2:
        return core[: i - 1] + core[i] + core[i - 1] + core[i + 1 :]
    return core[:i] + rng.choice("aeiourstln") + core[i + 1 :]


def _inflect(core: str, rng: random.Random) -> str:
    """Add or remove a suffix (exercises stemming)."""
    low = core.lower()
    for suffix in sorted(_INFLECT_SUFFIXES, key=len, reverse=True):
        if low.endswith(suffix) and len(low) > len(suffix) + 2 and rng.random() < 0.6:
            return core[: -len(suffix)]
    if not core.isalpha() or len(core) < 4:
        return core
    return core + rng.choice(_ADD_SUFFIXES)


def _change_case(core: str, rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        return core.lower() if core[:1].isupper() else core.capitalize()
    if kind == 1:
        return core.upper()
    return core.lower()


def _punctuate(pre: str, core: str, post: str, rng: random.Random) -> tuple[str, str, str]:
    if post and rng.random() < 0.7:
        return pre, core, post[:-1]
    if pre and rng.random() < 0.5:
        return pre[1:], core, post
    return pre, core, post + rng.choice(_PUNCTUATION)


def _unicode(word: str, rng: random.Random) -> str:
    keys = [k for k in _UNICODE_REPLACEMENTS if k in word]
    if keys and rng.random() < 0.6:
        key = rng.choice(keys)
        return word.replace(key, _UNICODE_REPLACEMENTS[key], 1)
    extra = rng.choice(_UNICODE_EXTRAS)
    return extra + word if rng.random() < 0.3 else word + extra


def _choose(rng: random.Random, edits: Sequence[tuple[str, float]]) -> str:
    total = sum(w for _, w in edits)
    x = rng.random() * total
    for name, weight in edits:
        x -= weight
        if x < 0:
            return name
    return edits[-1][0]


def _perturb_line(
    line: str, rng: random.Random, strength: float, edits: Sequence[tuple[str, float]]
) -> str:
    words = line.split()
    if not words:
        return line
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if rng.random() >= strength:
            out.append(word)
            i += 1
            continue
        edit = _choose(rng, edits)
        pre, core, post = _split_word(word)
        if edit == "drop":
            pass
        elif edit == "swap" and i + 1 < len(words):
            out.extend((words[i + 1], word))
            i += 1
        elif edit == "duplicate":
            out.extend((word, pre + core + post if rng.random() < 0.5 else core))
        elif edit in ("substitute", "synonym") and core:
            out.append(pre + _substitute(core, rng, near_words=edit == "substitute") + post)
        elif edit == "inflect" and core:
            out.append(pre + _inflect(core, rng) + post)
        elif edit == "case" and core:
            out.append(pre + _change_case(core, rng) + post)
        elif edit == "punct":
            out.append("".join(_punctuate(pre, core, post, rng)))
        elif edit == "unicode":
            out.append(_unicode(word, rng))
        else:
            out.append(word)
        i += 1
    if not out:  # keep every sentence non-empty
        out.append(words[rng.randrange(len(words))])
    return " ".join(w for w in out if w)


def _perturb(
    text: str, rng: random.Random, strength: float, edits: Sequence[tuple[str, float]]
) -> str:
    return "\n".join(_perturb_line(line, rng, strength, edits) for line in text.split("\n"))


def perturb(text: str, rng: random.Random, strength: float = 0.2) -> str:
    """A noisy copy of ``text``: each word is edited with probability ``strength``.

    Edits: drop, swap with the next word, substitute a synonym / function word / near
    word, add or strip a suffix, duplicate, change case, add or remove punctuation,
    inject a unicode character. Lines (sentences) stay lines and are never emptied.

    >>> perturb("The cat sat on the mat.", random.Random(3), strength=0.0)
    'The cat sat on the mat.'
    """
    return _perturb(text, rng, strength, _EDITS)


def paraphrase(text: str, rng: random.Random, strength: float = 0.25) -> str:
    """A milder rewrite of ``text``: mostly word substitutions, little else."""
    return _perturb(text, rng, strength, _PARAPHRASE_EDITS)


# -- pairs ---------------------------------------------------------------------------
def _source(rng: random.Random, paras: Sequence[str], words: int | None) -> list[str]:
    """Sentences of one source text."""
    p = rng.randrange(len(paras))
    if words is None:
        sents = split_sentences(paras[p])
        r = rng.random()
        if r < 0.25:  # one sentence
            k = rng.randrange(len(sents))
            return sents[k : k + 1]
        if r < 0.5:  # two or three consecutive sentences
            span = rng.randint(2, 3)
            k = rng.randrange(max(1, len(sents) - span + 1))
            return sents[k : k + span]
        return sents
    # Consecutive paragraphs until there are enough words, then cut at ``words``.
    sents = []
    count = 0
    while count < words:
        for s in split_sentences(paras[p % len(paras)]):
            sents.append(s)
            count += len(s.split())
            if count >= words:
                break
        p += 1
    excess = count - max(1, words)
    if excess > 0:
        last = sents[-1].split()
        sents[-1] = " ".join(last[: len(last) - excess])
    return [s for s in sents if s]


def _nonsense(rng: random.Random, n: int, avoid: set[str]) -> str:
    out: list[str] = []
    while len(out) < n:
        w = "".join(rng.choice(_NONSENSE) for _ in range(rng.randint(2, 3)))
        if w not in avoid:
            out.append(w.capitalize() if not out else w)
    return " ".join(out)


def make_pairs(
    n: int,
    seed: int = 0,
    max_refs: int = 1,
    multiline: bool = True,
    words: int | None = None,
) -> list[tuple[str, list[str]]]:
    """``n`` deterministic (hypothesis, references) pairs.

    Each sample takes a source (a paragraph, one sentence or a few consecutive ones; or,
    with ``words``, about that many words from consecutive paragraphs). References are
    independent light perturbations or paraphrases of the source -- between 1 and
    ``max_refs`` of them, the count varying per sample. The hypothesis is a perturbation
    of the first reference with a strength drawn per sample (0.02-0.5). ``multiline``
    puts every sentence on its own line, otherwise sentences are joined by spaces.

    Edge cases come at fixed positions of every block of 200 samples: position 1 has
    an empty hypothesis, 2 a hypothesis identical to its first reference, 3 a one-word
    hypothesis, 4 a hypothesis sharing no word with its references.
    """
    if max_refs < 1:
        raise ValueError("max_refs must be at least 1")
    rng = random.Random(seed)
    paras = paragraphs()
    sep = "\n" if multiline else " "
    pairs: list[tuple[str, list[str]]] = []
    for i in range(n):
        source = sep.join(_source(rng, paras, words))
        k = rng.randint(1, max_refs)
        refs = []
        for j in range(k):
            r = rng.random()
            if j == 0 and r < 0.3:
                refs.append(source)
            elif r < 0.6:
                refs.append(paraphrase(source, rng, strength=rng.uniform(0.05, 0.3)))
            else:
                refs.append(perturb(source, rng, strength=rng.uniform(0.02, 0.15)))
        hyp = perturb(refs[0], rng, strength=rng.uniform(0.02, 0.5))
        edge = i % 200
        if edge == 1:
            hyp = ""
        elif edge == 2:
            hyp = refs[0]
        elif edge == 3:
            tokens = refs[0].split()
            hyp = tokens[rng.randrange(len(tokens))] if tokens else "word"
        elif edge == 4:
            seen = {w for r in refs for w in re.findall(r"\w+", r.lower())}
            hyp = _nonsense(rng, rng.randint(3, 12), seen)
        pairs.append((hyp, refs))
    return pairs


def write_folder_pairs(
    pairs: Sequence[tuple[str, Sequence[str]]], samples_dir: str | Path, refs_dir: str | Path
) -> None:
    """Write pairs as folders of UTF-8 ``.txt`` files, exactly as stored (no newline added).

    ``samples_dir/0000.txt`` holds hypothesis 0. With one reference per sample the
    references go to ``refs_dir/0000.txt``; otherwise reference k of a sample goes to
    ``refs_dir/<letter k>/0000.txt`` (``a``, ``b``, ...), written only for samples that
    have at least k+1 references.
    """
    samples = Path(samples_dir)
    refs_root = Path(refs_dir)
    samples.mkdir(parents=True, exist_ok=True)
    refs_root.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(max(len(pairs) - 1, 0))))
    multi = any(len(refs) != 1 for _, refs in pairs)
    most = max((len(refs) for _, refs in pairs), default=1)
    if most > 26:
        raise ValueError("at most 26 references per sample")
    for i, (hyp, refs) in enumerate(pairs):
        name = f"{i:0{width}d}.txt"
        (samples / name).write_bytes(hyp.encode("utf-8"))
        if not multi:
            (refs_root / name).write_bytes(refs[0].encode("utf-8"))
            continue
        for k, ref in enumerate(refs):
            folder = refs_root / chr(ord("a") + k)
            folder.mkdir(exist_ok=True)
            (folder / name).write_bytes(ref.encode("utf-8"))
