"""Approximate dense search for the SQLite index: a faiss HNSW graph kept in a file beside it.

``HNSW`` answers "which rows are probably the k nearest" for one snapshot of the index's vector
matrix; the index then scores those rows exactly (``matrix[rows] @ query``), so hits carry the same
cosine values as the exact scan and fusion and thresholds behave the same. Vectors are L2-normalised,
so the graph uses the inner-product metric (= cosine).

Keeping the graph in step with the index. Each graph node remembers the rowid and a 64-bit
fingerprint of the vector it was built from. When the index version moves, ``refresh`` matches
nodes to the current rows by rowid and fingerprint: matched nodes stay, rows without a node are
appended to the graph (HNSW adds cheaply), and nodes whose row is gone or holds another vector
(SQLite reuses the rowids of deleted tail rows) become tombstones that searches skip. faiss cannot
delete from an HNSW graph, so once tombstones pass ``REBUILD_TOMBSTONES`` of the nodes the graph is
rebuilt from scratch. Pure appends are thus incremental, deletions and replacements are cheap until
they pile up, and a mismatched or stale sidecar can cost time but never wrong rows.

The sidecar ``<index file>.hnsw`` holds a header (format, the index version it was written at,
dim, M, efConstruction, a CRC-32), the node rowids and fingerprints, then faiss's own
serialisation (no pickle: nothing in it is executed). It is written to a temporary file and
renamed into place after every build or append, so a reopened index loads it instead of
rebuilding; a damaged, truncated or foreign file fails its checks, is logged and ignored, and the
graph is rebuilt.

Threads. Searches run under the SQLite index's lock; the graph has two more: ``_build`` lets one
thread at a time build or update (others do not wait: ``search`` returns None and the caller scans
exactly until the new graph is in place), and ``_use`` keeps a search off a graph while faiss adds
to it. A build therefore never holds the index lock: writes and keyword searches go on meanwhile.
The graph holds its own copy of the vectors (faiss ``IndexHNSWFlat``), so memory for vectors
roughly doubles, plus ``2 * M`` int32 links per vector.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from acllm.errors import MissingExtraError

if TYPE_CHECKING:
    import faiss

log = logging.getLogger("acllm.index.ann")

MAGIC = b"acllm-hnsw 1\n"
REBUILD_TOMBSTONES = 0.25  # rebuild once this share of the graph's nodes are dead rows
OVERFETCH = 10  # with filters, candidates fetched per wanted hit before post-filtering
_HEADER_MAX = 4096
_FP_BLOCK = 8192  # rows per block when fingerprinting: bounds the temporary uint64 array

Rows = npt.NDArray[np.int64]


def load_faiss() -> ModuleType:
    """The faiss module, or MissingExtraError naming the extra that installs it."""
    try:
        import faiss
    except ImportError as exc:
        raise MissingExtraError("faiss", "faiss") from exc
    return faiss


@dataclass(frozen=True)
class HNSWOptions:
    m: int = 32  # links per node: more = better recall, more memory, slower build
    ef_construction: int = 64  # candidate list while building: more = better graph, slower build
    ef_search: int = 128  # candidate list while searching: more = better recall, slower search
    min_chunks: int = 50_000  # below this many chunks the exact scan is used (fast and exact)


def fingerprints(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.uint64]:
    """A 64-bit hash of each row's exact bytes (sum of its words times fixed odd constants)."""
    words = np.ascontiguousarray(matrix, dtype=np.float32).view(np.uint32)
    mix = np.random.default_rng(0x5EED).integers(1, 2**63, size=words.shape[1], dtype=np.uint64)
    mix |= np.uint64(1)
    out = np.empty(len(words), dtype=np.uint64)
    for start in range(0, len(words), _FP_BLOCK):
        block = words[start : start + _FP_BLOCK].astype(np.uint64)
        out[start : start + _FP_BLOCK] = (block * mix).sum(axis=1, dtype=np.uint64)  # wraps
    return out


@dataclass(frozen=True)
class _Graph:
    version: int  # the index version ``positions`` was matched against
    index: faiss.IndexHNSWFlat
    labels: Rows  # per node: the rowid it was built from
    prints: npt.NDArray[np.uint64]  # per node: the fingerprint of its vector
    positions: Rows  # per node: its row in that version's matrix, or -1 (tombstone)
    live: int  # nodes with a row


