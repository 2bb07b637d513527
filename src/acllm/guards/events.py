"""What the guards report: one event per finding, one outcome per checked text.

Events are safe to log: ``detail`` names the kind and the offsets of what was found, never the
value itself (a redacted e-mail address must not reappear in the log line about it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Stage = Literal["input", "output", "context"]
Action = Literal["block", "redact", "rewrite", "flag"]


@dataclass(frozen=True)
class GuardEvent:
    guard: str  # pii | injection | topic | length | grounding | output_pii | schema | judge
    stage: Stage
    action: Action
    detail: str  # what was found, without the found text
    spans: tuple[tuple[int, int], ...] = ()  # offsets into the text the guard was given

    def as_dict(self) -> dict[str, Any]:
        return {
            "guard": self.guard,
            "stage": self.stage,
            "action": self.action,
            "detail": self.detail,
            "spans": [list(s) for s in self.spans],
        }


@dataclass(frozen=True)
class GuardOutcome:
    text: str  # what goes on: the input with PII redacted, or the answer as it may be shown
    blocked: bool = False
    message: str = ""  # when blocked: a friendly reply for the user, in the user's language
    events: tuple[GuardEvent, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "blocked": self.blocked,
            "message": self.message,
            "events": [e.as_dict() for e in self.events],
        }


_MESSAGES: dict[str, dict[str, str]] = {
    "pii": {
        "en": "Please don't share personal data such as ID numbers, cards or bank accounts here. "
        "Ask again without them and I'll be glad to help.",
        "es": "Por favor, no compartas aquí datos personales como documentos de identidad, "
        "tarjetas o cuentas bancarias. Pregúntame de nuevo sin ellos y te ayudo encantado.",
    },
    "injection": {
        "en": "I can't follow that request: it asks me to change or reveal my instructions. "
        "Ask me about the topics I cover and I'll help.",
        "es": "No puedo seguir esa petición: me pide cambiar o revelar mis instrucciones. "
        "Pregúntame por los temas que trato y te ayudo.",
    },
    "topic": {
        "en": "Sorry, that is outside what I can help with here. Try a question about the topics "
        "this assistant covers.",
        "es": "Lo siento, eso queda fuera de lo que puedo tratar aquí. Prueba con una pregunta "
        "sobre los temas de este asistente.",
    },
    "length": {
        "en": "Your message is too long for me to handle ({size}, limit {limit}). Please shorten "
        "it or split it into several questions.",
        "es": "Tu mensaje es demasiado largo ({size}, límite {limit}). Acórtalo o divídelo en "
        "varias preguntas.",
    },
    "grounding": {
        "en": "I couldn't find support in the documents for a reliable answer to that. Could you "
        "rephrase the question or ask about something more specific?",
        "es": "No encuentro en los documentos apoyo suficiente para responder con seguridad. "
        "¿Puedes reformular la pregunta o concretarla más?",
    },
    "output_pii": {
        "en": "I can't show that answer because it contains personal data.",
        "es": "No puedo mostrar esa respuesta porque contiene datos personales.",
    },
    "schema": {
        "en": "I couldn't produce an answer in the expected format. Please try again.",
        "es": "No he podido dar la respuesta en el formato esperado. Inténtalo de nuevo.",
    },
}


def message(guard: str, lang: str, **values: Any) -> str:
    """The friendly text for a block by ``guard``, in ``lang`` (Spanish or English; English for
    any other language)."""
    texts = _MESSAGES.get(guard, _MESSAGES["injection"])
    text = texts["es" if lang.lower().startswith("es") else "en"]
    return text.format(**values) if values else text
