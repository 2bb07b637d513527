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
from collections.abc import Callable, Collection
from dataclasses import dataclass

from acllm.guards.fold import fold, plain

SEP = r"[ .\-/]?"  # what may split the digits of a number


@dataclass(frozen=True)
class Finding:
    kind: str  # email | phone | card | iban | dni | nie | curp | rfc
    start: int  # offsets into the ORIGINAL text
    end: int
    text: str  # as written in the original


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


def _date_ok(yymmdd: str) -> bool:
    month, day = int(yymmdd[2:4]), int(yymmdd[4:6])
    return 1 <= month <= 12 and 1 <= day <= (
        29 if month == 2 else 30 if month in (4, 6, 9, 11) else 31
    )


_CURP_STATES = frozenset(
    [
        "AS",
        "BC",
        "BS",
        "CC",
        "CL",
        "CM",
        "CS",
        "CH",
        "DF",
        "DG",
        "GT",
        "GR",
        "HG",
        "JC",
        "MC",
        "MN",
        "MS",
        "NT",
        "NL",
        "OC",
        "PL",
        "QT",
        "QR",
        "SP",
        "SL",
        "SR",
        "TC",
        "TS",
        "TL",
        "VZ",
        "YN",
        "ZS",
        "NE",
    ]
)


def curp_full_ok(curp: str) -> bool:
    """Check digit, birth date and state code (``NE``: born abroad)."""
    curp = curp.upper()
    return _date_ok(curp[4:10]) and curp[11:13] in _CURP_STATES and curp_ok(curp)


def rfc_ok(rfc: str) -> bool:
    """Structure and date of a Mexican RFC. The homoclave's check digit is NOT required, as
    python-stdnum does by default: older RFCs do not always satisfy it."""
    rfc = rfc.upper()
    stem = 4 if len(rfc) == 13 else 3
    return _date_ok(rfc[stem : stem + 6])


# What may split the characters of a number: one space, dot, dash, slash or tab, or a line break
# with spaces around it (a number pasted across two lines).
SEP = r"(?:[ \t]*\r?\n[ \t]*|[ .\-/\t])?"
_NOT_AFTER = r"(?![^\W_])"  # no letter or digit right after
_NOT_BEFORE = r"(?<![^\W_])"

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.([A-Za-z]{2,})")
_FILE_SUFFIXES = frozenset(
    ["png", "jpg", "jpeg", "gif", "svg", "webp", "pdf", "css", "js", "json", "html", "txt", "zip"]
)
_IBAN_START = re.compile(rf"{_NOT_BEFORE}([A-Za-z]{{2}})({SEP})(\d{{2}})")
_IBAN_GROUP = re.compile(rf"{SEP}([A-Za-z0-9]{{1,4}})")
_IBAN_LENGTH = {
    "ES": 24, "DE": 22, "FR": 27, "GB": 22, "IT": 27, "PT": 25, "NL": 18, "BE": 16, "AT": 20,
    "CH": 21, "IE": 22, "LU": 20, "AD": 24, "PL": 28, "SE": 24, "DK": 18, "FI": 18, "NO": 15,
}  # fmt: skip
_CARD = re.compile(rf"{_NOT_BEFORE}\d(?:{SEP}\d){{12,18}}{_NOT_AFTER}")
_CURP = re.compile(r"\b[A-Z]{4}\d{6}[HMX][A-Z]{5}[A-Z0-9]\d\b", re.IGNORECASE)
_RFC = re.compile(r"\b[A-ZÑ&]{3,4}\d{6}[A-Z0-9]{3}\b", re.IGNORECASE)
_NIE = re.compile(rf"{_NOT_BEFORE}([XYZxyz]){SEP}(\d(?:{SEP}\d){{6}}){SEP}([A-Za-z]){_NOT_AFTER}")
_DNI = re.compile(rf"{_NOT_BEFORE}(\d(?:{SEP}\d){{7}}){SEP}([A-Za-z]){_NOT_AFTER}")
_PHONE = re.compile(
    rf"(?<![\w+])(?:\(?(?:\+|00)\d{{1,3}}\)?{SEP})?\(?\d{{1,4}}\)?(?:{SEP}\(?\d{{1,4}}\)?){{0,6}}{_NOT_AFTER}"
)
# Words just before a number that say what it is (accents already stripped, lower case).
_PHONE_WORDS = re.compile(
    r"\b(tel|telf|telefono|tlf|movil|celular|cel|llama\w*|whatsapp|fax|phone|call|mobile|cell"
    r"|contacto|contact|ring|text)\b"
)
_NOT_PHONE_WORDS = re.compile(
    r"\b(pedido|order|ref|referencia|reference|factura|invoice|tracking|seguimiento|serial|serie"
    r"|isbn|poliza|policy|localizador|version|build|compilacion|ip|importe|transaction|id|expediente"
    r"|folio|catastral|report|informe|codigo|code|numero de cuenta|account)\b"
)