class HNSW:
    """An HNSW graph over one SQLite index's vectors, persisted at ``path``."""

    def __init__(self, path: Path, dim: int, options: HNSWOptions) -> None:
        load_faiss()  # fail at configuration time, not on the first big search
        self.path, self.dim, self.options = path, dim, options
        self._graph: _Graph | None = None
        self._build = threading.Lock()
        self._use = threading.Lock()
        # What happened, for stats and tests: graphs built from scratch, sidecars loaded, vectors
        # appended to an existing graph, sidecars written.
        self.counts = {"builds": 0, "loads": 0, "appended": 0, "saves": 0}

    def refresh(self, version: int, rowids: Rows, matrix: npt.NDArray[np.float32]) -> None:
        """Bring the graph to this snapshot, unless it is too small or another thread is at it."""
        if not len(rowids) or len(rowids) < self.options.min_chunks:
            return  # a stale graph stays unused: search() sees the version differ
        current = self._graph
        if current is not None and current.version == version:
            return
        if not self._build.acquire(blocking=False):
            return  # another thread builds: searches meanwhile fall back to the exact scan
        try:
            current = self._graph
            if current is not None and current.version == version:
                return
            prints = fingerprints(matrix)
            base = current if current is not None else self._load()
            plan = self._match(base, rowids, prints) if base is not None else None
            if base is None or plan is None:
                graph = self._rebuild(version, rowids, matrix, prints)
                with self._use:
                    self._graph = graph
                self._save(graph)
                return
            positions, new = plan
            graph = _Graph(
                version,
                base.index,
                np.concatenate([base.labels, rowids[new]]),
                np.concatenate([base.prints, prints[new]]),
                np.concatenate([positions, new]).astype(np.int64),
                len(rowids),
            )
            # Adding and publishing in one step: no search sees the one without the other.
            with self._use:
                if len(new):
                    base.index.add(np.ascontiguousarray(matrix[new], dtype=np.float32))
                self._graph = graph
            if len(new):
                self.counts["appended"] += len(new)
                self._save(graph)
        finally:
            self._build.release()

    def search(
        self, version: int, query: npt.NDArray[np.float32], k: int, allowed: npt.NDArray[np.bool_]
    ) -> Rows | None:
        """Rows (positions in the version's matrix) holding the probable k best, unsorted.

        ``allowed`` masks the rows the filters let through (all True without filters). None means
        "scan exactly instead": no graph for this version yet (being built, or the index is below
        ``min_chunks``), asking for most of the index anyway, a filtered subset small enough to scan,
        or fewer than k allowed rows among the over-fetched candidates.
        """
        if not self._use.acquire(blocking=False):
            return None  # faiss is adding to the graph right now
        try:
            graph = self._graph
            if graph is None or graph.version != version or k <= 0:
                return None
            nodes, n_allowed = len(graph.labels), int(allowed.sum())
            filtered = n_allowed < len(allowed)
            fetch = k * OVERFETCH if filtered else k
            fetch = -(-fetch * nodes // max(graph.live, 1))  # room for the tombstones it may meet
            if fetch * 2 > nodes or (filtered and n_allowed <= fetch):
                return None  # the exact scan of that many rows costs about as much, and is exact
            params = load_faiss().SearchParametersHNSW()
            params.efSearch = max(self.options.ef_search, fetch)
            _, found = graph.index.search(query.reshape(1, -1), fetch, params=params)
        finally:
            self._use.release()
        rows = graph.positions[found[0][found[0] >= 0]]
        rows = rows[rows >= 0]
        rows = rows[allowed[rows]]
        return rows if len(rows) >= min(k, n_allowed) else None

    def close(self) -> None:
        with self._use:
            self._graph = None

    # ------------------------------------------------------------------ building

    def _match(
        self, graph: _Graph, rowids: Rows, prints: npt.NDArray[np.uint64]
    ) -> tuple[Rows, Rows] | None:
        """Each node's row in this snapshot (-1: tombstone) and the rows with no node yet.

        None when too many nodes would be tombstones: the graph is to be rebuilt.
        """
        n = len(rowids)
        at = np.minimum(np.searchsorted(rowids, graph.labels), n - 1)
        ok = (rowids[at] == graph.labels) & (prints[at] == graph.prints)
        positions = np.where(ok, at, -1).astype(np.int64)
        _, first = np.unique(positions, return_index=True)  # at most one node per row
        positions[np.setdiff1d(np.arange(len(positions)), first)] = -1
        covered = np.zeros(n, dtype=bool)
        covered[positions[positions >= 0]] = True
        new = np.flatnonzero(~covered).astype(np.int64)
        nodes = len(graph.labels) + len(new)
        return None if nodes - n > REBUILD_TOMBSTONES * nodes else (positions, new)

    def _rebuild(
        self,
        version: int,
        rowids: Rows,
        matrix: npt.NDArray[np.float32],
        prints: npt.NDArray[np.uint64],
    ) -> _Graph:
        faiss = load_faiss()
        index = faiss.IndexHNSWFlat(self.dim, self.options.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.options.ef_construction
        index.hnsw.efSearch = self.options.ef_search
        index.add(np.ascontiguousarray(matrix, dtype=np.float32))
        self.counts["builds"] += 1
        positions = np.arange(len(rowids), dtype=np.int64)
        return _Graph(version, index, rowids.copy(), prints.copy(), positions, len(rowids))

    # ------------------------------------------------------------------ the sidecar file

    def _header(self, graph: _Graph, crc: int) -> dict[str, Any]:
        return {
            "version": graph.version,
            "dim": self.dim,
            "m": self.options.m,
            "ef_construction": self.options.ef_construction,
            "nodes": len(graph.labels),
            "crc32": crc,
        }

    def _save(self, graph: _Graph) -> None:
        """Write the sidecar atomically; failing to is logged, never raised (it only saves time)."""
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        try:
            data = load_faiss().serialize_index(graph.index)
            parts = [graph.labels.astype("<i8").tobytes(), graph.prints.astype("<u8").tobytes()]
            crc = zlib.crc32(data, zlib.crc32(parts[1], zlib.crc32(parts[0])))
            header = json.dumps(self._header(graph, crc)).encode() + b"\n"
            with open(tmp, "wb") as out:
                out.write(MAGIC + header)
                for part in parts:
                    out.write(part)
                out.write(memoryview(data))
            os.replace(tmp, self.path)
            self.counts["saves"] += 1
        except (OSError, RuntimeError, MemoryError) as exc:
            log.warning("could not write the HNSW graph to %s: %s", self.path, exc)
            tmp.unlink(missing_ok=True)

    def _load(self) -> _Graph | None:
        """The sidecar's graph (positions unmatched: -1), or None if absent or failing a check."""
        try:
            with open(self.path, "rb") as file:
                if file.read(len(MAGIC)) != MAGIC:
                    raise ValueError("not an acllm HNSW file")
                head = json.loads(file.readline(_HEADER_MAX))
                if not isinstance(head, dict):
                    raise ValueError("bad header")
                nodes = int(head["nodes"])
                if not 0 <= 16 * nodes <= os.fstat(file.fileno()).st_size:
                    raise ValueError("truncated")
                mine = {"dim": self.dim, "m": self.options.m}
                mine["ef_construction"] = self.options.ef_construction
                if any(head.get(key) != value for key, value in mine.items()):
                    raise ValueError(f"built with other settings ({head}); rebuilding")
                labels = np.frombuffer(file.read(8 * nodes), dtype="<i8").astype(np.int64)
                prints = np.frombuffer(file.read(8 * nodes), dtype="<u8").astype(np.uint64)
                raw = file.read()
            if len(labels) != nodes or len(prints) != nodes:
                raise ValueError("truncated")
            crc = zlib.crc32(raw, zlib.crc32(prints.tobytes(), zlib.crc32(labels.tobytes())))
            if crc != head["crc32"]:
                raise ValueError("checksum mismatch")
            faiss = load_faiss()
            index = faiss.deserialize_index(np.frombuffer(raw, np.uint8))  # already downcast
            if not (
                isinstance(index, faiss.IndexHNSWFlat)
                and (index.d, index.ntotal) == (self.dim, nodes)
                and index.metric_type == faiss.METRIC_INNER_PRODUCT
            ):
                raise ValueError("graph does not match its header")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, MemoryError) as exc:
            log.warning("ignoring the HNSW graph in %s (%s): it will be rebuilt", self.path, exc)
            return None
        index.hnsw.efSearch = self.options.ef_search
        self.counts["loads"] += 1
        positions = np.full(nodes, -1, dtype=np.int64)
        return _Graph(int(head["version"]), index, labels, prints, positions, 0)
