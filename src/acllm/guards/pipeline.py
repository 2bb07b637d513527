"""The guard pipelines the assistant calls: input guards before the cache and the model, context
screening before retrieved chunks enter the prompt, output guards before the answer is shown.

Fast checks run first and a blocking one stops the rest: length, then injection, topic and PII
(regular expressions on folded text, about a millisecond); a judge model is asked only when one is
configured, and only about what the fast checks let through.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from acllm.embed.base import Embedder
from acllm.guards import pii
from acllm.guards.events import Action, GuardEvent, GuardOutcome, Stage, message
from acllm.guards.injection import detect
from acllm.guards.judge import judge_injection
from acllm.guards.output import grounding, schema_errors
from acllm.guards.settings import GuardSettings
from acllm.guards.topics import TopicGuard

_TOKEN = re.compile(r"\w+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """Words and punctuation marks: close to (a little under) a subword tokenizer's count."""
    return len(_TOKEN.findall(text))


def _pii_detail(findings: Sequence[pii.Finding]) -> str:
    kinds: dict[str, int] = {}
    for f in findings:
        kinds[f.kind] = kinds.get(f.kind, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))


def _spans(findings: Sequence[pii.Finding]) -> tuple[tuple[int, int], ...]:
    return tuple((f.start, f.end) for f in findings)


def _action(name: str) -> Action:
    return "redact" if name == "redact" else "block" if name == "block" else "flag"


def _pii_pass(
    text: str, action: str, kinds: Sequence[str], guard: str, stage: Stage
) -> tuple[str, GuardEvent | None]:
    """``text`` (redacted when the action says so) and the event, if anything was found."""
    redacted, found = pii.redact(text, set(kinds))
    if not found:
        return text, None
    act = _action(action)
    event = GuardEvent(guard, stage, act, _pii_detail(found), _spans(found))
    return (redacted if act == "redact" else text), event


@dataclass
class InputGuards:
    settings: GuardSettings
    topics: TopicGuard | None = None
    judge: Any = None  # a ChatModel, only when settings.judge_model is set

    @classmethod
    def from_settings(
        cls, settings: GuardSettings, embedder: Embedder | None = None, model: Any = None
    ) -> InputGuards:
        """``embedder`` adds meaning to the topic lists; ``model`` is the judge named by
        ``settings.judge_model`` (ignored when that is None)."""
        topics = None
        if settings.topic_action != "off" and (settings.topics_allow or settings.topics_deny):
            topics = TopicGuard(
                settings.topics_allow,
                settings.topics_deny,
                embedder,
                settings.topic_similarity,
                settings.topic_min_words,
            )
        return cls(settings, topics, model if settings.judge_model else None)

    async def check_input(self, text: str, lang: str = "en") -> GuardOutcome:
        s = self.settings
        events: list[GuardEvent] = []

        def blocked(guard: str, **values: Any) -> GuardOutcome:
            return GuardOutcome(text, True, message(guard, lang, **values), tuple(events))

        size, tokens = len(text), estimate_tokens(text) if s.max_input_tokens else 0
        if size > s.max_input_chars or (s.max_input_tokens and tokens > s.max_input_tokens):
            over_chars = size > s.max_input_chars
            limit = s.max_input_chars if over_chars else s.max_input_tokens
            unit = "characters" if over_chars else "tokens (estimated)"
            what = f"{size if over_chars else tokens} {unit} > {limit}"
            events.append(GuardEvent("length", "input", "block", what))
            return blocked("length", size=f"{size if over_chars else tokens}", limit=limit)
        if s.injection != "off":
            found = detect(text)
            flagged = found.flagged(s.injection_threshold)
            guard, detail = "injection", f"score {found.score:.2f}: {', '.join(found.reasons)}"
            if not flagged and self.judge is not None:
                flagged = await judge_injection(self.judge, text) is True
                guard, detail = "judge", "judge model: injection"
            if flagged:
                events.append(GuardEvent(guard, "input", _action(s.injection), detail))
                if s.injection == "block":
                    return blocked("injection")
        if self.topics is not None:
            if self.topics.embedder is None:
                verdict, detail = self.topics.check(text)
            else:  # embedding the message blocks: off the event loop
                verdict, detail = await asyncio.to_thread(self.topics.check, text)
            if verdict != "ok":
                act = _action(s.topic_action)
                events.append(GuardEvent("topic", "input", act, f"{verdict}: {detail}"))
                if s.topic_action == "block":
                    return blocked("topic")
        out = text
        if s.pii != "off":
            out, event = _pii_pass(text, s.pii, s.pii_kinds, "pii", "input")
            if event is not None:
                events.append(event)
                if event.action == "block":
                    return blocked("pii")
        return GuardOutcome(out, False, "", tuple(events))

    def scrub(self, text: str) -> str:
        """``text`` with its personal data redacted (unless PII checks are off): for earlier
        turns a client sends back, which must not carry what the question's check removed."""
        if self.settings.pii == "off":
            return text
        return pii.redact(text, set(self.settings.pii_kinds))[0]

    def screen_context(self, chunks: Sequence[str]) -> list[tuple[int, GuardEvent]]:
        """The retrieved chunks that carry instructions for the model, with an event each whose
        action says what to do: ``block`` = drop the chunk before the prompt, ``flag`` = keep it
        and record it. Chunks not listed are clean."""
        action = self.settings.context_injection
        if action == "off":
            return []
        out = []
        for i, chunk in enumerate(chunks):
            found = detect(chunk, document=True)
            if found.flagged(self.settings.injection_threshold):
                detail = f"chunk {i}: score {found.score:.2f}: {', '.join(found.reasons)}"
                out.append((i, GuardEvent("injection", "context", _action(action), detail)))
        return out


