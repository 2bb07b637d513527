"""Asking an assistant natively: the whole Answer (text, refusal, citations, usage), or its text as
server-sent ``delta`` events followed by one ``answer`` event carrying the complete Answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from acllm.errors import AcllmError
from acllm.service.guard import Principal
from acllm.service.http_errors import error_body
from acllm.service.routes_common import (
    ServiceState,
    StreamBody,
    Svc,
    aclose,
    admit,
    charge,
    conversation_headers,
    estimate_tokens,
    prefetch,
    record_answer,
    sse,
    within_deadline,
)
from acllm.types import Message, Usage

router = APIRouter(tags=["assistants"])


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str


class AskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1)
    history: list[Turn] = Field(default_factory=list)
    stream: bool = False


@router.get("/v1/assistants")
async def list_assistants(request: Request, svc: Svc) -> dict[str, Any]:
    principal = await admit(request, "ask")
    return {
        "data": [
            {"name": n, "index": s.index, "description": s.description, "mode": s.mode}
            for n, s in sorted(svc.settings.assistants.items())
            if principal.may("ask", n)
        ]
    }


@router.post("/v1/assistants/{name}/ask", response_model=None)
async def ask(name: str, body: AskBody, request: Request, svc: Svc) -> JSONResponse | StreamBody:
    texts = [body.question, *(t.content for t in body.history)]
    principal = await admit(request, "ask", name, tokens=estimate_tokens(*texts))
    headers = conversation_headers(request)
    assistant = svc.assistant(name)
    history = [Message(t.role, t.content) for t in body.history]
    items = assistant.stream(body.question, history)
    if not body.stream:
        answer = await within_deadline(svc, request, _last(items))
        await charge(svc, principal, answer.usage, name)
        recorded = await record_answer(request, name, answer, principal)
        return JSONResponse(recorded, headers=headers)
    try:
        first = await within_deadline(svc, request, prefetch(items))
    except BaseException:
        await aclose(items)
        raise
    events = _events(svc, request, name, principal, first, items)
    return StreamBody(events, headers=headers)


async def _last(items: AsyncIterator[Any]) -> Any:
    last = None
    async for item in items:
        last = item
    return last


async def _events(
    svc: ServiceState,
    request: Request,
    name: str,
    principal: Principal,
    first: Any,
    rest: AsyncIterator[Any],
) -> AsyncIterator[bytes]:
    from acllm.assist.types import Answer

    usage = Usage()
    try:
        item = first
        while item is not None:
            if isinstance(item, Answer):
                usage = item.usage
                yield sse(await record_answer(request, name, item, principal), event="answer")
            else:
                yield sse({"text": item}, event="delta")
            item = await anext(rest, None)
    except AcllmError as exc:
        yield sse(error_body(exc), event="error")
    finally:
        await aclose(rest)
        await charge(svc, principal, usage, name)
