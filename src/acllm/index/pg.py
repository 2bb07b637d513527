"""PostgreSQL Index: pgvector HNSW for dense search, BM25 over the shared keyword terms, JSONB facets.

Layout. One schema (``acllm`` by default) holds a registry table ``indexes`` (one row per index: its
dim, embedder, keyword-rules version, the version counter and the chunk and term totals BM25 needs)
and, per index, two tables named from the index name (sanitised, plus a short hash of the exact name
so distinct names never collide): ``<t>_sources`` and ``<t>_chunks``. Tables per index rather than
one table set with an ``index_name`` column because:

- ``vector(dim)`` is typed per column and an HNSW index needs one fixed dimension, so indexes built
  with different embedders could not share a column or a graph;
- each index gets its own HNSW graph, so a search never wades through other indexes' vectors (a
  shared graph filtered by name degrades recall exactly like any selective filter);
- ``drop()`` is ``DROP TABLE``: instant, and the space goes back to the system without a vacuum;
- ``stats()`` can report each index's relation sizes.

Keyword search never lets PostgreSQL tokenise. Like the SQLite backend it indexes
``acllm.index.text.terms`` (folded, stemmed): the tsvector is built in Python as a literal of those
terms with their positions, and the query is an OR of the query's quoted terms cast to ``tsquery``,
so user text never reaches tsquery syntax and both backends see the very same terms. Ranking is
FTS5's BM25 (k1 = 1.2, b = 0.75, idf = ln((N - n + 0.5) / (n + 0.5)) floored at 1e-6) computed in
SQL from per-term document frequencies (GIN index counts) and the index's totals, so scores match
the SQLite backend's. A tsvector keeps at most 256 positions per term and positions up to 16383,
so term frequencies are capped there; chunks are far shorter.

Dense search orders by ``embedding <=> query`` (HNSW, ``vector_cosine_ops``) with pgvector's
iterative scans (0.8+, ``strict_order``) so filtered searches still fill ``k`` when they can; the
score is the dot product with the stored vector (cosine, as vectors are unit length), the same
number the SQLite backend reports. Zero vectors have no direction: the cosine index leaves them
out. Indexes of more than 2000 dimensions (HNSW's limit for ``vector``) are searched exactly.

Writes run in one transaction that first locks the index's registry row, so writers of one index
queue while readers go on reading the last committed state (MVCC); the version counter and totals
are updated in that same transaction. Like the SQLite backend the version never repeats: it is at
least the server's clock in milliseconds, so an index dropped and rebuilt under the same name does
not reuse old versions.

One connection per instance, used behind a lock (open one ``PgIndex`` per worker process). A
dropped connection raises ``RetryableError`` and is reopened on the next call.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from acllm.errors import MissingExtraError, RetryableError, ServiceError, UserError
from acllm.index.base import Filters, Hit, SourceWrite
from acllm.index.text import TEXT_VERSION, terms
from acllm.ingest.document import Chunk
from acllm.pgconn import libpq_dsn, password_from_env, redact_dsn
from acllm.registry import Backend

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

    from acllm.runtime import Runtime

SCHEMA_VERSION = 1  # of the tables below; bump with a migration when they change
K1, B = 1.2, 0.75  # BM25 parameters, FTS5's defaults
MAX_HNSW_DIM = 2000  # pgvector's HNSW limit for the vector type
EF_SEARCH = 100  # HNSW candidate list per search (pgvector's default is 40)
CONNECT_TIMEOUT_S = 10
_MAX_LEXEME_BYTES = 2047  # PostgreSQL rejects longer tsvector lexemes
_MAX_POSITION = 16383  # tsvector positions are clamped here
_MAX_POSITIONS = 256  # and at most this many are kept per lexeme
_BATCH = 1000  # ids per statement in get()/vectors()

_FILTER_HINT = "filters map a metadata field to a value or a list of values (text, number, bool)"
_CHUNK_COLS = ("seq", "id", "source_id", "source", "location", "text", "metadata")


# -- helpers (no psycopg needed) -----------------------------------------------------------------


def table_prefix(name: str) -> str:
    """Tables of index ``name``: readable, within PostgreSQL's 63-byte identifiers, collision-free."""
    readable = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:32] or "index"
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{readable}_{digest}"


