"""API keys for the service: one SQLite file, ``<data_dir>/keys.sqlite``, shared by every worker.

A secret (``acllm-`` + 32 random bytes, URL-safe) is shown once when its key is created and stored
only as its SHA-256 digest. Each key has a public id (``key_`` + 12 hex) that lists, logs and the
admin routes use instead. The file is opened as ``acllm.kv.sqlite`` opens its own: WAL, a busy
timeout, ``BEGIN IMMEDIATE`` for writes, ``PRAGMA user_version`` migrations, and a corrupt or newer
file refused with an error that says what to do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from acllm.errors import ServiceError, UserError
from acllm.service.guard import ALL, ROUTE_GROUPS
from acllm.sqlitedb import Database

SECRET_PREFIX = "acllm-"
FILE_NAME = "keys.sqlite"
ADMIN = "admin"
BUSY_TIMEOUT_S = 10.0  # how long a writer waits for another process's write lock

# Schema steps in order: step i takes PRAGMA user_version from i to i + 1. Only ever append.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        "CREATE TABLE keys ("
        " id TEXT PRIMARY KEY, secret_sha256 BLOB NOT NULL UNIQUE, name TEXT NOT NULL,"
        " routes TEXT NOT NULL, assistants TEXT NOT NULL, rpm INTEGER, tpm INTEGER,"
        " created REAL NOT NULL, revoked_at REAL, last_used REAL)",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)
_COLUMNS = "id, name, routes, assistants, rpm, tpm, created, revoked_at, last_used"
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
_ASSISTANT = re.compile(r"[^\s,]{1,100}")


class UnknownKeyError(UserError):
    """No key has this id (HTTP 404)."""

    status = 404


def digest(secret: str) -> bytes:
    # A plain SHA-256 is enough: the secret carries 256 random bits, so there is nothing to guess
    # and no need for a slow password hash (bcrypt, scrypt) that would cost every request.
    return hashlib.sha256(secret.encode("utf-8", "replace")).digest()


def iso(when: float | None) -> str | None:
    return None if when is None else datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ApiKey:
    """A key as stored, without its secret."""

    id: str
    name: str
    routes: frozenset[str]  # route groups, or {"*"} for every group but "admin"
    assistants: frozenset[str]  # assistant (or model) names, or {"*"}
    rpm: int | None  # None: the service's default_rpm
    tpm: int | None  # None: the service's default_tpm
    created: float  # epoch seconds
    revoked_at: float | None = None
    last_used: float | None = None  # updated at most once a minute

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def admin(self) -> bool:
        return ADMIN in self.routes

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "routes": sorted(self.routes),
            "assistants": sorted(self.assistants),
            "rpm": self.rpm,
            "tpm": self.tpm,
            "admin": self.admin,
            "status": "active" if self.active else "revoked",
            "created": iso(self.created),
            "revoked_at": iso(self.revoked_at),
            "last_used": iso(self.last_used),
        }


def check_routes(routes: Iterable[str] | None, *, admin: bool = False) -> frozenset[str]:
    """Route groups for a new key; an admin key gets "admin" plus only what is asked besides."""
    groups = {r.strip() for r in routes or ()}
    valid = (*ROUTE_GROUPS, ALL)
    unknown = sorted(groups - set(valid))
    if unknown:
        raise UserError(
            f"unknown route group {', '.join(repr(u) for u in unknown)}",
            hint=f"valid route groups: {', '.join(valid)}",
        )
    if admin:
        groups.add(ADMIN)
    if ALL in groups:  # "*" covers every group but admin, which must be asked for by name
        return frozenset({ALL} | (groups & {ADMIN}))
    return frozenset(groups or {ALL})


def check_assistants(assistants: Iterable[str] | None) -> frozenset[str]:
    names = {a.strip() for a in assistants or ()}
    bad = sorted(n for n in names if not _ASSISTANT.fullmatch(n))
    if bad:
        raise UserError(
            f"invalid assistant name {bad[0]!r}",
            hint="give assistant or model names from the config (1-100 characters, no spaces or "
            "commas), or '*' for all",
        )
    return frozenset({ALL}) if not names or ALL in names else frozenset(names)


def check_budget(what: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UserError(
            f"{what} must be a whole number of at least 1, got {value!r}",
            hint=f"leave {what} out to use the service's default",
        )
    return value


def check_name(name: str | None) -> str:
    name = (name or "").strip()
    if not _NAME.fullmatch(name):
        raise UserError(
            "a key needs a name of 1-100 printable characters saying who or what it is for",
            hint='e.g. --name ci-bot (or "name": "ci-bot")',
        )
    return name


class KeyStore:
    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._db = Database(
            self.path,
            MIGRATIONS,
            what="API key store",
            hint="restore it from a backup, or move it aside and create new keys "
            "(acllm keys create): every existing key stops working",
            # A file that holds a `keys` table of another shape is refused here, not later.
            on_open=lambda conn: conn.execute(
                f"SELECT {_COLUMNS}, secret_sha256 FROM keys LIMIT 0"
            ),
        )

    @classmethod
    def at(cls, data_dir: Path, *, clock: Callable[[], float] = time.time) -> KeyStore:
        """The store every acllm process on this machine shares: ``<data_dir>/keys.sqlite``."""
        return cls(data_dir / FILE_NAME, clock=clock)

    @staticmethod
    def _row(row: tuple[Any, ...]) -> ApiKey:
        return ApiKey(
            id=row[0],
            name=row[1],
            routes=frozenset(json.loads(row[2])),
            assistants=frozenset(json.loads(row[3])),
            rpm=row[4],
            tpm=row[5],
            created=row[6],
            revoked_at=row[7],
            last_used=row[8],
        )

    def create(
        self,
        name: str | None,
        *,
        routes: Iterable[str] | None = None,
        assistants: Iterable[str] | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        admin: bool = False,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret. The secret is not stored: this is the only time it exists."""
        key = ApiKey(
            id="",
            name=check_name(name),
            routes=check_routes(routes, admin=admin),
            assistants=check_assistants(assistants),
            rpm=check_budget("rpm", rpm),
            tpm=check_budget("tpm", tpm),
            created=self._clock(),
        )
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        for _ in range(3):  # 48 random bits: a clash of ids is all but impossible, but harmless
            key_id = "key_" + secrets.token_hex(6)
            try:
                with self._db.write() as conn:
                    conn.execute(
                        f"INSERT INTO keys ({_COLUMNS}, secret_sha256) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?)",
                        (
                            key_id,
                            key.name,
                            json.dumps(sorted(key.routes)),
                            json.dumps(sorted(key.assistants)),
                            key.rpm,
                            key.tpm,
                            key.created,
                            digest(secret),
                        ),
                    )
            except ServiceError as exc:
                if isinstance(exc.__cause__, sqlite3.IntegrityError):
                    continue
                raise
            return replace(key, id=key_id), secret
        raise ServiceError(f"could not create a key id in {self.path}; try again")

    def list(self) -> tuple[ApiKey, ...]:
        """Every key, revoked ones too, oldest first. Never a secret."""
        with self._db.read() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM keys ORDER BY created, rowid").fetchall()
        return tuple(self._row(r) for r in rows)

    def get(self, key_id: str) -> ApiKey:
        with self._db.read() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM keys WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            raise UnknownKeyError(
                f"no API key with id {key_id!r}", hint="see the ids with: acllm keys list"
            )
        return self._row(row)

    def revoke(self, key_id: str) -> tuple[ApiKey, bool]:
        """The key, revoked, and whether this call revoked it (False: it already was)."""
        with self._db.write() as conn:
            done = conn.execute(
                "UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (self._clock(), key_id),
            ).rowcount
        return self.get(key_id), done > 0

    def find(self, secret: str) -> ApiKey | None:
        """The key behind ``secret``, revoked or not; None when no key has it."""
        wanted = digest(secret)
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS}, secret_sha256 FROM keys WHERE secret_sha256 = ?", (wanted,)
            ).fetchone()
        # The lookup already matched; compare_digest keeps the final check constant-time anyway.
        if row is None or not hmac.compare_digest(bytes(row[9]), wanted):
            return None
        return self._row(row[:9])

    def verify(self, secret: str) -> ApiKey | None:
        """The active key behind ``secret``; None when unknown or revoked."""
        key = self.find(secret)
        return key if key is not None and key.active else None

    def touch(self, key_id: str, when: float | None = None) -> None:
        """Record use; callers throttle this (KeyGuard writes at most once a minute per key)."""
        with self._db.write() as conn:
            conn.execute(
                "UPDATE keys SET last_used = ? WHERE id = ?",
                (self._clock() if when is None else when, key_id),
            )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
