"""KeyGuard: 401 / 403 / 429 on every KV backend, budgets shared by processes, and the admin
routes over HTTP. Time comes from a fake clock: nothing sleeps and nothing is timed."""

from __future__ import annotations

import inspect
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Header
from pydantic import BaseModel

from acllm.config import ServiceSettings, Settings
from acllm.errors import ForbiddenError, OverBudgetError, UnauthorizedError, UserError
from acllm.kv.base import KV
from acllm.kv.memory import MemoryKV
from acllm.kv.sqlite import SQLiteKV
from acllm.service import http_errors, routes_keys
from acllm.service.auth import KeyGuard, guard_for, is_loopback
from acllm.service.guard import ANONYMOUS, ROUTE_GROUPS, OpenGuard, Principal
from acllm.service.keys import KeyStore
from acllm.service.limits import Usage

T0 = 1_700_000_040.0  # the start of a one-minute window (a multiple of 60)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "sqlite"])
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KV]:
    store: KV = MemoryKV() if request.param == "memory" else SQLiteKV(tmp_path / "state.db")
    yield store
    store.close()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[KeyStore]:
    with KeyStore(tmp_path / "keys.sqlite", clock=clock) as s:
        yield s


def make_guard(
    store: KeyStore, kv: KV, clock: Clock, service: ServiceSettings | None = None
) -> KeyGuard:
    return KeyGuard(store, kv, service or ServiceSettings(), clock=clock)


@pytest.fixture
def guard(store: KeyStore, kv: KV, clock: Clock) -> KeyGuard:
    return make_guard(store, kv, clock)


def bearer(secret: str) -> str:
    return f"Bearer {secret}"


# --- 401 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "message", "hint"),
    [
        (None, "no API key given", "Authorization: Bearer"),
        ("   ", "no API key given", "Authorization: Bearer"),
        ("Basic dXNlcjpwYXNz", "is not 'Bearer <API key>'", "acllm keys create"),
        ("Bearer", "is not 'Bearer <API key>'", "Authorization: Bearer"),
        ("Bearer sk-openai-style", "not an acllm API key", "start with 'acllm-'"),
        ("Bearer acllm-thisKeyWasNeverMade", "unknown API key", "copied whole"),
    ],
)
async def test_missing_or_bad_keys_are_401(
    guard: KeyGuard, store: KeyStore, header: str | None, message: str, hint: str
) -> None:
    store.create("real")
    with pytest.raises(UnauthorizedError, match=message) as info:
        await guard.admit(header, "chat")
    assert hint in info.value.hint
    assert info.value.status == 401


async def test_a_bare_secret_is_refused_with_a_hint(guard: KeyGuard, store: KeyStore) -> None:
    _, secret = store.create("k")
    with pytest.raises(UnauthorizedError) as info:
        await guard.admit(secret, "chat")
    assert info.value.hint == "put 'Bearer ' before the key"
    assert (await guard.admit(f"bearer  {secret} ", "chat")).name == "k"  # scheme is caseless


async def test_revoked_key_is_401(guard: KeyGuard, store: KeyStore) -> None:
    key, secret = store.create("old")
    assert (await guard.admit(bearer(secret), "chat")).key_id == key.id
    store.revoke(key.id)
    with pytest.raises(UnauthorizedError, match=f"API key {key.id} was revoked") as info:
        await guard.admit(bearer(secret), "chat")
    assert "acllm keys create" in info.value.hint


# --- 403 -----------------------------------------------------------------------------------------


async def test_route_group_outside_the_scope_is_403(guard: KeyGuard, store: KeyStore) -> None:
    _, secret = store.create("chatty", routes=["chat", "embeddings"])
    await guard.admit(bearer(secret), "embeddings")
    with pytest.raises(ForbiddenError, match="may not use the 'ask' routes") as info:
        await guard.admit(bearer(secret), "ask")
    assert "chat, embeddings" in info.value.hint and "--route ask" in info.value.hint
    assert info.value.status == 403


