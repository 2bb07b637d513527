"""Bytes to text for the text-like formats: UTF-8 first, then a Western single-byte code page.

Client files are mostly Spanish and English, written by Excel or old Windows tools: when a file
is not UTF-8 it is nearly always cp1252/Latin-1. charset-normalizer (when installed) is asked only
when cp1252 reads as implausible, because on short Spanish text it guesses Asian or Baltic pages.
"""

from __future__ import annotations

import codecs
import re

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16: its BOM starts with UTF-16-LE's
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# C0 and C1 control characters other than tab, line feed, vertical tab, form feed and return.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_SAMPLE = 1 << 16  # letters are weighed on the first 64 KiB: enough to tell, fast on big files


def _control_ratio(text: str) -> float:
    return len(_CONTROL.findall(text)) / max(len(text), 1)


def _looks_western(text: str) -> bool:
    """cp1252 text that is really Spanish/English: few control characters, mostly ASCII letters."""
    if _control_ratio(text) > 0.001:
        return False
    letters = [ch for ch in text[:_SAMPLE] if ch.isalpha()]
    accented = sum(1 for ch in letters if not ch.isascii())
    # Cyrillic or Greek bytes read as cp1252 become runs of accented letters.
    return accented <= 0.3 * len(letters)


def _cp1252(data: bytes) -> str:
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:  # one of its five undefined bytes: Latin-1 reads them as C1 controls
        return data.decode("latin-1")


def decode_bytes(data: bytes) -> tuple[str, str] | None:
    """(text, encoding name), or None when the bytes are not text (binary garbage)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError:
                return None
    if b"\x00" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return (text, "utf-8") if _control_ratio(text) <= 0.001 else None
    western = _cp1252(data)
    if _looks_western(western):
        return western, "cp1252"
    try:
        from charset_normalizer import from_bytes
    except ImportError:
        return None
    best = from_bytes(data).best()
    if best is None:
        return None
    text = str(best)
    return (text, str(best.encoding)) if _control_ratio(text) <= 0.001 else None