Span = tuple[int, int]


def _email(folded: str) -> list[Span]:
    return [m.span() for m in _EMAIL.finditer(folded) if m.group(1).lower() not in _FILE_SUFFIXES]


def _iban(folded: str) -> list[Span]:
    """Country, check digits, then groups of up to four: the longest run of groups that makes a
    valid IBAN (of the country's length when it is known) and ends where a word ends."""
    out: list[Span] = []
    for start in _IBAN_START.finditer(folded):
        country = start.group(1).upper()
        want = _IBAN_LENGTH.get(country)
        compact, pos, best = country + start.group(3), start.end(), 0
        while len(compact) < 34 and (group := _IBAN_GROUP.match(folded, pos)):
            compact, pos = compact + group.group(1), group.end()
            ends_word = pos == len(folded) or not folded[pos].isalnum()
            fits = len(compact) == want if want else len(compact) >= 15
            if ends_word and fits and iban_ok(compact):
                best = pos
            if want and len(compact) >= want:
                break
        if best:
            out.append((start.start(), best))
    return out


def _card(folded: str) -> list[Span]:
    return [m.span() for m in _CARD.finditer(folded) if luhn_ok(_digits(m.group(0)))]


def _curp(folded: str) -> list[Span]:
    return [m.span() for m in _CURP.finditer(folded) if curp_full_ok(m.group(0))]


def _rfc(folded: str) -> list[Span]:
    return [m.span() for m in _RFC.finditer(folded) if rfc_ok(m.group(0))]


def _nie(folded: str) -> list[Span]:
    return [
        m.span()
        for m in _NIE.finditer(folded)
        if nie_ok(m.group(1), _digits(m.group(2)), m.group(3))
    ]


def _dni(folded: str) -> list[Span]:
    return [m.span() for m in _DNI.finditer(folded) if dni_ok(_digits(m.group(1)), m.group(2))]


def _phone(folded: str) -> list[Span]:
    """9 to 15 digits that are a phone by their shape or by what precedes them: an international
    prefix (``+34``, ``0052``) is enough; otherwise a word such as "teléfono" or "call" before it,
    or phone-like grouping (three or more groups split by spaces or dashes), and no word such as
    "pedido", "order" or "ISBN" just before."""
    out: list[Span] = []
    for m in _PHONE.finditer(folded):
        value = m.group(0)
        if not 9 <= len(_digits(value)) <= 15:
            continue
        before = plain(folded[max(0, m.start() - 40) : m.start()])
        if value.startswith(("+", "00", "(+")):
            out.append(m.span())
            continue
        near = before[-25:]
        if _NOT_PHONE_WORDS.search(near):
            continue
        groups = re.split(r"[ \-()\r\n\t]+", value.strip("()"))
        if _PHONE_WORDS.search(before) or (
            "." not in value and "/" not in value and len(groups) >= 3
        ):
            out.append(m.span())
    return out


# The more specific kinds first: they claim their spans.
_FINDERS: list[tuple[str, Callable[[str], list[Span]]]] = [
    ("email", _email),
    ("iban", _iban),
    ("card", _card),
    ("curp", _curp),
    ("rfc", _rfc),
    ("nie", _nie),
    ("dni", _dni),
    ("phone", _phone),
]
KINDS = tuple(kind for kind, _ in _FINDERS)


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def find(text: str, kinds: Collection[str] | None = None) -> list[Finding]:
    """Every piece of personal data in ``text`` (of ``kinds``: all when None), checked, without
    overlaps, in order. Offsets are into ``text`` as given."""
    folded, where = fold(text)
    taken: list[Span] = []
    found: list[Finding] = []
    for kind, finder in _FINDERS:
        if kinds is not None and kind not in kinds:
            continue
        for a, b in finder(folded):
            if any(a < end and start < b for start, end in taken):
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