async def test_assistant_outside_the_scope_is_403(guard: KeyGuard, store: KeyStore) -> None:
    _, secret = store.create("support-only", assistants=["support"])
    assert (await guard.admit(bearer(secret), "ask", "support")).assistants == {"support"}
    await guard.admit(bearer(secret), "ask")  # a route that names no assistant
    with pytest.raises(ForbiddenError, match="may not use assistant 'sales'") as info:
        await guard.admit(bearer(secret), "ask", "sales")
    assert "its assistants: support" in info.value.hint


async def test_admin_is_asked_for_by_name(guard: KeyGuard, store: KeyStore) -> None:
    _, everything = store.create("all")
    _, admin = store.create("ops", admin=True)
    _, both = store.create("ops+chat", admin=True, routes=["chat"])
    for group in ROUTE_GROUPS[:-1]:
        await guard.admit(bearer(everything), group)
    with pytest.raises(ForbiddenError, match="'admin' routes"):
        await guard.admit(bearer(everything), "admin")
    await guard.admit(bearer(admin), "admin")
    with pytest.raises(ForbiddenError, match="'chat' routes"):
        await guard.admit(bearer(admin), "chat")
    await guard.admit(bearer(both), "chat")
    await guard.admit(bearer(both), "admin")


async def test_the_principal(store: KeyStore, kv: KV, clock: Clock) -> None:
    guard = make_guard(store, kv, clock, ServiceSettings(default_rpm=7, default_tpm=900))
    key, secret = store.create("p", rpm=3)
    principal = await guard.admit(bearer(secret), "chat")
    assert principal == Principal(
        key_id=key.id,
        name="p",
        routes=frozenset(ROUTE_GROUPS) - {"admin"},  # "*" spelled out, so may("admin") is False
        assistants=frozenset({"*"}),
        rpm=3,  # the key's own
        tpm=900,  # the service's default
    )
    assert not principal.may("admin")


async def test_an_unknown_route_group_is_the_apps_bug(guard: KeyGuard, store: KeyStore) -> None:
    _, secret = store.create("k")
    with pytest.raises(ValueError, match="unknown route group 'chats'"):
        await guard.admit(bearer(secret), "chats")


# --- 429: requests per minute --------------------------------------------------------------------


async def test_rpm_refuses_then_admits_when_retry_after_has_passed(
    guard: KeyGuard, store: KeyStore, clock: Clock
) -> None:
    _, secret = store.create("k", rpm=3)
    for _ in range(3):
        await guard.admit(bearer(secret), "chat")
    for _ in range(5):  # refusals are not counted, so hammering does not push the wait out
        with pytest.raises(OverBudgetError, match="used its 3 requests per minute") as info:
            await guard.admit(bearer(secret), "chat")
        # This minute is full; next minute its 3 weigh 3 * (1 - f): room for one at f = 1/3.
        assert info.value.retry_after == pytest.approx(80.0)
        assert info.value.status == 429 and "retry after 80 s" in info.value.hint
    clock.now = T0 + 79
    with pytest.raises(OverBudgetError):
        await guard.admit(bearer(secret), "chat")
    clock.now = T0 + 80
    await guard.admit(bearer(secret), "chat")


async def test_rpm_window_slides(guard: KeyGuard, store: KeyStore, clock: Clock) -> None:
    _, secret = store.create("k", rpm=10)
    clock.now = T0 + 59  # ten at the very end of a minute ...
    for _ in range(10):
        await guard.admit(bearer(secret), "chat")
    clock.now = T0 + 60  # ... do not buy ten more at the start of the next, as a fixed window would
    with pytest.raises(OverBudgetError):
        await guard.admit(bearer(secret), "chat")
    clock.now = T0 + 90  # half-way: half of the last minute's ten still counts
    admitted = 0
    for _ in range(10):
        try:
            await guard.admit(bearer(secret), "chat")
            admitted += 1
        except OverBudgetError:
            pass
    assert admitted == 5


