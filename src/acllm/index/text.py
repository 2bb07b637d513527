"""Text normalisation shared by every Index backend, so keyword search behaves the same everywhere.

Backends never tokenise themselves: they index ``" ".join(terms(text))`` and match the query's
``terms()`` (any of them, ranked by BM25). The SQLite backend feeds that string to FTS5, the
PostgreSQL backend builds its tsvector from the same terms, so the two rank alike. Changing
anything here changes what is stored: bump ``TEXT_VERSION`` so backends can tell an index built
with older rules (it must be re-ingested).

Terms are accent-folded, lower-cased Unicode words (single letters dropped), minus a short
English + Spanish stopword list, reduced by a light, language-agnostic stemmer (plurals, final
vowel, English -ing/-ed). It is crude on purpose: the corpus language is not known per chunk.
Measured with FTS5 BM25 (nDCG@10, shared/benchmarks), folded words alone vs these terms: SciFact
0.670 -> 0.683 (BASELINES' Snowball-stemmed BM25: 0.682), XQuAD es 0.950 -> 0.960, en 0.961 ->
0.969, and Spanish queries over English passages 0.368 -> 0.602 (shared stems: datos/data -> dat).
"""

from __future__ import annotations

import re
import unicodedata

TEXT_VERSION = 1

# Letters and digits only: "_" would split differently in FTS5's and PostgreSQL's own tokenisers.
_WORD = re.compile(r"[^\W_]+")

# Common function words. Words that are content words in the other language are left out on
# purpose ("son", "sea", "era", "sin", "once", "solo", "hay"), since one list serves both.
_STOPWORD_TEXT = """
    about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how if in into is it its itself
    just me more most my myself no nor not now of off on only or other our ours ourselves out
    over own same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves
    al ante bajo cada como con contra cual cuales cuando de del desde donde durante el ella ellas
    ellos en entre es esa esas ese eso esos esta estaba estado estan estas este esto estos fue
    fueron ha han hasta la las le les lo los me mi mis muy nos nosotros nuestra nuestro otra otro
    para pero poco por porque que quien se segun ser si sobre su sus tambien te tiene tienen toda
    todo todos tu tus un una uno unos unas usted ustedes ya yo
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def fold(text: str) -> str:
    """Lower-case and strip accents: "EDUCACIÓN" and "Educación" both become "educacion"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def stem(word: str) -> str:
    """A light stemmer for folded English and Spanish words.

    Plural and gender endings meet at one stem ("libro", "libros" -> "libr"; "ciudades",
    "ciudad" -> "ciudad"; "studies", "study" -> "stud"), and English -ing/-ed go. Short words and
    anything with digits are kept whole, so codes and numbers match exactly.
    """
    if len(word) <= 3 or not word.isalpha():
        return word
    if len(word) > 6 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 5 and word.endswith("ed") and not word.endswith("eed"):
        word = word[:-2]
    elif len(word) > 4 and word.endswith("ies"):
        word = word[:-3]
    elif len(word) > 4 and word.endswith("es"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if len(word) > 3 and word[-1] in "aeoy":
        word = word[:-1]
    return word


def terms(text: str, *, stemmed: bool = True) -> list[str]:
    """The keyword-search terms of ``text``, in order (repeats kept: BM25 counts them)."""
    words = _WORD.findall(fold(text))
    # Single letters go (mostly articles and initials); single digits stay ("page 5", "3 years").
    kept = [w for w in words if (len(w) > 1 or w.isdigit()) and w not in STOPWORDS]
    return [stem(w) for w in kept] if stemmed else kept


def term_string(text: str) -> str:
    """What a backend indexes for ``text``: its terms joined by spaces."""
    return " ".join(terms(text))
