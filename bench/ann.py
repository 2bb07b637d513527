"""Dense search of the SQLite index: exact numpy scan vs the optional faiss HNSW graph.

    python -m bench.ann --quick   # SYNTHETIC 100k and 300k chunks, 100 queries each; SciFact
    python -m bench.ann --full    # the same with 500 queries each

Corpora. SYNTHETIC: 100k, then 300k chunks (the same file grown by appends, the graph rebuilt from
scratch for each size) of 384-d random unit vectors, half the sources tagged ``parity = 1``;
queries are other random unit vectors. Random vectors are the WORST case for HNSW recall: they
have no neighbourhood structure (every point is about equally far from every other), whereas real
embeddings lie near a low-dimensional surface, where the graph's greedy walk works well. Real:
SciFact's 5,183 abstracts and 300 test queries as e5-small vectors, read from the benchmark's
embedding cache (bench/results/embeddings-e5.sqlite, filled by bench.retrieval); skipped if absent.

Measured per corpus, through ``SQLiteIndex.dense_search`` (k = 10): the matrix load (first exact
search), the graph build (first HNSW search: fingerprints + faiss build + sidecar write), the
sidecar's size, the reopen (first search of a reopened index: matrix load + sidecar load), one
query at a time after a warm-up, exact and HNSW alternating query by query, p50/p95 of each (the
exact scan also with numpy's BLAS held to one thread), recall@10 of HNSW against exact, the same
with a filter letting half the rows through, an efSearch sweep, and the cost of the first search
after appending 1,000 chunks (incremental add + sidecar rewrite). The CPU is shared: the load
average is recorded. No figure here is asserted anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.common import RESULTS, SEED, machine, print_table, write_results

DIM = 384
K = 10
SIZES = (100_000, 300_000)
PER_SOURCE = 100
EF_SWEEP = (32, 64, 128, 256, 512)
CACHE = RESULTS / "embeddings-e5.sqlite"
Vectors = npt.NDArray[np.float32]


def unit(gen: np.random.Generator, n: int) -> Vectors:
    v = gen.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def write(index: Any, vectors: Vectors, first: int) -> None:
    """Chunks ``c<first + i>``, 100 per source; source s carries ``parity = s % 2``."""
    from acllm.index.base import SourceWrite
    from acllm.ingest.document import Chunk

    for start in range(0, len(vectors), 5000):
        batch = []
        for s in range(start, min(start + 5000, len(vectors)), PER_SOURCE):
            sid = f"s{(first + s) // PER_SOURCE}"
            rows = range(first + s, first + min(s + PER_SOURCE, len(vectors)))
            chunks = [Chunk(f"c{i}", sid, sid, "", f"chunk {i}", {}) for i in rows]
            meta = {"parity": (first + s) // PER_SOURCE % 2}
            batch.append(SourceWrite(sid, sid, chunks, vectors[s : s + len(chunks)], meta))
        index.write(replace=batch)


def open_index(path: Path, dim: int) -> Any:
    from acllm.index.sqlite import SQLiteIndex, SQLiteIndexOptions

    options = SQLiteIndexOptions.model_validate({"ann": "hnsw", "ann_min_chunks": 0}).hnsw()
    return SQLiteIndex(path, name=path.stem, dim=dim, embedder="bench", ann=options)


@contextlib.contextmanager
def exact_only(index: Any) -> Iterator[None]:
    """The same index object with its graph set aside: dense_search scans exactly."""
    ann, index._ann = index._ann, None
    try:
        yield
    finally:
        index._ann = ann


def timed(call: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = call()
    return out, time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000  # ms


def recall(got: list[list[str]], want: list[list[str]]) -> float:
    pairs = zip(got, want, strict=True)
    return float(np.mean([len(set(g) & set(w)) / max(len(w), 1) for g, w in pairs]))


def latency_pair(index: Any, queries: Vectors, filters: Any = None) -> dict[str, Any]:
    """Exact and HNSW alternating, one query at a time, after a warm-up of each."""
    from threadpoolctl import threadpool_limits

    def exact(q: Vectors) -> list[str]:
        with exact_only(index):
            return [h.chunk.id for h in index.dense_search(q, K, filters)]

    def hnsw(q: Vectors) -> list[str]:
        return [h.chunk.id for h in index.dense_search(q, K, filters)]

    for q in queries[:20]:
        exact(q), hnsw(q)
    times: dict[str, list[float]] = {"exact": [], "hnsw": [], "exact_blas1": []}
    found: dict[str, list[list[str]]] = {"exact": [], "hnsw": []}
    for i, q in enumerate(queries):
        for name in ("exact", "hnsw") if i % 2 == 0 else ("hnsw", "exact"):
            hits, spent = timed(lambda: (exact if name == "exact" else hnsw)(q))  # noqa: B023
            times[name].append(spent)
            found[name].append(hits)
    with threadpool_limits(1):
        for q in queries:
            times["exact_blas1"].append(timed(lambda: exact(q))[1])  # noqa: B023
    out: dict[str, Any] = {f"{m}_{p}_ms": pct(t, q) for m, t in times.items() for p, q in (
        ("p50", 50), ("p95", 95))}  # fmt: skip
    out["recall_at_10"] = recall(found["hnsw"], found["exact"])
    out["exact_ids"] = found["exact"]
    return out


def ef_sweep(index: Any, queries: Vectors, exact_ids: list[list[str]]) -> list[dict[str, Any]]:
    graph, base = index._ann, index._ann.options
    rows = []
    for ef in EF_SWEEP:
        graph.options = dataclasses.replace(base, ef_search=ef)
        times, found = [], []
        for q in queries:
            hits, spent = timed(lambda: index.dense_search(q, K))  # noqa: B023
            times.append(spent)
            found.append([h.chunk.id for h in hits])
        rows.append(
            {"ef_search": ef, "p50_ms": pct(times, 50), "recall_at_10": recall(found, exact_ids)}
        )
    graph.options = base
    return rows


def measure(path: Path, dim: int, queries: Vectors, *, filters: Any = None) -> dict[str, Any]:
    index = open_index(path, dim)
    try:
        with exact_only(index):
            load_s = timed(lambda: index.dense_search(queries[0], K))[1]
        build_s = timed(lambda: index.dense_search(queries[0], K))[1]
        counts = dict(index._ann.counts)
        sidecar = index._ann.path.stat().st_size
        out: dict[str, Any] = {"chunks": index.stats()["chunks"], "matrix_load_s": load_s}
        out |= {"hnsw_build_s": build_s, "sidecar_bytes": sidecar, "counts_after_build": counts}
        out |= {"index_bytes": path.stat().st_size}
        out["search"] = latency_pair(index, queries)
        exact_ids = out["search"].pop("exact_ids")
        if filters:
            out["filtered"] = latency_pair(index, queries, filters)
            out["filtered"].pop("exact_ids")
            out["filtered"]["filters"] = filters
        out["ef_sweep"] = ef_sweep(index, queries, exact_ids)
    finally:
        index.close()
    index = open_index(path, dim)
    try:
        out["reopen_first_search_s"] = timed(lambda: index.dense_search(queries[0], K))[1]
        out["counts_after_reopen"] = dict(index._ann.counts)
    finally:
        index.close()
    return out


def synthetic(n_queries: int, folder: Path) -> list[dict[str, Any]]:
    gen = np.random.default_rng(SEED)
    queries = unit(gen, n_queries)
    path = folder / "synthetic.sqlite"
    results, have = [], 0
    for size in SIZES:
        index = open_index(path, DIM)
        with exact_only(index):
            for start in range(have, size, 50_000):
                write(index, unit(gen, min(50_000, size - start)), start)
        index.close()
        have = size
        path.with_name(path.name + ".hnsw").unlink(missing_ok=True)  # a fresh build per size
        print(f"  synthetic {size:,}: written, measuring", flush=True)
        result = {"corpus": f"SYNTHETIC {size:,} random unit vectors", **measure(
            path, DIM, queries, filters={"parity": 1})}  # fmt: skip
        index = open_index(path, DIM)  # the cost of appending 1,000 chunks to a built graph
        try:
            index.dense_search(queries[0], K)
            write(index, unit(gen, 1000), have)
            result["append_1000_first_search_s"] = timed(
                lambda: index.dense_search(queries[0], K)  # noqa: B023
            )[1]
            result["counts_after_append"] = dict(index._ann.counts)
        finally:
            index.close()
        have += 1000
        results.append(result)
    return results


def scifact(folder: Path) -> dict[str, Any] | None:
    """SciFact's abstracts and test queries as cached e5 vectors; None if not cached."""
    from acllm.embed.cache import cache_key

    if not CACHE.exists():
        return None
    from bench.retrieval import scifact as load

    try:
        sf = load()
    except SystemExit:  # the benchmark sets are not there
        return None
    conn = sqlite3.connect(f"file:{CACHE}?mode=ro", uri=True)
    try:
        cached = dict(conn.execute("SELECT key, vector FROM vectors").fetchall())
    finally:
        conn.close()

    def vectors(kind: str, texts: list[str]) -> Vectors | None:
        blobs = [cached.get(cache_key(kind, t)) for t in texts]  # type: ignore[arg-type]
        if any(b is None for b in blobs):
            return None
        return (
            np.frombuffer(b"".join(blobs), dtype="<f4").astype(np.float32).reshape(len(texts), -1)
        )

    docs = vectors("passage", list(sf.corpus.values()))
    queries = vectors("query", [sf.queries[q] for q in sf.qrels["test"]])
    if docs is None or queries is None:
        return None
    from acllm.index.base import SourceWrite
    from acllm.ingest.document import Chunk

    path = folder / "scifact.sqlite"
    index = open_index(path, docs.shape[1])
    writes = [
        SourceWrite(d, d, [Chunk(d, d, d, "", "abstract", {})], docs[i : i + 1])
        for i, d in enumerate(sf.corpus)
    ]
    index.write(writes)
    index.close()
    result = measure(path, docs.shape[1], queries)
    return {
        "corpus": f"SciFact {len(docs):,} abstracts, {len(queries)} queries (e5-small)",
        **result,
    }


