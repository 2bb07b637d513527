"""Language codes and detection (lingua, limited to the configured languages for speed).

Codes are ISO 639-1 ("en", "es"). Detection loads lingua's models for the candidate languages only,
on first use (about half a second each).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from acllm.errors import UserError

NAMES = {
    "ar": "Arabic",
    "ca": "Catalan",
    "de": "German",
    "en": "English",
    "es": "Spanish",
    "eu": "Basque",
    "fr": "French",
    "gl": "Galician",
    "hi": "Hindi",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "nl": "Dutch",
    "pl": "Polish",
    "pt": "Portuguese",
    "ru": "Russian",
    "sv": "Swedish",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "zh": "Chinese",
}


def check_code(code: str, *, what: str = "language") -> str:
    """Normalise and validate a language code; UserError naming the supported ones."""
    norm = code.strip().lower().replace("_", "-").split("-")[0]
    if norm not in NAMES:
        raise UserError(
            f"unknown {what} code '{code}'",
            hint=f"use an ISO 639-1 code: {', '.join(sorted(NAMES))}",
        )
    return norm


def name(code: str) -> str:
    return NAMES[check_code(code)]


@lru_cache(maxsize=8)
def _detector(codes: tuple[str, ...]) -> Any:
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in codes]
    return LanguageDetectorBuilder.from_languages(*langs).build()


def detect(text: str, candidates: Sequence[str] = ("en", "es"), default: str = "en") -> str:
    """The most likely language of ``text`` among ``candidates``; ``default`` when unsure."""
    codes = tuple(sorted({check_code(c) for c in candidates}))
    if len(codes) == 1:
        return codes[0]
    found = _detector(codes).detect_language_of(text)
    return default if found is None else str(found.iso_code_639_1.name).lower()
