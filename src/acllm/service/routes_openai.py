"""The OpenAI-compatible routes: chat completions (plain or SSE), embeddings, models.

A ``model`` may also name an assistant (``[assistants.NAME]``, or ``index:NAME`` for defaults over
an index): the last user message is the question, the earlier turns its history, and the answer
comes back with ``[n]`` markers in the text plus a top-level ``citations`` list (when streaming, in
a last chunk with no choices, before ``[DONE]``), so any OpenAI client talks to your documents.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from acllm.errors import AcllmError, ForbiddenError, UserError
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
from acllm.types import ChatOptions, Delta, Message, Usage

router = APIRouter(tags=["OpenAI-compatible"])
MAX_EMBED_INPUTS = 2048
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class ChatCompletionRequest(BaseModel):
    """The OpenAI request; fields acllm does not use (penalties, logit_bias, user...) are ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1)
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(default=None, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    tools: list[Any] | None = None


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1)
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    input_type: Literal["query", "passage"] = "passage"  # acllm: e5 embeds queries differently


@dataclass(frozen=True)
class Piece:
    """One step of an answer, from a model or an assistant; the last carries ``finish``."""

    text: str = ""
    finish: str | None = None
    usage: Usage | None = None
    citations: list[dict[str, Any]] | None = None
    answer_id: str | None = None  # an assistant's answer, recorded for feedback


def _messages(body: ChatCompletionRequest) -> list[Message]:
    out = []
    for m in body.messages:
        role = _ROLES.get(m.role)
        if role is None:
            raise UserError(
                f"message role '{m.role}' is not supported",
                hint="use system, user or assistant (tools are not supported)",
            )
        if isinstance(m.content, list):
            if any(p.type != "text" for p in m.content):
                raise UserError("only text content parts are supported")
            content = "".join(p.text or "" for p in m.content)
        else:
            content = m.content or ""
        out.append(Message(role, content))  # type: ignore[arg-type]
    return out


def _options(body: ChatCompletionRequest, max_tokens: int) -> ChatOptions:
    schema: dict[str, Any] | None = None
    fmt = body.response_format
    if fmt is not None and fmt.type == "json_object":
        schema = {"type": "object"}
    elif fmt is not None and fmt.type == "json_schema":
        schema = (fmt.json_schema or {}).get("schema")
        if not isinstance(schema, dict):
            raise UserError("response_format.json_schema.schema must be a JSON schema object")
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    return ChatOptions(
        max_tokens=max_tokens,
        temperature=0.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        stop=stop,
        schema=schema,
        seed=body.seed,
    )


def _finish(reason: str | None) -> str:
    return reason if reason in ("stop", "length") else "stop"


def _usage(usage: Usage | None) -> dict[str, int]:
    u = usage or Usage()
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
    }


async def _model_pieces(deltas: AsyncIterator[Delta]) -> AsyncIterator[Piece]:
    try:
        async for d in deltas:
            yield Piece(d.text, d.finish_reason, d.usage)
    finally:
        await aclose(deltas)  # closed at a yield, `async for` would leave the model's stream open


async def _assistant_pieces(
    items: AsyncIterator[Any], request: Request, name: str, principal: Principal
) -> AsyncIterator[Piece]:
    from acllm.assist.types import Answer

    try:
        async for item in items:
            if isinstance(item, Answer):
                recorded = await record_answer(request, name, item, principal)
                cites = recorded["citations"]
                yield Piece("", "stop", item.usage, cites, recorded["answer_id"])
            else:
                yield Piece(str(item))
    finally:
        await aclose(items)


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, svc: Svc
) -> JSONResponse | StreamBody:
    estimate = estimate_tokens(
        *(m.content if isinstance(m.content, str) else "" for m in body.messages)
    )
    principal = await admit(request, "chat", body.model, tokens=estimate)
    headers = conversation_headers(request)
    if body.n not in (None, 1):
        raise UserError("only n = 1 is supported")
    if body.tools:
        raise UserError("tools are not supported", hint="send plain messages")
    messages = _messages(body)
    pieces: AsyncIterator[Piece]
    if svc.is_assistant(body.model):
        if messages[-1].role != "user":
            raise UserError("the last message must be the user's question")
        history = [m for m in messages[:-1] if m.role != "system"]
        assistant = await svc.assistant(body.model)
        items = assistant.stream(
            messages[-1].content,
            history,
            session=request.headers.get(CONVERSATION_HEADER),
            tenant=principal.key_id or "",
        )
        pieces = _assistant_pieces(items, request, body.model, principal)
    else:
        model = svc.chat_model(body.model)
        max_tokens = body.max_completion_tokens or body.max_tokens
        if max_tokens is None:  # as much as fits, up to a sensible default
            room = model.context_window - model.count_tokens(messages)
            max_tokens = max(1, min(ChatOptions().max_tokens, room))
        options = _options(body, max_tokens)
        if not body.stream:  # one plain upstream call: no server-sent events to split and join
            reply = await within_deadline(svc, request, model.chat(messages, options))
            await charge(svc, principal, reply.usage, body.model)
            piece = Piece("", reply.finish_reason, reply.usage)
            return JSONResponse(_completion(body.model, reply.text, piece), headers=headers)
        pieces = _model_pieces(model.stream(messages, options))
    meta = _meta(body.model)
    if body.stream:
        try:
            first = await within_deadline(svc, request, prefetch(pieces))
        except BaseException:
            await aclose(pieces)
            raise
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = _events(svc, principal, meta, first, pieces, include_usage, estimate)
        return StreamBody(events, headers=headers)
    text, last = await within_deadline(svc, request, _collect(pieces))
    await charge(svc, principal, last.usage or Usage(), body.model)
    return JSONResponse(_completion(body.model, text, last), headers=headers)


