"""Personal data in Spanish and English text: find it, and redact it before it reaches a model or a
log.

Kinds: e-mail addresses, phone numbers, payment cards (Luhn check), IBANs (ISO 13616 mod-97
check), Spanish DNI and NIE (control letter), Mexican CURP (check digit) and RFC (its structure;
the homoclave's check digit is not validated). A match whose check fails is not reported:
``4111 1111 1111 1112`` is a number, not a card. This is what keeps precision high on ordinary
text full of numbers.

Adversarial text is normalised first, with offsets kept so redaction edits the original: Unicode
compatibility forms are folded (full-width digits, look-alike letters such as mathematical
alphanumerics), and zero-width characters are dropped. Digits split by spaces, dots, dashes or
slashes are joined before checking (``4111-1111 1111.1111``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

ZERO_WIDTH = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"}
SEP = r"[ .\-/]?"  # what may split the digits of a number


@dataclass(frozen=True)
class Finding:
    kind: str  # email | phone | card | iban | dni | nie | curp | rfc
    start: int  # offsets into the ORIGINAL text
    end: int
    text: str  # as written in the original


def _normalise(text: str) -> tuple[str, list[int]]:
    """Folded text and, for each of its characters, the offset of its source in ``text``."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        if ch in ZERO_WIDTH:
            continue
        folded = unicodedata.normalize("NFKC", ch)
        for c in folded:
            out.append(c)
            where.append(i)
    return "".join(out), where


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    iban = iban.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", iban):
        return False
    moved = iban[4:] + iban[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def dni_ok(number: str, letter: str) -> bool:
    return _DNI_LETTERS[int(number) % 23] == letter.upper()


def nie_ok(prefix: str, number: str, letter: str) -> bool:
    return dni_ok(str("XYZ".index(prefix.upper())) + number, letter)


_CURP_CHARS = "0123456789ABCDEFGHIJKLMNÑOPQRSTUVWXYZ"


def curp_ok(curp: str) -> bool:
    curp = curp.upper()
    total = sum(_CURP_CHARS.index(c) * (18 - i) for i, c in enumerate(curp[:17]))
    return str((10 - total % 10) % 10) == curp[17]


_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")),
    ("iban", re.compile(rf"\b[A-Za-z]{{2}}\d{{2}}(?:{SEP}[A-Za-z0-9]{{1,4}}){{3,8}}\b")),
    ("card", re.compile(rf"(?<!\d)\d(?:{SEP}\d){{12,18}}(?!\d)")),
    ("curp", re.compile(r"\b[A-Za-z]{4}\d{6}[HMhmXx][A-Za-z]{5}[A-Za-z0-9]\d\b")),
    ("rfc", re.compile(r"\b[A-Za-zÑñ&]{3,4}\d{6}[A-Za-z0-9]{3}\b")),
    ("nie", re.compile(rf"\b([XYZxyz]){SEP}(\d{{7}}){SEP}([A-Za-z])\b")),
    ("dni", re.compile(rf"\b(\d{{8}}){SEP}([A-Za-z])\b")),
    (
        "phone",
        re.compile(
            rf"(?<![\w+])(?:\+|00)?\d{{1,3}}?[ .\-]?\(?\d{{2,4}}\)?(?:{SEP}\d{{2,4}}){{2,4}}(?!\w)"
        ),
    ),
]


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _valid(kind: str, match: re.Match[str]) -> bool:
    value = match.group(0)
    if kind == "card":
        digits = _digits(value)
        return 13 <= len(digits) <= 19 and luhn_ok(digits)
    if kind == "iban":
        return iban_ok(re.sub(r"[ .\-/]", "", value))
    if kind == "dni":
        return dni_ok(match.group(1), match.group(2))
    if kind == "nie":
        return nie_ok(match.group(1), match.group(2), match.group(3))
    if kind == "curp":
        return curp_ok(value)
    if kind == "phone":
        digits = _digits(value)
        return 9 <= len(digits) <= 15
    return True


def find(text: str) -> list[Finding]:
    """Every piece of personal data in ``text``, checked, without overlaps, in order."""
    folded, where = _normalise(text)
    taken: list[tuple[int, int]] = []
    found: list[Finding] = []
    for kind, pattern in _PATTERNS:  # the more specific kinds first: they claim their spans
        for match in pattern.finditer(folded):
            a, b = match.span()
            if any(a < end and start < b for start, end in taken) or not _valid(kind, match):
                continue
            taken.append((a, b))
            start, end = where[a], where[b - 1] + 1
            found.append(Finding(kind, start, end, text[start:end]))
    return sorted(found, key=lambda f: f.start)


def redact(text: str, kinds: set[str] | None = None) -> tuple[str, list[Finding]]:
    """``text`` with each finding replaced by ``[KIND]``, and the findings."""
    findings = [f for f in find(text) if kinds is None or f.kind in kinds]
    out, last = [], 0
    for f in findings:
        out.append(text[last : f.start])
        out.append(f"[{f.kind.upper()}]")
        last = f.end
    out.append(text[last:])
    return "".join(out), findings
