"""The guard seam: who is calling, may they use this route and assistant, is their budget left.

The app calls ``admit`` before it does any work and ``charge`` once the tokens are known. The
default ``OpenGuard`` admits everyone (loopback, auth off); ``acllm.service.auth.KeyGuard`` checks
hashed API keys, scopes and per-key budgets kept in the KV store (shared by every worker).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

# Route groups a key can be scoped to. "admin" manages keys; it implies no other group.
ROUTE_GROUPS = ("chat", "embeddings", "tasks", "ask", "ingest", "feedback", "admin")
ALL = "*"


@dataclass(frozen=True)
class Principal:
    """The caller as the guard admitted it. ``key_id`` None means anonymous (auth off)."""

    key_id: str | None
    name: str
    routes: frozenset[str] = frozenset({ALL})  # route groups, or ALL
    assistants: frozenset[str] = frozenset({ALL})  # assistant (or model) names, or ALL
    rpm: int | None = None  # requests per minute; None: unlimited
    tpm: int | None = None  # tokens per minute (prompt + answer); None: unlimited

    def may(self, group: str, assistant: str | None = None) -> bool:
        # "*" covers every route group except admin: managing keys is only ever granted by name.
        covered = group in self.routes or (ALL in self.routes and group != "admin")
        if not covered:
            return False
        return assistant is None or ALL in self.assistants or assistant in self.assistants


ANONYMOUS = Principal(key_id=None, name="anonymous")


@runtime_checkable
class Guard(Protocol):
    async def admit(
        self,
        authorization: str | None,
        group: str,
        assistant: str | None = None,
        tokens: int = 0,
    ) -> Principal:
        """The caller behind an ``Authorization`` header value, admitted to ``group``.

        ``tokens`` is the prompt's size when known, checked against the TPM budget before work.
        Raises UnauthorizedError (401), ForbiddenError (403) or OverBudgetError (429).
        """
        ...

    async def charge(self, principal: Principal, tokens: int) -> None:
        """Count tokens actually used (prompt + answer) against the caller's TPM budget."""
        ...


class OpenGuard:
    """Auth off: everyone is admitted as ANONYMOUS, nothing is counted."""

    async def admit(
        self,
        authorization: str | None,
        group: str,
        assistant: str | None = None,
        tokens: int = 0,
    ) -> Principal:
        return ANONYMOUS

    async def charge(self, principal: Principal, tokens: int) -> None:
        return None
