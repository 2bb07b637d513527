"""The SQL of the PostgreSQL index, apart from the class that runs it: literals for tsvectors and
vectors built in Python (user text never reaches tsquery syntax), the statements of one index, and
metadata filters as JSONB containment. See acllm.index.pg for the design.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from acllm.errors import UserError
from acllm.index.base import Filters
from acllm.index.text import terms

if TYPE_CHECKING:
    from psycopg import sql

MAX_HNSW_DIM = 2000  # pgvector's HNSW limit for the vector type
_MAX_LEXEME_BYTES = 2047  # PostgreSQL rejects longer tsvector lexemes
_MAX_POSITION = 16383  # tsvector positions are clamped here
_MAX_POSITIONS = 256  # and at most this many are kept per lexeme
_FILTER_HINT = "filters map a metadata field to a value or a list of values (text, number, bool)"
CHUNK_COLS = ("seq", "id", "source_id", "source", "location", "text", "metadata")

# -- helpers (no psycopg needed) -----------------------------------------------------------------


def table_prefix(name: str) -> str:
    """Tables of index ``name``: readable, within PostgreSQL's 63-byte identifiers, collision-free."""
    readable = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:32] or "index"
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{readable}_{digest}"


def quote_lexeme(term: str) -> str:
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
        f"{quote_lexeme(word)}:{','.join(map(str, where))}"
        for word, where in positions.items()
        if _usable(word)
    )


def vector_literal(vector: npt.NDArray[np.float32]) -> str:
    """pgvector's text form; ``%.9g`` round-trips float32 exactly (one C-level format per row)."""
    return "[" + ",".join(["%.9g"] * len(vector)) % tuple(vector.tolist()) + "]"


def query_terms(query: str) -> list[str]:
    """The distinct keyword terms of a query, in order."""
    return [t for t in dict.fromkeys(terms(query)) if _usable(t)]


def json_text(value: Any, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{what} is not JSON-serialisable: {exc}") from exc


def check_text(value: str, what: str) -> str:
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


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def statements(schema_name: str, tables: str, dim: int) -> dict[str, Any]:
    """Every statement of one index, composed once (identifiers quoted by psycopg)."""
    from psycopg import sql

    schema = sql.Identifier(schema_name)
    registry = sql.SQL("{}.{}").format(schema, sql.Identifier("indexes"))
    chunks = sql.SQL("{}.{}").format(schema, sql.Identifier(f"{tables}_chunks"))
    sources = sql.SQL("{}.{}").format(schema, sql.Identifier(f"{tables}_sources"))

    def named(suffix: str) -> sql.Identifier:
        return sql.Identifier(f"{tables}_{suffix}")

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
            dim=sql.Literal(dim),
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
    if dim <= MAX_HNSW_DIM:
        create_tables.append(
            q(
                "CREATE INDEX {ix} ON {chunks} USING hnsw (embedding vector_cosine_ops)",
                ix=named("c_hnsw"),
            )
        )
    cols = sql.SQL(", ").join(sql.SQL("c.") + sql.Identifier(c) for c in CHUNK_COLS)
    version_now = "GREATEST(version + 1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)"
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


def filter_sql(filters: Filters | None) -> tuple[sql.Composable, dict[str, Any]]:
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
        values = list(wanted) if isinstance(wanted, list | tuple | set | frozenset) else [wanted]
        if not isinstance(key, str) or '"' in key or not all(_scalar(v) for v in values):
            raise UserError(f"bad filter {key!r}: {wanted!r}", hint=_FILTER_HINT)
        tests: list[sql.Composable] = []
        for value in values:
            if value is None:
                test = "coalesce(jsonb_typeof(c.facets -> {}), 'null') = 'null'"
                tests.append(sql.SQL(test).format(param(key)))
                continue
            for same in _json_equals(value):
                fact = param(json_text({key: same}, f"filter {key!r}"))
                tests.append(sql.SQL("c.facets @> {}::jsonb").format(fact))
        either = sql.SQL(" OR ").join(tests) if tests else sql.SQL("false")
        clauses.append(sql.SQL(" AND (") + either + sql.SQL(")"))
    return sql.Composed(clauses), params