async def test_default_rpm_applies_to_keys_without_their_own(
    store: KeyStore, kv: KV, clock: Clock
) -> None:
    guard = make_guard(store, kv, clock, ServiceSettings(default_rpm=2))
    _, default = store.create("default")
    _, own = store.create("own", rpm=4)
    results = []
    for secret in (default, own):
        admitted = 0
        for _ in range(6):
            try:
                await guard.admit(bearer(secret), "chat")
                admitted += 1
            except OverBudgetError:
                pass
        results.append(admitted)
    assert results == [2, 4]  # and each key has its own budget


async def test_no_budget_means_unlimited(guard: KeyGuard, store: KeyStore) -> None:
    _, secret = store.create("k")
    for _ in range(200):
        await guard.admit(bearer(secret), "chat", tokens=10**6)


# --- 429: tokens per minute ----------------------------------------------------------------------


async def test_tpm_checks_estimates_and_charges_actual_use(
    guard: KeyGuard, store: KeyStore, clock: Clock
) -> None:
    _, secret = store.create("k", tpm=100)
    with pytest.raises(UserError, match="can never be admitted") as never:
        await guard.admit(bearer(secret), "chat", tokens=150)
    assert not isinstance(never.value, OverBudgetError) and never.value.status == 400
    first = await guard.admit(bearer(secret), "chat", tokens=60)
    await guard.charge(first, 60)
    with pytest.raises(OverBudgetError, match="request of about 50 tokens"):
        await guard.admit(bearer(secret), "chat", tokens=50)
    second = await guard.admit(bearer(secret), "chat", tokens=40)
    await guard.charge(second, 50)  # the answer ran longer: 110 of 100 spent, allowed
    with pytest.raises(OverBudgetError) as info:
        await guard.admit(bearer(secret), "chat")  # overdrawn: even a request of unknown size
    # The next minute its 110 weigh 110 * (1 - f); one token fits at f = 0.1.
    assert info.value.retry_after == pytest.approx(66.0)
    clock.now = T0 + 66
    await guard.admit(bearer(secret), "chat")


async def test_charge_ignores_anonymous_and_refuses_negative(
    guard: KeyGuard, store: KeyStore
) -> None:
    await guard.charge(ANONYMOUS, 50)
    _, secret = store.create("k", tpm=10)
    principal = await guard.admit(bearer(secret), "chat")
    with pytest.raises(ValueError, match="negative"):
        await guard.charge(principal, -5)


# --- usage and last use --------------------------------------------------------------------------


async def test_usage_per_key_per_day(guard: KeyGuard, store: KeyStore, clock: Clock) -> None:
    key, secret = store.create("k", rpm=2)
    other, other_secret = store.create("other")
    for _ in range(3):
        try:
            principal = await guard.admit(bearer(secret), "chat")
            await guard.charge(principal, 15)
        except OverBudgetError:
            pass
    await guard.admit(bearer(other_secret), "chat")
    today = "2023-11-14"
    assert guard.budgets.usage(key.id) == Usage(key.id, today, requests=2, tokens=30, refused=1)
    assert guard.budgets.usage(other.id, today).requests == 1
    clock.now += 86400
    assert guard.budgets.usage(key.id) == Usage(key.id, "2023-11-15", 0, 0, 0)
    assert guard.budgets.usage(key.id, today).tokens == 30
    with pytest.raises(UserError, match="invalid day '20231114'"):
        guard.budgets.usage(key.id, "20231114")


async def test_last_used_is_written_at_most_once_a_minute(
    guard: KeyGuard, store: KeyStore, kv: KV, clock: Clock
) -> None:
    key, secret = store.create("k")
    await guard.admit(bearer(secret), "chat")
    assert store.get(key.id).last_used == T0
    clock.now += 10
    await guard.admit(bearer(secret), "chat")  # this process wrote it a moment ago
    other_worker = make_guard(store, kv, clock)
    clock.now += 10
    await other_worker.admit(bearer(secret), "chat")  # another worker sees the KV marker
    assert store.get(key.id).last_used == T0


