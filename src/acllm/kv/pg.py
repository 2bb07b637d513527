"""PostgreSQL KV: shared state for deployments that already run PostgreSQL (and not Redis).

One table, ``<schema>.<table>`` (``acllm.kv`` by default): ``key text PRIMARY KEY, value bytea,
expires_at timestamptz``. Created on first open under an advisory lock, so workers starting
together do not race on it.

Atomicity comes from single statements, never from a read then a write:

- ``incr`` is one ``INSERT ... ON CONFLICT (key) DO UPDATE ... RETURNING``. PostgreSQL locks the
  conflicting row for the update, so concurrent increments queue on it and none is lost. The update
  runs only when the stored value is an ASCII decimal (checked on its ``escape`` encoding, which
  leaves digits and ``-`` alone and turns every other byte into something that fails the check) or
  when the row has expired (then it restarts at ``amount`` with this call's ttl). No row returned
  means the live value is not an integer: a UserError, and the value is left as it was.
- ``set_if_absent`` is ``INSERT ... ON CONFLICT DO UPDATE ... WHERE <the old row has expired>``.

Expiry uses the server's clock (``now()``), like Redis: every worker agrees whatever its own clock
says. An expired row is missing to every call and is overwritten in place by the next write of its
key; every ``SWEEP_EVERY`` writes (and at open) a bounded batch of expired rows is deleted.

One connection per instance, in autocommit mode, used behind a lock (open one ``PgKV`` per worker
process). A dropped connection is reopened on the next call. ``get``, ``set`` and ``ttl`` are
retried once on the new connection (running them twice is harmless); ``incr``, ``set_if_absent``
and ``delete`` are not — the lost reply may hide a write that happened — and raise ServiceError.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from acllm.errors import MissingExtraError, ServiceError, UserError
from acllm.kv.base import as_integer, check_key
from acllm.pgconn import connect, libpq_dsn, password_from_env, redact_dsn
from acllm.registry import Backend

if TYPE_CHECKING:
    import psycopg

    from acllm.runtime import Runtime

T = TypeVar("T")
CONNECT_TIMEOUT_S = 10
SWEEP_EVERY = 500  # writes between purges of expired rows
MAX_TTL_S = 1e12  # about 31,000 years; PostgreSQL intervals end near 178 million
SWEEP_BATCH = 1000  # expired rows deleted per purge at most (keeps a purge short)
_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_LIVE = "(expires_at IS NULL OR expires_at > now())"
_EXPIRED = "({t}.expires_at IS NOT NULL AND {t}.expires_at <= now())"


def _ttl(ttl: float | None) -> float | None:
    """A checked ttl PostgreSQL intervals can hold."""
    if ttl is not None and ttl >= MAX_TTL_S:  # also infinity
        raise UserError(
            f"KV ttl {ttl!r} is too large for a PostgreSQL interval",
            hint="use ttl=None for a key that never expires",
        )
    return ttl


def _text(key: str) -> str:
    """A key PostgreSQL text can hold (no NUL, valid Unicode)."""
    if "\x00" in key:
        raise UserError(f"KV key {key!r} contains a NUL character, which PostgreSQL cannot store")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UserError(f"KV keys must be valid Unicode text, got {key!r}") from exc
    return key


def _statements(table: str) -> dict[str, str]:
    """SQL for ``table`` (already a quoted, schema-qualified name)."""
    expired = _EXPIRED.format(t="kv")
    return {
        "get": f"SELECT value FROM {table} WHERE key = %s AND {_LIVE}",
        "set": (
            f"INSERT INTO {table} (key, value, expires_at)"
            " VALUES (%s, %s, now() + make_interval(secs => %s))"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,"
            " expires_at = EXCLUDED.expires_at"
        ),
        "set_if_absent": (
            f"INSERT INTO {table} AS kv (key, value, expires_at)"
            " VALUES (%s, %s, now() + make_interval(secs => %s))"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,"
            f" expires_at = EXCLUDED.expires_at WHERE {expired} RETURNING 1"
        ),
        "incr": (
            f"INSERT INTO {table} AS kv (key, value, expires_at)"
            " VALUES (%(key)s, convert_to(%(amount)s::numeric::text, 'UTF8'),"
            " now() + make_interval(secs => %(ttl)s))"
            " ON CONFLICT (key) DO UPDATE SET"
            f" value = CASE WHEN {expired} THEN EXCLUDED.value ELSE convert_to("
            "(encode(kv.value, 'escape')::numeric + %(amount)s::numeric)::text, 'UTF8') END,"
            f" expires_at = CASE WHEN {expired} THEN EXCLUDED.expires_at ELSE kv.expires_at END"
            f" WHERE {expired} OR encode(kv.value, 'escape') ~ '^-?[0-9]+$'"
            " RETURNING convert_from(value, 'UTF8')"
        ),
        "delete": f"DELETE FROM {table} WHERE key = %s RETURNING {_LIVE}",
        "ttl": (
            f"SELECT EXTRACT(EPOCH FROM expires_at - now())::float8 FROM {table}"
            f" WHERE key = %s AND {_LIVE}"
        ),
        "sweep": (
            f"DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table}"
            f" WHERE expires_at <= now() LIMIT {SWEEP_BATCH}))"
        ),
    }


class PgKV:
    """A KV on PostgreSQL. ``dsn``: libpq conninfo or URL; "" uses libpq's PG* variables."""

    def __init__(
        self,
        dsn: str = "",
        *,
        schema: str = "acllm",
        table: str = "kv",
        password: str | None = None,
        connect_timeout: float = CONNECT_TIMEOUT_S,
    ) -> None:
        try:
            import psycopg  # noqa: F401  (the extra: fail early with MissingExtraError)
        except ImportError as exc:
            raise MissingExtraError("pg", "pg") from exc
        for what, name in (("schema", schema), ("table", table)):
            if not _IDENT.fullmatch(name):
                raise UserError(
                    f"PostgreSQL KV {what} name {name!r} is not a plain identifier",
                    hint="use lower-case letters, digits and _ (at most 63, not starting with a "
                    "digit)",
                )
        self.schema, self.table = schema, table
        self.where = redact_dsn(dsn) or "(libpq defaults: PGHOST, PGPORT, ...)"
        self._dsn = libpq_dsn(dsn)
        self._password = password
        self._timeout = connect_timeout
        self._sql = _statements(f'"{schema}"."{table}"')
        self._lock = threading.Lock()
        self._closed = False
        self._writes = 0
        self._conn: psycopg.Connection[Any] | None = None
        with self._lock:
            self._conn = self._open()
            try:
                self._setup(self._conn)
            except BaseException:
                self._conn.close()
                raise

    # -- connection ------------------------------------------------------------------------------

    def _open(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] = connect(
            self._dsn,
            self.where,
            password=self._password,
            connect_timeout=self._timeout,
            application_name="acllm-kv",
            key="kv.",
        )
        return conn

    def _setup(self, conn: psycopg.Connection[Any]) -> None:
        import psycopg

        name = f'"{self.schema}"."{self.table}"'
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"acllm-kv:{name}",))
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} (key text PRIMARY KEY,"
                    " value bytea NOT NULL, expires_at timestamptz)"
                )
                conn.execute(
                    f'CREATE INDEX IF NOT EXISTS "{self.table}_expires" ON {name} (expires_at)'
                    " WHERE expires_at IS NOT NULL"
                )
            conn.execute(self._sql["sweep"])
        except psycopg.errors.InsufficientPrivilege as exc:
            raise UserError(
                f"the PostgreSQL user may not create the KV table {name}: {exc}",
                hint="grant CREATE on the database (or the schema), or create the table as an "
                "owner once",
            ) from exc
        except psycopg.Error as exc:
            raise ServiceError(f"cannot set up the KV table at {self.where}: {exc}") from exc

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The live connection under the lock (reopened if it dropped); errors become ours."""
        import psycopg

        with self._lock:
            if self._closed:
                raise ServiceError(f"the KV store at {self.where} is closed")
            if self._conn is None or self._conn.closed or self._conn.broken:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                self._conn = self._open()
            try:
                yield self._conn
            except psycopg.DataError as exc:  # a value out of a type's range
                raise UserError(f"PostgreSQL refused a KV value: {exc}") from exc
            except psycopg.OperationalError as exc:
                raise ServiceError(
                    f"lost the connection to PostgreSQL at {self.where}: {exc}",
                    hint="the server may be restarting; the next call reconnects",
                ) from exc
            except psycopg.Error as exc:
                raise ServiceError(f"PostgreSQL at {self.where} failed: {exc}") from exc

    def _run(self, call: Callable[[psycopg.Connection[Any]], T], *, retry: bool) -> T:
        """``call`` on the connection; once more on a fresh one if it was lost and ``retry``."""
        try:
            with self._connection() as conn:
                return call(conn)
        except ServiceError as exc:
            if not retry or "lost the connection" not in exc.message:
                raise
        with self._connection() as conn:
            return call(conn)

    def _wrote(self, conn: psycopg.Connection[Any]) -> None:
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:
            conn.execute(self._sql["sweep"])

    # -- the KV protocol -------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        check_key(key)
        params = (_text(key),)

        def call(conn: psycopg.Connection[Any]) -> bytes | None:
            row = conn.execute(self._sql["get"], params).fetchone()
            return None if row is None else bytes(row[0])

        return self._run(call, retry=True)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        check_key(key, ttl)
        params = (_text(key), bytes(value), _ttl(ttl))

        def call(conn: psycopg.Connection[Any]) -> None:
            conn.execute(self._sql["set"], params)
            self._wrote(conn)

        self._run(call, retry=True)

    def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        check_key(key, ttl)
        params = (_text(key), bytes(value), _ttl(ttl))

        def call(conn: psycopg.Connection[Any]) -> bool:
            stored = conn.execute(self._sql["set_if_absent"], params).fetchone() is not None
            self._wrote(conn)
            return stored

        return self._run(call, retry=False)

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        check_key(key, ttl)
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise UserError(f"KV incr amount must be an integer, got {amount!r}")
        params = {"key": _text(key), "amount": str(amount), "ttl": _ttl(ttl)}

        def call(conn: psycopg.Connection[Any]) -> int | bytes | None:
            row = conn.execute(self._sql["incr"], params).fetchone()
            self._wrote(conn)
            if row is not None:
                return int(row[0])
            held = conn.execute(self._sql["get"], (key,)).fetchone()  # why it was refused
            return None if held is None else bytes(held[0])

        for _ in range(3):  # the refusing value may change or expire between the two statements
            out = self._run(call, retry=False)
            if isinstance(out, int):
                return out
            if out is not None:
                as_integer(key, out)  # raises the UserError every backend raises
        raise ServiceError(f"KV incr of {key!r} at {self.where} kept conflicting; retry")

    def delete(self, key: str) -> bool:
        check_key(key)
        params = (_text(key),)

        def call(conn: psycopg.Connection[Any]) -> bool:
            row = conn.execute(self._sql["delete"], params).fetchone()
            return bool(row is not None and row[0])

        return self._run(call, retry=False)

    def ttl(self, key: str) -> float | None:
        check_key(key)
        params = (_text(key),)

        def call(conn: psycopg.Connection[Any]) -> tuple[float | None] | None:
            row = conn.execute(self._sql["ttl"], params).fetchone()
            return None if row is None else (row[0],)

        found = self._run(call, retry=True)
        if found is None:
            raise KeyError(key)
        return None if found[0] is None else max(0.0, float(found[0]))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> PgKV:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class PgKVOptions(BaseModel):
    """``[kv] backend = "pg"`` options. The DSN holds no password: use password_env."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    dsn: str = ""  # libpq conninfo or URL; "" uses libpq's PGHOST, PGUSER, ... variables
    password_env: str | None = None  # name of the environment variable holding the password
    schema_name: str = Field(default="acllm", alias="schema", pattern=f"^{_IDENT.pattern}$")
    table: str = Field(default="kv", pattern=f"^{_IDENT.pattern}$")
    connect_timeout: float = Field(default=CONNECT_TIMEOUT_S, gt=0)


def build(options: PgKVOptions, runtime: Runtime) -> PgKV:
    password = password_from_env(options.dsn, options.password_env, "kv.")
    return PgKV(
        options.dsn,
        schema=options.schema_name,
        table=options.table,
        password=password,
        connect_timeout=options.connect_timeout,
    )


BACKEND = Backend(
    "kv",
    "pg",
    PgKVOptions,
    build,
    "PostgreSQL table (shared by every worker and replica); needs acllm[pg]",
)
