"""The rolling summary of a conversation's evicted turns: its values, and the two summarisers.

A summary is a list of ``Fact`` lines. The extractive summariser (the default: the embedded 135M
model writes poor summaries) keeps the salient sentences of evicted turns — names, numbers, dates,
identifiers, first-person facts and preferences ("my name is", "me llamo", "I live in",
"prefiero") — and, when the bound is reached, drops the least salient, oldest first. A newer
sentence of the same shape with a new value ("Mi código postal es 28004" after "... es 25004")
marks the older one stale: stale lines are the first to leave when the summary is full. While there
is room both stay, in conversation order, since some things do have two values (two tickets). It is
deterministic and never invents a word. The model summariser asks a chat model to rewrite the
summary with the new turns; ``ConversationMemory`` checks its length and falls back to the
extractive one when it fails or overflows.

Every length here is in tokens of the ``count_tokens`` the memory was given, so the bound holds for
the model the context is sent to.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from acllm.errors import ServiceError
from acllm.types import ChatOptions, Message

if TYPE_CHECKING:
    from acllm.models.base import ChatModel

Count = Callable[[str], int]
Position = tuple[int, int]  # (time slot, turn number): the order of turns in a session

TRUNCATED = " […truncated]"  # ends every text memory had to cut: a cut is never silent
MIN_SCORE = 2.0  # sentences below are small talk: not worth a line of summary
MODEL_SCORE = 50.0  # a model-written summary outranks any single extracted sentence
_MAX_CHARS_PER_TOKEN = 16  # cut absurdly long input before measuring it (a 1 MB "word")

_SPLIT = re.compile(r"(?<=[.!?…])\s+|\n+")
_IDENTITY = re.compile(
    r"\b(my name is|my name's|call me|i am called|me llamo|mi nombre es|me dicen"
    r"|(?:my|your|mi|tu|su) (?:order|account|customer|ticket|booking|reservation|phone|email"
    r"|address|id|pedido|cuenta|n[úu]mero|reserva|tel[ée]fono|correo|direcci[óo]n|dni|ticket)"
    r"|order (?:number|no\b|#)|n[úu]mero de (?:pedido|cliente|cuenta|reserva|tel[ée]fono))",
    re.IGNORECASE,
)
_FIRST_PERSON = re.compile(
    r"\b(i (?:am|live|work|prefer|like|love|hate|want|need|have|use|study|was born)"
    r"|i'm|i've|i don't|i do not|my\b|prefiero|me gusta|me gustan|me encanta|no me gusta|odio"
    r"|quiero|necesito|vivo|trabajo|estudio|soy|tengo|uso|nac[íi]|mis?\b)",
    re.IGNORECASE,
)
_DATE = re.compile(
    r"\b(\d{1,2}[/.-]\d{1,2}(?:[/.-]\d{2,4})?|january|february|march|april|may|june|july|august"
    r"|september|october|november|december|monday|tuesday|wednesday|thursday|friday|saturday"
    r"|sunday|tomorrow|yesterday|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre"
    r"|octubre|noviembre|diciembre|lunes|martes|miércoles|jueves|viernes|sábado|domingo"
    r"|mañana|ayer)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d")
_NAME = re.compile(r"(?<=\w[\s,])[A-ZÁÉÍÓÚÑ][a-záéíóúñü]+|\S+@\S+\.\w+")


@dataclass(frozen=True)
class Turn:
    """One stored exchange: what the user said and what the assistant answered."""

    user: str
    assistant: str
    position: Position
    at: float  # when it was written (epoch seconds)


@dataclass(frozen=True)
class Fact:
    """One line of the summary, where it came from and how salient it is."""

    text: str
    score: float
    position: Position


class Summarizer(Protocol):
    async def fold(self, summary: Sequence[Fact], turns: Sequence[Turn], bound: int) -> list[Fact]:
        """A new summary of ``summary`` plus ``turns`` (oldest first) in ``bound`` tokens."""
        ...


def render(facts: Sequence[Fact]) -> str:
    """The summary text: its lines in conversation order."""
    return "\n".join(f.text for f in sorted(facts, key=lambda f: f.position))


def truncate(text: str, limit: int, count: Count) -> str:
    """``text`` if it fits ``limit`` tokens, else its longest head that fits with ``TRUNCATED``."""
    if count(text) <= limit:
        return text
    if count(TRUNCATED.strip()) > limit:
        return ""
    head = text[: max(1, limit) * _MAX_CHARS_PER_TOKEN]
    lo, hi = 0, len(head)  # the longest prefix length whose cut fits: binary search
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(head[:mid].rstrip() + TRUNCATED) <= limit:
            lo = mid
        else:
            hi = mid - 1
    cut = head[:lo]
    space = cut.rfind(" ")
    if space > len(cut) // 2:  # end on a word boundary when that costs little
        cut = cut[:space]
    return (cut.rstrip() + TRUNCATED).strip()


def salience(sentence: str, role: str) -> float:
    """How much a sentence is worth keeping: identity, first-person facts, numbers, dates, names."""
    score = 0.0
    if _IDENTITY.search(sentence):
        score += 4
    if role == "user" and _FIRST_PERSON.search(sentence):
        score += 2
    if _NUMBER.search(sentence):
        score += 2
    if _DATE.search(sentence):
        score += 1.5
    if _NAME.search(sentence):
        score += 1
    if score and role == "user":
        score += 1  # the user's own facts outlast the assistant's phrasing
    if sentence.rstrip().endswith("?"):
        score -= 1.5  # a question asks for facts more often than it states them
    return score


def _key(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


_TOKEN = re.compile(r"\S+@\S+\.\w+|\w+")


def shape(text: str) -> tuple[str, tuple[str, ...]] | None:
    """A fact line's wording with its values (numbers, names, emails) as slots, and those values.

    None when the line has no value or fewer than two other words: too little to tell two facts
    about the same thing from two different facts.
    """
    role, _, body = text.partition(": ")
    words: list[str] = []
    values: list[str] = []
    for i, token in enumerate(_TOKEN.findall(body)):
        is_name = i > 0 and len(token) > 1 and token[0].isupper()  # not the sentence's first word
        if "@" in token or is_name or any(c.isdigit() for c in token):
            words.append("#")
            values.append(token.casefold())
        else:
            words.append(token.casefold())
    if not values or len(words) - len(values) < 2:
        return None
    return f"{role}: {' '.join(words)}", tuple(values)


def _replaces(newer: tuple[str, ...], older: tuple[str, ...]) -> bool:
    """Values of two facts worded alike: one slot, or several whose first (what the line is
    about) is the same: "El envío a Bilbao tarda 7 días" replaces "... a Bilbao tarda 10 días",
    while "... a Granada tarda 10 días" and "My order 456 arrives on Monday" after "My order 123
    arrives on Monday" are other things."""
    return len(newer) == 1 or newer[0] == older[0]


