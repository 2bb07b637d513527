"""The semantic-hit verifier: checks what embeddings blur before a cached answer is served.

Two near questions ("refunds within 30 days" / "within 60 days", "flights from Madrid to Lima" /
"from Lima to Madrid") sit at cosine 0.97+ in any sentence embedding, so a cosine threshold alone
serves wrong answers (../shared/benchmarks/CACHE_ANCHOR.md: precision <= 0.58 on PAWS-X). Before a
semantic hit is served, the stored and the incoming question go through:

1. **Fact checks** (vetoes): the same numbers (digits and number words, ordinals, codes like
   "S24"/"Q1"), the same units and currencies, the same time words (weekdays, months, today/
   yesterday, next/last, am/pm), the same count of negations (not/never/without, no/nunca/sin,
   un-/in-/dis- prefixes, opposite pairs such as include/exclude, before/after), and every name
   (a capitalised or mixed-case word) of one found in the other.
2. **Order agreement** (a score): embeddings are nearly bags of words, so a role swap keeps the
   vector. The verifier aligns the two content-word sequences (longest common subsequence),
   counts shared words that moved, names that changed neighbours, and bigrams kept, and a small
   logistic model (coefficients fitted by bench/cache.py on half of PAWS-X es+en and pasted here
   as constants) turns them and the cosine into a probability that the meaning is the same.

Both run in pure Python on two short token lists: about 0.1 ms per pair of questions and 0.3 ms
for a pair of 30-word sentences (bench/cache.py), well inside the 2 ms a semantic hit may add.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass

from acllm.cache import lexicon as lx
from acllm.cache.text import Token, tokens

# Fitted by `python -m bench.cache --fit` on half A of PAWS-X dev es+en (see bench/cache.py):
# the order of the features is FEATURES.
FEATURES = (
    "cosine", "lcs", "moved", "jaccard", "bigram", "names_moved", "neighbours", "length",
    "content_bigram", "mean_shift", "max_shift",
)  # fmt: skip
WEIGHTS = (
    0.0625, 1.6053, -2.3808, -1.8392, -0.0237, -2.0553, -1.4176, -0.149, 2.0095, 3.5191, -3.7801,
)  # fmt: skip
BIAS = 0.679
# The probability at or above which a pair that passed the fact checks is served. Chosen on half
# A for precision >= 0.9; reported on half B by bench/cache.py.
MIN_SCORE = 0.85  # CacheSettings.min_score defaults to the same (a test checks)
STEM = 5  # content words are compared on their first letters: "marinos" ~ "marino", "runs" ~ "run"


@dataclass(frozen=True, slots=True)
class Facts:
    numbers: tuple[str, ...]  # sorted canonical numbers, repeats kept
    units: frozenset[str]
    times: frozenset[str]
    negations: int
    names: frozenset[str]


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str  # "" when ok; else "number", "unit", "time", "negation", "name", "order"
    score: float  # the order model's probability (0.0 when a fact check refused)


def _canonical_number(digits: str) -> str:
    """ "1.000" / "1,000" -> "1000"; "1,5" -> "1.5"; "2024-05-10" stays as it is."""
    if any(sep in digits for sep in "/-:"):
        return digits
    parts = digits.replace(",", ".").split(".")
    if len(parts) > 1 and all(len(p) == 3 for p in parts[1:]):
        return "".join(parts)  # thousands separators
    return ".".join(parts)


def _number_token(text: str) -> tuple[str, str]:
    """Split "10kg" into ("10", "kg"); "11th" into ("11", "")."""
    end = len(text)
    while end and not text[end - 1].isdigit():
        end -= 1
    suffix = text[end:]
    if suffix in ("st", "nd", "rd", "th", "o", "a", "er", "ro", "do", "to", "vo", "mo", "no"):
        suffix = ""
    return _canonical_number(text[:end]), suffix


def facts(toks: tuple[Token, ...]) -> Facts:
    numbers: list[str] = []
    units: set[str] = set()
    times: set[str] = set()
    names: set[str] = set()
    negations = 0
    after_number = False
    for tok in toks:
        word = tok.text
        if word[0].isdigit():
            value, suffix = _number_token(word)
            numbers.append(value)
            if suffix:
                if suffix in lx.UNITS:
                    units.add(lx.UNITS[suffix])
                else:
                    numbers.append(word)  # a code such as "4k" or "5g"
            after_number = True
            continue
        if word in lx.TIME_UNIT_AFTER_NUMBER and (after_number or word.endswith("s")):
            units.add("s")
        elif word in lx.CARDINALS:
            numbers.append(_canonical_number(str(lx.CARDINALS[word])))
        elif word in lx.ORDINALS:
            numbers.append(str(lx.ORDINALS[word]))
        elif "-" in word and all(part in lx.CARDINALS for part in word.split("-")):
            numbers.append(str(sum(lx.CARDINALS[part] for part in word.split("-"))))
        elif any(c.isdigit() for c in word):
            numbers.append(word)  # "s24", "q1", "v2": codes compared as they are
        elif word in lx.UNITS and (after_number or len(word) > 2):
            units.add(lx.UNITS[word])
        elif word in lx.TIMES or (word == "may" and tok.capital):
            times.add(lx.TIMES.get(word, "may"))
        elif word in lx.NEGATIONS:
            negations += 1
        elif tok.capital:
            names.add(word)
        after_number = word in lx.CARDINALS
    return Facts(
        tuple(sorted(numbers)), frozenset(units), frozenset(times), negations, frozenset(names)
    )


def _stem_in(stem: str, words: set[str]) -> bool:
    if len(stem) >= lx.SHORT_STEM:
        return any(w.startswith(stem) for w in words)
    return any(stem + ending in words for ending in lx.INFLECTIONS)


def _opposed(only_a: set[str], only_b: set[str]) -> bool:
    """A word of one side is the other's with a negative prefix, or its listed opposite."""
    for one, other in ((only_a, only_b), (only_b, only_a)):
        for word in one:
            for prefix in lx.NEGATIVE_PREFIXES:
                if word.startswith(prefix) and word[len(prefix) :] in other:
                    return True
    for x, y in lx.OPPOSITES:
        for one, other in ((only_a, only_b), (only_b, only_a)):
            if _stem_in(x, one) and _stem_in(y, other):
                return True
    return False


