"""Prompt-injection detection in user messages and in retrieved document chunks (no model).

A text is looked at through several views, so that obfuscation does not hide it: folded (look-alike
letters, full-width forms and zero-width characters undone, accents and case dropped), with
spaced-out letters joined (``i g n o r e  p r e v i o u s``), with leetspeak undone (``1gn0r3``),
and with base64 runs decoded. Weighted Spanish and English patterns (override the instructions,
reveal the prompt, take on a new role, fake chat-template tokens, address the AI from inside a
document) each add evidence; the score is ``1 - prod(1 - w)`` over the patterns found, in [0, 1).
In documents, instructions inside hidden regions (HTML and Markdown comments, invisible styles)
count more: a reader never sees them, only the model would.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from acllm.guards.fold import plain

_V_OVERRIDE_EN = r"(ignore|disregard|forget|override|bypass|skip|drop|disobey)"
_V_OVERRIDE_ES = (
    r"(ignora\w*|olvida\w*|haz caso omiso|no hagas caso|pasa por alto|anula\w*|desobedece\w*"
    r"|omite\w*|no sigas|salta\w*)"
)
_RULES_EN = r"(instructions?|rules|directions|directives|guidelines|prompt|restrictions|policy|filters|programming|context|role)"
_RULES_ES = r"(instrucciones|reglas|normas|directrices|indicaciones|prompt|restricciones|filtros|politica|contexto|rol|documentos)"
_PRIOR_EN = r"(all|any|the|your|my|these|those|every|previous|prior|above|earlier|preceding|original|initial|system|safety|content|\s)*"
_PRIOR_ES = r"(todas|todo|las|los|tus|tu|el|la|de|del|anteriores|previas|previos|iniciales|sistema|seguridad|\s)*"

# (name, weight, pattern on the folded plain text)
_PATTERNS: list[tuple[str, float, re.Pattern[str]]] = [
    (name, weight, re.compile(pattern))
    for name, weight, pattern in [
        ("override", 0.85, rf"\b{_V_OVERRIDE_EN}\b{_PRIOR_EN}\b(previous|prior|above|earlier|preceding|your|all)\b{_PRIOR_EN}{_RULES_EN}\b"),
        ("override", 0.85, rf"\b{_V_OVERRIDE_ES}\b{_PRIOR_ES}\b{_RULES_ES}\b"),
        ("override", 0.6, rf"\b{_V_OVERRIDE_EN}\b (everything|all) (you were|you've been|you have been|i|we) (told|said)"),
        ("override", 0.6, r"\bolvida\w* (todo )?lo que te (han|hayan|habian) dicho"),
        ("override", 0.55, r"\b(previous|prior) instructions (are|were) (outdated|void|cancelled|wrong)|\binstrucciones (previas|anteriores) ya no (valen|sirven)"),
        ("reveal", 0.8, r"\b(reveal|show|print|repeat|output|dump|display|tell me|give me|write|leak|what (were|are|is))\b.{0,40}\b(system (prompt|message)|(your|the) (initial |original |hidden |secret |full |entire |exact )?(instructions|prompt)|text above|hidden instructions)|\b(contents?|text) of (your|the) (instructions|prompt|system message)"),
        ("reveal", 0.8, r"\b(revela\w*|muestra\w*|ensena\w*|repite|escribe|vuelca|dime|imprime|cuales (son|fueron))\b.{0,40}\b(prompt|mensaje de sistema|tus instrucciones|instrucciones (ocultas|iniciales|que te dieron)|texto que hay encima)|\bcontenido de tus instrucciones"),
        ("role", 0.45, r"\b(you are now|from now on,? you|you're now|you are no longer|act as (my|an?) (unrestricted|uncensored|personal hacker)|no longer an? (assistant|customer support|bot))"),
        ("role", 0.45, r"\b(a partir de ahora|de ahora en adelante)\b.{0,30}\b(eres|responde|insulta|actua)|\bya no eres\b|\bdeja de (actuar|ser) como\b|\bcomportate como\b"),
        ("role", 0.35, r"\b(pretend|finge|imagina que)\b.{0,40}\b(no|without|sin)\b.{0,20}\b(policy|politica|rules|reglas|limits|limites|restrictions|restricciones)"),
        ("unrestricted", 0.45, r"\b(without (any )?(restrictions|limits|filters|censorship)|no (limits|restrictions|content policy)|unrestricted|uncensored|sin (restricciones|filtros|censura|limites)|ninguna norma|todas las reglas|(have|with) no content policy|no tienes politica de contenidos?)\b"),
        ("jailbreak", 0.7, r"\b(dan( mode)?|jailbreak\w*|freegpt|libregpt)\b"),
        ("dev_mode", 0.35, r"\b(developer mode|modo desarrollador|system override|god mode)\b"),
        ("disable_safety", 0.5, r"\b(disable|turn off|switch off|desactiva\w*|apaga\w*)\b.{0,20}\b(safety|security|filters?|seguridad|filtros?)\b|\bsafety filters (are )?off\b"),
        ("confidential", 0.45, r"\b(reveal|list|show|revela\w*|lista\w*|muestra\w*)\b.{0,30}\b(confidential|internal data|every customer|confidenciales|datos internos|todos los clientes)"),
        ("terminal", 0.35, r"\b(simulate|simula\w*|act as|actua como)\b.{0,10}\b(a |an |una |un )?(terminal|shell|linux console|consola)"),
        ("new_task", 0.35, r"\b(new instructions|your new (task|role|instructions)|nuevas instrucciones|tu nueva tarea|follow mine|sigue las mias|obedeceme|obey only)\b"),
        ("fake_token", 0.6, r"(</?(system|user|assistant)>|\[/?inst\]|<\|im_(start|end)\|>|(^|\n)\s*(system|sistema)\s*:)"),
        ("address_ai", 0.5, r"\b(note (to|for) (the )?(ai|assistant|language models?|llms?)|if you are an? (ai|language model|llm)|attention,? ai|instructions (to|for) the ai|ai assistant:|dear assistant|hey,? (chatgpt|claude|llama|model)|important note for (ai|language models))"),
        ("address_ai", 0.5, r"\b(nota (para|al) (el )?(modelo|la ia|asistente)|si eres una ia|atencion,? agentes? de ia|instrucciones para la ia|querido asistente|oye,? modelo|nota importante para modelos)"),
        ("address_ai", 0.5, r"(^|[\s.>\]])(assistant|asistente|ai|ia)\s*[:,]\s*(ignore|ignora|forget|olvida|when|cuando|you must|debes|respond|responde|disregard)"),
        ("exfiltrate", 0.55, r"\b(forward|send|reenvia\w*|envia\w*)\b.{0,40}\b(conversation|conversacion|messages|mensajes|prompt)\b.{0,40}(https?://|to http|a http)"),
        ("secrets", 0.45, r"\b(api key|admin(istrator)? password|clave de (la )?api|contrasena del administrador)\b"),
        ("exec", 0.45, r"\b(execute|ejecuta|run)\b.{0,20}(rm -rf|cat /etc/passwd|sudo )"),
    ]
]  # fmt: skip
_HIDDEN = [
    re.compile(r"<!--(.*?)-->", re.S),
    re.compile(r"^\[//\]: #\s*[(\"'](.*?)[)\"']\s*$", re.M),
    re.compile(r"<(?:span|div|p)[^>]*(?:display\s*:\s*none|font-size\s*:\s*0|color\s*:\s*white|visibility\s*:\s*hidden)[^>]*>(.*?)</(?:span|div|p)>", re.S | re.I),
    re.compile(r"\[(?:hidden|oculto)\](.*?)\[/(?:hidden|oculto)\]", re.S | re.I),
    re.compile(r"\u200b([^\u200b]{8,}?)\u200b", re.S),
]  # fmt: skip
_SPACED = re.compile(r"(?<!\S)\S(?: {1,2}\S){3,}(?!\S)")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_LEET = str.maketrans(
    {"1": "i", "3": "e", "0": "o", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
_LEET_WORD = re.compile(r"\b(?=\w*[a-z])(?=\w*[0-9])\w+\b")


@dataclass(frozen=True)
class InjectionResult:
    score: float  # 0 (nothing found) to almost 1
    reasons: tuple[str, ...]  # the names of the patterns found, "hidden:" when in a hidden region

    def flagged(self, threshold: float) -> bool:
        return self.score >= threshold


def _despaced(text: str) -> str:
    """``i g n o r e  p r e v i o u s`` -> ``ignore previous`` (a double space splits words)."""

    def join(m: re.Match[str]) -> str:
        return " ".join(w.replace(" ", "") for w in m.group(0).split("  "))

    return _SPACED.sub(join, text.replace("   ", "  "))


def _decoded(text: str) -> list[str]:
    out = []
    for m in _BASE64.finditer(text):
        run = m.group(0)
        try:
            raw = base64.b64decode(run + "=" * (-len(run) % 4), validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if decoded.isprintable() and sum(c.isalpha() or c == " " for c in decoded) > 0.8 * len(
            decoded
        ):
            out.append(decoded)
    return out


def views(text: str) -> list[str]:
    """The texts to match patterns on: folded plain text, then de-obfuscated variants."""
    base = plain(text)
    out = [base]
    spaced = _despaced(base)
    if spaced != base:
        out.append(spaced)
    if _LEET_WORD.search(base):
        out.append(_LEET_WORD.sub(lambda m: m.group(0).translate(_LEET), base))
    out.extend(plain(d) for d in _decoded(text))
    return out


def _evidence(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for view in views(text):
        for name, weight, pattern in _PATTERNS:
            if weight > found.get(name, 0.0) and pattern.search(view):
                found[name] = weight
    return found


def _combine(weights: list[float]) -> float:
    rest = 1.0
    for w in weights:
        rest *= 1.0 - w
    return 1.0 - rest


def detect(text: str, *, document: bool = False) -> InjectionResult:
    """How strongly ``text`` looks like a prompt injection. ``document=True`` for retrieved chunks:
    hidden regions are screened apart, and any instruction found inside one counts more."""
    found = _evidence(text)
    reasons = sorted(found)
    weights = list(found.values())
    if document:
        for pattern in _HIDDEN:
            for m in pattern.finditer(text):
                hidden = _evidence(m.group(1))
                if hidden:
                    reasons.extend(f"hidden:{name}" for name in sorted(hidden))
                    weights.append(0.6)
    return InjectionResult(round(_combine(weights), 4), tuple(dict.fromkeys(reasons)))
