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
from acllm.index.pg_sql import (
    check_text,
    filter_sql,
    json_text,
    parse_version,
    query_terms,
    quote_lexeme,
    statements,
    table_prefix,
    tsvector_literal,
    vector_literal,
)
from acllm.index.text import TEXT_VERSION, terms
from acllm.ingest.document import Chunk
from acllm.pgconn import connect, libpq_dsn, password_from_env, redact_dsn
from acllm.registry import Backend

if TYPE_CHECKING:
    import psycopg

    from acllm.runtime import Runtime

SCHEMA_VERSION = 1  # of the tables below; bump with a migration when they change
K1, B = 1.2, 0.75  # BM25 parameters, FTS5's defaults
EF_SEARCH = 100  # HNSW candidate list per search (pgvector's default is 40)
CONNECT_TIMEOUT_S = 10
_BATCH = 1000  # ids per statement in get()/vectors()


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
        self._where = _where(dsn)
        self._password = password
        self._lock = threading.Lock()
        self._iterative = False  # pgvector >= 0.8: iterative index scans
        self._sql = statements(self.schema, self.tables, self.dim)
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
        return _connect(self._dsn, self._where, self._password)

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
        version = parse_version(str(row[0])) if row else ()
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
                check_text(s.source_id, "source id"),
                check_text(s.content_hash, f"source {s.source_id}: content hash"),
                json_text(dict(s.metadata), f"source {s.source_id}: metadata"),
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
                check_text(chunk.id, "chunk id"),
                check_text(chunk.source_id, f"{what}: source id"),
                check_text(chunk.source, f"{what}: source"),
                check_text(chunk.location, f"{what}: location"),
                check_text(chunk.text, f"{what}: text"),
                json_text(chunk.metadata, f"{what}: metadata"),
                json_text({**source.metadata, **chunk.metadata}, f"{what}: metadata"),
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
        where, params = filter_sql(filters)
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
            "queries": [quote_lexeme(w) for w in words],
            "any": " | ".join(quote_lexeme(w) for w in words),
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
        where, params = filter_sql(filters)
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


def _where(dsn: str) -> str:
    """The DSN as errors show it: no password."""
    return redact_dsn(dsn) or "(libpq defaults: PGHOST, PGPORT, ...)"


def _connect(dsn: str, where: str, password: str | None) -> psycopg.Connection[Any]:
    conn: psycopg.Connection[Any] = connect(
        dsn,
        where,
        password=password,
        connect_timeout=CONNECT_TIMEOUT_S,
        application_name="acllm",
        key="",
    )
    return conn


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


def names(options: PgOptions, runtime: Runtime) -> list[str]:
    """The indexes in the schema's registry (none before the first index is created)."""
    try:
        import psycopg
        from psycopg import sql
    except ImportError as exc:
        raise MissingExtraError("pg", "pg") from exc
    where = _where(options.dsn)
    password = password_from_env(options.dsn, options.password_env, "")
    conn = _connect(libpq_dsn(options.dsn), where, password)
    registry = sql.SQL("{}.{}").format(
        sql.Identifier(options.schema_name), sql.Identifier("indexes")
    )
    with conn:
        try:
            found = conn.execute(
                sql.SQL("SELECT to_regclass(%s)"), (registry.as_string(conn),)
            ).fetchone()
            if found is None or found[0] is None:
                return []  # no index was ever created in this schema
            query = sql.SQL("SELECT name FROM {} ORDER BY name").format(registry)
            return [str(row[0]) for row in conn.execute(query)]
        except psycopg.Error as exc:
            raise ServiceError(
                f"cannot list the indexes of schema {options.schema_name!r} at {where}: "
                f"PostgreSQL failed: {exc}",
                hint="the role needs USAGE on the schema and SELECT on its indexes table",
            ) from exc


BACKEND = Backend(
    "index",
    "pg",
    PgOptions,
    build,
    "PostgreSQL + pgvector (HNSW) + BM25 over full-text terms; needs acllm[pg]",
    names=names,
)
