"""Asking an assistant natively: the whole Answer (text, refusal, citations, usage), or its text as
server-sent ``delta`` events followed by one ``answer`` event carrying the complete Answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from acllm.assist.types import final_answer
from acllm.errors import AcllmError, UserError
from acllm.service.guard import Principal
from acllm.service.http_errors import error_body
from acllm.service.routes_common import (
    CONVERSATION_HEADER,
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
    session: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="a conversation the assistant's memory keeps (when it has one); "
        "defaults to the X-Conversation-Id header",
    )
    cache: bool = Field(default=True, description="false: neither read nor write the cache")


@router.get("/v1/assistants")
async def list_assistants(request: Request, svc: Svc) -> dict[str, Any]:
    principal = await admit(request, "ask")
    return {
        "data": [
            {
                "name": n,
                "index": s.index,
                "description": s.description,
                "mode": s.mode,
                "memory": s.memory.enabled,
                "cache": s.cache.enabled,
            }
            for n, s in sorted(svc.settings.assistants.items())
            if principal.may("ask", n)
        ]
    }


@router.post("/v1/assistants/{name}/ask", response_model=None)
async def ask(name: str, body: AskBody, request: Request, svc: Svc) -> JSONResponse | StreamBody:
    texts = [body.question, *(t.content for t in body.history)]
    principal = await admit(request, "ask", name, tokens=estimate_tokens(*texts))
    headers = conversation_headers(request)
    assistant = await svc.assistant(name)
    history = [Message(t.role, t.content) for t in body.history]
    session = body.session or request.headers.get(CONVERSATION_HEADER)
    items = assistant.stream(
        body.question,
        history,
        session=session,
        tenant=principal.key_id or "",
        use_cache=body.cache,
    )
    if not body.stream:
        answer = await within_deadline(svc, request, final_answer(items))
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


@router.delete("/v1/assistants/{name}/sessions/{session}")
async def forget_session(name: str, session: str, request: Request, svc: Svc) -> dict[str, Any]:
    """Delete what the assistant's memory keeps of a conversation (a user's request)."""
    await admit(request, "ask", name)
    memory = (await svc.assistant(name)).memory
    if memory is None:
        raise UserError(
            f"assistant '{name}' keeps no memory", hint="set [assistants.NAME.memory] enabled"
        )
    deleted = await anyio.to_thread.run_sync(memory.forget, session)
    return {"session": session, "deleted": deleted}


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
