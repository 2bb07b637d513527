"""Word lists (English and Spanish, accent-folded) behind the verifier's fact checks.

Small on purpose: each list names what an embedding blurs and a cache must not (negation, number
words, units, time words, opposite pairs). A word missing here costs a check, never a crash; the
near-miss set in bench/data/nearmiss.jsonl is how the lists are judged.
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


NEGATIONS = _words(
    """
    not no never none nobody nothing neither nor without nowhere nunca jamas nadie nada ningun
    ninguno ninguna ni sin tampoco
    """
)

# Opposites that are not spelled with a negation: (stem, stem). A question holding words of one
# stem that the other lacks, while the other holds the opposite stem, is a different question.
OPPOSITES: tuple[tuple[str, str], ...] = (
    ("includ", "exclud"), ("inclu", "exclu"), ("accept", "reject"), ("acept", "rechaz"),
    ("allow", "deny"), ("allow", "forbid"), ("permit", "prohib"), ("enabl", "disabl"),
    ("activ", "desactiv"), ("before", "after"), ("antes", "despues"), ("more", "less"),
    ("mas", "menos"), ("above", "below"), ("over", "under"), ("encima", "debajo"),
    ("increas", "decreas"), ("aument", "dismin"), ("open", "clos"), ("abiert", "cerrad"),
    ("abr", "cerr"), ("max", "min"), ("buy", "sell"), ("compr", "vend"), ("import", "export"),
    ("upload", "download"), ("sub", "baj"), ("sub", "descarg"), ("send", "receiv"),
    ("envi", "recib"), ("start", "end"), ("begin", "end"), ("inici", "termin"),
    ("first", "last"), ("primer", "ultim"), ("true", "false"), ("verdader", "fals"),
    ("pass", "fail"), ("win", "los"), ("gan", "perd"), ("add", "remov"), ("anad", "elimin"),
    ("agreg", "quit"), ("high", "low"), ("alt", "baj"), ("cheap", "expensiv"),
    ("barat", "car"), ("earl", "lat"), ("tempran", "tard"), ("minimum", "maximum"),
    ("entr", "sal"), ("arriv", "depart"), ("lleg", "sal"),
    ("public", "privat"), ("publi", "priva"), ("old", "new"), ("antigu", "nuev"),
)  # fmt: skip
# Stems shorter than this match whole words with a short inflection only ("car": caro, caras).
SHORT_STEM = 4
INFLECTIONS = ("", "s", "es", "o", "a", "os", "as", "e", "ed", "er", "ar", "ir", "ing")
NEGATIVE_PREFIXES = ("un", "in", "im", "il", "ir", "dis", "des", "non", "anti")

CARDINALS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "million": 1000000, "billion": 1000000000, "dozen": 12, "half": 0.5, "once": 11,
    "cero": 0, "uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7,
    "ocho": 8, "nueve": 9, "diez": 10, "doce": 12, "trece": 13, "catorce": 14,
    "quince": 15, "dieciseis": 16, "diecisiete": 17, "dieciocho": 18, "diecinueve": 19,
    "veinte": 20, "treinta": 30, "cuarenta": 40, "cincuenta": 50, "sesenta": 60,
    "setenta": 70, "ochenta": 80, "noventa": 90, "cien": 100, "ciento": 100, "mil": 1000,
    "millon": 1000000, "millones": 1000000, "docena": 12, "medio": 0.5, "media": 0.5,
}  # fmt: skip
# "once" is 11 in Spanish and "one time" in English: both are a count, so it stays.
ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "twentieth": 20,
    "primero": 1, "primera": 1, "primer": 1, "segundo": 2, "segunda": 2, "tercero": 3,
    "tercera": 3, "tercer": 3, "cuarto": 4, "cuarta": 4, "quinto": 5, "quinta": 5,
    "sexto": 6, "sexta": 6, "septimo": 7, "septima": 7, "octavo": 8, "octava": 8,
    "noveno": 9, "novena": 9, "decimo": 10, "decima": 10, "undecimo": 11, "onceavo": 11,
    "duodecimo": 12, "doceavo": 12, "vigesimo": 20,
}  # fmt: skip
# "second"/"segundo" is a unit of time after a number ("2 seconds"), an ordinal otherwise.
TIME_UNIT_AFTER_NUMBER = frozenset({"second", "seconds", "segundo", "segundos"})

UNITS = {
    "kg": "kg", "kilo": "kg", "kilos": "kg", "kilogram": "kg", "kilograms": "kg",
    "kilogramo": "kg", "kilogramos": "kg", "g": "g", "gram": "g", "grams": "g", "gramo": "g",
    "gramos": "g", "mg": "mg", "lb": "lb", "lbs": "lb", "pound": "lb", "pounds": "lb",
    "libra": "lb", "libras": "lb", "oz": "oz", "ounce": "oz", "ounces": "oz", "onza": "oz",
    "onzas": "oz", "ton": "t", "tons": "t", "tonelada": "t", "toneladas": "t",
    "km": "km", "kilometer": "km", "kilometers": "km", "kilometre": "km", "kilometres": "km",
    "kilometro": "km", "kilometros": "km", "mile": "mi", "miles": "mi", "milla": "mi",
    "millas": "mi", "m": "m", "meter": "m", "meters": "m", "metre": "m", "metres": "m",
    "metro": "m", "metros": "m", "cm": "cm", "centimeter": "cm", "centimeters": "cm",
    "centimetro": "cm", "centimetros": "cm", "mm": "mm", "millimeter": "mm", "milimetro": "mm",
    "milimetros": "mm", "ft": "ft", "foot": "ft", "feet": "ft", "pie": "ft", "pies": "ft",
    "inch": "in", "inches": "in", "pulgada": "in", "pulgadas": "in", "yard": "yd",
    "yards": "yd", "yarda": "yd", "yardas": "yd",
    "celsius": "C", "centigrade": "C", "centigrados": "C", "fahrenheit": "F", "kelvin": "K",
    "l": "L", "liter": "L", "liters": "L", "litre": "L", "litres": "L", "litro": "L",
    "litros": "L", "ml": "ml", "milliliter": "ml", "mililitro": "ml", "mililitros": "ml",
    "gallon": "gal", "gallons": "gal", "galon": "gal", "galones": "gal",
    "kb": "kB", "mb": "MB", "gb": "GB", "tb": "TB", "kbps": "kbps", "mbps": "Mbps",
    "gbps": "Gbps", "byte": "B", "bytes": "B", "kilobyte": "kB", "kilobytes": "kB",
    "megabyte": "MB", "megabytes": "MB", "gigabyte": "GB", "gigabytes": "GB",
    "terabyte": "TB", "terabytes": "TB", "ghz": "GHz", "mhz": "MHz", "hz": "Hz",
    "w": "W", "watt": "W", "watts": "W", "vatio": "W", "vatios": "W", "kw": "kW", "kwh": "kWh",
    "v": "V", "volt": "V", "volts": "V", "voltio": "V", "voltios": "V", "mah": "mAh",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h", "hora": "h", "horas": "h",
    "hourly": "h", "min": "min", "mins": "min", "minute": "min", "minutes": "min",
    "minuto": "min", "minutos": "min", "s": "s", "sec": "s", "secs": "s", "ms": "ms",
    "day": "d", "days": "d", "dia": "d", "dias": "d", "daily": "d", "diario": "d",
    "diaria": "d", "week": "wk", "weeks": "wk", "semana": "wk", "semanas": "wk",
    "weekly": "wk", "semanal": "wk", "month": "mo", "months": "mo", "mes": "mo",
    "meses": "mo", "monthly": "mo", "mensual": "mo", "mensuales": "mo", "year": "yr",
    "years": "yr", "ano": "yr", "anos": "yr", "annual": "yr", "yearly": "yr", "anual": "yr",
    "anuales": "yr", "decade": "decade", "decades": "decade", "decada": "decade",
    "century": "century", "siglo": "century",
    "$": "USD", "usd": "USD", "dollar": "USD", "dollars": "USD", "dolar": "USD",
    "dolares": "USD", "€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR", "£": "GBP",
    "gbp": "GBP", "sterling": "GBP", "peso": "MXN", "pesos": "MXN", "mxn": "MXN",
    "yen": "JPY", "cent": "cent", "cents": "cent", "centavo": "cent", "centavos": "cent",
    "centimo": "cent", "centimos": "cent", "%": "%", "percent": "%", "percentage": "%",
    "porcentaje": "%", "porciento": "%", "°": "deg", "degree": "deg", "degrees": "deg",
    "grado": "deg", "grados": "deg",
}  # fmt: skip

# Time words that name *which* time (not how long): weekdays, months, parts of the day, relative
# days and weeks. "may" counts as a month only when capitalised mid-sentence (see verify).
TIMES = {
    "monday": "mon", "tuesday": "tue", "wednesday": "wed", "thursday": "thu", "friday": "fri",
    "saturday": "sat", "sunday": "sun", "lunes": "mon", "martes": "tue", "miercoles": "wed",
    "jueves": "thu", "viernes": "fri", "sabado": "sat", "domingo": "sun",
    "january": "jan", "february": "feb", "march": "mar", "april": "apr", "june": "jun",
    "july": "jul", "august": "aug", "september": "sep", "october": "oct", "november": "nov",
    "december": "dec", "enero": "jan", "febrero": "feb", "marzo": "mar", "abril": "apr",
    "mayo": "may", "junio": "jun", "julio": "jul", "agosto": "aug", "septiembre": "sep",
    "setiembre": "sep", "octubre": "oct", "noviembre": "nov", "diciembre": "dec",
    "jan": "jan", "feb": "feb", "apr": "apr", "jun": "jun", "jul": "jul", "aug": "aug",
    "sep": "sep", "sept": "sep", "oct": "oct", "nov": "nov", "dec": "dec",
    "today": "today", "tonight": "tonight", "yesterday": "yesterday", "tomorrow": "tomorrow",
    "hoy": "today", "ayer": "yesterday", "anoche": "lastnight", "manana": "morning",
    "morning": "morning", "afternoon": "afternoon", "evening": "evening", "night": "night",
    "noon": "noon", "midnight": "midnight", "tarde": "afternoon", "noche": "night",
    "mediodia": "noon", "medianoche": "midnight", "madrugada": "earlymorning",
    "am": "am", "pm": "pm", "next": "next", "last": "last", "previous": "last",
    "past": "last", "proximo": "next", "proxima": "next", "siguiente": "next",
    "pasado": "last", "pasada": "last", "anterior": "last", "viene": "next",
    "spring": "spring", "summer": "summer", "autumn": "autumn", "fall": "autumn",
    "winter": "winter", "primavera": "spring", "verano": "summer", "otono": "autumn",
    "invierno": "winter", "weekend": "weekend", "weekday": "weekday",
}  # fmt: skip
TIMES.update({day + "s": TIMES[day] for day in [*list(TIMES)[:7], "weekend", "weekday"]})
TIMES.update({"sabados": "sat", "domingos": "sun", "mananas": "morning", "tardes": "afternoon"})
TIMES.update({"noches": "night", "mornings": "morning", "evenings": "evening", "nights": "night"})

# Function words, question words and frequent verbs: not content for the order checks.
STOPWORDS = _words(
    """
    a an the and or but if of to in on at by for from with as is are was were be been being am
    do does did done doing have has had having i me my we our you your he him his she her it its
    they them their this that these those there here what which who whom whose when where why
    how can could would should will shall may might must also than then so such very just about
    into onto over under out up down off any some all each other both only own same too s t el
    la los las un una unos unas y e o u pero si de del al a en con por para como es son era eran
    fue fueron ser sido estar esta estan estaba este esto estos estas ese esa esos esas aquel
    que quien quienes cual cuales cuando donde por que como cuanto cuanta cuantos cuantas mi mis
    tu tus su sus nuestro nuestra yo me te se nos le les lo ha han he hay hubo haber tiene
    tienen puedo puede pueden podria muy tambien mas ya solo sobre entre hasta desde durante
    tras
    """
)
