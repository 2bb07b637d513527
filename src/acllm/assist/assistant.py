"""The Assistant: answers from an index with citations, or says the documents do not say.

Flow: rewrite a follow-up into a standalone question, retrieve (hybrid by default), measure the
evidence (cosine of the best sentence to the question), refuse below the threshold, else answer —
extractively (the cited sentences themselves) or generatively (numbered sources in a prompt whose
token budget is split explicitly between instructions, context and answer).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from acllm import lang as langs
from acllm.assist import extractive
from acllm.assist.types import Answer, Citation, final_answer
from acllm.embed.base import Embedder
from acllm.index.base import Hit, Index
from acllm.index.retrieval import Mode
from acllm.models.base import ChatModel
from acllm.tasks.prompts import load
from acllm.types import ChatOptions, Message, Usage

REFUSALS = {
    "en": "The documents do not say. I could not find this in the indexed data.",
    "es": "Los documentos no lo dicen. No he encontrado esa información en los datos indexados.",
}
# Given the retrieved hits: those to keep, and guard events about the rest.
Screen = Callable[[list[Hit]], tuple[list[Hit], list[dict[str, Any]]]]
_MARKER = re.compile(r"\[(\d{1,2})\]")


@dataclass(frozen=True)
class AssistantOptions:
    mode: str = "extractive"  # or "generative"
    retrieval: Mode = "hybrid"  # or "keyword", "dense"
    top_k: int = 5
    threshold: float = 0.84  # minimum evidence cosine, tuned on MLQA (docs/BENCHMARKS.md)
    max_sentences: int = 2
    margin: float = 0.03
    answer_tokens: int = 256
    rewrite: str = "concat"  # "model", "concat" or "off"
    languages: tuple[str, ...] = ("en", "es")


def refusal(code: str) -> str:
    return REFUSALS.get(code, REFUSALS["en"])


class Assistant:
    def __init__(
        self,
        name: str,
        index: Index,
        embedder: Embedder,
        model: ChatModel,
        options: AssistantOptions | None = None,
    ) -> None:
        self.name = name
        self.index = index
        self.embedder = embedder
        self.model = model
        self.options = options or AssistantOptions()

    async def standalone(self, question: str, history: Sequence[Message]) -> tuple[str, Usage]:
        """The question made self-contained using the conversation."""
        previous = [m.content for m in history if m.role == "user"]
        if not previous or self.options.rewrite == "off":
            return question, Usage()
        if self.options.rewrite == "concat":  # robust on tiny models: retrieval sees both turns
            return f"{previous[-1]} {question}", Usage()
        turns = "\n".join(f"{m.role}: {m.content}" for m in history[-6:])
        messages = load("rewrite").render(
            lang=self.language(question), history=turns, question=question
        )
        reply = await self.model.chat(messages, ChatOptions(max_tokens=64, stop=("\n",)))
        rewritten = reply.text.strip()
        return (rewritten or question), reply.usage

    def prompt_id(self) -> str:
        """What shapes an answer besides the question and the index: cached answers made under
        other options or another prompt version are not reused."""
        o = self.options
        return (
            f"{o.mode}|answer.v{load('answer').version}|{o.retrieval}|k{o.top_k}|t{o.threshold}"
            f"|s{o.max_sentences}|m{o.margin}|a{o.answer_tokens}|r{o.rewrite}"
        )

    def language(self, text: str) -> str:
        return langs.detect(text, self.options.languages)

    def retrieve(
        self, question: str, vector: np.ndarray | None = None
    ) -> tuple[list[Hit], np.ndarray]:
        """Hits for the question; ``vector`` is its query embedding when the caller has it."""
        from acllm.index.retrieval import search

        if vector is None:
            vector = self.embedder.embed([question], kind="query")[0]
        hits = search(
            self.index,
            question,
            embedder=self.embedder,
            k=self.options.top_k,
            mode=self.options.retrieval,
            query_vector=vector,
        )
        return hits, vector

    async def ask(self, question: str, history: Sequence[Message] = (), **options: Any) -> Answer:
        return await final_answer(self.stream(question, history, **options))

    async def stream(
        self,
        question: str,
        history: Sequence[Message] = (),
        *,
        query_vector: np.ndarray | None = None,
        memory: Sequence[Message] = (),
        screen: Screen | None = None,
    ) -> AsyncIterator[str | Answer]:
        """Text pieces as they are produced, then the complete Answer last.

        ``query_vector`` is the question's embedding when the caller already made it (the cache
        lookup): used when the question needs no rewriting. ``memory`` (a summary and recent turns,
        already within their token budget) goes into the generative prompt before the sources.
        ``screen`` sees the retrieved hits before any use and returns those to keep plus guard
        events (instructions hidden in documents are dropped there).
        """
        start = time.perf_counter()
        code = self.language(question)
        query, usage = await self.standalone(question.strip(), history)
        reuse = query_vector if query == question.strip() else None
        # Embedding and search block (a model call, SQLite, numpy): off the event loop, so a
        # service worker keeps answering other requests meanwhile.
        hits, vector = await asyncio.to_thread(self.retrieve, query, reuse)
        events: list[dict[str, Any]] = []
        if screen is not None:
            hits, events = screen(hits)
        ranked = await asyncio.to_thread(
            extractive.rank_sentences, query, vector, hits, self.embedder
        )
        confidence = ranked[0].cosine if ranked else 0.0
        retrieval_s = time.perf_counter() - start

        def finish(text: str, refused: bool, citations: list[Citation]) -> Answer:
            return Answer(
                text,
                refused,
                citations,
                lang=code,
                question=query,
                mode=self.options.mode,
                confidence=confidence,
                usage=Usage(
                    usage.prompt_tokens, usage.completion_tokens, time.perf_counter() - start
                ),
                retrieval_s=retrieval_s,
                guards=list(events),
            )

        if confidence < self.options.threshold:
            text = refusal(code)
            yield text
            answer = finish(text, True, [])
            answer.suggestions = suggestions(hits, code)
            yield answer
            return
        if self.options.mode == "extractive":
            chosen = extractive.pick(ranked, self.options.max_sentences, self.options.margin)
            citations = [
                Citation(
                    i + 1,
                    c.hit.chunk.source,
                    c.hit.chunk.location,
                    c.text,
                    c.hit.chunk.id,
                    c.cosine,
                )
                for i, c in enumerate(chosen)
            ]
            text = " ".join(f"{c.text} [{c.n}]" for c in citations)
            yield text
            yield finish(text, False, citations)
            return
        pieces: list[str] = []
        messages, used = self._generative_prompt(query, code, hits, memory)
        deltas = self.model.stream(messages, ChatOptions(max_tokens=self.options.answer_tokens))
        try:
            async for delta in deltas:
                if delta.text:
                    pieces.append(delta.text)
                    yield delta.text
                if delta.usage:
                    usage = _add(usage, delta.usage)
        finally:  # a caller that stops reading (a client gone) stops generation now, not at GC
            close = getattr(deltas, "aclose", None)
            if close is not None:
                await close()
        text = "".join(pieces).strip()
        citations = _cited(text, used)
        refused = not citations and refusal(code)[:20] in text
        yield finish(text, bool(refused), citations)

    def _generative_prompt(
        self, question: str, code: str, hits: Sequence[Hit], memory: Sequence[Message] = ()
    ) -> tuple[list[Message], list[Hit]]:
        """Fill the context budget with sources in rank order; the answer keeps its share and
        the conversation memory (already within its own budget) goes before the question."""
        prompt = load("answer")

        def render(sources: str) -> list[Message]:
            messages = prompt.render(
                lang=code,
                sources=sources,
                language=langs.name(code),
                refusal=refusal(code),
                question=question,
            )
            # The memory's summary joins the system prompt (chat templates want one system
            # message, first); its recent turns go before the question.
            notes = [m.content for m in memory if m.role == "system"]
            if notes and messages and messages[0].role == "system":
                head = Message("system", "\n\n".join([messages[0].content, *notes]))
                messages = [head, *messages[1:]]
            turns = [m for m in memory if m.role != "system"]
            return [*messages[:-1], *turns, messages[-1]]

        window = self.model.context_window
        used: list[Hit] = []
        messages = render("")
        for hit in hits:
            trial = [*used, hit]
            candidate = render(_sources_block(trial))
            if self.model.count_tokens(candidate) + self.options.answer_tokens > window:
                break  # this source would eat the answer's budget: stop adding sources
            used, messages = trial, candidate
        return messages, used


_SUGGEST = {
    "en": "What do the documents say about {topic}?",
    "es": "¿Qué dicen los documentos sobre {topic}?",
}


def suggestions(hits: Sequence[Hit], code: str, limit: int = 3) -> list[str]:
    """Questions the documents can answer, from what the nearest passages are about (their
    section heading, else their source's name): offered instead of a bare refusal."""
    template = _SUGGEST.get(code, _SUGGEST["en"])
    topics: dict[str, None] = {}
    for hit in hits:
        heading = _topic(hit)
        if heading and heading.casefold() not in {t.casefold() for t in topics}:
            topics[heading] = None
        if len(topics) == limit:
            break
    return [template.format(topic=t) for t in topics]


def _topic(hit: Hit) -> str:
    """What a passage is about: its section's heading, else its source's name."""
    heading = hit.chunk.metadata.get("heading")
    if isinstance(heading, str) and heading.strip():
        return heading.strip()  # exact, even when it holds " > " or ends in "(2)"
    location = hit.chunk.location
    if location.startswith("section "):  # indexes built before headings were stored: "A > B (2)"
        return re.sub(r"\s*\(\d+\)$", "", location.split(">")[-1].removeprefix("section ")).strip()
    return re.sub(r"[_-]+", " ", hit.chunk.source.rsplit("/", 1)[-1].split(".")[0]).strip()


def _sources_block(hits: Sequence[Hit]) -> str:
    return "\n".join(
        f"[{i + 1}] ({h.chunk.source}, {h.chunk.location or 'whole'}) "
        f"{' '.join(h.chunk.text.split())}"
        for i, h in enumerate(hits)
    )


def _cited(text: str, hits: Sequence[Hit]) -> list[Citation]:
    numbers = sorted({int(n) for n in _MARKER.findall(text) if 0 < int(n) <= len(hits)})
    return [
        Citation(
            n,
            hits[n - 1].chunk.source,
            hits[n - 1].chunk.location,
            hits[n - 1].chunk.text,
            hits[n - 1].chunk.id,
            hits[n - 1].score,
        )
        for n in numbers
    ]


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(a.prompt_tokens + b.prompt_tokens, a.completion_tokens + b.completion_tokens)