def _quote_lexeme(term: str) -> str:
    """A term as a quoted tsvector/tsquery lexeme: no operator or weight syntax can leak through."""
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def _usable(term: str) -> bool:
    return len(term.encode("utf-8")) <= _MAX_LEXEME_BYTES


def tsvector_literal(words: Sequence[str]) -> str:
    """``'term':1,4 'other':2`` for the terms in order (what to_tsvector would make, minus parsing)."""
    positions: dict[str, list[int]] = {}
    for pos, word in enumerate(words, 1):
        where = positions.get(word)
        if where is None:
            positions[word] = [pos]
        elif len(where) < _MAX_POSITIONS and pos <= _MAX_POSITION:
            where.append(pos)
    return " ".join(
        f"{_quote_lexeme(word)}:{','.join(map(str, where))}"
        for word, where in positions.items()
        if _usable(word)
    )


def vector_literal(vector: npt.NDArray[np.float32]) -> str:
    """pgvector's text form; ``%.9g`` round-trips float32 exactly (one C-level format per row)."""
    return "[" + ",".join(["%.9g"] * len(vector)) % tuple(vector.tolist()) + "]"


def query_terms(query: str) -> list[str]:
    """The distinct keyword terms of a query, in order."""
    return [t for t in dict.fromkeys(terms(query)) if _usable(t)]


def _json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{what} is not JSON-serialisable: {exc}") from exc


def _check_text(value: str, what: str) -> str:
    if "\x00" in value:
        raise UserError(
            f"{what} contains a NUL character, which PostgreSQL text cannot hold",
            hint="strip NUL characters when loading the source",
        )
    return value


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _json_equals(value: str | int | float | bool) -> list[Any]:
    """The JSON values SQLite's json_extract treats as equal to ``value`` (true is 1, false 0)."""
    if isinstance(value, bool):
        return [value, int(value)]
    if isinstance(value, int | float) and value in (0, 1):
        return [value, bool(value)]
    return [value]


def _parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


# -- the index -------------------------------------------------------------------------------


