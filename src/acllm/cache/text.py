"""Question text for the cache: the exact-match form, and the tokens the verifier compares.

``exact_form`` is what two questions must share to be the *same* question: Unicode NFKC (full-width
digits and letters, ligatures, compatibility forms), zero-width and soft-hyphen characters removed,
case folded, whitespace collapsed, and the opening/closing punctuation of a question (``¿ ? ¡ !`` and
a final period) dropped. Accents are KEPT: in Spanish they change meaning ("sí"/"si", "más"/"mas",
"té"/"te", "año"/"ano"), and a cache must not serve one for the other. Accents are folded only in
``tokens``, where the verifier compares content words and other checks guard the facts.

``tokens`` splits a text into word, number and symbol tokens, lower-cased and accent-folded, with
English contractions opened ("doesn't" -> "does not", "can't" -> "can not") so negation is counted
once however it is spelled. Each token remembers whether it was capitalised mid-sentence, which is
how the verifier spots names ("Madrid", "PayPal") without a model.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from acllm.guards.fold import ZERO_WIDTH

# Zero-width space/joiners, word joiner, BOM, soft hyphen, bidi marks...: the guards' list.
_INVISIBLE = dict.fromkeys(map(ord, ZERO_WIDTH))
_SPACE = re.compile(r"\s+")
_EDGE = re.compile(r"^[\s¿¡?!.,;:]+|[\s¿¡?!.,;:]+$")
_CONTRACTIONS = (
    (re.compile(r"\bcan['’]t\b", re.I), "can not"),
    (re.compile(r"\bwon['’]t\b", re.I), "will not"),
    (re.compile(r"\bcannot\b", re.I), "can not"),
    (re.compile(r"n['’]t\b", re.I), " not"),
)
# A number keeps its inner separators ("1.000", "1,5", "2024-05-10", "10/05/2024", "3:30");
# a word keeps inner hyphens ("two-factor"); a few symbols are tokens of their own.
_TOKEN = re.compile(r"\d+(?:[.,:/-]\d+)*[^\W\d_]*|[^\W\d_][\w]*(?:-[^\W_]+)*|[$€£%°#+]")
_SENTENCE_END = frozenset(".!?¿¡")


@dataclass(frozen=True, slots=True)
class Token:
    text: str  # lower-cased, accents folded
    capital: bool  # capitalised (or mixed case like "iPhone") where a sentence does not start


def clean(text: str) -> str:
    """NFKC, invisible characters removed, whitespace collapsed (case and accents kept)."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    return _SPACE.sub(" ", text).strip()


def exact_form(text: str) -> str:
    """The form two questions must share to count as the same question (see the module doc)."""
    return _EDGE.sub("", clean(text).casefold())


def fold(word: str) -> str:
    """Lower case without accents: "Período" -> "periodo" (ñ becomes n too)."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _abbreviation(word: str) -> bool:
    """ "R", "Jr", "U" before a period: an initial or title, not the end of a sentence."""
    return 0 < len(word) <= 2 and word[0].isupper()


@lru_cache(maxsize=4096)
def tokens(text: str) -> tuple[Token, ...]:
    """The text's tokens, in order (cached: the stored side of a comparison repeats)."""
    text = clean(text)
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    out: list[Token] = []
    starts_sentence, previous = True, ""
    for match in _TOKEN.finditer(text):
        raw = match.group()
        before = text[: match.start()].rstrip()
        if before and before[-1] in _SENTENCE_END and not _abbreviation(previous):
            starts_sentence = True
        previous = raw
        capital = (raw[0].isupper() and not starts_sentence) or (
            any(c.isupper() for c in raw[1:]) and any(c.islower() for c in raw)
        )
        out.append(Token(fold(raw), capital))
        starts_sentence = False
    return tuple(out)
