"""PII detection: check digits against python-stdnum, redaction, adversarial spellings, and no
false alarms on ordinary numbers."""

from __future__ import annotations

import random
import string

import pytest
from stdnum import iban as std_iban
from stdnum import luhn as std_luhn
from stdnum.es import dni as std_dni
from stdnum.es import nie as std_nie
from stdnum.mx import curp as std_curp

from acllm.guards import pii

RNG = random.Random(20261127)


def test_luhn_matches_stdnum() -> None:
    for _ in range(3000):
        digits = "".join(RNG.choice(string.digits) for _ in range(RNG.randint(13, 19)))
        assert pii.luhn_ok(digits) == std_luhn.is_valid(digits), digits


def test_dni_and_nie_match_stdnum() -> None:
    for _ in range(3000):
        number = f"{RNG.randrange(10**8):08d}"
        letter = RNG.choice(pii._DNI_LETTERS)
        assert pii.dni_ok(number, letter) == std_dni.is_valid(number + letter)
        prefix = RNG.choice("XYZ")
        assert pii.nie_ok(prefix, number[1:], letter) == std_nie.is_valid(
            prefix + number[1:] + letter
        )


def test_iban_matches_stdnum() -> None:
    valid = ["ES9121000418450200051332", "GB82WEST12345698765432", "DE89370400440532013000"]
    for code in valid:
        assert pii.iban_ok(code) and std_iban.is_valid(code)
    for _ in range(2000):  # one character changed: both must agree it is (almost always) wrong
        code = RNG.choice(valid)
        i = RNG.randrange(4, len(code))
        changed = code[:i] + RNG.choice(string.digits) + code[i + 1 :]
        assert pii.iban_ok(changed) == std_iban.is_valid(changed), changed


def test_curp_check_digit_matches_stdnum() -> None:
    base = "GOMC850315HDFRRR0"
    for _ in range(500):
        stem = (
            base[:4]
            + f"{RNG.randrange(100):02d}0{RNG.randint(1, 9)}1{RNG.randint(0, 9)}"
            + base[10:]
        )
        for digit in "0123456789":
            curp = stem + digit
            assert pii.curp_ok(curp) == std_curp.is_valid(curp), curp


TEXT = (
    "Soy Ana, DNI 12345678Z y NIE X1234567L. Paga con 4111 1111 1111 1111 o al IBAN "
    "ES91 2100 0418 4502 0005 1332. Escribe a ana.perez@example.com o llama al +34 600 123 456. "
    "CURP GOMC850315HDFRRR07, RFC GODE561231GR8."
)


def test_finds_each_kind_with_offsets_into_the_original() -> None:
    found = pii.find(TEXT)
    assert [f.kind for f in found] == [
        "dni", "nie", "card", "iban", "email", "phone", "curp", "rfc"
    ]  # fmt: skip
    for f in found:
        assert TEXT[f.start : f.end] == f.text
    redacted, _ = pii.redact(TEXT)
    assert "12345678Z" not in redacted and "[DNI]" in redacted and "[IBAN]" in redacted
    assert redacted.startswith("Soy Ana, DNI [DNI] y NIE [NIE]. Paga con [CARD]")
    only, _ = pii.redact(TEXT, {"email"})
    assert "[EMAIL]" in only and "12345678Z" in only


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("tarjeta ４１１１ １１１１ １１１１ １１１１ gracias", "card"),  # full-width digits
        ("tarjeta 4111-1111 1111.1111 gracias", "card"),  # split by mixed separators
        ("4111\u200b1111\u200b1111\u200b1111", "card"),  # zero-width spaces
        ("mail: ana\u200b.perez@exam\u200bple.com", "email"),
        ("DNI 12345678-Z", "dni"),
        ("NIE x-1234567-l", "nie"),
        ("IBAN es91 2100 0418 4502 0005 1332", "iban"),
    ],
)
def test_adversarial_spellings_are_still_found(text: str, kind: str) -> None:
    found = pii.find(text)
    assert [f.kind for f in found] == [kind]
    redacted, _ = pii.redact(text)
    assert f"[{kind.upper()}]" in redacted


@pytest.mark.parametrize(
    "text",
    [
        "El pedido 2024 cuesta 1.250 euros y llega el 12/03/2024.",
        "Invoice 4111 1111 1111 1112 is not a card (the Luhn check fails).",
        "DNI 12345678A (wrong letter), NIE X1234567A.",
        "IBAN ES91 2100 0418 4502 0005 1333 (one digit off).",
        "We sold 1,234,567 units in Q3 2026, up 12.5%.",
        "Version 3.11.7 and build 20261127.",
    ],
)
def test_ordinary_numbers_are_not_flagged(text: str) -> None:
    assert pii.find(text) == []
