"""``POST /v1/tasks/{task}``: the six language tasks, with the CLI's options as body fields.

Each answers the task's JSON document, the same one ``acllm <task> --json`` prints.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from acllm.service.routes_common import (
    ServiceState,
    Svc,
    admit,
    charge,
    estimate_tokens,
    within_deadline,
)
from acllm.types import Usage

if TYPE_CHECKING:
    from acllm.tasks import Tasks

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    text: str = Field(min_length=1)
    lang: str | None = Field(default=None, description="language of the text (default: detected)")


class TranslateBody(_Body):
    target: str = Field(alias="to", description="target language code")
    source: str | None = Field(default=None, alias="from", description="source language code")


class SentimentBody(_Body):
    method: Literal["embedding", "generate"] | None = None
    labels: list[str] | None = Field(default=None, min_length=2)


class SummarizeBody(_Body):
    max_words: int = Field(default=60, ge=1, le=2000)
    method: Literal["extractive", "generate"] | None = None


class ParaphraseBody(_Body):
    compare: str | None = Field(default=None, description="say whether this means the same")
    method: Literal["embedding", "generate"] | None = None
    threshold: float | None = Field(default=None, ge=-1, le=1)


class CorrectBody(_Body):
    pass


class CheckRulesBody(_Body):
    rules: list[str] = Field(min_length=1)


Call = Callable[["Tasks"], Awaitable[dict[str, Any]]]


async def _run(request: Request, svc: ServiceState, text: str, call: Call) -> dict[str, Any]:
    """Admit the caller, then run ``call(tasks)`` (built only once admitted)."""
    from acllm.tasks import Tasks

    principal = await admit(request, "tasks", tokens=estimate_tokens(text))
    result = await within_deadline(svc, request, call(Tasks(svc.runtime)))
    used = result.get("usage") or {}
    usage = Usage(int(used.get("prompt_tokens", 0)), int(used.get("completion_tokens", 0)))
    await charge(svc, principal, usage, svc.settings.tasks.model or svc.settings.default_model)
    return result


@router.post("/translate")
async def translate(body: TranslateBody, request: Request, svc: Svc) -> dict[str, Any]:
    def call(tasks: Tasks) -> Awaitable[dict[str, Any]]:
        return tasks.translate(body.text, target=body.target, source=body.source or body.lang)

    return await _run(request, svc, body.text, call)


@router.post("/sentiment")
async def sentiment(body: SentimentBody, request: Request, svc: Svc) -> dict[str, Any]:
    def call(tasks: Tasks) -> Awaitable[dict[str, Any]]:
        return tasks.sentiment(body.text, method=body.method, labels=body.labels, lang=body.lang)

    return await _run(request, svc, body.text, call)


@router.post("/summarize")
async def summarize(body: SummarizeBody, request: Request, svc: Svc) -> dict[str, Any]:
    def call(tasks: Tasks) -> Awaitable[dict[str, Any]]:
        return tasks.summarize(
            body.text, max_words=body.max_words, method=body.method, lang=body.lang
        )

    return await _run(request, svc, body.text, call)


@router.post("/paraphrase")
async def paraphrase(body: ParaphraseBody, request: Request, svc: Svc) -> dict[str, Any]:
    def call(tasks: Tasks) -> Awaitable[dict[str, Any]]:
        if body.compare is not None:
            return tasks.same_meaning(
                body.text, body.compare, method=body.method, threshold=body.threshold
            )
        return tasks.paraphrase(body.text, lang=body.lang)

    return await _run(request, svc, body.text, call)


@router.post("/correct")
async def correct(body: CorrectBody, request: Request, svc: Svc) -> dict[str, Any]:
    def call(tasks: Tasks) -> Awaitable[dict[str, Any]]:
        return tasks.correct(body.text, lang=body.lang)

    return await _run(request, svc, body.text, call)


@router.post("/check_rules")
async def check_rules(body: CheckRulesBody, request: Request, svc: Svc) -> dict[str, Any]:
    def call(tasks: Tasks) -> Awaitable[dict[str, Any]]:
        return tasks.check_rules(body.text, body.rules, lang=body.lang)

    return await _run(request, svc, body.text, call)
