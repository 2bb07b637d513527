"""Retrieval quality and speed of acllm's index: keyword, dense (e5) and hybrid, beside BASELINES.

    python -m bench.retrieval --quick   # SciFact subset + all of XQuAD-derived: minutes once cached
    python -m bench.retrieval --full    # all 300 SciFact test queries over all 5,183 abstracts

Quality follows ../shared/benchmarks/BASELINES.md so the figures sit side by side: pytrec_eval
(``ndcg_cut.10``, ``recall.k``, ``recip_rank`` on the run cut at 10 = MRR@10), runs 100 deep,
averaged over every query in the qrels (nothing retrieved counts 0). SciFact indexes
``title + ' ' + text`` as ONE chunk per abstract (e5 windows texts over 512 tokens itself);
XQuAD-derived the passage text (BOM stripped). acllm's three modes run through
``acllm.index.retrieval.search`` on a ``SQLiteIndex`` (FTS5 BM25 over folded, stemmed terms;
exact cosine; guarded weighted RRF), 100 candidates per run. Re-run in the same process as
references: BASELINES' ``BM25 plain`` (NFKC, lower-case, ``\\w+``, Lucene BM25 k1=0.9 b=0.4) and
``RRF(BM25 plain, e5)`` (1/(60 + rank), runs cut at 100); acllm's dense mode *is* BASELINES' e5
row (same engine, exact search). Differences carry paired bootstrap 95% CIs over queries.

Fusion weights are tuned on SciFact ``qrels/train.tsv`` only (a small grid, best nDCG@10) and then
reported, untouched, on SciFact test and on XQuAD. Embeddings go through ``CachedEmbedder``
(bench/results/embeddings-e5.sqlite, git-ignored), so a run cut short resumes where it stopped.

Latency: one query at a time, a warm-up pass then a timed pass, p50/p95 per mode, search alone
(the query vector given) and e5 query encoding alone; at SciFact size (~5k chunks) and on a
SYNTHETIC 100k-chunk index (random unit vectors, random pseudo-words); index size on disk.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import math
import random
import re
import shutil
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.common import (
    RESULTS,
    SEED,
    bootstrap_ci,
    data_dir,
    fmt_ci,
    machine,
    print_table,
    write_results,
)

CACHE = RESULTS / "embeddings-e5.sqlite"  # git-ignored: re-runs skip embedding
DEPTH = 100  # every run is this deep, as in BASELINES
MEASURES = {"ndcg_cut.10", "recall.1", "recall.5", "recall.10", "recall.100"}
METRICS = ("ndcg_cut_10", "recip_rank", "recall_1", "recall_5", "recall_10", "recall_100")
LABEL = {
    "ndcg_cut_10": "nDCG@10",
    "recip_rank": "MRR@10",
    "recall_1": "R@1",
    "recall_5": "R@5",
    "recall_10": "R@10",
    "recall_100": "R@100",
}

# ../shared/benchmarks/BASELINES.md, measured before acllm had code (pytrec_eval, same files).
BASELINES: dict[str, dict[str, dict[str, float]]] = {
    "scifact": {
        "BM25 plain": {"ndcg_cut_10": 0.6618, "recip_rank": 0.6305, "recall_10": 0.7818,
                       "recall_100": 0.8852},
        "BM25 stem": {"ndcg_cut_10": 0.6817, "recip_rank": 0.6520, "recall_10": 0.7973,
                      "recall_100": 0.9197},
        "e5 dense": {"ndcg_cut_10": 0.6473, "recip_rank": 0.6125, "recall_10": 0.7862,
                     "recall_100": 0.9183},
        "RRF(BM25 plain, e5)": {"ndcg_cut_10": 0.6835, "recip_rank": 0.6539,
                                "recall_10": 0.8002, "recall_100": 0.9537},
        "RRF(BM25 plain, MiniLM)": {"ndcg_cut_10": 0.6916, "recip_rank": 0.6555,
                                    "recall_10": 0.8206, "recall_100": 0.9543},
    },
    "xquad es": {
        "BM25 plain": {"ndcg_cut_10": 0.9482, "recip_rank": 0.9362, "recall_1": 0.9059,
                       "recall_10": 0.9849},
        "e5 dense": {"ndcg_cut_10": 0.9580, "recip_rank": 0.9462, "recall_1": 0.9143,
                     "recall_10": 0.9933},
        "RRF(BM25 plain, e5)": {"ndcg_cut_10": 0.9651, "recip_rank": 0.9555, "recall_1": 0.9261,
                                "recall_10": 0.9933},
    },
    "xquad en": {
        "BM25 plain": {"ndcg_cut_10": 0.9593, "recip_rank": 0.9488, "recall_1": 0.9202,
                       "recall_10": 0.9908},
        "e5 dense": {"ndcg_cut_10": 0.9704, "recip_rank": 0.9615, "recall_1": 0.9370,
                     "recall_10": 0.9966},
        "RRF(BM25 plain, e5)": {"ndcg_cut_10": 0.9750, "recip_rank": 0.9679, "recall_1": 0.9454,
                                "recall_10": 0.9958},
    },
    "xquad es->en": {
        "BM25 plain": {"ndcg_cut_10": 0.3156, "recip_rank": 0.2776, "recall_1": 0.2109,
                       "recall_10": 0.4378},
        "e5 dense": {"ndcg_cut_10": 0.9368, "recip_rank": 0.9186, "recall_1": 0.8714,
                     "recall_10": 0.9916},
        "RRF(BM25 plain, e5)": {"ndcg_cut_10": 0.6270, "recip_rank": 0.5493, "recall_1": 0.4336,
                                "recall_10": 0.8815},
    },
}  # fmt: skip

Ranking = dict[str, list[str]]  # query id -> doc ids, best first


# ---------------------------------------------------------------- data


@dataclass
class Beir:
    name: str
    corpus: dict[str, str]  # doc id -> the text that is indexed and embedded
    queries: dict[str, str]
    qrels: dict[str, dict[str, dict[str, int]]]  # split -> query id -> doc id -> grade


def _jsonl(path: Path) -> list[dict[str, Any]]:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        parts = line.split("\t")
        if n == 0 and parts[0] == "query-id":
            continue
        out.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return out


def load_beir(folder: Path, *, with_title: bool) -> Beir:
    """A BEIR-layout set; SciFact indexes ``title + ' ' + text``, XQuAD-derived the text only."""
    corpus_file = next(
        p for p in (folder / "corpus.jsonl.gz", folder / "corpus.jsonl") if p.exists()
    )
    corpus = {}
    for d in _jsonl(corpus_file):
        text = str(d.get("text", "")).lstrip("\ufeff")
        corpus[str(d["_id"])] = f"{d.get('title', '')} {text}".strip() if with_title else text
    queries = {str(q["_id"]): str(q["text"]) for q in _jsonl(folder / "queries.jsonl")}
    qrels = {p.stem: _qrels(p) for p in sorted((folder / "qrels").glob("*.tsv"))}
    return Beir(folder.name, corpus, queries, qrels)


def scifact() -> Beir:
    return load_beir(data_dir() / "beir_scifact", with_title=True)


def xquad(lang: str) -> Beir:
    return load_beir(data_dir() / "retrieval_xquad_derived" / lang, with_title=False)


QUICK = {"test": 100, "train": 150, "docs": 800}


def scifact_split(
    sf: Beir, quick: bool
) -> tuple[dict[str, str], dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Corpus, test and train qrels; quick: seeded query samples, their abstracts + distractors."""
    test, train = sf.qrels["test"], sf.qrels["train"]
    if not quick:
        return sf.corpus, test, train
    rng = random.Random(f"{SEED}:scifact-quick")
    test = {q: test[q] for q in sorted(rng.sample(sorted(test), QUICK["test"]))}
    train = {q: train[q] for q in sorted(rng.sample(sorted(train), QUICK["train"]))}
    needed = {d for qrels in (test, train) for rel in qrels.values() for d in rel}
    others = sorted(set(sf.corpus) - needed)
    keep = needed | set(rng.sample(others, max(0, QUICK["docs"] - len(needed))))
    return {d: t for d, t in sf.corpus.items() if d in keep}, test, train