def stale(facts: Sequence[Fact]) -> list[bool]:
    """For each fact, whether a later one states a new value of it: same speaker and wording.

    Later in the same turn counts as later.
    """
    groups: dict[str, list[tuple[Position, int, tuple[str, ...]]]] = {}
    for i, fact in enumerate(facts):
        found = shape(fact.text)
        if found is not None:
            groups.setdefault(found[0], []).append((fact.position, i, found[1]))
    flags = [False] * len(facts)
    for group in groups.values():  # only facts worded alike can supersede each other
        group.sort(key=lambda item: item[:2])
        for k, (_, i, older) in enumerate(group):
            flags[i] = any(_replaces(newer, older) for _, _, newer in group[k + 1 :])
    return flags


class ExtractiveSummarizer:
    """Keeps the most salient sentences of evicted turns under the bound; deterministic."""

    def __init__(self, count_tokens: Count, *, min_score: float = MIN_SCORE) -> None:
        self.count = count_tokens
        self.min_score = min_score

    def facts_of(self, turn: Turn, bound: int) -> list[Fact]:
        """The turn's sentences worth a summary line, each cut to half the bound at most."""
        found: list[Fact] = []
        for role, text in (("user", turn.user), ("assistant", turn.assistant)):
            for sentence in (s.strip() for s in _SPLIT.split(text)):
                score = salience(sentence, role) if sentence else 0.0
                if score >= self.min_score:
                    line = truncate(f"{role}: {sentence}", max(1, bound // 2), self.count)
                    if line:
                        found.append(Fact(line, score, turn.position))
        return found

    def merge(self, summary: Sequence[Fact], turns: Sequence[Turn], bound: int) -> list[Fact]:
        """Old facts plus the turns' facts; the current ones, most salient then newest, before the
        stale ones, as many as fit ``bound``."""
        unique: dict[str, Fact] = {}
        for fact in [*summary, *(f for t in turns for f in self.facts_of(t, bound))]:
            key = _key(fact.text)
            old = unique.get(key)
            # A repeated fact keeps its best score and its latest position (it is still current).
            if old is None or (fact.score, fact.position) > (old.score, old.position):
                unique[key] = Fact(
                    fact.text, max(fact.score, old.score if old else 0), fact.position
                )
        facts = list(unique.values())
        flags = stale(facts)
        order = sorted(
            range(len(facts)),
            key=lambda i: (not flags[i], facts[i].score, facts[i].position),
            reverse=True,
        )
        ranked = [facts[i] for i in order]  # current facts first, stale values last
        kept: list[Fact] = []
        used = 0
        for fact in ranked:
            room = bound - used - (1 if kept else 0)  # about one token per line break
            cost = self.count(fact.text)
            if cost > room and not kept:  # a model summary written under a larger bound
                fact = replace(fact, text=truncate(fact.text, room, self.count))
                cost = self.count(fact.text)
            if fact.text and cost <= room:
                kept.append(fact)
                used = bound - room + cost
        while kept and self.count(render(kept)) > bound:  # the estimate above is not exact
            kept.pop()  # the least salient of those kept
        return kept

    async def fold(self, summary: Sequence[Fact], turns: Sequence[Turn], bound: int) -> list[Fact]:
        return self.merge(summary, turns, bound)


_PROMPT = (
    "You keep the memory of a conversation between a user and an assistant. Rewrite the memory so "
    "it also holds what matters in the new turns. Keep every name, number, date, identifier, "
    "preference and decision exactly as written; drop greetings and small talk. Write short "
    "factual lines in the language of the conversation, at most {words} words in all. Reply with "
    "the memory only."
)


class ModelSummarizer:
    """A chat model rewrites summary + evicted turns; raises ServiceError on an unusable answer."""

    def __init__(self, model: ChatModel, count_tokens: Count, *, timeout_s: float = 30.0) -> None:
        self.model = model
        self.count = count_tokens
        self.timeout_s = timeout_s

    async def fold(self, summary: Sequence[Fact], turns: Sequence[Turn], bound: int) -> list[Fact]:
        lines = [f"user: {t.user}\nassistant: {t.assistant}" for t in turns]
        prompt = [
            Message("system", _PROMPT.format(words=max(8, bound * 2 // 3))),
            Message(
                "user",
                f"Memory so far:\n{render(summary) or '(empty)'}\n\nNew turns:\n"
                + "\n\n".join(lines),
            ),
        ]
        opts = ChatOptions(max_tokens=bound, temperature=0.0, timeout=self.timeout_s)
        reply = await self.model.chat(prompt, opts)
        text = reply.text.strip()
        if reply.finish_reason == "length":
            raise ServiceError(f"the summary model ran past {bound} tokens: its summary is cut")
        if not text:
            raise ServiceError("the summary model returned an empty summary")
        if self.count(text) > bound:
            raise ServiceError(f"the summary model wrote {self.count(text)} tokens, over {bound}")
        position = turns[-1].position if turns else (summary[-1].position if summary else (0, 0))
        return [Fact(text, MODEL_SCORE, position)]