class PgIndex:
    """An Index on PostgreSQL + pgvector. ``dsn``: libpq conninfo or URL (``postgresql://...``)."""

    def __init__(
        self,
        dsn: str,
        *,
        name: str,
        dim: int,
        embedder: str,
        schema: str = "acllm",
        password: str | None = None,
    ) -> None:
        try:
            import psycopg  # noqa: F401  (the extra: fail early with MissingExtraError)
            from pgvector.psycopg import register_vector
        except ImportError as exc:
            raise MissingExtraError("pg", "pg") from exc
        if not name:
            raise UserError("an index needs a name")
        if not 1 <= dim <= 16000:
            raise UserError(f"index '{name}': dim {dim} is outside 1..16000 (pgvector's range)")
        if not schema:
            raise UserError("the PostgreSQL schema name is empty")
        self.name = name
        self.dim = dim
        self.embedder = embedder
        self.schema = schema
        self.tables = table_prefix(name)
        self._register_vector = register_vector
        self._dsn = libpq_dsn(dsn)
        self._where = redact_dsn(dsn) or "(libpq defaults: PGHOST, PGPORT, ...)"
        self._password = password
        self._lock = threading.Lock()
        self._iterative = False  # pgvector >= 0.8: iterative index scans
        self._sql = self._statements()
        self._conn: psycopg.Connection[Any] | None = None
        self._closed = False
        conn = self._connect()
        try:
            self._setup(conn)
            self._prepare_session(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    # -- connecting ------------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        try:
            params: dict[str, Any] = conninfo_to_dict(self._dsn)
        except psycopg.ProgrammingError as exc:
            raise UserError(f"invalid PostgreSQL DSN {self._where}: {exc}") from exc
        params.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        params.setdefault("application_name", "acllm")
        if self._password is not None:
            params["password"] = self._password
        try:
            return psycopg.connect(**params, autocommit=True)
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ServiceError(
                f"cannot connect to PostgreSQL at {self._where}: {reason}",
                hint="check that the server is running and reachable, and the DSN's host, port, "
                "user and database; a password comes from password_env, PGPASSWORD or ~/.pgpass",
            ) from exc

    def _setup(self, conn: psycopg.Connection[Any]) -> None:
        """Check pgvector, create the schema, registry and this index's tables; check the build."""
        import psycopg

        s = self._sql
        try:
            with conn.transaction():
                # One lock per schema: concurrent first opens do not race on CREATE ... IF NOT EXISTS.
                conn.execute(s["lock"], (f"acllm:{self.schema}",))
                self._ensure_vector(conn)
                if conn.execute(s["schema_exists"], (self.schema,)).fetchone() is None:
                    conn.execute(s["create_schema"])
                if conn.execute(s["regclass"], (self._qualified("indexes"),)).fetchone() == (None,):
                    conn.execute(s["create_registry"])
                row = conn.execute(s["registry_row"], (self.name,)).fetchone()
                if row is None:
                    conn.execute(
                        s["register"],
                        (
                            self.name,
                            self.tables,
                            self.dim,
                            self.embedder,
                            TEXT_VERSION,
                            SCHEMA_VERSION,
                        ),
                    )
                    for statement in s["create_tables"]:
                        conn.execute(statement)
                else:
                    self._check_build(row)
                    missing = conn.execute(
                        s["regclass"], (self._qualified(f"{self.tables}_chunks"),)
                    ).fetchone()
                    if missing == (None,):
                        raise ServiceError(
                            f"index '{self.name}' is registered in schema '{self.schema}' but its "
                            f"tables are gone",
                            hint=f"drop the index '{self.name}' and ingest again",
                        )
        except psycopg.errors.InsufficientPrivilege as exc:
            raise UserError(
                f"PostgreSQL user may not create acllm's tables in schema '{self.schema}': {exc}",
                hint="grant CREATE on the database (or the schema) to this user, or pick another "
                "schema",
            ) from exc
        except psycopg.Error as exc:
            raise ServiceError(
                f"cannot set up index '{self.name}' at {self._where}: {exc}"
            ) from exc

    def _ensure_vector(self, conn: psycopg.Connection[Any]) -> None:
        import psycopg

        row = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
        if row is None:
            try:
                with conn.transaction():  # a savepoint: a refusal must not poison the transaction
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.errors.InsufficientPrivilege as exc:
                raise UserError(
                    "the database lacks the pgvector extension and this user may not create it",
                    hint="have a superuser run CREATE EXTENSION vector in this database",
                ) from exc
            except (psycopg.errors.UndefinedFile, psycopg.errors.FeatureNotSupported) as exc:
                raise UserError(
                    "pgvector is not installed on the PostgreSQL server",
                    hint="install pgvector 0.5 or newer on the server (e.g. postgresql-NN-pgvector)",
                ) from exc
            row = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()
        version = _parse_version(str(row[0])) if row else ()
        if version < (0, 5):
            raise UserError(
                f"pgvector {row[0] if row else '?'} has no HNSW index",
                hint="ALTER EXTENSION vector UPDATE (0.5 or newer; 0.8+ for filtered search)",
            )
        self._iterative = version >= (0, 8)

    def _prepare_session(self, conn: psycopg.Connection[Any]) -> None:
        self._register_vector(conn)
        conn.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
        if self._iterative:
            # Keep scanning the graph until LIMIT rows pass the filters, in exact distance order.
            conn.execute("SET hnsw.iterative_scan = strict_order")

    def _check_build(self, row: tuple[Any, ...]) -> None:
        dim, embedder, text_version, schema_version = row[1], row[2], row[3], row[4]
        if (embedder, dim) != (self.embedder, self.dim):
            raise UserError(
                f"index '{self.name}' was built with embedder '{embedder}' (dim {dim}), "
                f"not '{self.embedder}' (dim {self.dim}): its vectors cannot be searched with it",
                hint=f"re-ingest with embedder '{embedder}', or drop the index and ingest again",
            )
        if text_version != TEXT_VERSION:
            raise UserError(
                f"index '{self.name}' was built with older keyword rules "
                f"(text version {text_version}, now {TEXT_VERSION})",
                hint="drop the index and ingest again",
            )
        if schema_version > SCHEMA_VERSION:
            raise ServiceError(
                f"index '{self.name}' has schema version {schema_version}, but this acllm knows "
                f"only up to {SCHEMA_VERSION}: a newer acllm wrote it",
                hint="upgrade acllm (pip install -U acllm)",
            )

    def _qualified(self, table: str) -> str:
        """``"schema"."table"`` for to_regclass()."""
        from psycopg.sql import Identifier as quote

        return f"{quote(self.schema).as_string()}.{quote(table).as_string()}"

    # -- SQL -------------------------------------------------------------------------------------

    def _statements(self) -> dict[str, Any]:
        from psycopg import sql

        schema = sql.Identifier(self.schema)
        registry = sql.SQL("{}.{}").format(schema, sql.Identifier("indexes"))
        chunks = sql.SQL("{}.{}").format(schema, sql.Identifier(f"{self.tables}_chunks"))
        sources = sql.SQL("{}.{}").format(schema, sql.Identifier(f"{self.tables}_sources"))

        def named(suffix: str) -> sql.Identifier:
            return sql.Identifier(f"{self.tables}_{suffix}")

        def q(text: str, **extra: sql.Composable) -> sql.Composed:
            return sql.SQL(text).format(
                registry=registry, chunks=chunks, sources=sources, schema=schema, **extra
            )

        create_tables = [
            q(
                "CREATE TABLE {sources} (source_id text NOT NULL, content_hash text NOT NULL,"
                " metadata jsonb NOT NULL, CONSTRAINT {pk} PRIMARY KEY (source_id))",
                pk=named("s_pk"),
            ),
            sql.SQL(
                "CREATE TABLE {chunks} ("
                " seq bigint GENERATED ALWAYS AS IDENTITY,"  # insertion order: ties, by age
                " id text NOT NULL, source_id text NOT NULL, source text NOT NULL,"
                " location text NOT NULL, text text NOT NULL,"
                " metadata jsonb NOT NULL,"  # the chunk's own, as given
                " facets jsonb NOT NULL,"  # source metadata overlaid with the chunk's: filters
                " terms tsvector NOT NULL, n_terms integer NOT NULL,"
                " embedding vector({dim}) NOT NULL,"
                " CONSTRAINT {pk} PRIMARY KEY (seq), CONSTRAINT {uid} UNIQUE (id),"
                " CONSTRAINT {fk} FOREIGN KEY (source_id) REFERENCES {sources} (source_id)"
                " ON DELETE CASCADE)"
            ).format(
                chunks=chunks,
                sources=sources,
                dim=sql.Literal(self.dim),
                pk=named("c_pk"),
                uid=named("c_id"),
                fk=named("c_fk"),
            ),
            q("CREATE INDEX {ix} ON {chunks} (source_id)", ix=named("c_src")),
            q("CREATE INDEX {ix} ON {chunks} USING gin (terms)", ix=named("c_terms")),
            q(
                "CREATE INDEX {ix} ON {chunks} USING gin (facets jsonb_path_ops)",
                ix=named("c_facets"),
            ),
        ]
        if self.dim <= MAX_HNSW_DIM:
            create_tables.append(
                q(
                    "CREATE INDEX {ix} ON {chunks} USING hnsw (embedding vector_cosine_ops)",
                    ix=named("c_hnsw"),
                )
            )
        cols = sql.SQL(", ").join(sql.SQL("c.") + sql.Identifier(c) for c in _CHUNK_COLS)
        version_now = (
            "GREATEST(version + 1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)"
        )
        return {
            "lock": sql.SQL("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"),
            "schema_exists": sql.SQL("SELECT 1 FROM pg_namespace WHERE nspname = %s"),
            "create_schema": q("CREATE SCHEMA IF NOT EXISTS {schema}"),
            "regclass": sql.SQL("SELECT to_regclass(%s)::text"),
            "create_registry": q(
                "CREATE TABLE IF NOT EXISTS {registry} (name text PRIMARY KEY,"
                " tables text NOT NULL UNIQUE, dim integer NOT NULL, embedder text NOT NULL,"
                " text_version integer NOT NULL, schema_version integer NOT NULL,"
                " version bigint NOT NULL DEFAULT 0, chunks bigint NOT NULL DEFAULT 0,"
                " terms bigint NOT NULL DEFAULT 0,"
                " created timestamptz NOT NULL DEFAULT now(), updated timestamptz)"
            ),
            "registry_row": q(
                "SELECT tables, dim, embedder, text_version, schema_version FROM {registry}"
                " WHERE name = %s FOR UPDATE"
            ),
            "register": q(
                "INSERT INTO {registry} (name, tables, dim, embedder, text_version, schema_version)"
                " VALUES (%s, %s, %s, %s, %s, %s)"
            ),
            "create_tables": create_tables,
            "drop": q("DROP TABLE IF EXISTS {chunks}, {sources}"),
            "unregister": q("DELETE FROM {registry} WHERE name = %s"),
            "lock_row": q("SELECT version FROM {registry} WHERE name = %s FOR UPDATE"),
            "delete_chunks": q(
                "WITH d AS (DELETE FROM {chunks} WHERE source_id = ANY(%s) RETURNING n_terms)"
                " SELECT count(*), coalesce(sum(n_terms), 0) FROM d"
            ),
            "delete_sources": q("DELETE FROM {sources} WHERE source_id = ANY(%s)"),
            "insert_source": q(
                "INSERT INTO {sources} (source_id, content_hash, metadata) VALUES (%s, %s, %s)"
            ),
            "copy_chunks": q(
                "COPY {chunks} (id, source_id, source, location, text, metadata, facets, terms,"
                " n_terms, embedding) FROM STDIN"
            ),
            "bump": q(
                f"UPDATE {{registry}} SET version = {version_now}, chunks = chunks + %s,"
                " terms = terms + %s, updated = now() WHERE name = %s"
            ),
            "version": q("SELECT version FROM {registry} WHERE name = %s"),
            "sources": q("SELECT source_id, content_hash FROM {sources}"),
            "get": sql.SQL("SELECT {cols} FROM {chunks} c WHERE c.id = ANY(%s)").format(
                cols=cols, chunks=chunks
            ),
            "vectors": q("SELECT id, embedding FROM {chunks} WHERE id = ANY(%s)"),
            "cols": cols,
            "chunks": chunks,
            "registry": registry,
            "stats": q(
                "SELECT (SELECT count(*) FROM {sources}), (SELECT count(*) FROM {chunks}),"
                " r.version, r.created, r.updated FROM {registry} r WHERE r.name = %s"
            ),
            "sizes": sql.SQL(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relname = ANY(%s)"
            ),
            "index_sizes": sql.SQL(
                "SELECT i.indexrelid::regclass::text, pg_relation_size(i.indexrelid)"
                " FROM pg_index i WHERE i.indrelid = to_regclass(%s)"
            ),
        }

    def _filter_sql(self, filters: Filters | None) -> tuple[sql.Composable, dict[str, Any]]:
        """``AND ...`` over the facets (source metadata overlaid with the chunk's), and its params.

        The SQLite backend's semantics exactly: a value matches by JSON equality (1 and 1.0 are
        equal; true and 1 are too, as SQLite's json_extract has it); a list matches any of its
        values, an empty one nothing; None matches a null or absent field. Containment (``@>``)
        lets the planner use the GIN index on facets.
        """
        from psycopg import sql

        clauses: list[sql.Composable] = []
        params: dict[str, Any] = {}

        def param(value: Any) -> sql.Placeholder:
            name = f"f{len(params)}"
            params[name] = value
            return sql.Placeholder(name)

        for key, wanted in (filters or {}).items():
            values = (
                list(wanted) if isinstance(wanted, list | tuple | set | frozenset) else [wanted]
            )
            if not isinstance(key, str) or '"' in key or not all(_scalar(v) for v in values):
                raise UserError(f"bad filter {key!r}: {wanted!r}", hint=_FILTER_HINT)
            tests: list[sql.Composable] = []
            for value in values:
                if value is None:
                    test = "coalesce(jsonb_typeof(c.facets -> {}), 'null') = 'null'"
                    tests.append(sql.SQL(test).format(param(key)))
                    continue
                for same in _json_equals(value):
                    fact = param(_json({key: same}, f"filter {key!r}"))
                    tests.append(sql.SQL("c.facets @> {}::jsonb").format(fact))
            either = sql.SQL(" OR ").join(tests) if tests else sql.SQL("false")
            clauses.append(sql.SQL(" AND (") + either + sql.SQL(")"))
        return sql.Composed(clauses), params

    # -- plumbing --------------------------------------------------------------------------------

    @contextmanager
    def _db(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection under the lock (reopened if it dropped); driver errors become ours."""
        import psycopg

        with self._lock:
            if self._closed:
                raise ServiceError(f"the index '{self.name}' is closed")
            if self._conn is None or self._conn.closed or self._conn.broken:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                conn = self._connect()
                try:
                    self._prepare_session(conn)
                except BaseException:
                    conn.close()
                    raise
                self._conn = conn
            try:
                yield self._conn
            except psycopg.OperationalError as exc:
                raise RetryableError(
                    f"index '{self.name}' at {self._where}: PostgreSQL failed: {exc}",
                    hint="the server may be restarting or overloaded; retry",
                ) from exc
            except psycopg.Error as exc:
                raise ServiceError(
                    f"index '{self.name}' at {self._where}: PostgreSQL failed: {exc}"
                ) from exc

    @staticmethod
    def _chunk(row: Sequence[Any]) -> Chunk:
        return Chunk(row[1], row[2], row[3], row[4], row[5], dict(row[6]))

    # -- writing ---------------------------------------------------------------------------------

    def write(self, replace: Sequence[SourceWrite] = (), remove: Sequence[str] = ()) -> None:
        import psycopg

        if not replace and not remove:
            return
        latest = {s.source_id: s for s in replace}  # a source given twice: the last one wins
        rows = [row for s in latest.values() for row in self._rows(s)]
        seen: set[str] = set()
        for row in rows:
            if row[0] in seen:
                raise UserError(f"chunk id {row[0]} appears twice in the index")
            seen.add(row[0])
        source_rows = [
            (
                _check_text(s.source_id, "source id"),
                _check_text(s.content_hash, f"source {s.source_id}: content hash"),
                _json(dict(s.metadata), f"source {s.source_id}: metadata"),
            )
            for s in latest.values()
        ]
        touched = list(dict.fromkeys([*remove, *latest]))
        added_terms = sum(int(r[8]) for r in rows)
        s = self._sql
        try:
            with self._db() as conn, conn.transaction():
                if conn.execute(s["lock_row"], (self.name,)).fetchone() is None:
                    raise ServiceError(
                        f"index '{self.name}' was dropped",
                        hint="open it again to create it empty",
                    )
                gone = conn.execute(s["delete_chunks"], (touched,)).fetchone()
                removed_chunks, removed_terms = (int(gone[0]), int(gone[1])) if gone else (0, 0)
                conn.execute(s["delete_sources"], (touched,))
                if source_rows:
                    with conn.cursor() as cur:
                        cur.executemany(s["insert_source"], source_rows)
                if rows:
                    with conn.cursor() as cur, cur.copy(s["copy_chunks"]) as copy:
                        for row in rows:
                            copy.write_row(row)
                conn.execute(
                    s["bump"],
                    (len(rows) - removed_chunks, added_terms - removed_terms, self.name),
                )
        except ServiceError as exc:
            cause = exc.__cause__
            if isinstance(cause, psycopg.errors.UniqueViolation):
                detail = cause.diag.message_detail or str(cause)
                raise UserError(
                    f"index '{self.name}': a chunk id already belongs to another source ({detail})"
                ) from cause
            raise

    def _rows(self, source: SourceWrite) -> Iterator[tuple[Any, ...]]:
        vectors = np.asarray(source.vectors)
        if vectors.shape != (len(source.chunks), self.dim):
            raise UserError(
                f"source {source.source_id}: vectors of shape {vectors.shape} for "
                f"{len(source.chunks)} chunks in an index of dim {self.dim}"
            )
        if not np.all(np.isfinite(vectors)):
            raise UserError(f"source {source.source_id}: vectors hold NaN or infinity")
        vectors = vectors.astype(np.float32, copy=False)
        for chunk, vector in zip(source.chunks, vectors, strict=True):
            if chunk.source_id != source.source_id:
                raise UserError(
                    f"chunk {chunk.id} belongs to source {chunk.source_id}, not {source.source_id}"
                )
            words = terms(chunk.text)
            what = f"chunk {chunk.id}"
            yield (
                _check_text(chunk.id, "chunk id"),
                _check_text(chunk.source_id, f"{what}: source id"),
                _check_text(chunk.source, f"{what}: source"),
                _check_text(chunk.location, f"{what}: location"),
                _check_text(chunk.text, f"{what}: text"),
                _json(chunk.metadata, f"{what}: metadata"),
                _json({**source.metadata, **chunk.metadata}, f"{what}: metadata"),
                tsvector_literal(words),
                len(words),
                vector_literal(vector),
            )

    # -- reading ---------------------------------------------------------------------------------

    def sources(self) -> dict[str, str]:
        with self._db() as conn:
            return {str(r[0]): str(r[1]) for r in conn.execute(self._sql["sources"])}

    def keyword_search(self, query: str, k: int, filters: Filters | None = None) -> list[Hit]:
        """BM25 as FTS5 computes it, over the documents holding any of the query's terms."""
        from psycopg import sql

        words = query_terms(query)
        if not words or k <= 0:
            return []
        where, params = self._filter_sql(filters)
        statement = sql.SQL(
            "WITH totals AS ("
            "  SELECT greatest(r.chunks, 0)::float8 AS n,"
            "   greatest(r.terms::float8 / greatest(r.chunks, 1), 1e-9) AS avgdl"
            "  FROM {registry} r WHERE r.name = %(name)s),"
            " weights AS ("
            "  SELECT w.lexeme, greatest(ln((t.n - d.df + 0.5) / (d.df + 0.5)), 1e-6) AS idf"
            "  FROM unnest(%(lexemes)s::text[], %(queries)s::text[]) AS w(lexeme, query)"
            "  CROSS JOIN totals t"
            "  CROSS JOIN LATERAL (SELECT count(*)::float8 AS df FROM {chunks} c"
            "   WHERE c.terms @@ w.query::tsquery) d),"
            " scored AS ("
            "  SELECT c.seq, sum(w.idf * (u.tf * ({k1} + 1))"
            "   / (u.tf + {k1} * (1 - {b} + {b} * c.n_terms / t.avgdl))) AS score"
            "  FROM {chunks} c CROSS JOIN totals t"
            "  CROSS JOIN LATERAL (SELECT x.lexeme, cardinality(x.positions) AS tf"
            "   FROM unnest(c.terms) AS x) u"
            "  JOIN weights w ON w.lexeme = u.lexeme"
            "  WHERE c.terms @@ %(any)s::tsquery{where}"
            "  GROUP BY c.seq ORDER BY score DESC, c.seq LIMIT %(k)s)"
            " SELECT {cols}, s.score FROM scored s JOIN {chunks} c ON c.seq = s.seq"
            " ORDER BY s.score DESC, s.seq"
        ).format(
            registry=self._sql["registry"],
            chunks=self._sql["chunks"],
            cols=self._sql["cols"],
            k1=sql.Literal(K1),
            b=sql.Literal(B),
            where=where,
        )
        args: dict[str, Any] = {
            **params,
            "name": self.name,
            "lexemes": words,
            "queries": [_quote_lexeme(w) for w in words],
            "any": " | ".join(_quote_lexeme(w) for w in words),
            "k": k,
        }
        with self._db() as conn:
            rows = conn.execute(statement, args).fetchall()
        return [Hit(self._chunk(r), float(r[7]), i) for i, r in enumerate(rows, 1)]

    def dense_search(
        self, vector: npt.NDArray[np.float32], k: int, filters: Filters | None = None
    ) -> list[Hit]:
        from psycopg import sql

        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape != (self.dim,):
            raise UserError(
                f"query vector has {query.size} values, index '{self.name}' has dim {self.dim}"
            )
        if not np.all(np.isfinite(query)):
            raise UserError("the query vector holds NaN or infinity")
        if k <= 0:
            return []
        where, params = self._filter_sql(filters)
        # A zero query has no direction (cosine distance is NaN): every score is 0, oldest first.
        zero = not np.any(query)
        order = sql.SQL("c.seq" if zero else "c.embedding <=> %(query)s")
        statement = sql.SQL(
            "SELECT {cols}, c.embedding FROM {chunks} c WHERE true{where}"
            " ORDER BY {order} LIMIT %(k)s"
        ).format(cols=self._sql["cols"], chunks=self._sql["chunks"], where=where, order=order)
        args = {**params, "query": query, "k": k}
        with self._db() as conn:
            rows = conn.execute(statement, args).fetchall()
        if not rows:
            return []
        matrix = np.stack([np.asarray(r[7].to_numpy(), dtype=np.float32) for r in rows])
        scores = matrix @ query
        seqs = np.array([int(r[0]) for r in rows], dtype=np.int64)
        best = np.lexsort((seqs, -scores))  # best first, ties by age, as the SQLite backend
        return [
            Hit(self._chunk(rows[i]), float(scores[i]), rank, matrix[i].copy())
            for rank, i in enumerate(best, 1)
        ]

    def vectors(self, chunk_ids: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        """Stored vectors by chunk id (missing ids left out): lets MMR skip re-embedding."""
        out: dict[str, npt.NDArray[np.float32]] = {}
        with self._db() as conn:
            for start in range(0, len(chunk_ids), _BATCH):
                part = list(chunk_ids[start : start + _BATCH])
                for cid, vec in conn.execute(self._sql["vectors"], (part,)):
                    out[str(cid)] = np.asarray(vec.to_numpy(), dtype=np.float32).copy()
        return out

    def get(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these ids, in the order asked; unknown ids are left out."""
        found: dict[str, Chunk] = {}
        with self._db() as conn:
            for start in range(0, len(chunk_ids), _BATCH):
                part = list(chunk_ids[start : start + _BATCH])
                found.update(
                    (str(r[1]), self._chunk(r)) for r in conn.execute(self._sql["get"], (part,))
                )
        return [found[c] for c in dict.fromkeys(chunk_ids) if c in found]

    def version(self) -> int:
        with self._db() as conn:
            row = conn.execute(self._sql["version"], (self.name,)).fetchone()
        if row is None:
            raise ServiceError(f"index '{self.name}' was dropped", hint="open it again")
        return int(row[0])

    def stats(self) -> dict[str, Any]:
        tables = [f"{self.tables}_sources", f"{self.tables}_chunks"]
        with self._db() as conn, conn.transaction():
            row = conn.execute(self._sql["stats"], (self.name,)).fetchone()
            sizes = dict(conn.execute(self._sql["sizes"], (self.schema, tables)).fetchall())
            index_sizes = dict(
                conn.execute(self._sql["index_sizes"], (self._qualified(tables[1]),)).fetchall()
            )
        if row is None:
            raise ServiceError(f"index '{self.name}' was dropped", hint="open it again")
        hnsw = f"{self.tables}_c_hnsw"
        return {
            "name": self.name,
            "backend": "pg",
            "dsn": self._where,
            "schema": self.schema,
            "tables": tables,
            "sources": int(row[0]),
            "chunks": int(row[1]),
            "dim": self.dim,
            "embedder": self.embedder,
            "version": int(row[2]),
            "bytes": int(sum(sizes.values())),  # tables with their indexes and TOAST
            "relations": {str(k): int(v) for k, v in sizes.items()},
            "indexes": {str(k).split(".")[-1].strip('"'): int(v) for k, v in index_sizes.items()},
            "hnsw": any(hnsw in str(k) for k in index_sizes),
            "created": row[3].isoformat() if row[3] is not None else None,
            "updated": row[4].isoformat() if row[4] is not None else None,
        }

    # -- lifecycle -------------------------------------------------------------------------------

    def drop(self) -> None:
        """Drop this index's tables and its registry row, then close."""
        s = self._sql
        with self._db() as conn, conn.transaction():
            conn.execute(s["lock"], (f"acllm:{self.schema}",))
            conn.execute(s["drop"])
            conn.execute(s["unregister"], (self.name,))
        self.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> PgIndex:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- registry ----------------------------------------------------------------------------------


class PgOptions(BaseModel):
    """``[indexes.NAME] backend = "pg"`` options. The DSN holds no password: use password_env."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    dsn: str = ""  # libpq conninfo or URL; "" uses libpq's PGHOST, PGUSER, ... variables
    password_env: str | None = None  # name of the environment variable holding the password
    schema_name: str = Field(default="acllm", alias="schema")


def build(options: PgOptions, runtime: Runtime) -> Callable[[str, int, str], PgIndex]:
    password = password_from_env(options.dsn, options.password_env, "")

    def open_index(name: str, dim: int, embedder: str) -> PgIndex:
        return PgIndex(
            options.dsn,
            name=name,
            dim=dim,
            embedder=embedder,
            schema=options.schema_name,
            password=password,
        )

    return open_index


BACKEND = Backend(
    "index",
    "pg",
    PgOptions,
    build,
    "PostgreSQL + pgvector (HNSW) + BM25 over full-text terms; needs acllm[pg]",
)
