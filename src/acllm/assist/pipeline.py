"""One assistant with the patterns around it, in the order of the request flow (docs/architecture.md):

input guards -> reviewed override -> memory -> cache (exact, then semantic) -> the assistant
(retrieved chunks screened for hidden instructions) -> output guards -> cache store, memory.

Every piece is optional and switched on per assistant in the config; without any this is the bare
assistant. A pattern whose store is down degrades to "off" for that request (its module logs it)
and the answer is still given. The final ``Answer`` says what happened: ``cache`` (how it matched),
``override`` (a reviewed correction), ``guards`` (events: redactions, flags, blocks), ``notice``
(cut short, blocked) and ``suggestions`` after a refusal.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from acllm.assist.assistant import Assistant
from acllm.assist.types import Answer, Citation, final_answer
from acllm.types import Message, Usage

if TYPE_CHECKING:
    from acllm.assist.memory import ConversationMemory
    from acllm.cache import CacheScope, ResponseCache
    from acllm.guards import InputGuards, OutputGuards
    from acllm.index.base import Hit
    from acllm.review import ReviewQueue

log = logging.getLogger("acllm.pipeline")

CUT_SHORT = {
    "en": "(The answer was cut short: it took longer than {s:g} s.)",
    "es": "(La respuesta se ha cortado: ha tardado más de {s:g} s.)",
}
TOO_SLOW = {
    "en": "Sorry, this is taking too long (over {s:g} s). Please try again in a moment.",
    "es": "Lo siento, está tardando demasiado (más de {s:g} s). Inténtelo de nuevo en un momento.",
}
BLOCKED = {
    "en": "Sorry, I cannot help with that request.",
    "es": "Lo siento, no puedo ayudar con esa petición.",
}


def _say(table: dict[str, str], code: str, **values: Any) -> str:
    return table.get(code, table["en"]).format(**values)


def conversation_key(history: Sequence[Message]) -> str:
    """A digest of the turns before the question: cached answers never cross conversations."""
    h = hashlib.sha256()
    for m in history:
        h.update(f"{m.role}\x00{m.content}\x01".encode())
    return h.hexdigest()[:32] if history else ""


@dataclass(frozen=True)
class CacheKey:
    """What a cache lookup and the store after a miss share: made once per request."""

    scope: CacheScope
    vector: Any  # the question's query embedding, reused by retrieval


class Pipeline:
    def __init__(
        self,
        assistant: Assistant,
        *,
        input_guards: InputGuards | None = None,
        output_guards: OutputGuards | None = None,
        cache: ResponseCache | None = None,
        memory: ConversationMemory | None = None,
        reviews: ReviewQueue | None = None,
        model_name: str = "",
        deadline_s: float | None = None,
    ) -> None:
        self.assistant = assistant
        self.name = assistant.name
        self.input_guards = input_guards
        self.output_guards = output_guards
        self.cache = cache
        self.memory = memory
        self.reviews = reviews
        self.model_name = model_name
        self.deadline_s = deadline_s

    def close(self) -> None:
        """Release the cache's store (memory and reviews belong to the runtime)."""
        close = getattr(self.cache, "close", None)
        if callable(close):
            close()

    async def ask(self, question: str, history: Sequence[Message] = (), **options: Any) -> Answer:
        return await final_answer(self.stream(question, history, **options))

    async def stream(
        self,
        question: str,
        history: Sequence[Message] = (),
        *,
        session: str | None = None,
        tenant: str = "",
        use_cache: bool = True,
    ) -> AsyncIterator[str | Answer]:
        """Text pieces, then the complete Answer last (as ``Assistant.stream``).

        ``session`` names a conversation kept by the memory (when the assistant has one): the
        client then sends only the new question. ``tenant`` scopes the cache (an API key's id).
        ``use_cache=False`` neither reads nor writes the cache (evals, a user's opt-out).
        """
        start = time.perf_counter()
        code = self.assistant.language(question)
        events: list[dict[str, Any]] = []
        if self.input_guards is not None:
            outcome = await self.input_guards.check_input(question, code)
            events += [e.as_dict() for e in outcome.events]
            if outcome.blocked:
                text = outcome.message or _say(BLOCKED, code)
                yield text
                yield self._bare(text, code, question, start, events, blocked=True, notice=text)
                return
            question = outcome.text
            # Earlier turns come back from the client as it saw them: scrub them the same way.
            history = [Message(m.role, self.input_guards.scrub(m.content)) for m in history]
        memory_turns: list[Message] = []
        if self.memory is not None and session:
            context = await self.memory.context(session)
            memory_turns = context.messages()
            if not history:
                history = [m for m in memory_turns if m.role != "system"]
        key: CacheKey | None = None
        if use_cache and self.cache is not None:
            # One query embedding (the semantic cache's key, and retrieval's on a miss) and one
            # scope: the answer is stored under the index version it was retrieved from.
            key = await asyncio.to_thread(self._cache_key, question, history, tenant)
        final = await self._prepared(question, history, code, key, start, events)
        if final is not None:
            yield final.answer
            yield final
        else:
            async for item in self._answer(
                question, history, code, memory_turns, key, start, events
            ):
                if isinstance(item, Answer):
                    final = item
                else:
                    yield item
            assert final is not None
            yield final
        if self.memory is not None and session and not final.blocked:
            await self.memory.remember(session, question, final.answer)

    async def _prepared(
        self,
        question: str,
        history: Sequence[Message],
        code: str,
        key: CacheKey | None,
        start: float,
        events: list[dict[str, Any]],
    ) -> Answer | None:
        """An answer given before any retrieval: a reviewed override or a cache hit."""
        if self.reviews is not None and not history:
            override = await asyncio.to_thread(self.reviews.override_for, self.name, question)
            if override is not None:
                citations = [_citation(c) for c in override.citations]
                answer = self._bare(override.answer, code, question, start, events)
                answer.citations = citations
                answer.override = {"id": override.id, "reviewer": override.reviewer}
                return answer
        if self.cache is None or key is None:
            return None
        hit = await asyncio.to_thread(self.cache.lookup, key.scope, question, key.vector)
        if hit is None:
            return None
        answer = _from_payload(hit.payload, code, question)
        answer.usage = Usage(latency_s=time.perf_counter() - start)
        answer.cache = hit.as_dict()
        answer.guards = [*events, *answer.guards]
        return answer

    async def _answer(
        self,
        question: str,
        history: Sequence[Message],
        code: str,
        memory_turns: list[Message],
        key: CacheKey | None,
        start: float,
        events: list[dict[str, Any]],
    ) -> AsyncIterator[str | Answer]:
        """The assistant's answer, bounded by the deadline and checked by the output guards."""
        checked = self.output_guards is not None and self.output_guards.rewrites
        items = self.assistant.stream(
            question,
            history,
            query_vector=None if key is None else key.vector,
            memory=memory_turns,
            screen=self._screen if self.input_guards is not None else None,
        )
        pieces: list[str] = []
        final: Answer | None = None
        try:
            async with asyncio.timeout(self.deadline_s):
                async for item in items:
                    if isinstance(item, Answer):
                        final = item
                    else:
                        pieces.append(item)
                        if not checked:  # output guards that may change the text see it whole
                            yield item
        except TimeoutError:
            final = self._cut_short(pieces, code, question, start, checked)
            if not checked:  # (checked text is yielded once, below)
                yield f" {final.notice}" if pieces else final.answer
        finally:
            await items.aclose()  # type: ignore[attr-defined]
        assert final is not None
        final.guards = [*events, *final.guards]
        if self.output_guards is not None and not final.refused and not final.notice:
            context = [c.text for c in final.citations]
            outcome = await self.output_guards.check_output(final.answer, context, code)
            final.guards += [e.as_dict() for e in outcome.events]
            if outcome.blocked:
                final = replace(final, answer=outcome.message or _say(BLOCKED, code))
                final.refused = final.blocked = True
                final.citations = []
            else:
                final = replace(final, answer=outcome.text)
        if checked:
            yield final.answer
        if self._cacheable(final) and self.cache is not None and key is not None:
            payload = {k: v for k, v in final.as_dict().items() if k != "usage"}
            await asyncio.to_thread(self.cache.store, key.scope, question, payload, key.vector)
        yield final

    def _cut_short(
        self, pieces: list[str], code: str, question: str, start: float, checked: bool
    ) -> Answer:
        """What is known when the deadline passes: the text so far and a clear notice."""
        limit = self.deadline_s or 0.0
        if pieces:
            notice = _say(CUT_SHORT, code, s=limit)
            text = "".join(pieces).strip()
            answer = self._bare(f"{text} {notice}" if checked else text, code, question, start, [])
        else:
            notice = _say(TOO_SLOW, code, s=limit)
            answer = self._bare(notice, code, question, start, [])
            answer.refused = True
        answer.notice = notice
        log.warning("assistant %s cut short after %.1f s", self.name, limit)
        return answer

    @staticmethod
    def _cacheable(answer: Answer) -> bool:
        """Only clean answers are reused: nothing cut short, blocked or flagged by a guard."""
        return not (answer.notice or answer.blocked or answer.guards)

    def _screen(self, hits: list[Hit]) -> tuple[list[Hit], list[dict[str, Any]]]:
        """Drop retrieved chunks that carry instructions (prompt injection hidden in documents)."""
        assert self.input_guards is not None
        found = self.input_guards.screen_context([h.chunk.text for h in hits])
        dropped = {i for i, event in found if event.action == "block"}
        events = [{**e.as_dict(), "source": hits[i].chunk.source} for i, e in found]
        return [h for i, h in enumerate(hits) if i not in dropped], events

    def _cache_key(self, question: str, history: Sequence[Message], tenant: str) -> CacheKey:
        from acllm.cache import CacheScope

        vector = self.assistant.embedder.embed([question], kind="query")[0]
        scope = CacheScope(
            assistant=self.name,
            index_version=str(self.assistant.index.version()),
            system_prompt=self.assistant.prompt_id(),
            model=self.model_name,
            tenant=tenant,
            conversation=conversation_key(history),
        )
        return CacheKey(scope, vector)

    def _bare(
        self,
        text: str,
        code: str,
        question: str,
        start: float,
        events: list[dict[str, Any]],
        *,
        blocked: bool = False,
        notice: str | None = None,
    ) -> Answer:
        return Answer(
            text,
            refused=blocked,
            citations=[],
            lang=code,
            question=question,
            mode=self.assistant.options.mode,
            confidence=0.0,
            usage=Usage(latency_s=time.perf_counter() - start),
            guards=list(events),
            blocked=blocked,
            notice=notice,
        )


def _citation(raw: dict[str, Any]) -> Citation:
    return Citation(
        int(raw.get("n", 0)),
        str(raw.get("source", "")),
        str(raw.get("location", "")),
        str(raw.get("text", "")),
        str(raw.get("chunk_id", "")),
        float(raw.get("score", 0.0)),
    )


def _from_payload(payload: dict[str, Any], code: str, question: str) -> Answer:
    """A cached answer as it was stored (``Answer.as_dict()`` without usage)."""
    return Answer(
        str(payload.get("answer", "")),
        bool(payload.get("refused", False)),
        [_citation(c) for c in payload.get("citations", [])],
        lang=str(payload.get("lang", code)),
        question=question,
        mode=str(payload.get("mode", "")),
        confidence=float(payload.get("confidence", 0.0)),
        suggestions=list(payload.get("suggestions", [])),
    )