# --- one budget shared by processes --------------------------------------------------------------

_CHILD = """
import asyncio, sys
from acllm.config import ServiceSettings
from acllm.errors import OverBudgetError
from acllm.kv.sqlite import SQLiteKV
from acllm.service.auth import KeyGuard
from acllm.service.keys import KeyStore

keys, state, secret, now, tries = sys.argv[1:]
guard = KeyGuard(
    KeyStore(keys), SQLiteKV(state), ServiceSettings(), clock=lambda: float(now), close_kv=True
)

async def go():
    admitted = refused = 0
    for _ in range(int(tries)):
        try:
            await guard.admit("Bearer " + secret, "chat")
            admitted += 1
        except OverBudgetError:
            refused += 1
    return admitted, refused

print("ready", flush=True)
sys.stdin.readline()
print(*asyncio.run(go()), flush=True)
guard.close()
"""


def test_processes_share_one_budget_exactly(tmp_path: Path) -> None:
    keys, state = tmp_path / "keys.sqlite", tmp_path / "state.db"
    with KeyStore(keys) as store:
        key, secret = store.create("shared", rpm=50)
    src = str(Path(inspect.getfile(KeyGuard)).resolve().parents[2])  # children import this acllm
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-c", _CHILD, str(keys), str(state), secret, str(T0 + 1), "40"]
    children = [
        subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    counts = []
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready", child.stderr
        for child in children:  # both start together, so their requests interleave
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err
            counts.append(tuple(int(n) for n in out.split()))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()
    assert sum(a for a, _ in counts) == 50
    assert sum(r for _, r in counts) == 30
    with SQLiteKV(state) as kv:
        usage = KeyGuard(KeyStore(keys), kv, ServiceSettings(), clock=lambda: T0).budgets
        assert usage.usage(key.id) == Usage(key.id, "2023-11-14", 50, 0, 30)


# --- choosing a guard ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("10.0.0.1", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("mode", "host", "kind"),
    [
        ("on", "127.0.0.1", KeyGuard),
        ("on", "0.0.0.0", KeyGuard),
        ("off", "0.0.0.0", OpenGuard),
        ("off", "127.0.0.1", OpenGuard),
        ("auto", "127.0.0.1", OpenGuard),
        ("auto", "localhost", OpenGuard),
        ("auto", "0.0.0.0", KeyGuard),
        ("auto", "my-server.example", KeyGuard),
    ],
)
def test_guard_for(tmp_path: Path, mode: str, host: str, kind: type) -> None:
    settings = Settings(data_dir=tmp_path)
    guard = guard_for(settings, host, mode, kv=MemoryKV())
    try:
        assert type(guard) is kind
    finally:
        if isinstance(guard, KeyGuard):
            guard.close()


async def test_guard_for_builds_its_own_kv_and_falls_back_to_the_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.model_validate({"data_dir": tmp_path, "service": {"auth": "on"}})
    with caplog.at_level(logging.WARNING, logger="acllm.service.auth"):
        guard = guard_for(settings, "127.0.0.1")
    assert "none is active" in caplog.text
    assert isinstance(guard, KeyGuard)
    try:
        _, secret = guard.store.create("k", rpm=1)
        await guard.admit(bearer(secret), "chat")
        with pytest.raises(OverBudgetError):
            await guard.admit(bearer(secret), "chat")
    finally:
        guard.close()
    assert (tmp_path / "keys.sqlite").exists() and (tmp_path / "state.db").exists()


def test_auth_off_on_a_public_address_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="acllm.service.auth"):
        guard_for(Settings(data_dir=tmp_path), "0.0.0.0", "off")
    assert "API keys are off on 0.0.0.0" in caplog.text


# --- over HTTP -----------------------------------------------------------------------------------


class DummyBody(BaseModel):
    assistant: str | None = None
    tokens: int = 0
    used: int = 0