def cached_e5() -> Any:
    """e5 behind the benchmark's embedding cache (keyed by the weights' sha256 and the text)."""
    from acllm.embed.cache import CachedEmbedder
    from acllm.embed.e5 import E5Embedder

    inner = E5Embedder()
    return CachedEmbedder(inner, CACHE, inner.model_id)


def embed_all(embedder: Any, texts: Sequence[str], kind: str, what: str) -> npt.NDArray[np.float32]:
    """Embedded in slices, so the cache keeps what is done if the run is cut short."""
    out = []
    began, step = time.perf_counter(), 128
    for start in range(0, len(texts), step):
        out.append(embedder.embed(texts[start : start + step], kind=kind))
        if len(texts) > step and (start // step) % 8 == 7:
            done = min(start + step, len(texts))
            print(f"    {what}: {done}/{len(texts)} in {time.perf_counter() - began:.0f}s",
                  file=sys.stderr, flush=True)  # fmt: skip
    return np.concatenate(out) if out else np.zeros((0, 384), np.float32)


# ---------------------------------------------------------------- indexes and runs


def build_index(path: Path, corpus: dict[str, str], vectors: npt.NDArray[np.float32]) -> Any:
    """One chunk per document (chunk id = doc id) in a fresh SQLiteIndex at ``path``."""
    from acllm.embed.e5 import E5Embedder
    from acllm.index.base import SourceWrite
    from acllm.index.sqlite import SQLiteIndex
    from acllm.ingest.document import Chunk, sha256_text

    index = SQLiteIndex(path, name=path.stem, dim=384, embedder=E5Embedder.name)
    batch = []
    for (doc_id, text), vector in zip(corpus.items(), vectors, strict=True):
        chunk = Chunk(doc_id, doc_id, path.stem, doc_id, text, {})
        batch.append(SourceWrite(doc_id, sha256_text(text), [chunk], vector[None, :]))
        if len(batch) == 500:
            index.write(replace=batch)
            batch = []
    index.write(replace=batch)
    return index


def size_on_disk(index: Any) -> int:
    """Bytes of the index files with the WAL checkpointed into the main file (index kept open)."""
    with index._database.read() as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return int(sum(p.stat().st_size for p in index._files() if p.exists()))


class Memo:
    """A Searchable that runs each primitive search once, DEPTH deep, and replays it.

    Lets a grid of fusion weights go through the real ``acllm.index.retrieval.search``.
    """

    def __init__(self, index: Any) -> None:
        self.index = index
        self.keyword: dict[str, list[Any]] = {}
        self.dense: dict[bytes, list[Any]] = {}

    def keyword_search(self, query: str, k: int, filters: Any = None) -> list[Any]:
        if query not in self.keyword:
            self.keyword[query] = self.index.keyword_search(query, DEPTH)
        return self.keyword[query][:k]

    def dense_search(
        self, vector: npt.NDArray[np.float32], k: int, filters: Any = None
    ) -> list[Any]:
        key = np.asarray(vector, dtype=np.float32).tobytes()
        if key not in self.dense:
            self.dense[key] = self.index.dense_search(vector, DEPTH)
        return self.dense[key][:k]


def acllm_runs(
    memo: Memo,
    queries: dict[str, str],
    vectors: dict[str, npt.NDArray[np.float32]],
    mode: str,
    weights: Any = None,
) -> Ranking:
    from acllm.index.retrieval import search

    return {
        qid: [
            h.chunk.id
            for h in search(memo, text, k=DEPTH, mode=mode,  # type: ignore[arg-type]
                            candidates=DEPTH, query_vector=vectors[qid], weights=weights)
        ]
        for qid, text in queries.items()
    }  # fmt: skip


_WORD = re.compile(r"\w+")


def plain_tokens(text: str) -> list[str]:
    """BASELINES' ``plain`` tokenizer: NFKC, lower-case, ``\\w+``."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


class PlainBM25:
    """BASELINES' ``BM25 plain``: Lucene BM25 (bm25s ``lucene``), k1=0.9, b=0.4, one field."""

    def __init__(self, corpus: dict[str, str], k1: float = 0.9, b: float = 0.4) -> None:
        from scipy.sparse import csc_matrix

        self.ids = list(corpus)
        docs = [Counter(plain_tokens(t)) for t in corpus.values()]
        vocab: dict[str, int] = {}
        rows, cols, tfs = [], [], []
        for i, counts in enumerate(docs):
            for term, tf in counts.items():
                rows.append(i)
                cols.append(vocab.setdefault(term, len(vocab)))
                tfs.append(tf)
        lengths = np.array([sum(c.values()) for c in docs], dtype=np.float64)
        n = len(docs)
        df = np.bincount(cols, minlength=len(vocab)).astype(np.float64)
        idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
        tf = np.array(tfs, dtype=np.float64)
        norm = k1 * (1 - b + b * lengths[rows] / lengths.mean())
        weights = idf[cols] * tf / (tf + norm)
        self.vocab = vocab
        self.id_order = np.argsort(np.argsort(np.array(self.ids)))  # ties go to the smaller id
        self.matrix = csc_matrix((weights, (rows, cols)), shape=(n, len(vocab)))

    def search(self, query: str, k: int = DEPTH) -> list[str]:
        cols = [self.vocab[t] for t in plain_tokens(query) if t in self.vocab]
        if not cols:
            return []
        scores = np.asarray(self.matrix[:, cols].sum(axis=1)).ravel()
        top = np.flatnonzero(scores > 0)
        top = top[np.lexsort((self.id_order[top], -scores[top]))][:k]
        return [self.ids[i] for i in top]


def plain_rrf(a: Ranking, b: Ranking, k_rrf: float = 60.0) -> Ranking:
    """BASELINES' hybrid: sum of 1/(60 + rank) over two runs cut at 100; ties by doc id."""
    out = {}
    for qid in a.keys() | b.keys():
        scores: dict[str, float] = {}
        for run in (a.get(qid, []), b.get(qid, [])):
            for rank, doc in enumerate(run[:DEPTH], 1):
                scores[doc] = scores.get(doc, 0.0) + 1 / (k_rrf + rank)
        out[qid] = sorted(scores, key=lambda d: (-scores[d], d))[:DEPTH]
    return out


# ---------------------------------------------------------------- metrics


def evaluate(qrels: dict[str, dict[str, int]], ranking: Ranking) -> dict[str, np.ndarray]:
    """Per-query values of each metric, in sorted query-id order; missing queries count 0."""
    import pytrec_eval

    def as_run(depth: int) -> dict[str, dict[str, float]]:
        return {
            q: {d: float(DEPTH - r) for r, d in enumerate(ranking.get(q, [])[:depth])}
            for q in qrels
            if ranking.get(q)
        }

    deep = pytrec_eval.RelevanceEvaluator(qrels, MEASURES).evaluate(as_run(DEPTH))
    cut = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(as_run(10))
    order = sorted(qrels)
    out = {m: np.array([deep.get(q, {}).get(m, 0.0) for q in order]) for m in METRICS}
    out["recip_rank"] = np.array([cut.get(q, {}).get("recip_rank", 0.0) for q in order])
    return out


def summary(values: dict[str, np.ndarray]) -> dict[str, float]:
    return {m: float(v.mean()) for m, v in values.items()}


def paired(a: dict[str, np.ndarray], b: dict[str, np.ndarray], metric: str) -> dict[str, Any]:
    """Mean difference a - b over the same queries, with its paired bootstrap 95% CI."""
    diff = a[metric] - b[metric]
    ci = bootstrap_ci(len(diff), lambda idx: float(diff[idx].mean()))
    return {"metric": metric, "diff": float(diff.mean()), "ci": ci, "n": len(diff)}


# ---------------------------------------------------------------- fusion tuning


def grid() -> list[Any]:
    from acllm.index.retrieval import FusionWeights

    out = []
    guards = [(0.0, 0.0), (0.3, 0.65), (0.2, 0.5)]  # (0, 0) is plain weighted RRF
    for kw, k_rrf, (floor, full) in itertools.product(
        (0.5, 0.75, 1.0, 1.5, 2.0), (10.0, 30.0, 60.0, 100.0), guards
    ):
        out.append(FusionWeights(keyword=kw, k_rrf=k_rrf, coverage_floor=floor, coverage_full=full))
    return out


def tune(
    memo: Memo,
    queries: dict[str, str],
    vectors: dict[str, npt.NDArray[np.float32]],
    qrels: dict[str, dict[str, int]],
) -> tuple[Any, Any, list[dict[str, Any]]]:
    """The grid points with the best mean nDCG@10 on these (training) queries: overall, and among
    those that keep the keyword guard on (it protects cross-lingual queries, which SciFact's
    English-only training queries cannot show)."""
    from acllm.index.retrieval import FusionWeights

    default = FusionWeights()
    scores = []
    for weights in grid():
        ndcg = evaluate(qrels, acllm_runs(memo, queries, vectors, "hybrid", weights))
        scores.append((float(ndcg["ndcg_cut_10"].mean()), weights))

    def distance(w: Any) -> float:
        return (
            abs(math.log(w.keyword))
            + abs(math.log(w.k_rrf / default.k_rrf))
            + (w.coverage_floor != default.coverage_floor)
        )

    def best(pool: list[tuple[float, Any]]) -> Any:
        # Ties (within 0.001) go to the point nearest the defaults: no change without evidence.
        top = max(s for s, _ in pool)
        return min((w for s, w in pool if s >= top - 0.001), key=distance)

    table = [{"weights": _weights(w), "train_ndcg_cut_10": s} for s, w in scores]
    guarded = [(s, w) for s, w in scores if w.coverage_floor > 0]
    return best(scores), best(guarded), table


def _weights(w: Any) -> dict[str, float]:
    return {
        "dense": w.dense,
        "keyword": w.keyword,
        "k_rrf": w.k_rrf,
        "coverage_floor": w.coverage_floor,
        "coverage_full": w.coverage_full,
    }


# ---------------------------------------------------------------- one data set


@dataclass
class Setting:
    name: str
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    corpus_vectors: npt.NDArray[np.float32]
    query_vectors: dict[str, npt.NDArray[np.float32]]
    extra: dict[str, Any] = field(default_factory=dict)


def evaluate_setting(
    s: Setting, index: Any, tuned: dict[str, Any], bm25: PlainBM25 | None = None
) -> dict[str, Any]:
    """Every method on one setting, with paired CIs of hybrid against the references."""
    memo = Memo(index)
    bm25 = bm25 or PlainBM25(s.corpus)
    runs: dict[str, Ranking] = {
        "BM25 plain (re-run)": {q: bm25.search(t) for q, t in s.queries.items()},
        "acllm keyword": acllm_runs(memo, s.queries, s.query_vectors, "keyword"),
        "acllm dense (= e5 dense re-run)": acllm_runs(memo, s.queries, s.query_vectors, "dense"),
        "acllm hybrid (defaults)": acllm_runs(memo, s.queries, s.query_vectors, "hybrid"),
    }
    runs["RRF(BM25 plain, e5) (re-run)"] = plain_rrf(
        runs["BM25 plain (re-run)"], runs["acllm dense (= e5 dense re-run)"]
    )
    for label, weights in tuned.items():
        runs[f"acllm hybrid ({label})"] = acllm_runs(
            memo, s.queries, s.query_vectors, "hybrid", weights
        )
    values = {name: evaluate(s.qrels, run) for name, run in runs.items()}
    results = {name: summary(v) for name, v in values.items()}
    hybrids = [n for n in runs if n.startswith("acllm hybrid")]
    references = ["BM25 plain (re-run)", "acllm dense (= e5 dense re-run)",
                  "RRF(BM25 plain, e5) (re-run)", "acllm keyword"]  # fmt: skip
    diffs = []
    for h in hybrids:
        for ref in references:
            for metric in ("ndcg_cut_10", "recip_rank", "recall_5", "recall_10", "recall_100"):
                diffs.append({"a": h, "b": ref, **paired(values[h], values[ref], metric)})
    return {"n_queries": len(s.qrels), "n_docs": len(s.corpus), "methods": results, "paired": diffs}


# ---------------------------------------------------------------- latency


def percentiles(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values) * 1000
    return {"p50_ms": float(np.percentile(arr, 50)), "p95_ms": float(np.percentile(arr, 95)),
            "n": len(values)}  # fmt: skip


def latency(
    index: Any, queries: list[str], vectors: list[npt.NDArray[np.float32]]
) -> dict[str, Any]:
    """Search alone per mode, as the library runs it and with numpy's BLAS held to one thread.

    The second shows what the dense scan costs without BLAS threads: on a busy machine a
    multi-threaded matrix-vector product waits for descheduled threads (measured here: 5,000 x
    384 takes ~35 ms that way and ~0.2 ms on one thread).
    """
    out = {"library": _latency(index, queries, vectors)}
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return out
    with threadpool_limits(1):
        out["blas 1 thread"] = _latency(index, queries, vectors)
    return out


def _latency(
    index: Any, queries: list[str], vectors: list[npt.NDArray[np.float32]]
) -> dict[str, Any]:
    from acllm.index.retrieval import search

    out: dict[str, Any] = {}
    for mode in ("keyword", "dense", "hybrid"):
        times = []
        for timed in (False, True):
            for text, vector in zip(queries, vectors, strict=True):
                start = time.perf_counter()
                search(index, text, k=10, mode=mode, query_vector=vector)  # type: ignore[arg-type]
                if timed:
                    times.append(time.perf_counter() - start)
        out[mode] = percentiles(times)
    return out


def encode_latency(texts: list[str]) -> dict[str, float]:
    """e5 query encoding, one query at a time, no cache (second pass of two)."""
    from acllm.embed.e5 import E5Embedder

    model = E5Embedder()
    times = []
    for timed in (False, True):
        for text in texts:
            start = time.perf_counter()
            model.embed([text], kind="query")
            if timed:
                times.append(time.perf_counter() - start)
    model.close()
    return percentiles(times)


_SYLLABLES = [c + v for c in "bcdfghjklmnprstvz" for v in "aeiou"]


def _pseudo_words(n: int, rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def synthetic(n_chunks: int, n_queries: int, folder: Path) -> dict[str, Any]:
    """SYNTHETIC index: ``n_chunks`` chunks of 80 Zipf-distributed pseudo-words, random vectors."""
    from acllm.index.base import SourceWrite
    from acllm.index.sqlite import SQLiteIndex
    from acllm.ingest.document import Chunk

    rng = random.Random(f"{SEED}:synthetic")
    gen = np.random.default_rng(SEED)
    vocab = _pseudo_words(30000, rng)
    cdf = np.cumsum(1 / np.arange(1, len(vocab) + 1))
    cdf /= cdf[-1]  # Zipf: the i-th word is 1/i as frequent as the first

    def text(n_words: int) -> str:
        picks = np.minimum(np.searchsorted(cdf, gen.random(n_words)), len(vocab) - 1)
        return " ".join(vocab[i] for i in picks)

    path = folder / "synthetic.sqlite"
    index = SQLiteIndex(path, name="synthetic", dim=384, embedder="random")
    began = time.perf_counter()
    per_source = 100
    for start in range(0, n_chunks, 5000):
        writes = []
        for s in range(start, min(start + 5000, n_chunks), per_source):
            sid = f"src{s // per_source}"
            chunks = [Chunk(f"c{i}", sid, sid, f"part {i}", text(80), {})
                      for i in range(s, min(s + per_source, n_chunks))]  # fmt: skip
            vecs = gen.standard_normal((len(chunks), 384)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            writes.append(SourceWrite(sid, sid, chunks, vecs))
        index.write(replace=writes)
    build_s = time.perf_counter() - began
    size = size_on_disk(index)
    # Queries of 6 mid-frequency words (ranks 50-5,000): the most frequent pseudo-words behave
    # like the stopwords that acllm's terms drop from real text, and real questions avoid them.
    queries = [" ".join(vocab[i] for i in gen.integers(50, 5000, 6)) for _ in range(n_queries)]
    qvecs = [
        v / np.linalg.norm(v) for v in gen.standard_normal((n_queries, 384)).astype(np.float32)
    ]
    began = time.perf_counter()
    index.dense_search(qvecs[0], 10)  # first dense search loads the matrix into memory
    load_s = time.perf_counter() - began
    result = {
        "chunks": n_chunks,
        "build_s": build_s,
        "bytes": size,
        "first_dense_search_s": load_s,
        "latency": latency(index, queries, qvecs),
    }
    index.drop()
    return result


# ---------------------------------------------------------------- the run


def run(quick: bool) -> dict[str, Any]:
    from acllm.index.retrieval import FusionWeights

    began = time.perf_counter()
    embedder = cached_e5()
    out: dict[str, Any] = {"quick": quick, "cache": str(CACHE)}
    tmp = Path(tempfile.mkdtemp(prefix="acllm-bench-"))
    try:
        sf = scifact()
        corpus, test, train = scifact_split(sf, quick)
        qtexts = {q: sf.queries[q] for q in sorted(test.keys() | train.keys())}
        print(f"SciFact: {len(corpus)} abstracts, {len(test)} test + {len(train)} train queries",
              file=sys.stderr, flush=True)  # fmt: skip
        qvec = dict(zip(qtexts, embed_all(embedder, list(qtexts.values()), "query", "queries"),
                        strict=True))  # fmt: skip
        dvec = embed_all(embedder, list(corpus.values()), "passage", "SciFact abstracts")
        t0 = time.perf_counter()
        index = build_index(tmp / "scifact.sqlite", corpus, dvec)
        build_s = time.perf_counter() - t0
        size = size_on_disk(index)
        memo = Memo(index)
        train_q = {q: qtexts[q] for q in train}
        t0 = time.perf_counter()
        best, guarded, tuning = tune(memo, train_q, qvec, train)
        tuned = {"tuned on train": best, "tuned on train, guard on": guarded}
        spent = time.perf_counter() - t0
        print(f"  tuned on {len(train)} train queries in {spent:.0f}s: {_weights(best)}; "
              f"guard on: {_weights(guarded)}", file=sys.stderr, flush=True)  # fmt: skip
        default_train = next(t for t in tuning if t["weights"] == _weights(FusionWeights()))
        test_setting = Setting("scifact", corpus, {q: qtexts[q] for q in test}, test, dvec, qvec)
        label = "scifact (quick subset)" if quick else "scifact"
        out["scifact"] = {
            "label": label,
            **evaluate_setting(test_setting, index, tuned),
            "index_bytes": size,
            "index_build_s": build_s,
            "tuned_weights": {k: _weights(w) for k, w in tuned.items()},
            "train_ndcg_cut_10": {
                **{
                    k: next(t["train_ndcg_cut_10"] for t in tuning if t["weights"] == _weights(w))
                    for k, w in tuned.items()
                },
                "defaults": default_train["train_ndcg_cut_10"],
                "n": len(train),
            },
            "tuning_grid": tuning,
        }
        test_texts = [qtexts[q] for q in test]
        out["scifact"]["latency"] = latency(index, test_texts, [qvec[q] for q in test])
        out["scifact"]["latency"]["e5 query encode"] = encode_latency(test_texts[:100])
        index.close()

        xq = {lang: xquad(lang) for lang in ("es", "en")}
        vectors = {}
        for lang, data in xq.items():
            ids = list(data.queries)
            qv = embed_all(embedder, [data.queries[q] for q in ids], "query", f"xquad {lang} q")
            dv = embed_all(embedder, list(data.corpus.values()), "passage", f"xquad {lang} p")
            vectors[lang] = (dict(zip(ids, qv, strict=True)), dv)
        indexes = {
            lang: build_index(tmp / f"xquad-{lang}.sqlite", xq[lang].corpus, vectors[lang][1])
            for lang in xq
        }
        bm25 = {lang: PlainBM25(xq[lang].corpus) for lang in xq}
        for name, qlang, clang in (("xquad es", "es", "es"), ("xquad en", "en", "en"),
                                   ("xquad es->en", "es", "en")):  # fmt: skip
            s = Setting(name, xq[clang].corpus, xq[qlang].queries, xq[clang].qrels["test"],
                        vectors[clang][1], vectors[qlang][0])  # fmt: skip
            out[name] = {"label": name, **evaluate_setting(s, indexes[clang], tuned, bm25[clang])}
            print(f"  {name} done", file=sys.stderr, flush=True)
        for idx in indexes.values():
            idx.close()
        n_syn = 100_000
        print(f"synthetic {n_syn}-chunk index ...", file=sys.stderr, flush=True)
        out["synthetic"] = synthetic(n_syn, 100 if quick else 300, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["cache_hits"], out["cache_misses"] = embedder.hits, embedder.misses
    out["seconds"] = time.perf_counter() - began
    return out


# ---------------------------------------------------------------- report


def report(result: dict[str, Any]) -> None:
    for key in ("scifact", "xquad es", "xquad en", "xquad es->en"):
        if key not in result:
            continue
        block = result[key]
        print(f"\n## {block['label']}: {block['n_queries']} queries, {block['n_docs']} docs")
        cols = ["ndcg_cut_10", "recip_rank", "recall_5", "recall_10", "recall_100"]
        rows = [[name, *[f"{m[c]:.4f}" for c in cols]] for name, m in block["methods"].items()]
        base = BASELINES.get(key.replace(" (quick subset)", ""), {})
        for name, m in base.items():
            rows.append([f"BASELINES: {name}", *[f"{m[c]:.4f}" if c in m else "-" for c in cols]])
        print_table(["method", *[LABEL[c] for c in cols]], rows)
        print()
        rows = [
            [d["a"], d["b"], LABEL[d["metric"]], f"{d['diff']:+.4f}", fmt_ci(d["ci"], 4)]
            for d in block["paired"]
            if d["metric"] in ("ndcg_cut_10", "recip_rank", "recall_5")
        ]
        print_table(["hybrid", "minus", "metric", "diff", "paired 95% CI"], rows)
    if "scifact" in result:
        sf = result["scifact"]
        print(f"\ntuned weights (SciFact train, n={sf['train_ndcg_cut_10']['n']}): "
              f"{sf['tuned_weights']}; train nDCG@10 {sf['train_ndcg_cut_10']}")  # fmt: skip
        print(f"SciFact index: {sf['index_bytes'] / 1e6:.1f} MB on disk, built in "
              f"{sf['index_build_s']:.1f}s (vectors from the cache)")  # fmt: skip
        rows = []
        syn = result.get("synthetic")
        blocks = [(f"SciFact ({sf['n_docs']} chunks)", sf["latency"])]
        if syn:
            blocks.append((f"SYNTHETIC ({syn['chunks']} chunks)", syn["latency"]))
        for label, lat in blocks:
            for how, modes in lat.items():
                if "p50_ms" in modes:  # e5 query encoding
                    rows.append(
                        [label, how, "-", f"{modes['p50_ms']:.2f}", f"{modes['p95_ms']:.2f}"]
                    )
                    continue
                for mode, v in modes.items():
                    rows.append([label, mode, how, f"{v['p50_ms']:.2f}", f"{v['p95_ms']:.2f}"])
        print()
        print_table(["index", "mode (search only)", "numpy BLAS", "p50 ms", "p95 ms"], rows)
        if syn:
            print(f"synthetic index: {syn['bytes'] / 1e6:.0f} MB on disk, built in "
                  f"{syn['build_s']:.0f}s; first dense search (loads the matrix) "
                  f"{syn['first_dense_search_s']:.2f}s")  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true")
    size.add_argument("--full", action="store_true")
    args = parser.parse_args(argv)
    result = {"machine": machine(), **run(quick=not args.full)}
    report(result)
    path = write_results(f"retrieval-{'full' if args.full else 'quick'}", result)
    print(f"\nresults: {path}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
