"""Admin routes that manage API keys: create, list, revoke, and usage per day.

Every route admits its caller to the "admin" route group through ``app.state.guard`` and works on
the key store in ``app.state.keys``. A new key's secret is in the create response and nowhere else.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from acllm.errors import NotFoundError
from acllm.service.guard import Guard
from acllm.service.keys import KeyStore
from acllm.service.limits import USAGE_KEEP_DAYS, Budgets, parse_day

router = APIRouter(prefix="/v1/keys", tags=["keys"])

Authorization = Annotated[str | None, Header()]


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="who or what the key is for")
    routes: list[str] | None = Field(
        default=None, description='route groups the key may use; default ["*"] (all but admin)'
    )
    assistants: list[str] | None = Field(
        default=None, description='assistants (or models) the key may use; default ["*"]'
    )
    rpm: int | None = Field(default=None, ge=1, description="requests per minute")
    tpm: int | None = Field(default=None, ge=1, description="tokens per minute")
    admin: bool = Field(default=False, description="the key may manage keys")


def _state(request: Request) -> tuple[KeyStore, Guard]:
    store = getattr(request.app.state, "keys", None)
    guard = getattr(request.app.state, "guard", None)
    if store is None or guard is None:
        raise NotFoundError(
            "this server runs without API keys (auth off), so it has no key routes",
            hint="start it with --auth on, or manage keys on its machine with 'acllm keys'",
        )
    return store, guard


async def _admin(request: Request, authorization: str | None) -> KeyStore:
    store, guard = _state(request)
    await guard.admit(authorization, "admin")
    return store


@router.post("", status_code=201)
async def create_key(body: CreateKey, request: Request, authorization: Authorization = None) -> Any:
    store = await _admin(request, authorization)
    key, secret = await asyncio.to_thread(
        store.create,
        body.name,
        routes=body.routes,
        assistants=body.assistants,
        rpm=body.rpm,
        tpm=body.tpm,
        admin=body.admin,
    )
    return {
        "key": key.as_dict(),
        "secret": secret,
        "note": "the secret is not stored and cannot be shown again",
    }


@router.get("")
async def list_keys(request: Request, authorization: Authorization = None) -> Any:
    store = await _admin(request, authorization)
    keys = await asyncio.to_thread(store.list)
    return {"keys": [k.as_dict() for k in keys]}


@router.delete("/{key_id}")
async def revoke_key(key_id: str, request: Request, authorization: Authorization = None) -> Any:
    store = await _admin(request, authorization)
    key, revoked_now = await asyncio.to_thread(store.revoke, key_id)
    return {"key": key.as_dict(), "already_revoked": not revoked_now}


@router.get("/{key_id}/usage")
async def key_usage(
    key_id: str,
    request: Request,
    authorization: Authorization = None,
    day: Annotated[str | None, Query(description="last UTC day reported, YYYY-MM-DD")] = None,
    days: Annotated[int, Query(ge=1, le=USAGE_KEEP_DAYS, description="days reported")] = 1,
) -> Any:
    store = await _admin(request, authorization)
    _, guard = _state(request)
    budgets = getattr(guard, "budgets", None)
    if not isinstance(budgets, Budgets):
        raise NotFoundError(
            "usage is counted only while API keys are on",
            hint="start the server with --auth on to count usage per key",
        )

    def report() -> dict[str, Any]:
        key = store.get(key_id)  # an unknown id is a 404, not a row of zeros
        last = budgets.today() if day is None else parse_day(day)
        rows = [budgets.usage(key.id, last - timedelta(days=n)) for n in range(days)]
        return {
            "key": key.as_dict(),
            "days": [u.as_dict() for u in rows],
            "total": {
                m: sum(getattr(u, m) for u in rows) for m in ("requests", "tokens", "refused")
            },
        }

    return await asyncio.to_thread(report)