def make_app(store: KeyStore | None, guard: Any) -> FastAPI:
    app = FastAPI()
    http_errors.install(app)
    app.include_router(routes_keys.router)
    if store is not None:
        app.state.keys = store
    app.state.guard = guard

    @app.post("/v1/dummy")
    async def dummy(
        body: DummyBody, authorization: Annotated[str | None, Header()] = None
    ) -> dict[str, Any]:
        principal = await app.state.guard.admit(authorization, "chat", body.assistant, body.tokens)
        await app.state.guard.charge(principal, body.used)
        return {"key_id": principal.key_id, "name": principal.name}

    return app


@pytest.fixture
async def http(store: KeyStore, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(store, KeyGuard(store, MemoryKV(), ServiceSettings(), clock=clock))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture
def admin(store: KeyStore) -> dict[str, str]:
    _, secret = store.create("ops", admin=True)
    return {"Authorization": bearer(secret)}


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": bearer(secret)}


async def test_http_401_403_bodies(
    http: httpx.AsyncClient, store: KeyStore, admin: dict[str, str]
) -> None:
    r = await http.post("/v1/dummy", json={})
    assert r.status_code == 401
    error = r.json()["error"]
    assert error["type"] == "UnauthorizedError" and error["code"] == 401
    assert error["message"] == "no API key given" and "Bearer" in error["hint"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert (await http.get("/v1/keys")).status_code == 401

    _, secret = store.create("chat-only", routes=["chat"], assistants=["support"])
    r = await http.get("/v1/keys", headers=auth(secret))
    assert r.status_code == 403 and "'admin' routes" in r.json()["error"]["message"]
    r = await http.post("/v1/dummy", json={"assistant": "sales"}, headers=auth(secret))
    assert r.status_code == 403 and "assistant 'sales'" in r.json()["error"]["message"]
    r = await http.post("/v1/dummy", json={}, headers=admin)  # admin keys manage keys only
    assert r.status_code == 403


async def test_http_key_lifecycle(http: httpx.AsyncClient, admin: dict[str, str]) -> None:
    body = {"name": "web", "routes": ["chat"], "assistants": ["support"], "rpm": 10, "tpm": 1000}
    r = await http.post("/v1/keys", json=body, headers=admin)
    assert r.status_code == 201, r.text
    created = r.json()
    secret, key_id = created["secret"], created["key"]["id"]
    assert created["key"]["routes"] == ["chat"] and created["key"]["rpm"] == 10
    assert "cannot be shown again" in created["note"]

    r = await http.post("/v1/dummy", json={"assistant": "support"}, headers=auth(secret))
    assert r.status_code == 200 and r.json() == {"key_id": key_id, "name": "web"}

    r = await http.get("/v1/keys", headers=admin)
    assert r.status_code == 200
    assert [k["name"] for k in r.json()["keys"]] == ["ops", "web"]
    assert secret not in r.text and "secret" not in r.text

    r = await http.delete(f"/v1/keys/{key_id}", headers=admin)
    assert r.status_code == 200 and r.json()["already_revoked"] is False
    assert r.json()["key"]["status"] == "revoked"
    r = await http.delete(f"/v1/keys/{key_id}", headers=admin)
    assert r.status_code == 200 and r.json()["already_revoked"] is True
    r = await http.post("/v1/dummy", json={}, headers=auth(secret))
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]

    r = await http.delete("/v1/keys/key_000000000000", headers=admin)
    assert r.status_code == 404 and "acllm keys list" in r.json()["error"]["hint"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "rpm": 0}, "rpm"),
        ({"name": "x", "tpm": "lots"}, "tpm"),
        ({"name": "x", "routes": "chat"}, "routes"),
        ({"name": "x", "secret": "acllm-mine"}, "secret"),  # unknown fields are refused
    ],
)
async def test_http_bad_bodies_are_422(
    http: httpx.AsyncClient, admin: dict[str, str], body: dict[str, Any], field: str
) -> None:
    r = await http.post("/v1/keys", json=body, headers=admin)
    assert r.status_code == 422
    assert [d["loc"][-1] for d in r.json()["detail"]] == [field]


