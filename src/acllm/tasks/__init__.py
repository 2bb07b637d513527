"""The six ready-made language tasks, each an async function of a TaskContext.

``Tasks`` binds them to a Runtime (model and embedder from the config); each result is a plain dict
checked against the task's JSON schema (``SCHEMAS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acllm.tasks.base import TaskContext
from acllm.tasks.check_rules import RESULT_SCHEMA as CHECK_RULES_SCHEMA
from acllm.tasks.check_rules import check_rules
from acllm.tasks.correct import RESULT_SCHEMA as CORRECT_SCHEMA
from acllm.tasks.correct import correct
from acllm.tasks.paraphrase import COMPARE_SCHEMA, REWRITE_SCHEMA, paraphrase, same_meaning
from acllm.tasks.sentiment import RESULT_SCHEMA as SENTIMENT_SCHEMA
from acllm.tasks.sentiment import sentiment
from acllm.tasks.summarize import RESULT_SCHEMA as SUMMARIZE_SCHEMA
from acllm.tasks.summarize import summarize
from acllm.tasks.translate import RESULT_SCHEMA as TRANSLATE_SCHEMA
from acllm.tasks.translate import translate

if TYPE_CHECKING:
    from acllm.runtime import Runtime

SCHEMAS: dict[str, dict[str, Any]] = {
    "translate": TRANSLATE_SCHEMA,
    "sentiment": SENTIMENT_SCHEMA,
    "summarize": SUMMARIZE_SCHEMA,
    "paraphrase": REWRITE_SCHEMA,
    "same_meaning": COMPARE_SCHEMA,
    "correct": CORRECT_SCHEMA,
    "check_rules": CHECK_RULES_SCHEMA,
}
PROMPTS = (
    "translate",
    "sentiment",
    "summarize",
    "paraphrase",
    "same_meaning",
    "correct",
    "check_rules",
)

__all__ = [
    "SCHEMAS",
    "TaskContext",
    "Tasks",
    "check_rules",
    "correct",
    "paraphrase",
    "same_meaning",
    "sentiment",
    "summarize",
    "translate",
]


class Tasks:
    """The tasks on a Runtime's task model and embedder; methods are async."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def context(self, *, embedder: bool = False) -> TaskContext:
        s = self.runtime.settings
        return TaskContext(
            model=self.runtime.task_model(),
            embedder=self.runtime.task_embedder() if embedder else None,
            languages=s.languages,
            max_input_tokens=s.tasks.max_input_tokens,
        )

    async def translate(self, text: str, target: str, source: str | None = None) -> dict[str, Any]:
        return await translate(self.context(), text, target, source)

    async def sentiment(
        self,
        text: str,
        *,
        method: str | None = None,
        labels: Sequence[str] | None = None,
        lang: str | None = None,
    ) -> dict[str, Any]:
        chosen = method or self.runtime.settings.tasks.sentiment_method
        return await sentiment(
            self.context(embedder=chosen == "embedding"),
            text,
            method=chosen,
            labels=tuple(labels) if labels else ("positive", "negative", "neutral"),
            lang=lang,
        )

    async def summarize(
        self, text: str, *, max_words: int = 60, method: str | None = None, lang: str | None = None
    ) -> dict[str, Any]:
        chosen = method or self.runtime.settings.tasks.summarize_method
        return await summarize(
            self.context(embedder=chosen == "extractive"),
            text,
            max_words=max_words,
            method=chosen,
            lang=lang,
        )

    async def paraphrase(self, text: str, *, lang: str | None = None) -> dict[str, Any]:
        return await paraphrase(self.context(embedder=True), text, lang=lang)

    async def same_meaning(
        self, a: str, b: str, *, method: str | None = None, threshold: float | None = None
    ) -> dict[str, Any]:
        chosen = method or self.runtime.settings.tasks.paraphrase_method
        kwargs: dict[str, Any] = {} if threshold is None else {"threshold": threshold}
        return await same_meaning(
            self.context(embedder=chosen == "embedding"), a, b, method=chosen, **kwargs
        )

    async def correct(self, text: str, *, lang: str | None = None) -> dict[str, Any]:
        return await correct(self.context(), text, lang=lang)

    async def check_rules(
        self, text: str, rules: Sequence[str] | str | Path, *, lang: str | None = None
    ) -> dict[str, Any]:
        return await check_rules(self.context(), text, rules, lang=lang)
