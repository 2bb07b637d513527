"""SQLite Index: one file per index holding chunks, their vectors and an FTS5 keyword index.

Keyword search is FTS5 BM25 over ``acllm.index.text.term_string`` (folded, stemmed terms), as the
PostgreSQL backend ranks. Dense search is an exact numpy scan over a float32 matrix cached in
memory and keyed on the index version, read in the same snapshot as the vectors: a write by another
process is seen on the next search. Filters are SQL over each chunk's facets (source metadata
overlaid with chunk metadata) in both searches; the dense scan masks its matrix with the rowids SQL
selects, so both agree on what matches. With ``ann = "hnsw"`` (extra ``acllm[faiss]``) and at
least ``ann_min_chunks`` chunks, a faiss HNSW graph in ``<file>.hnsw`` proposes the candidates
instead and the same code scores them exactly; filtered searches over-fetch and post-filter, and
fall back to the exact scan when too few candidates survive (see acllm.index.ann). Concurrency
follows acllm.kv.sqlite (WAL, busy timeout, ``BEGIN IMMEDIATE`` writes, one connection behind a
lock). A process killed mid-write leaves only an uncommitted WAL tail, which SQLite discards: the
index stays at its previous version.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from acllm.errors import UserError
from acllm.index.ann import HNSW, HNSWOptions
from acllm.index.base import Filters, Hit, SourceWrite
from acllm.index.text import TEXT_VERSION, term_string, terms
from acllm.ingest.document import Chunk
from acllm.registry import Backend
from acllm.sqlitedb import Database

if TYPE_CHECKING:
    from acllm.runtime import Runtime

# Schema steps in order: step i takes PRAGMA user_version from i to i + 1. Only ever append.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
        "CREATE TABLE sources (source_id TEXT PRIMARY KEY, content_hash TEXT NOT NULL,"
        " metadata TEXT NOT NULL) WITHOUT ROWID",
        # rowid joins the FTS table and orders the in-memory matrix.
        "CREATE TABLE chunks (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
        " source_id TEXT NOT NULL, source TEXT NOT NULL, location TEXT NOT NULL,"
        " text TEXT NOT NULL, metadata TEXT NOT NULL, facets TEXT NOT NULL, vector BLOB NOT NULL)",
        "CREATE INDEX chunks_source ON chunks (source_id)",
        # Holds pre-tokenised terms: the default tokenizer then merely splits on spaces.
        "CREATE VIRTUAL TABLE fts USING fts5 (terms)",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)
BUSY_TIMEOUT_S = 30.0  # a big ingest holds the write lock for a while: wait rather than fail
_META = ("name", "dim", "embedder", "text_version", "version")
_VERSION = "SELECT value FROM meta WHERE key = 'version'"
_COLS = "c.rowid, c.id, c.source_id, c.source, c.location, c.text, c.metadata"
_FILTER_HINT = "filters map a metadata field to a value or a list of values (text, number, bool)"


def _chunk(row: Sequence[Any]) -> Chunk:
    return Chunk(row[1], row[2], row[3], row[4], row[5], json.loads(row[6]))


def _json(value: Any, owner: str) -> str:
    try:  # NaN would be stored as invalid JSON that json_extract later chokes on
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UserError(f"metadata of {owner} is not plain JSON: {exc}") from exc


def _filter_sql(filters: Filters | None) -> tuple[str, list[Any]]:
    """`` AND ...`` conditions on ``c.facets``: equality, a list meaning any of, None = absent."""
    where, params = "", []
    for key, wanted in (filters or {}).items():
        values = list(wanted) if isinstance(wanted, list | tuple | set | frozenset) else [wanted]
        scalar = all(v is None or isinstance(v, str | int | float | bool) for v in values)
        if not isinstance(key, str) or '"' in key or not scalar:
            raise UserError(f"bad filter {key!r}: {wanted!r}", hint=_FILTER_HINT)
        # The JSON path is bound too, so no key reaches the SQL text. json_extract gives JSON
        # true/false as 1/0, which is how sqlite3 binds True/False.
        present = [v for v in values if v is not None]
        tests = [f"json_extract(c.facets, ?) IN ({','.join('?' * len(present))})"] * bool(present)
        params += [f'$."{key}"', *present] if present else []
        if None in values:
            tests.append("json_extract(c.facets, ?) IS NULL")
            params.append(f'$."{key}"')
        where += f" AND ({' OR '.join(tests) or '0'})"
    return where, params


def _match_expression(query: str) -> str | None:
    """An FTS5 query for any of the query's terms; user text never reaches FTS5 syntax."""
    # Terms are letters and digits only; quoting also makes "AND", "NEAR" plain words.
    quoted = ['"' + t.replace('"', '""') + '"' for t in dict.fromkeys(terms(query))]
    return " OR ".join(quoted) or None