async def test_http_bad_route_group_is_400(http: httpx.AsyncClient, admin: dict[str, str]) -> None:
    r = await http.post("/v1/keys", json={"name": "x", "routes": ["chats"]}, headers=admin)
    assert r.status_code == 400
    error = r.json()["error"]
    assert "unknown route group 'chats'" in error["message"]
    assert "valid route groups: chat, embeddings" in error["hint"]


async def test_http_429_has_retry_after(
    http: httpx.AsyncClient, store: KeyStore, clock: Clock
) -> None:
    _, secret = store.create("k", rpm=2, tpm=100)
    for _ in range(2):
        assert (await http.post("/v1/dummy", json={}, headers=auth(secret))).status_code == 200
    r = await http.post("/v1/dummy", json={}, headers=auth(secret))
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "90"  # next minute, once half of these two have aged out
    assert r.json()["error"]["type"] == "OverBudgetError"
    assert "retry after 90 s" in r.json()["error"]["hint"]

    clock.now = T0 + 90
    r = await http.post("/v1/dummy", json={"used": 150}, headers=auth(secret))  # overdraws
    assert r.status_code == 200
    r = await http.post("/v1/dummy", json={}, headers=auth(secret))
    assert r.status_code == 429 and "tokens per minute" in r.json()["error"]["message"]
    assert int(r.headers["Retry-After"]) > 0
    r = await http.post("/v1/dummy", json={"tokens": 101}, headers=auth(secret))
    assert r.status_code == 400 and "can never be admitted" in r.json()["error"]["message"]
    assert "Retry-After" not in r.headers


async def test_http_usage(
    http: httpx.AsyncClient, store: KeyStore, admin: dict[str, str], clock: Clock
) -> None:
    key, secret = store.create("k")
    await http.post("/v1/dummy", json={"used": 12}, headers=auth(secret))
    clock.now += 86400
    await http.post("/v1/dummy", json={"used": 5}, headers=auth(secret))

    r = await http.get(f"/v1/keys/{key.id}/usage", headers=admin)
    assert r.status_code == 200
    assert r.json()["days"] == [
        {"key_id": key.id, "day": "2023-11-15", "requests": 1, "tokens": 5, "refused": 0}
    ]
    r = await http.get(f"/v1/keys/{key.id}/usage?days=3", headers=admin)
    assert [d["day"] for d in r.json()["days"]] == ["2023-11-15", "2023-11-14", "2023-11-13"]
    assert r.json()["total"] == {"requests": 2, "tokens": 17, "refused": 0}
    r = await http.get(f"/v1/keys/{key.id}/usage?day=2023-11-14", headers=admin)
    assert r.json()["days"][0]["tokens"] == 12

    assert (await http.get(f"/v1/keys/{key.id}/usage?day=14/11", headers=admin)).status_code == 400
    assert (await http.get(f"/v1/keys/{key.id}/usage?days=0", headers=admin)).status_code == 422
    assert (await http.get("/v1/keys/key_nope/usage", headers=admin)).status_code == 404
    assert (await http.get(f"/v1/keys/{key.id}/usage", headers=auth(secret))).status_code == 403


async def test_http_without_key_management(store: KeyStore) -> None:
    cases = [
        (
            make_app(None, OpenGuard()),
            "this server runs without API keys (auth off), so it has no key routes",
        ),
        (make_app(store, OpenGuard()), "usage is counted only while API keys are on"),
    ]
    for app, message in cases:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            r = await client.get("/v1/keys/key_x/usage")
        assert r.status_code == 404 and r.json()["error"]["message"] == message


def test_the_star_scope_never_covers_admin() -> None:
    anyone = Principal(key_id="key_1", name="all routes")
    assert anyone.may("chat", "support") and anyone.may("ingest")
    assert not anyone.may("admin")
    assert Principal(key_id="key_2", name="admin", routes=frozenset({"admin"})).may("admin")