def _meta(model: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{secrets.token_hex(12)}",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
    }


def _completion(model: str, text: str, last: Piece) -> dict[str, Any]:
    """The ``chat.completion`` object for a whole answer."""
    out: dict[str, Any] = {
        **_meta(model),
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": _finish(last.finish),
            }
        ],
        "usage": _usage(last.usage),
    }
    if last.citations is not None:
        out["citations"] = last.citations
    if last.answer_id is not None:
        out["answer_id"] = last.answer_id
    return out


async def _collect(pieces: AsyncIterator[Piece]) -> tuple[str, Piece]:
    texts, last = [], Piece()
    async for piece in pieces:
        texts.append(piece.text)
        if piece.finish:
            last = piece
    return "".join(texts), last


async def _events(
    svc: ServiceState,
    principal: Principal,
    meta: dict[str, Any],
    first: Piece | None,
    rest: AsyncIterator[Piece],
    include_usage: bool,
    estimate: int,
) -> AsyncIterator[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**meta, "object": "chat.completion.chunk", "choices": [choice]})

    last, produced = Piece(), 0
    try:
        yield chunk({"role": "assistant", "content": ""})
        pending = [first] if first is not None else []
        while True:
            piece = pending.pop() if pending else await anext(rest, None)
            if piece is None:
                break
            if piece.text:
                produced += 1
                yield chunk({"content": piece.text})
            if piece.finish:
                last = piece
        yield chunk({}, _finish(last.finish))
        if last.citations is not None or include_usage:
            tail: dict[str, Any] = {**meta, "object": "chat.completion.chunk", "choices": []}
            if last.citations is not None:
                tail["citations"] = last.citations
                tail["answer_id"] = last.answer_id
            if include_usage:
                tail["usage"] = _usage(last.usage)
            yield sse(tail)
        yield sse("[DONE]")
    except AcllmError as exc:  # the status line is gone: report in-band, as OpenAI does
        yield sse(error_body(exc))
    finally:
        await aclose(rest)
        used = last.usage or Usage(estimate, produced)  # cut short: what was sent
        await charge(svc, principal, used, meta["model"])


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingsRequest, request: Request, svc: Svc) -> dict[str, Any]:
    import asyncio

    texts = [body.input] if isinstance(body.input, str) else body.input
    tokens = sum(len(t.split()) for t in texts)
    principal = await admit(request, "embeddings", body.model, tokens=tokens)
    if not texts or len(texts) > MAX_EMBED_INPUTS:
        raise UserError(f"input must hold 1 to {MAX_EMBED_INPUTS} texts")
    embedder = svc.embedder(body.model)
    if body.dimensions is not None and body.dimensions != embedder.dim:
        raise UserError(f"'{body.model}' makes {embedder.dim}-dimensional vectors only")
    # Embedding blocks (a model or a round trip): keep the event loop free for other requests.
    vectors = await within_deadline(
        svc, request, asyncio.to_thread(embedder.embed, texts, body.input_type)
    )
    await charge(svc, principal, Usage(tokens, 0), body.model)
    rows: list[Any]
    if body.encoding_format == "base64":
        rows = [base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() for v in vectors]
    else:
        rows = [[float(x) for x in v] for v in vectors]
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": r} for i, r in enumerate(rows)],
        "model": body.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


@router.get("/v1/models")
async def models(request: Request, svc: Svc) -> dict[str, Any]:
    try:
        principal = await admit(request, "chat")
    except ForbiddenError:  # an embeddings-only key may still list what it can use
        principal = await admit(request, "embeddings")

    def entry(name: str, kind: str, **extra: Any) -> dict[str, Any]:
        return {
            "id": name,
            "object": "model",
            "created": svc.started,
            "owned_by": "acllm",
            "kind": kind,
            **extra,
        }

    data = [entry(n, "model") for n in svc.model_names() if principal.may("chat", n)]
    data += [entry(n, "embedder") for n in svc.embedder_names() if principal.may("embeddings", n)]
    data += [
        entry(n, "assistant", index=s.index, description=s.description)
        for n, s in sorted(svc.settings.assistants.items())
        if principal.may("chat", n)
    ]
    return {"object": "list", "data": data}
