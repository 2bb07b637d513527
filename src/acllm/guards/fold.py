"""Fold adversarial spellings to plain text, keeping where each folded character came from.

Unicode compatibility forms are folded (NFKC: full-width letters and digits, mathematical
alphanumerics, ligatures), look-alike letters from other scripts become their Latin twins
(Cyrillic ``а``, Greek ``Ο``, Cherokee ``Ꭰ``...), and invisible characters (zero-width spaces and
joiners, soft hyphens, byte-order marks) are dropped. ``where[i]`` is the offset in the original
text of folded character ``i``, so a finding on the folded text edits the original.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

ZERO_WIDTH = frozenset(
    "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e"
)

# Letters that render like Latin ones (the subset of Unicode's confusables that matters for
# identifiers and instructions written in Latin script).
_CONFUSABLES = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ј": "j", "ԁ": "d", "ɡ": "g", "һ": "h",
    "ӏ": "l", "ԛ": "q", "ԝ": "w", "ү": "y", "ѵ": "v",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Ԍ": "G", "Ԝ": "W", "Ү": "Y",
    "Ӏ": "I", "Ԁ": "D", "Ѵ": "V",
    # Greek
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "Ϝ": "F", "ο": "o", "ν": "v", "ι": "i",
    "α": "a", "κ": "k", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
    # Cherokee capitals
    "Ꭰ": "D", "Ꭱ": "R", "Ꭲ": "T", "Ꭺ": "A", "Ꭼ": "E", "Ꮋ": "H", "Ꮃ": "W", "Ꮮ": "L", "Ꮇ": "M",
    "Ꮩ": "V", "Ꮪ": "S", "Ꮯ": "C", "Ꮲ": "P", "Ꮶ": "K", "Ꮐ": "G", "Ᏼ": "B", "Ꮓ": "Z",
}  # fmt: skip


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    if ch in ZERO_WIDTH:
        return ""
    if ch in _CONFUSABLES:
        return _CONFUSABLES[ch]
    if ch.isascii():
        return ch
    folded = unicodedata.normalize("NFKC", ch)
    return "".join(_CONFUSABLES.get(c, c) for c in folded)


def fold(text: str) -> tuple[str, list[int]]:
    """``text`` folded, and for each of its characters the offset of its source in ``text``."""
    if text.isascii():
        return text, list(range(len(text)))
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        folded = _fold_char(ch)
        out.append(folded)
        where.extend([i] * len(folded))
    return "".join(out), where


def plain(text: str) -> str:
    """Folded, lower case and without accents: for keyword matching ("Instrucción" -> "instruccion")."""
    folded, _ = fold(text)
    decomposed = unicodedata.normalize("NFKD", folded.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))
