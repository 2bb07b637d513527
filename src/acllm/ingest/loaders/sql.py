"""Rows of a database table or query through SQLAlchemy (SQLite, PostgreSQL, any dialect).

Each row is a Document of kind "table" whose text is "col: value; ..." over ``text_columns`` (all
columns by default), located "id=42" by the primary key (or ``key``), else "row N". Read-only:
SQLite is opened with mode=ro, PostgreSQL in a READ ONLY transaction, and nothing is committed.
Failures are LoadErrors whose messages never show the URL's password.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from acllm.errors import MissingExtraError, UserError
from acllm.ingest.document import Document, LoadError
from acllm.ingest.loaders._common import cell_text, reason, row_text


def redact(url: str) -> str:
    """The URL without its password (for ids and messages), even when it does not parse."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _read_only_url(url: Any) -> Any:
    """SQLite opened read-only (so a missing file is an error, not a new empty database)."""
    db = url.database
    if url.get_backend_name() != "sqlite" or not db or db == ":memory:" or db.startswith("file:"):
        return url
    path = quote(str(Path(db).expanduser().resolve()))
    return url.set(database=f"file:{path}", query={**url.query, "mode": "ro", "uri": "true"})


def _why(exc: BaseException, password: str | None) -> str:
    orig = getattr(exc, "orig", None)  # the driver's own message, without SQL and doc links
    text = reason(orig if isinstance(orig, BaseException) else exc)
    return text.replace(password, "***") if password else text


def _select(sa: Any, conn: Any, table: str, key: Sequence[str]) -> tuple[Any, list[str]]:
    schema, _, name = table.rpartition(".")
    t = sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=conn)
    pk = list(key) or [c.name for c in t.primary_key.columns]
    missing = [k for k in pk if k not in t.c]
    if missing:
        raise LookupError(f"no column {', '.join(missing)} in table '{table}'")
    order = [t.c[k] for k in pk]  # rows in key order: row numbers stay stable between runs
    return sa.select(t).order_by(*order), pk


def load_sql(
    url: str,
    *,
    table: str | None = None,
    query: str | None = None,
    key: str | Sequence[str] | None = None,
    text_columns: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    batch_size: int = 500,
) -> Iterator[Document | LoadError]:
    """Documents for every row of ``table`` ("schema.table" works) or of ``query``."""
    if (table is None) == (query is None):
        raise UserError("load_sql needs exactly one of table= or query=")
    try:
        import sqlalchemy as sa
    except ImportError:
        raise MissingExtraError("sql", "sql") from None
    keys = [key] if isinstance(key, str) else list(key or [])
    try:
        parsed = sa.engine.make_url(url)
    except Exception:  # malformed URL: say so without echoing a password
        yield LoadError(redact(url), "invalid database URL")
        return
    shown = parsed.render_as_string(hide_password=True)
    if table is not None:
        source_id, source = f"{shown}#{table}", table
    else:
        digest = hashlib.sha256((query or "").encode("utf-8")).hexdigest()[:16]
        source_id, source = f"{shown}#query-{digest}", "query"
    try:
        engine = sa.create_engine(_read_only_url(parsed))
    except ImportError:
        raise MissingExtraError(f"sql:{parsed.get_backend_name()}", "sql") from None
    except Exception as exc:  # unknown dialect, bad options
        yield LoadError(source_id, f"cannot use database: {_why(exc, parsed.password)}")
        return
    number = 0
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            elif engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA query_only = ON")
            stmt: Any = sa.text(query or "")
            if table is not None:
                stmt, keys = _select(sa, conn, table, keys)
            result = conn.execution_options(yield_per=batch_size).execute(stmt, dict(params or {}))
            columns = list(result.keys())
            shown_cols = list(text_columns) if text_columns else columns
            bad = [c for c in [*keys, *shown_cols] if c not in columns]
            if bad:
                yield LoadError(source_id, f"no column {', '.join(dict.fromkeys(bad))} in result")
                return
            base: dict[str, Any] = {
                "format": "sql",
                "dialect": engine.dialect.name,
                "columns": columns,
                "table" if table is not None else "query": table or query,
            }
            for row in result.mappings():
                number += 1
                values = {c: cell_text(row[c]) for c in columns}
                text = row_text(shown_cols, [values[c] for c in shown_cols])
                if not text:
                    continue  # nothing to cite in an all-empty row
                meta = {**base, "row": number}
                if keys:
                    meta["key"] = {k: values[k] for k in keys}
                where = ", ".join(f"{k}={values[k]}" for k in keys) or f"row {number}"
                yield Document(text, source_id, source, where, "table", tuple(shown_cols), meta)
    except (sa.exc.SQLAlchemyError, LookupError) as exc:
        where = f"row {number + 1}" if number else ""
        what = "query failed" if query is not None else f"cannot read table '{table}'"
        if isinstance(exc, sa.exc.NoSuchTableError):
            what = "no such table"  # its message is just the name
        yield LoadError(source_id, f"{what}: {_why(exc, parsed.password)}", where)
    finally:
        engine.dispose()
