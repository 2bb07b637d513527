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
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import numpy as np

from acllm import lang as langs
from acllm.assist import extractive
from acllm.assist.types import Answer, Citation
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
            lang=self._lang(question), history=turns, question=question
        )
        reply = await self.model.chat(messages, ChatOptions(max_tokens=64, stop=("\n",)))
        rewritten = reply.text.strip()
        return (rewritten or question), reply.usage

    def _lang(self, text: str) -> str:
        return langs.detect(text, self.options.languages)

    def retrieve(self, question: str) -> tuple[list[Hit], np.ndarray]:
        from acllm.index.retrieval import search

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

    async def ask(self, question: str, history: Sequence[Message] = ()) -> Answer:
        final: Answer | None = None
        async for item in self.stream(question, history):
            if isinstance(item, Answer):
                final = item
        assert final is not None
        return final

    async def stream(
        self, question: str, history: Sequence[Message] = ()
    ) -> AsyncIterator[str | Answer]:
        """Text pieces as they are produced, then the complete Answer last."""
        start = time.perf_counter()
        code = self._lang(question)
        query, usage = await self.standalone(question.strip(), history)
        # Embedding and search block (a model call, SQLite, numpy): off the event loop, so a
        # service worker keeps answering other requests meanwhile.
        hits, vector = await asyncio.to_thread(self.retrieve, query)
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
            )

        if confidence < self.options.threshold:
            text = refusal(code)
            yield text
            yield finish(text, True, [])
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
        messages, used = self._generative_prompt(query, code, hits)
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
        self, question: str, code: str, hits: Sequence[Hit]
    ) -> tuple[list[Message], list[Hit]]:
        """Fill the context budget with sources in rank order; the answer keeps its share."""
        prompt = load("answer")

        def render(sources: str) -> list[Message]:
            return prompt.render(
                lang=code,
                sources=sources,
                language=langs.name(code),
                refusal=refusal(code),
                question=question,
            )

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
