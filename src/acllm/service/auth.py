"""``KeyGuard``: the Guard that checks API keys, their scopes and their budgets; ``guard_for`` picks
the guard for a bind address and an auth mode.

The KV and key store are synchronous (SQLite waits on a busy lock), so their calls run in a worker
thread rather than on the event loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from acllm.errors import AcllmError, ForbiddenError, UnauthorizedError, UserError
from acllm.service.guard import ALL, ROUTE_GROUPS, Guard, OpenGuard, Principal
from acllm.service.keys import ADMIN, SECRET_PREFIX, ApiKey, KeyStore, iso
from acllm.service.limits import Budgets

if TYPE_CHECKING:
    from acllm.config import ServiceSettings, Settings
    from acllm.kv.base import KV

log = logging.getLogger("acllm.service.auth")

TOUCH_EVERY_S = 60.0  # last_used is written at most this often per key
_SEND_KEY = "send the header 'Authorization: Bearer acllm-...' with a key from 'acllm keys create'"


def bearer_secret(authorization: str | None) -> str:
    """The secret in an ``Authorization: Bearer <secret>`` value; UnauthorizedError otherwise."""
    value = (authorization or "").strip()
    if not value:
        raise UnauthorizedError("no API key given", hint=_SEND_KEY)
    scheme, _, secret = value.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        hint = "put 'Bearer ' before the key" if value.startswith(SECRET_PREFIX) else _SEND_KEY
        raise UnauthorizedError("the Authorization header is not 'Bearer <API key>'", hint=hint)
    if not secret.startswith(SECRET_PREFIX):
        raise UnauthorizedError(
            "the bearer token is not an acllm API key",
            hint=f"acllm keys start with '{SECRET_PREFIX}'; {_SEND_KEY}",
        )
    return secret


def principal_of(key: ApiKey, service: ServiceSettings) -> Principal:
    """The key as the app sees it: "*" spelled out (it never covers admin), default budgets in."""
    routes = key.routes
    if ALL in routes:
        routes = frozenset(g for g in ROUTE_GROUPS if g != ADMIN) | (routes & {ADMIN})
    return Principal(
        key_id=key.id,
        name=key.name,
        routes=routes,
        assistants=key.assistants,
        rpm=service.default_rpm if key.rpm is None else key.rpm,
        tpm=service.default_tpm if key.tpm is None else key.tpm,
    )


def _listed(names: frozenset[str]) -> str:
    return ", ".join(sorted(names)) or "none"


class KeyGuard:
    """Admits callers with an active API key whose scopes cover the route group and assistant, and
    whose budgets (the key's, else the service defaults) have room."""

    def __init__(
        self,
        store: KeyStore,
        kv: KV,
        service: ServiceSettings,
        *,
        clock: Callable[[], float] = time.time,
        close_kv: bool = False,
    ) -> None:
        self.store = store
        self.budgets = Budgets(kv, clock=clock)
        self._kv = kv
        self._service = service
        self._clock = clock
        self._close_kv = close_kv
        self._touched: dict[str, float] = {}  # key id -> when this process last recorded its use

    async def admit(
        self,
        authorization: str | None,
        group: str,
        assistant: str | None = None,
        tokens: int = 0,
    ) -> Principal:
        return await asyncio.to_thread(self.admit_sync, authorization, group, assistant, tokens)

    async def charge(self, principal: Principal, tokens: int) -> None:
        if principal.key_id is not None and tokens != 0:
            await asyncio.to_thread(self.budgets.charge, principal.key_id, principal.tpm, tokens)

    def admit_sync(
        self, authorization: str | None, group: str, assistant: str | None = None, tokens: int = 0
    ) -> Principal:
        if group not in ROUTE_GROUPS:  # the app's mistake, not the caller's
            raise ValueError(f"unknown route group {group!r}; use one of {ROUTE_GROUPS}")
        key = self.store.find(bearer_secret(authorization))
        if key is None:
            raise UnauthorizedError(
                "unknown API key",
                hint="check that the key was copied whole; an admin can list keys with "
                "'acllm keys list' and create one with 'acllm keys create'",
            )
        if not key.active:
            raise UnauthorizedError(
                f"API key {key.id} was revoked at {iso(key.revoked_at)}",
                hint="ask an admin for a new key (acllm keys create)",
            )
        principal = principal_of(key, self._service)
        if not principal.may(group):
            raise ForbiddenError(
                f"API key {key.id} ({key.name}) may not use the '{group}' routes",
                hint=f"its route groups: {_listed(principal.routes)}; "
                f"an admin can create a key with --route {group}",
            )
        if not principal.may(group, assistant):
            raise ForbiddenError(
                f"API key {key.id} ({key.name}) may not use assistant '{assistant}'",
                hint=f"its assistants: {_listed(principal.assistants)}; "
                f"an admin can create a key with --assistant {assistant}",
            )
        self.budgets.check_tokens(key.id, principal.tpm, tokens)  # reads only, so it goes first
        self.budgets.check_request(key.id, principal.rpm)
        self._touch(key.id)
        return principal

    def _touch(self, key_id: str) -> None:
        """Record last_used at most once a minute per key: once per process by memory, once
        across processes by a KV marker that lives a minute."""
        now = self._clock()
        if now - self._touched.get(key_id, -math.inf) < TOUCH_EVERY_S:
            return
        self._touched[key_id] = now
        try:
            if self._kv.set_if_absent(f"guard:seen:{key_id}", b"1", ttl=TOUCH_EVERY_S):
                self.store.touch(key_id, now)
        except AcllmError as exc:  # bookkeeping must never turn a good request away
            log.warning("could not record the use of API key %s: %s", key_id, exc)

    def close(self) -> None:
        self.store.close()
        if self._close_kv:
            self._kv.close()


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 (also ``[::1]`` and IPv4-mapped) and ``localhost``."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False  # another host name: it may resolve anywhere, so treat it as exposed
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def guard_for(
    settings: Settings,
    host: str,
    auth_mode: str | None = None,
    *,
    kv: KV | None = None,
    clock: Callable[[], float] = time.time,
) -> Guard:
    """The guard for a server bound to ``host``: auth "on" checks keys, "off" admits everyone,
    "auto" checks keys unless ``host`` is loopback. ``auth_mode`` None means settings.service.auth.

    Pass the app's KV (``runtime.kv()``) so budgets share its connection; without one, a KV is
    built from ``settings.kv`` and closed by ``KeyGuard.close``.
    """
    mode = auth_mode or settings.service.auth
    if mode not in ("auto", "on", "off"):
        raise UserError(f"unknown auth mode {mode!r}", hint="use auto, on or off")
    if mode == "off" or (mode == "auto" and is_loopback(host)):
        if not is_loopback(host):
            log.warning("API keys are off on %s: anyone who can reach it may use it", host)
        return OpenGuard()
    store = KeyStore.at(settings.data_dir.expanduser(), clock=clock)
    try:
        if not any(k.active for k in store.list()):
            log.warning(
                "API keys are required but none is active: every request will get 401 "
                "(create one with: acllm keys create --name NAME)"
            )
        close_kv = kv is None
        if kv is None:
            from acllm.runtime import Runtime

            kv = Runtime(settings).kv()
    except BaseException:
        store.close()
        raise
    return KeyGuard(store, kv, settings.service, clock=clock, close_kv=close_kv)
