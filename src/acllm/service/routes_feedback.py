"""Feedback on answers (thumbs, corrections, comments) and the web chat page that collects it.

``POST /v1/feedback`` names an ``answer_id`` the service returned, so the stored feedback always
carries the answer's sources and config (see acllm.feedback). Listing feedback is for reviewers:
it needs an admin key when auth is on.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from acllm.errors import UserError
from acllm.feedback import MAX_TEXT, FeedbackStore
from acllm.service.routes_common import admit

router = APIRouter()


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer_id: str = Field(min_length=1, max_length=64)
    rating: Literal[1, -1] | None = None
    correction: str | None = Field(default=None, max_length=MAX_TEXT)
    comment: str | None = Field(default=None, max_length=MAX_TEXT)


def store(request: Request) -> FeedbackStore:
    feedback: FeedbackStore = request.app.state.feedback
    return feedback


@router.post("/v1/feedback", status_code=201, tags=["feedback"])
async def add_feedback(body: FeedbackBody, request: Request) -> JSONResponse:
    principal = await admit(request, "feedback")
    saved = await anyio.to_thread.run_sync(
        lambda: store(request).add(
            body.answer_id,
            rating=body.rating,
            correction=body.correction,
            comment=body.comment,
            key_id=principal.key_id,
        )
    )
    return JSONResponse(saved.as_dict(), status_code=201)


@router.get("/v1/feedback", tags=["feedback"])
async def list_feedback(
    request: Request,
    rating: int | None = Query(default=None, description="1 or -1"),
    since: float | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    """Newest first; ``rating=-1`` is the review queue of answers rated bad."""
    await admit(request, "admin")
    if rating not in (None, 1, -1):
        raise UserError(f"rating must be 1 or -1, got {rating}")
    found = await anyio.to_thread.run_sync(
        lambda: store(request).list(rating=rating, since=since, limit=limit)
    )
    return {"data": [f.as_dict() for f in found]}


@router.get("/", include_in_schema=False)
async def chat_page() -> HTMLResponse:
    page = resources.files("acllm.service").joinpath("web/index.html").read_text(encoding="utf-8")
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})