def fact_check(a: tuple[Token, ...], b: tuple[Token, ...]) -> str:
    """The first fact the two token lists disagree on, or "" when they agree on all."""
    fa, fb = facts(a), facts(b)
    if fa.numbers != fb.numbers:
        return "number"
    if fa.units != fb.units:
        return "unit"
    if fa.times != fb.times:
        return "time"
    words_a, words_b = {t.text for t in a}, {t.text for t in b}
    if fa.negations != fb.negations or _opposed(words_a - words_b, words_b - words_a):
        return "negation"
    if not fa.names <= words_b or not fb.names <= words_a:
        return "name"
    if _substituted(words_a - words_b, words_b - words_a):
        return "entity"
    return ""


def _content(words: set[str]) -> set[str]:
    """Words that carry content; numbers in any spelling are the number check's business."""
    return {
        w
        for w in words
        if w not in lx.STOPWORDS
        and len(w) > 2
        and not any(ch.isdigit() for ch in w)
        and w not in lx.CARDINALS
        and w not in lx.ORDINALS
    }


def _substituted(only_a: set[str], only_b: set[str]) -> bool:
    """One content word swapped for an unrelated one, all else equal ("return a bike" / "return a
    helmet"): lower-case names and products are entities too. Inflections and short forms ("bici",
    "bicicleta") share a stem and pass. Wider rewordings go to the order model: refusing every
    changed word halved the recall on real paraphrases (PAWS-X es: 0.25 -> 0.14)."""
    a, b = _content(only_a), _content(only_b)
    if len(a) != 1 or len(b) != 1:
        return False

    def related(x: str, ys: set[str]) -> bool:
        stem = x[: lx.SHORT_STEM]
        return any(y.startswith(stem) or stem.startswith(y[: lx.SHORT_STEM]) for y in ys)

    return any(not related(x, b) for x in a) and any(not related(y, a) for y in b)