def report(result: dict[str, Any]) -> None:
    rows = []
    for r in result["corpora"]:
        s = r["search"]
        rows.append([
            r["corpus"], f"{r['chunks']:,}", f"{s['exact_p50_ms']:.2f} / {s['exact_p95_ms']:.2f}",
            f"{s['exact_blas1_p50_ms']:.2f}", f"{s['hnsw_p50_ms']:.2f} / {s['hnsw_p95_ms']:.2f}",
            f"{s['recall_at_10']:.3f}",
            f"{r['filtered']['recall_at_10']:.3f}" if "filtered" in r else "-",
            f"{r['hnsw_build_s']:.1f}", f"{r['sidecar_bytes'] / 2**20:.0f}",
            f"{r['matrix_load_s']:.1f} / {r['reopen_first_search_s']:.1f}",
        ])  # fmt: skip
    heads = ["corpus", "chunks", "exact p50/p95 ms", "exact 1-thr p50", "hnsw p50/p95 ms",
             "R@10", "R@10 filt", "build s", "sidecar MiB", "load / reopen s"]  # fmt: skip
    print_table(heads, rows)
    print("\nefSearch sweep (p50 ms / recall@10):")
    for r in result["corpora"]:
        sweep = ", ".join(f"{e['ef_search']}: {e['p50_ms']:.2f}/{e['recall_at_10']:.3f}"
                          for e in r["ef_sweep"])  # fmt: skip
        print(f"  {r['corpus']}: {sweep}")
    for r in result["corpora"]:
        if "append_1000_first_search_s" in r:
            print(f"  {r['corpus']}: first search after +1,000 chunks "
                  f"{r['append_1000_first_search_s']:.2f}s {r['counts_after_append']}")  # fmt: skip
    print(
        "\nSYNTHETIC rows use random unit vectors: the worst case for HNSW recall (no structure)."
    )
    print(
        f"load average at start {result['machine']['load_avg_at_start']}, at end {result['load_end']}"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true")
    size.add_argument("--full", action="store_true")
    args = parser.parse_args(argv)
    n_queries = 500 if args.full else 100
    began = time.perf_counter()
    result: dict[str, Any] = {"machine": machine(), "quick": not args.full, "k": K}
    from acllm.index.sqlite import SQLiteIndexOptions

    result["options"] = SQLiteIndexOptions(ann="hnsw", ann_min_chunks=0).model_dump()
    with tempfile.TemporaryDirectory(prefix="acllm-ann-") as tmp:
        corpora = []
        real = scifact(Path(tmp))
        if real is not None:
            corpora.append(real)
        corpora += synthetic(n_queries, Path(tmp))
    result |= {"corpora": corpora, "load_end": [round(x, 2) for x in os.getloadavg()]}
    result["wall_s"] = time.perf_counter() - began
    report(result)
    print(f"\nwrote {write_results('ann', result)}")
    return result


if __name__ == "__main__":
    main()