class SQLiteIndex:
    def __init__(
        self,
        path: str | Path,
        *,
        name: str,
        dim: int,
        embedder: str,
        ann: HNSWOptions | None = None,
    ) -> None:
        self.path, self.name, self.dim, self.embedder = Path(path), name, dim, embedder
        sidecar = self.path.with_name(self.path.name + ".hnsw")
        self._ann = HNSW(sidecar, dim, ann) if ann is not None else None  # None: exact scan only
        # (version, rowids, matrix): the dense-search cache, rebuilt when the version moves.
        self._matrix: tuple[int, npt.NDArray[np.int64], npt.NDArray[np.float32]] | None = None
        self._database = Database(
            self.path,
            MIGRATIONS,
            what=f"index '{name}' file",
            hint=f"drop the index '{name}' (or move the file aside) and re-ingest",
            on_open=self._init_meta,
            busy_timeout=BUSY_TIMEOUT_S,
        )

    def _init_meta(self, conn: sqlite3.Connection) -> None:
        """Record what this index is built with on first open; refuse a mismatch later."""
        mine = [self.name, str(self.dim), self.embedder, str(TEXT_VERSION), "0"]
        insert = "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)"
        conn.executemany(insert, zip(_META, mine, strict=True))
        self._check_meta(dict(conn.execute("SELECT key, value FROM meta").fetchall()))

    def _check_meta(self, meta: dict[str, str]) -> None:
        built, dim = meta["embedder"], int(meta["dim"])
        if (built, dim) != (self.embedder, self.dim):
            raise UserError(
                f"index '{self.name}' was built with embedder '{built}' (dim {dim}), not "
                f"'{self.embedder}' (dim {self.dim}): its vectors cannot be searched with it",
                hint=f"use embedder '{built}' for it again, or drop the index and re-ingest",
            )
        if meta["text_version"] != str(TEXT_VERSION):
            hint = "drop the index and re-ingest"
            raise UserError(f"index '{self.name}' was built with older keyword rules", hint=hint)

    @contextmanager
    def _db(self, begin: str | None = None) -> Iterator[sqlite3.Connection]:
        """The connection under the lock, in a transaction if ``begin``; errors -> ServiceError.

        Plain BEGIN gives reads one consistent snapshot; BEGIN IMMEDIATE holds the write lock.
        """
        if begin is None:
            opened = self._database.read()
        elif begin == "BEGIN":
            opened = self._database.snapshot()
        else:
            opened = self._database.write()
        with opened as conn:
            yield conn

    def write(self, replace: Sequence[SourceWrite] = (), remove: Sequence[str] = ()) -> None:
        if not replace and not remove:
            return
        with self._db("BEGIN IMMEDIATE") as conn:
            for source_id in [*remove, *(s.source_id for s in replace)]:
                rowids = "SELECT rowid FROM chunks WHERE source_id = ?"
                conn.execute(f"DELETE FROM fts WHERE rowid IN ({rowids})", (source_id,))
                conn.execute("DELETE FROM chunks WHERE source_id = ?", (source_id,))
                conn.execute("DELETE FROM sources WHERE source_id = ?", (source_id,))
            for source in replace:
                self._insert(conn, source)
            # Wall-clock floor: an index dropped and rebuilt under the same name never repeats a
            # version, so caches keyed on (name, version) cannot serve answers from the old one.
            new = max(int(conn.execute(_VERSION).fetchone()[0]) + 1, time.time_ns() // 1_000_000)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'version'", (str(new),))

    def _insert(self, conn: sqlite3.Connection, source: SourceWrite) -> None:
        sid, vectors = source.source_id, np.asarray(source.vectors)
        if vectors.shape != (len(source.chunks), self.dim) or not np.isfinite(vectors).all():
            raise UserError(
                f"source {sid}: vectors must be finite, shape ({len(source.chunks)}, {self.dim}); "
                f"got shape {vectors.shape}"
            )
        meta = (sid, source.content_hash, _json(dict(source.metadata), sid))
        conn.execute("INSERT INTO sources (source_id, content_hash, metadata) VALUES (?,?,?)", meta)
        for chunk, vector in zip(source.chunks, vectors.astype("<f4"), strict=True):
            if chunk.source_id != sid:
                raise UserError(f"chunk {chunk.id} belongs to source {chunk.source_id}, not {sid}")
            row = (chunk.id, sid, chunk.source, chunk.location, chunk.text)
            facets = _json({**source.metadata, **chunk.metadata}, chunk.id)
            try:
                cur = conn.execute(
                    "INSERT INTO chunks (id, source_id, source, location, text, metadata, facets,"
                    " vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (*row, _json(chunk.metadata, chunk.id), facets, vector.tobytes()),
                )
            except sqlite3.IntegrityError as exc:
                raise UserError(f"chunk id {chunk.id} appears twice in the index") from exc
            terms_row = (cur.lastrowid, term_string(chunk.text))
            conn.execute("INSERT INTO fts (rowid, terms) VALUES (?, ?)", terms_row)

    def sources(self) -> dict[str, str]:
        with self._db() as conn:
            return dict(conn.execute("SELECT source_id, content_hash FROM sources").fetchall())

    def keyword_search(self, query: str, k: int, filters: Filters | None = None) -> list[Hit]:
        where, params = _filter_sql(filters)
        match = _match_expression(query)
        if match is None or k <= 0:
            return []
        sql = (
            f"SELECT {_COLS}, bm25(fts) FROM fts JOIN chunks c ON c.rowid = fts.rowid"
            f" WHERE fts MATCH ?{where} ORDER BY bm25(fts), c.rowid LIMIT ?"
        )
        with self._db() as conn:
            rows = conn.execute(sql, (match, *params, k)).fetchall()
        # FTS5's bm25() is negative, lower is better: flip it so higher is better.
        return [Hit(_chunk(r), -float(r[7]), i) for i, r in enumerate(rows, 1)]

    def dense_search(
        self, vector: npt.NDArray[np.float32], k: int, filters: Filters | None = None
    ) -> list[Hit]:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape != (self.dim,):
            raise UserError(f"query vector has {query.size} values, the index has dim {self.dim}")
        where, params = _filter_sql(filters)
        if self._ann is not None and k > 0:
            with self._db("BEGIN") as conn:
                snapshot = self._load_matrix(conn)
            self._ann.refresh(*snapshot)  # builds or updates the graph outside the lock
        with self._db("BEGIN") as conn:  # one snapshot: version, vectors and rows agree
            version, rowids, matrix = self._load_matrix(conn)
            keep = np.ones(len(rowids), dtype=bool)
            if filters:
                allowed = conn.execute(f"SELECT c.rowid FROM chunks c WHERE 1{where}", params)
                keep = np.isin(rowids, np.fromiter((r[0] for r in allowed), dtype=np.int64))
            candidates = self._ann.search(version, query, k, keep) if self._ann else None
            if candidates is not None:  # HNSW's candidates, scored exactly like the scan below
                rowids, matrix = rowids[candidates], matrix[candidates]
            elif filters:
                rowids, matrix = rowids[keep], matrix[keep]
            if k <= 0 or not len(rowids):
                return []
            scores = matrix @ query
            top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
            top = top[np.lexsort((rowids[top], -scores[top]))]  # best first, ties by age
            wanted = [int(r) for r in rowids[top]]
            sql = f"SELECT {_COLS} FROM chunks c WHERE c.rowid IN (SELECT value FROM json_each(?))"
            found = {r[0]: _chunk(r) for r in conn.execute(sql, (json.dumps(wanted),))}
        return [
            Hit(found[rowid], float(scores[i]), rank, matrix[i].copy())
            for rank, (i, rowid) in enumerate(zip(top, wanted, strict=True), 1)
        ]

    def _load_matrix(
        self, conn: sqlite3.Connection
    ) -> tuple[int, npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        version = int(conn.execute(_VERSION).fetchone()[0])
        if self._matrix is None or self._matrix[0] != version:
            rows = conn.execute("SELECT rowid, vector FROM chunks ORDER BY rowid").fetchall()
            rowids = np.array([r[0] for r in rows], dtype=np.int64)
            data = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4")
            self._matrix = (version, rowids, data.astype(np.float32).reshape(-1, self.dim))
        return self._matrix

    def _by_ids(self, columns: str, chunk_ids: Sequence[str]) -> list[Any]:
        # One JSON array parameter: no limit on how many ids, unlike one "?" per id.
        sql = f"SELECT {columns} FROM chunks c WHERE c.id IN (SELECT value FROM json_each(?))"
        with self._db() as conn:
            return conn.execute(sql, (json.dumps(list(chunk_ids)),)).fetchall()

    def vectors(self, chunk_ids: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        """Stored vectors by chunk id (unknown ids left out): spares MMR a re-embedding."""
        rows = self._by_ids("c.id, c.vector", chunk_ids)
        return {cid: np.frombuffer(blob, dtype="<f4").astype(np.float32) for cid, blob in rows}

    def get(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these ids, in the order asked; unknown ids are left out."""
        found = {r[1]: _chunk(r) for r in self._by_ids(_COLS, chunk_ids)}
        return [found[c] for c in dict.fromkeys(chunk_ids) if c in found]

    def version(self) -> int:
        with self._db() as conn:
            return int(conn.execute(_VERSION).fetchone()[0])

    def stats(self) -> dict[str, Any]:
        counts = (
            f"SELECT (SELECT count(*) FROM sources), (SELECT count(*) FROM chunks), ({_VERSION})"
        )
        with self._db() as conn:  # one statement: one snapshot
            sources, chunks, version = conn.execute(counts).fetchone()
        size = sum(p.stat().st_size for p in self._files() if p.exists())
        return {
            **{"name": self.name, "backend": "sqlite", "path": str(self.path), "bytes": size},
            **{"sources": sources, "chunks": chunks, "version": int(version)},
            **{"dim": self.dim, "embedder": self.embedder},
        }

    def _files(self) -> list[Path]:
        suffixes = ("-wal", "-shm", ".hnsw")  # .hnsw: the HNSW graph, if ann = "hnsw" made one
        return [self.path, *(self.path.with_name(self.path.name + s) for s in suffixes)]

    def drop(self) -> None:
        self.close()
        for path in self._files():
            path.unlink(missing_ok=True)

    def close(self) -> None:
        self._database.close()
        self._matrix = None
        if self._ann is not None:
            self._ann.close()

    def __enter__(self) -> SQLiteIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SQLiteIndexOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dir: str | None = None  # folder of <name>.sqlite files; None: <data_dir>/indexes
    # Dense search: "exact" numpy scan, or "hnsw" (extra acllm[faiss]): a faiss HNSW graph in
    # <name>.sqlite.hnsw, used once the index holds ann_min_chunks chunks (see acllm.index.ann).
    ann: Literal["exact", "hnsw"] = "exact"
    ann_min_chunks: int = Field(default=50_000, ge=0)
    hnsw_m: int = Field(default=32, ge=4, le=256)
    hnsw_ef_search: int = Field(default=128, ge=1)
    hnsw_ef_construction: int = Field(default=64, ge=4)

    def hnsw(self) -> HNSWOptions | None:
        if self.ann == "exact":
            return None
        return HNSWOptions(
            self.hnsw_m, self.hnsw_ef_construction, self.hnsw_ef_search, self.ann_min_chunks
        )


def folder(options: SQLiteIndexOptions, runtime: Runtime) -> Path:
    return Path(options.dir).expanduser() if options.dir else runtime.data_dir / "indexes"


def build(options: SQLiteIndexOptions, runtime: Runtime) -> Callable[[str, int, str], SQLiteIndex]:
    where, ann = folder(options, runtime), options.hnsw()
    return lambda name, dim, embedder: SQLiteIndex(
        where / f"{name}.sqlite", name=name, dim=dim, embedder=embedder, ann=ann
    )


def names(options: SQLiteIndexOptions, runtime: Runtime) -> list[str]:
    """The indexes in the folder: ``NAME.sqlite`` files that hold an acllm index named NAME (other
    SQLite files a shared folder holds are left out)."""
    return sorted(p.stem for p in folder(options, runtime).glob("*.sqlite") if _holds_index(p))


def _holds_index(path: Path) -> bool:
    """Read-only: nothing is created, written or migrated in a file that is not ours."""
    if not path.is_file():
        return False
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'name'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == path.stem


BACKEND = Backend(
    "index", "sqlite", SQLiteIndexOptions, build, "one SQLite file per index", names=names
)