def _lcs(a: list[str], b: list[str]) -> int:
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def _neighbours(seq: list[str], word: str) -> tuple[str, str]:
    i = seq.index(word)
    return (seq[i - 1] if i else "^", seq[i + 1] if i + 1 < len(seq) else "$")


def order_features(a: tuple[Token, ...], b: tuple[Token, ...], cosine: float) -> list[float]:
    """The FEATURES of a pair, each in [0, 1] (cosine as given)."""
    ca = [t.text[:STEM] for t in a if t.text not in lx.STOPWORDS and t.text[0].isalnum()]
    cb = [t.text[:STEM] for t in b if t.text not in lx.STOPWORDS and t.text[0].isalnum()]
    common = sum((Counter(ca) & Counter(cb)).values())
    lcs = _lcs(ca, cb)
    longest = max(len(ca), len(cb), 1)
    set_a, set_b = set(ca), set(cb)
    union = len(set_a | set_b) or 1
    wa, wb = [t.text for t in a], [t.text for t in b]
    bigrams_a, bigrams_b = (
        Counter(itertools.pairwise(wa)),
        Counter(itertools.pairwise(wb)),
    )
    bigram_total = sum(bigrams_a.values()) + sum(bigrams_b.values())
    bigram = 2 * sum((bigrams_a & bigrams_b).values()) / bigram_total if bigram_total else 1.0
    names_a = list(dict.fromkeys(t.text for t in a if t.capital))  # first occurrences, in order
    names_b = list(dict.fromkeys(t.text for t in b if t.capital))
    shared_names = set(names_a) & set(names_b)
    names_lcs = _lcs(
        [n for n in names_a if n in shared_names], [n for n in names_b if n in shared_names]
    )
    names_moved = 1 - names_lcs / len(shared_names) if shared_names else 0.0
    unique = [w for w in set_a & set_b if ca.count(w) == 1 and cb.count(w) == 1]
    changed = sum(1 for w in unique if not set(_neighbours(ca, w)) & set(_neighbours(cb, w)))
    content_a = Counter(itertools.pairwise(ca))
    content_b = Counter(itertools.pairwise(cb))
    content_total = sum(content_a.values()) + sum(content_b.values())
    content_bigram = (
        2 * sum((content_a & content_b).values()) / content_total if content_total else 1.0
    )
    shifts = [abs(ca.index(w) / len(ca) - cb.index(w) / len(cb)) for w in unique]
    return [
        cosine,
        lcs / longest,
        (common - lcs) / max(common, 1),
        len(set_a & set_b) / union,
        bigram,
        min(names_moved, 1.0),
        changed / len(unique) if unique else 0.0,
        min(len(ca), len(cb)) / longest,
        content_bigram,
        sum(shifts) / len(shifts) if shifts else 0.0,
        max(shifts, default=0.0),
    ]


def order_score(features: list[float]) -> float:
    z = BIAS + sum(w * f for w, f in zip(WEIGHTS, features, strict=True))
    return 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))


def verify(stored: str, incoming: str, cosine: float, *, min_score: float = MIN_SCORE) -> Verdict:
    """Whether a cached answer to ``stored`` may be served for ``incoming`` (cosine given)."""
    a, b = tokens(stored), tokens(incoming)
    reason = fact_check(a, b)
    if reason:
        return Verdict(False, reason, 0.0)
    score = order_score(order_features(a, b, cosine))
    return Verdict(score >= min_score, "" if score >= min_score else "order", score)
