"""How ``pii.jsonl`` was made (run once, then frozen: its sha256 is in bench/data/README.md).

Valid identifiers come from python-stdnum's own check-digit functions under a fixed seed; invalid
ones change one check character (they are NOT personal data and carry no span). Each value is set
in a realistic Spanish or English sentence; spans are offsets into the final text (adversarial
spellings included: the span covers the value as written, separators and invisible characters too).
Every record gets a ``split`` (dev / test) so the detector is tuned on dev and reported on test.

Run: ``python bench/data/guards/make_pii.py`` (rewrites pii.jsonl; the sha256 test then fails).
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.es import ccc, dni, nie
from stdnum.mx import curp, rfc

SEED = 20261204
R = random.Random(SEED)
OUT = Path(__file__).resolve().parent / "pii.jsonl"

Piece = str | tuple[str, str]  # plain text, or (kind, value as written) for a labelled span


# ---- identifiers ------------------------------------------------------------------------------
def dni_value(valid: bool = True) -> str:
    number = f"{R.randrange(10**7, 10**8):08d}"
    letter = dni.calc_check_digit(number)
    if not valid:
        letter = R.choice([c for c in "TRWAGMYFPDXBNJZSQVHLCKE" if c != letter])
    return number + letter


def nie_value(valid: bool = True) -> str:
    prefix = R.choice("XYZ")
    digits = f"{R.randrange(10**7):07d}"
    letter = nie.calc_check_digit(prefix + digits)
    if not valid:
        letter = R.choice([c for c in "TRWAGMYFPDXBNJZSQVHLCKE" if c != letter])
    return prefix + digits + letter


def card_value(valid: bool = True) -> str:
    brand = R.choice(["visa", "visa", "mc", "amex"])
    if brand == "amex":
        stem = R.choice(["34", "37"]) + "".join(R.choice(string.digits) for _ in range(12))
    elif brand == "mc":
        stem = f"5{R.randint(1, 5)}" + "".join(R.choice(string.digits) for _ in range(13))
    else:
        stem = "4" + "".join(R.choice(string.digits) for _ in range(14))
    check = luhn.calc_check_digit(stem)
    if not valid:
        check = str((int(check) + R.randint(1, 9)) % 10)
    return stem + check


def group_card(number: str, sep: str) -> str:
    if len(number) == 15:
        parts = [number[:4], number[4:10], number[10:]]
    else:
        parts = [number[i : i + 4] for i in range(0, len(number), 4)]
    return sep.join(parts)


def iban_value(valid: bool = True, country: str | None = None) -> str:
    country = country or R.choice(["ES", "ES", "ES", "DE", "FR", "GB", "IT", "PT"])
    if country == "ES":
        bank, branch = f"{R.randrange(10**4):04d}", f"{R.randrange(10**4):04d}"
        account = f"{R.randrange(10**10):010d}"
        bban = bank + branch + ccc.calc_check_digits(bank + branch + "00" + account) + account
    elif country == "DE":
        bban = "".join(R.choice(string.digits) for _ in range(18))
    elif country == "FR":
        bban = "".join(R.choice(string.digits) for _ in range(23))
    elif country == "GB":
        bban = R.choice(["WEST", "BARC", "NWBK", "HBUK"]) + "".join(
            R.choice(string.digits) for _ in range(14)
        )
    elif country == "IT":
        bban = R.choice(string.ascii_uppercase) + "".join(
            R.choice(string.digits) for _ in range(22)
        )
    else:  # PT
        bban = "".join(R.choice(string.digits) for _ in range(21))
    check = std_iban.calc_check_digits(country + "00" + bban)
    value = country + check + bban
    if not valid:
        i = R.randrange(4, len(value))
        value = value[:i] + str((int(value[i], 36) + 1) % 10) + value[i + 1 :]
        assert not std_iban.is_valid(value)
    return value


def group4(value: str, sep: str = " ") -> str:
    return sep.join(value[i : i + 4] for i in range(0, len(value), 4))


_STATES = "AS BC BS CC CL CM CS CH DF DG GT GR HG JC MC MN MS NT NL OC PL QT QR SP SL SR TC TS TL VZ YN ZS"
_VOWELS, _CONS = "AEIOU", "BCDFGHJKLMNPQRSTVWXYZ"


def _stem_letters() -> str:
    return R.choice(_CONS) + R.choice(_VOWELS) + R.choice(_CONS) + R.choice(_CONS + _VOWELS)


def _birth() -> tuple[int, int, int]:
    return R.randint(1940, 2008), R.randint(1, 12), R.randint(1, 28)


def curp_value(valid: bool = True) -> str:
    while True:
        year, month, day = _birth()
        body = (
            _stem_letters()
            + f"{year % 100:02d}{month:02d}{day:02d}"
            + R.choice("HM")
            + R.choice(_STATES.split())
            + "".join(R.choice(_CONS) for _ in range(3))
            + (R.choice(string.digits) if year < 2000 else R.choice(string.ascii_uppercase))
        )
        check = curp.calc_check_digit(body)
        if not valid:
            check = str((int(check) + R.randint(1, 9)) % 10)
        value = body + check
        if curp.is_valid(value) == valid:
            return value


def rfc_value(valid: bool = True, company: bool = False) -> str:
    while True:
        year, month, day = _birth()
        letters = _stem_letters()[: 3 if company else 4]
        date = f"{year % 100:02d}{month:02d}{day:02d}"
        if not valid:  # an impossible date: not an RFC
            date = f"{year % 100:02d}{R.randint(13, 19)}{day:02d}"
        homoclave = "".join(R.choice(string.ascii_uppercase + string.digits) for _ in range(2))
        stem = letters + date + homoclave
        check = rfc.calc_check_digit(("" if not company else " ") + stem) if valid else "5"
        value = stem + check
        if rfc.is_valid(value) == valid and (not valid or rfc.is_valid(value, True)):
            return value


FIRST = [
    "ana",
    "luis",
    "marta",
    "jorge",
    "lucia",
    "pablo",
    "sofia",
    "diego",
    "elena",
    "carlos",
    "laura",
    "javier",
    "maria",
    "john",
    "emily",
]
LAST = [
    "garcia",
    "lopez",
    "martinez",
    "sanchez",
    "perez",
    "gomez",
    "ruiz",
    "diaz",
    "moreno",
    "smith",
    "brown",
    "taylor",
]
DOMAINS = [
    "gmail.com",
    "hotmail.es",
    "yahoo.com.mx",
    "empresa.es",
    "example.org",
    "correo.mx",
    "outlook.com",
    "uni.edu",
]


def email_value() -> str:
    first, last = R.choice(FIRST), R.choice(LAST)
    local = R.choice([f"{first}.{last}", f"{first}{last[0]}", f"{first}_{last}{R.randint(1, 99)}"])
    return f"{local}@{R.choice(DOMAINS)}"


def phone_value(lang: str) -> str:
    kind = R.choice(["es_mobile", "es_fixed", "mx", "us", "uk"] if lang == "en" else
                    ["es_mobile", "es_mobile", "es_fixed", "mx", "mx"])  # fmt: skip
    d = lambda n: "".join(R.choice(string.digits) for _ in range(n))  # noqa: E731
    if kind == "es_mobile":
        n = R.choice("67") + d(8)
        return R.choice([
            f"+34 {n[:3]} {n[3:6]} {n[6:]}", f"{n[:3]} {n[3:5]} {n[5:7]} {n[7:]}", n,
            f"(+34) {n[:3]}-{n[3:6]}-{n[6:]}", f"0034 {n}",
        ])  # fmt: skip
    if kind == "es_fixed":
        n = "9" + R.choice("1345") + d(7)
        return R.choice([f"{n[:3]} {n[3:6]} {n[6:]}", f"+34 {n[:2]} {n[2:5]} {n[5:7]} {n[7:]}"])
    if kind == "mx":
        n = R.choice(["55", "33", "81"]) + d(8)
        return R.choice([f"+52 {n[:2]} {n[2:6]} {n[6:]}", f"{n[:2]} {n[2:6]} {n[6:]}",
                         f"+52 1 {n[:2]} {n[2:6]} {n[6:]}"])  # fmt: skip
    if kind == "us":
        area, mid = R.choice(["415", "212", "646", "312"]), "555"
        return R.choice(
            [f"+1 ({area}) {mid}-{d(4)}", f"{area}-{mid}-{d(4)}", f"({area}) {mid} {d(4)}"]
        )
    return R.choice([f"+44 20 {d(4)} {d(4)}", f"+44 7700 {d(6)}"])


# ---- adversarial spellings --------------------------------------------------------------------
HOMO = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "A": "А", "E": "Е", "O": "О",
        "P": "Р", "C": "С", "X": "Х", "T": "Т", "H": "Н", "K": "К", "M": "М", "B": "В", "Y": "Υ",
        "Z": "Ζ", "N": "Ν", "I": "Ι", "S": "Ѕ", "J": "Ј", "i": "і", "s": "ѕ", "j": "ј", "y": "у",
        "L": "Ꮮ", "D": "Ꭰ", "V": "Ꮩ", "G": "Ԍ", "W": "Ԝ", "R": "Ꭱ", "F": "Ϝ"}  # fmt: skip
# Cyrillic, Greek and Cherokee look-alikes


def homoglyphs(value: str, share: float = 0.5) -> str:
    out = [HOMO[c] if c in HOMO and R.random() < share else c for c in value]
    if out == list(value):  # make sure at least one letter changed
        for i, c in enumerate(value):
            if c in HOMO:
                out[i] = HOMO[c]
                break
    return "".join(out)


def fullwidth(value: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c
                   for c in value)  # fmt: skip


def math_digits(value: str) -> str:  # MATHEMATICAL BOLD DIGIT ZERO = U+1D7CE
    return "".join(chr(0x1D7CE + int(c)) if c.isdigit() else c for c in value)


def zero_width(value: str) -> str:
    marks = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]
    out = []
    for i, c in enumerate(value):
        out.append(c)
        if i < len(value) - 1 and R.random() < 0.35:
            out.append(R.choice(marks))
    return "".join(out)


def split_lines(value: str) -> str:
    cut = R.randrange(len(value) // 3, 2 * len(value) // 3)
    return value[:cut] + R.choice(["\n", " \n", "\r\n"]) + value[cut:]


# ---- records ----------------------------------------------------------------------------------
records: list[dict[str, Any]] = []


def add(lang: str, note: str, *pieces: Piece) -> None:
    text, spans = "", []
    for piece in pieces:
        if isinstance(piece, tuple):
            kind, value = piece
            spans.append({"kind": kind, "start": len(text), "end": len(text) + len(value)})
            text += value
        else:
            text += piece
    records.append({"lang": lang, "text": text, "spans": spans, "note": note})


def fmt_dni(value: str) -> str:
    n, letter = value[:8], value[8]
    return R.choice([value, f"{n}-{letter}", f"{n[:2]}.{n[2:5]}.{n[5:]}-{letter}",
                     f"{n} {letter}", value.lower()])  # fmt: skip


def fmt_nie(value: str) -> str:
    return R.choice([value, f"{value[0]}-{value[1:8]}-{value[8]}", value.lower(),
                     f"{value[0]} {value[1:8]} {value[8]}"])  # fmt: skip


def fmt_card(value: str) -> str:
    return R.choice([group_card(value, " "), group_card(value, "-"), value, group_card(value, " ")])


def fmt_iban(value: str) -> str:
    return R.choice(
        [group4(value), value, group4(value), group4(value).lower(), group4(value, "-")]
    )


Maker = Callable[[], str]
VALID: dict[str, Maker] = {
    "dni": lambda: fmt_dni(dni_value()),
    "nie": lambda: fmt_nie(nie_value()),
    "card": lambda: fmt_card(card_value()),
    "iban": lambda: fmt_iban(iban_value()),
    "curp": lambda: R.choice([curp_value(), curp_value(), curp_value().lower()]),
    "rfc": lambda: rfc_value(company=R.random() < 0.3),
    "email": email_value,
}

TEMPLATES: dict[str, list[tuple[str, str, str]]] = {  # kind -> (lang, before, after)
    "dni": [
        ("es", "Hola, mi DNI es ", " y quiero cambiar la dirección de envío."),
        ("es", "Titular: Marta Ruiz, DNI ", ", con domicilio en Valencia."),
        ("es", "Para la reserva necesito que confirmes el documento: ", ". Gracias."),
        ("es", "Adjunto copia del DNI (", ") para tramitar la baja."),
        ("en", "My Spanish ID card (DNI) is ", ", please update my account."),
        ("en", "Passenger document: DNI ", " — seat 14C."),
    ],
    "nie": [
        ("es", "Soy extranjero, mi NIE es ", " y no me deja registrarme."),
        ("es", "NIE del arrendatario: ", "; fecha de entrada 01/09."),
        ("en", "I live in Madrid and my NIE number is ", ", is that enough?"),
        ("en", "Foreigner ID (NIE): ", ". Contract attached."),
    ],
    "card": [
        ("es", "Cobradme con la tarjeta ", ", caduca el 08/27."),
        ("es", "El cargo de 49,90 € aparece en mi tarjeta ", " dos veces."),
        ("en", "Please charge card ", " for the annual plan."),
        ("en", "My card number is ", " and the payment keeps failing."),
        ("es", "Número de tarjeta: ", " — titular Luis Gómez."),
    ],
    "iban": [
        ("es", "Haced la transferencia al IBAN ", " a nombre de Elena Díaz."),
        ("es", "Mi cuenta para la devolución: ", ", gracias."),
        ("en", "Refund to IBAN ", " please, the old account is closed."),
        ("en", "Bank details: ", " (Jorge Pérez)."),
        ("es", "Domiciliación en la cuenta ", " desde el mes que viene."),
    ],
    "curp": [
        ("es", "Mi CURP es ", " y el trámite me marca error."),
        ("es", "CURP del alumno: ", ". Grupo 3B."),
        ("es", "Para el registro del IMSS pusieron la CURP ", " pero el nombre está mal."),
        ("en", "My CURP is ", ", I need it on the invoice."),
    ],
    "rfc": [
        ("es", "Factura a nombre de RFC ", ", uso CFDI G03."),
        ("es", "Mi RFC es ", " y el régimen es 612."),
        ("es", "Datos fiscales: RFC ", ", código postal 06700."),
        ("en", "Please invoice our company, RFC ", ", Mexico City."),
    ],
    "email": [
        ("es", "Escríbeme a ", " cuando tengáis el pedido."),
        ("es", "Mi correo es ", ", no me llega el enlace de confirmación."),
        ("en", "You can reach me at ", " any time."),
        ("en", "Send the invoice to ", " please."),
        ("es", "Contacto: ", " (horario de oficina)."),
    ],
}


def build() -> None:
    # 1. valid identifiers in sentences (about 22 per kind)
    for kind, templates in TEMPLATES.items():
        for i in range(22):
            lang, before, after = templates[i % len(templates)]
            add(lang, f"valid {kind}", before, (kind, VALID[kind]()), after)
    for i in range(26):
        lang = "es" if i % 2 else "en"
        before, after = R.choice(
            [("Llámame al ", " por la tarde."), ("Mi móvil: ", ", mejor por WhatsApp."),
             ("Teléfono de contacto ", " (solo mañanas).")]
            if lang == "es" else
            [("Call me on ", " after 5pm."), ("My phone number is ", "."),
             ("Contact: Emily Brown, tel. ", ".")]
        )  # fmt: skip
        add(lang, "valid phone", before, ("phone", phone_value(lang)), after)

    # 2. two or three kinds in one message
    for i in range(16):
        lang = "es" if i % 3 else "en"
        if lang == "es":
            add(lang, "mixed", "Soy Lucía Moreno, DNI ", ("dni", fmt_dni(dni_value())),
                ", correo ", ("email", email_value()), " y teléfono ",
                ("phone", phone_value("es")), ".")  # fmt: skip
        else:
            add(lang, "mixed", "Name: John Smith. Card ", ("card", fmt_card(card_value())),
                ", email ", ("email", email_value()), ", IBAN ",
                ("iban", group4(iban_value())), ".")  # fmt: skip

    # 3. invalid check digits: numbers, not personal data
    invalid: list[tuple[str, str, Maker]] = [
        ("es", "El DNI {} no es válido, revisa la letra.", lambda: dni_value(False)),
        ("en", "Customer typed NIE {} (wrong control letter).", lambda: nie_value(False)),
        (
            "es",
            "Referencia de operación {} registrada.",
            lambda: group_card(card_value(False), " "),
        ),
        ("en", "Transaction id {} was declined.", lambda: card_value(False)),
        ("es", "Código de cuenta {} incorrecto.", lambda: group4(iban_value(False))),
        ("en", "The form rejected {} as an IBAN.", lambda: iban_value(False)),
        ("es", "La clave {} no corresponde a ninguna CURP.", lambda: curp_value(False)),
        ("es", "Folio {} del expediente.", lambda: rfc_value(False)),
    ]
    for i in range(64):
        lang, template, make = invalid[i % len(invalid)]
        add(lang, "invalid check", template.format(make()))

    # 4. numbers that look like PII but are not
    lookalikes = [
        ("es", "Tu pedido nº {} llegará el 12/03/2025 entre las 9:00 y las 14:00."),
        ("en", "Order #{} shipped on 2025-03-12, total $1,249.99."),
        ("es", "La factura F-2025/{} asciende a 1.250,00 € (IVA incluido)."),
        ("en", "Tracking number {} — estimated delivery in 3-5 business days."),
        ("es", "El código postal 28013 corresponde a Madrid centro; referencia catastral {}."),
        ("en", "We sold 1,234,567 units in Q3 2025, up 12.5% year on year (report {})."),
        ("es", "Versión 3.11.7, compilación {}."),
        ("en", "Call reference {} was logged at 14:32:10 on 04/12/2025."),
        ("es", "Importe: 2.345.678,90 MXN; póliza número {}."),
        ("en", "Serial number {}, manufactured 2019-07-01."),
        ("es", "Llegamos el 24-12-2025 a las 18.30 y salimos el 02-01-2026; localizador {}."),
        ("en", "ISBN {} is out of print."),
    ]
    for i in range(72):
        lang, template = lookalikes[i % len(lookalikes)]
        code = R.choice([
            f"{R.randrange(10**5, 10**7)}", f"{R.randrange(10**8, 10**9)}",
            f"{R.randrange(10**9, 10**10)}", f"ES{R.randrange(10**9, 10**10)}A",
            f"{R.randrange(1000, 9999)}-{R.randrange(100000, 999999)}",
            f"{R.randrange(10**11, 10**12)}", f"978-84-{R.randrange(1000, 9999)}-{R.randrange(100, 999)}-{R.randrange(10)}",
            f"{R.randrange(10**7, 10**8)}", f"1Z{R.randrange(10**15, 10**16)}",
        ])  # fmt: skip
        add(lang, "look-alike number", template.format(code))
    no_pii = [
        ("es", "Quiero devolver las zapatillas talla 42 que compré el 3 de marzo por 89,95 €."),
        ("en", "The meeting moved to 10:30, room 4B, second floor."),
        ("es", "El horario es de 9 a 14 h de lunes a viernes; sábados de 10 a 13 h."),
        ("en", "Follow us on Twitter @acme_support for outage updates."),
        ("en", "Download the icon as logo@2x.png from the assets folder."),
        ("es", "La fórmula es E = m·c², con c ≈ 299.792.458 m/s."),
        ("en", "Coordinates 40.4168, -3.7038 mark the centre of Madrid."),
        ("es", "Mi usuario en el foro es @lucia_88 y no puedo publicar."),
        ("en", "The IP address 192.168.100.200 is reserved for the printer."),
        ("es", "Temperatura máxima 38,5 °C y mínima 21 °C el 15/07/2025."),
    ]
    for lang, text in no_pii:
        add(lang, "no pii", text)

    # 5. adversarial spellings of valid identifiers
    adversarial: list[tuple[str, str, str, str, Maker]] = [
        ("es", "homoglyph", "Mi NIE es {} (lo escribo con el teclado ruso).", "nie",
         lambda: homoglyphs(nie_value())),
        ("es", "homoglyph", "DNI {} para la reserva.", "dni", lambda: homoglyphs(dni_value())),
        ("en", "homoglyph", "Email me at {} tonight.", "email", lambda: homoglyphs(email_value(), 0.3)),
        ("es", "homoglyph", "CURP {} del beneficiario.", "curp", lambda: homoglyphs(curp_value(), 0.4)),
        ("en", "homoglyph", "IBAN {} for the refund.", "iban", lambda: homoglyphs(group4(iban_value()))),
        ("es", "fullwidth", "Tarjeta {} gracias.", "card", lambda: fullwidth(group_card(card_value(), " "))),
        ("en", "fullwidth", "My DNI: {}.", "dni", lambda: fullwidth(dni_value())),
        ("es", "fullwidth", "Teléfono {} por favor.", "phone", lambda: fullwidth(phone_value("es"))),
        ("en", "math digits", "Card {} expires 09/28.", "card", lambda: math_digits(group_card(card_value(), " "))),
        ("es", "math digits", "Mi DNI es {}.", "dni", lambda: math_digits(dni_value())),
        ("es", "zero width", "Cuenta {} a mi nombre.", "iban", lambda: zero_width(group4(iban_value()))),
        ("en", "zero width", "card {} thanks", "card", lambda: zero_width(card_value())),
        ("es", "zero width", "correo {} gracias", "email", lambda: zero_width(email_value())),
        ("es", "zero width", "NIE {}.", "nie", lambda: zero_width(nie_value())),
        ("en", "zero width", "RFC {} for the invoice.", "rfc", lambda: zero_width(rfc_value())),
        ("es", "split line", "Tarjeta:\n{}\ngracias", "card", lambda: split_lines(group_card(card_value(), " "))),
        ("en", "split line", "IBAN:\n{}\nthanks", "iban", lambda: split_lines(group4(iban_value()))),
        ("es", "split line", "Mi teléfono es {}, llamad tarde.", "phone", lambda: split_lines(phone_value("es"))),
        ("es", "separators", "DNI {} (con puntos).", "dni",
         lambda: (lambda v: f"{v[:2]}.{v[2:5]}.{v[5:8]}.{v[8]}")(dni_value())),
        ("en", "separators", "card {} ok", "card",
         lambda: "/".join(group_card(card_value(), " ").split(" "))),
        ("es", "separators", "Cuenta {} (con guiones).", "iban", lambda: group4(iban_value(), "-")),
        ("en", "spaced", "my nie is {} ok", "nie", lambda: " ".join(nie_value())),
        ("es", "spaced", "Tarjeta {} vale.", "card", lambda: " ".join(card_value())),
    ]  # fmt: skip
    for i in range(69):
        lang, note, template, kind, make = adversarial[i % len(adversarial)]
        before, after = template.split("{}")
        add(lang, f"adversarial {note}", before, (kind, make()), after)


def main() -> None:
    build()
    order = list(range(len(records)))
    R.shuffle(order)
    with OUT.open("w", encoding="utf-8") as fh:
        for n, i in enumerate(order):
            rec = {"id": f"pii-{n + 1:03d}", "split": "dev" if n % 2 == 0 else "test", **records[i]}
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"{len(records)} records -> {OUT}")


if __name__ == "__main__":
    main()
