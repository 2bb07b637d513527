"""Feedback on answers (thumbs, corrections, comments) and the web chat page that collects it.

``POST /v1/feedback`` names an ``answer_id`` the service returned, so the stored feedback always
carries the answer's sources and config (see acllm.feedback). A correction or comment meets the
PII policy of the answer's assistant, as its questions do: redacted before it is stored (an
approved correction is served to every user who asks the same question), refused under "block",
kept under "flag" or "off". Listing feedback is for reviewers: it needs an admin key when auth is
on.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from acllm.config import Settings
from acllm.errors import UserError
from acllm.feedback import MAX_TEXT, FeedbackStore
from acllm.guards import pii
from acllm.review import ReviewQueue
from acllm.service.routes_common import admit, state

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
    settings = state(request).settings

    def save() -> Any:
        feedback = store(request)
        assistant = feedback.answer(body.answer_id)["assistant"]  # 404 for an unknown id
        return feedback.add(
            body.answer_id,
            rating=body.rating,
            correction=guarded(settings, assistant, "correction", body.correction),
            comment=guarded(settings, assistant, "comment", body.comment),
            key_id=principal.key_id,
        )

    saved = await anyio.to_thread.run_sync(save)
    return JSONResponse(saved.as_dict(), status_code=201)


def guarded(settings: Settings, assistant: str, field: str, text: str | None) -> str | None:
    """``text`` under the PII policy of ``assistant``'s input guards (none: as it is)."""
    spec = settings.assistants.get(assistant)
    guards = spec.guards if spec is not None else None
    if text is None or guards is None or guards.pii in ("off", "flag"):
        return text
    redacted, found = pii.redact(text, set(guards.pii_kinds))
    if found and guards.pii == "block":
        kinds = ", ".join(sorted({f.kind for f in found}))
        raise UserError(
            f"the {field} carries personal data ({kinds}), which assistant {assistant!r} refuses",
            hint=f"send the {field} again without it",
        )
    return redacted


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


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"]
    answer: str | None = Field(
        default=None,
        max_length=MAX_TEXT,
        description="the answer to serve (approve); default: the user's correction",
    )
    note: str | None = Field(default=None, max_length=MAX_TEXT)


def queue(request: Request) -> ReviewQueue:
    return ReviewQueue(store(request))


@router.get("/v1/feedback/review", tags=["feedback"])
async def review_queue(
    request: Request,
    assistant: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    """Answers rated bad or corrected, with their sources, waiting for a reviewer's decision."""
    await admit(request, "admin")
    found = await anyio.to_thread.run_sync(
        lambda: queue(request).pending(assistant=assistant, limit=limit)
    )
    return {"data": [f.as_dict() for f in found]}


@router.post("/v1/feedback/{feedback_id}/review", tags=["feedback"])
async def review(feedback_id: str, body: ReviewBody, request: Request) -> dict[str, Any]:
    """Approve (the correction becomes the answer served for that question) or reject."""
    principal = await admit(request, "admin")
    reviews = queue(request)
    reviewer = principal.key_id
    if body.decision == "reject":
        await anyio.to_thread.run_sync(
            lambda: reviews.reject(feedback_id, reviewer=reviewer, note=body.note)
        )
        return {"feedback_id": feedback_id, "decision": "rejected"}
    override = await anyio.to_thread.run_sync(
        lambda: reviews.approve(feedback_id, answer=body.answer, reviewer=reviewer, note=body.note)
    )
    return {"feedback_id": feedback_id, "decision": "approved", "override": override.as_dict()}


@router.get("/v1/overrides", tags=["feedback"])
async def list_overrides(
    request: Request, assistant: str | None = None, include_retired: bool = False
) -> dict[str, Any]:
    await admit(request, "admin")
    found = await anyio.to_thread.run_sync(
        lambda: queue(request).overrides(assistant=assistant, include_retired=include_retired)
    )
    return {"data": [o.as_dict() for o in found]}


@router.delete("/v1/overrides/{override_id}", tags=["feedback"])
async def retire_override(override_id: str, request: Request) -> dict[str, Any]:
    await admit(request, "admin")
    retired = await anyio.to_thread.run_sync(lambda: queue(request).retire(override_id))
    return retired.as_dict()


def _page(name: str) -> HTMLResponse:
    page = resources.files("acllm.service").joinpath(f"web/{name}").read_text(encoding="utf-8")
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


@router.get("/", include_in_schema=False)
async def chat_page() -> HTMLResponse:
    return _page("index.html")


@router.get("/review", include_in_schema=False)
async def review_page() -> HTMLResponse:
    """The reviewers' page (its data needs an admin key when auth is on)."""
    return _page("review.html")