@dataclass
class OutputGuards:
    settings: GuardSettings
    checker: Any = None  # acllm.evals.faithfulness.Checker, when an embedder is given
    judge: Any = None

    @classmethod
    def from_settings(
        cls, settings: GuardSettings, embedder: Embedder | None = None, model: Any = None
    ) -> OutputGuards:
        """Grounding needs ``embedder`` (the claim checker) or a judge ``model``; without either
        it is skipped, and each answer gets a ``grounding`` flag saying it was not checked."""
        checker = None
        if embedder is not None and settings.grounding != "off":
            from acllm.evals.faithfulness import Checker

            checker = Checker(embedder)
        return cls(settings, checker, model if settings.judge_model else None)

    @property
    def rewrites(self) -> bool:
        """True when a check may change or stop the answer: it must then be seen whole before
        any of it is shown (flag-only checks let it stream)."""
        s = self.settings
        return s.grounding in ("redact", "block") or s.output_pii in ("redact", "block")

    async def check_output(
        self,
        answer: str,
        context_texts: Sequence[str],
        lang: str = "en",
        schema: dict[str, Any] | None = None,
    ) -> GuardOutcome:
        s = self.settings
        events: list[GuardEvent] = []

        def blocked(guard: str) -> GuardOutcome:
            return GuardOutcome(answer, True, message(guard, lang), tuple(events))

        if schema is not None and s.schema_action != "off":
            errors = schema_errors(answer, schema)
            if errors:
                detail = f"{len(errors)} error(s): {'; '.join(errors[:3])}"
                events.append(GuardEvent("schema", "output", _action(s.schema_action), detail))
                if s.schema_action == "block":
                    return blocked("schema")
        out = answer
        if s.grounding != "off" and context_texts and schema is None:
            grounded = await self._ground(answer, context_texts, events)
            if grounded is None:
                return blocked("grounding")
            out = grounded
        if s.output_pii != "off":
            out, event = _pii_pass(out, s.output_pii, s.pii_kinds, "output_pii", "output")
            if event is not None:
                events.append(event)
                if event.action == "block":
                    return blocked("output_pii")
        return GuardOutcome(out, False, "", tuple(events))

    async def _ground(
        self, answer: str, context: Sequence[str], events: list[GuardEvent]
    ) -> str | None:
        """The answer as it may be shown (unsupported sentences dropped when the action is
        redact), or None when it must be refused."""
        action = self.settings.grounding
        if self.checker is None and self.judge is None:
            events.append(GuardEvent("grounding", "output", "flag", "not checked: no embedder"))
            return answer
        judged = await grounding(answer, context, checker=self.checker, judge=self.judge)
        bad = [x for x in judged if not x.supported]
        if not bad:
            return answer
        spans = tuple((x.start, x.end) for x in bad)
        detail = f"{len(bad)} of {len(judged)} sentence(s) unsupported by the context"
        act = _action(action)
        events.append(GuardEvent("grounding", "output", act, detail, spans))
        if act == "flag":
            return answer
        kept = "".join(answer[x.start : x.end] for x in judged if x.supported).strip()
        return None if act == "block" or not kept else kept
