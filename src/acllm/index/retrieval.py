"""Retrieval over any Index: keyword, dense, or hybrid fusion, then reranking and MMR diversity.

Hybrid is weighted reciprocal-rank fusion (RRF): a chunk scores ``sum w_run / (k_rrf + rank)``
over the runs it appears in. Plain RRF trusts both runs equally, which hurts when one of them is
much worse: Spanish questions over an English corpus get a keyword run of accidental matches, and
fusing it dragged e5's nDCG@10 from 0.94 to 0.63 on XQuAD (shared/benchmarks BASELINES).

The guard: the keyword run's weight is scaled by its own evidence, the share of the query's
distinct terms found in its best hit (``coverage``, over the top ``evidence_depth`` hits). At or
below ``coverage_floor`` the run counts for nothing; at or above ``coverage_full`` it counts fully;
linear in between. A keyword run matching one stray word of a five-word question is thus ignored,
while one that finds the query's words together keeps its full say. Every knob is a field of
``FusionWeights`` so a benchmark can tune it; ``FusionWeights(coverage_floor=0, coverage_full=0)``
is plain RRF.

The defaults were tuned on SciFact's training queries (809, qrels/train.tsv; never its test
queries) over a grid of keyword weight x k_rrf x guard (bench/retrieval.py): among the points that
keep the guard on, k_rrf 10 with floor 0.2 and full 0.5 scored best (train nDCG@10 0.723; the best
unguarded point, 0.727, cannot be told apart there but fell to 0.890 on Spanish questions over
English passages, which English-only training queries cannot show). Test figures, nDCG@10 as
dense / keyword / plain RRF(BM25, e5) / acllm hybrid: SciFact 0.655 / 0.683 / 0.684 / 0.712;
XQuAD es 0.958 / 0.960 / 0.965 / 0.973; en 0.970 / 0.969 / 0.975 / 0.980; es questions over en
passages 0.937 / 0.602 / 0.627 / 0.939 (docs/BENCHMARKS.md, with paired bootstrap intervals).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from acllm.embed.base import Embedder
from acllm.errors import UserError
from acllm.index.base import Filters, Hit, Index
from acllm.index.text import terms

Mode = Literal["hybrid", "keyword", "dense"]
MODES: tuple[Mode, ...] = ("hybrid", "keyword", "dense")


@dataclass(frozen=True)
class FusionWeights:
    dense: float = 1.0
    keyword: float = 1.0
    k_rrf: float = 10.0
    coverage_floor: float = 0.2  # keyword evidence at or below this: the keyword run is ignored
    coverage_full: float = 0.5  # keyword evidence at or above this: the keyword run counts fully
    evidence_depth: int = 3  # how many top keyword hits may supply the evidence


@runtime_checkable
class Reranker(Protocol):
    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        """The same hits, reordered (scores may change; ranks are renumbered afterwards)."""
        ...


class Searchable(Protocol):
    """The part of an Index that search needs (so a test double need not be a whole Index)."""

    def keyword_search(self, query: str, k: int, filters: Filters | None = None) -> list[Hit]: ...

    def dense_search(
        self, vector: npt.NDArray[np.float32], k: int, filters: Filters | None = None
    ) -> list[Hit]: ...


@runtime_checkable
class VectorSource(Protocol):
    """Optional Index extra: stored vectors by chunk id, so MMR need not re-embed chunks."""

    def vectors(self, chunk_ids: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]: ...


class NoRerank:
    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        return list(hits)


@dataclass(frozen=True)
class TermOverlapReranker:
    """Blends the incoming order with the share of query terms each chunk contains.

    Cheap and model-free; it helps where exact words matter (codes, names) and is neutral-to-harmful
    cross-lingually, so keep ``weight`` modest. A cross-encoder would plug in at the same seam.
    """

    weight: float = 0.3

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        wanted = set(terms(query))
        base = _relative([h.score for h in hits])
        scored = [
            ((1 - self.weight) * b + self.weight * coverage(wanted, h.chunk.text), -i, h)
            for i, (b, h) in enumerate(zip(base, hits, strict=True))
        ]
        scored.sort(key=lambda t: (t[0], t[1]), reverse=True)
        return [dataclasses.replace(h, score=s) for s, _, h in scored]


def coverage(query_terms: set[str], text: str) -> float:
    """Share of the query's distinct terms that occur in ``text`` (0 for a query without terms)."""
    if not query_terms:
        return 0.0
    return len(query_terms.intersection(terms(text))) / len(query_terms)


def keyword_weight(query: str, hits: Sequence[Hit], weights: FusionWeights) -> float:
    """The guard: the keyword run's fusion weight, scaled by how well its best hits match."""
    wanted = set(terms(query))
    top = hits[: weights.evidence_depth]
    evidence = max((coverage(wanted, h.chunk.text) for h in top), default=0.0)
    floor, full = weights.coverage_floor, weights.coverage_full
    if evidence >= full:
        share = 1.0
    elif evidence <= floor:
        share = 0.0
    else:
        share = (evidence - floor) / (full - floor)
    return weights.keyword * share


def rrf(runs: Sequence[Sequence[Hit]], weights: Sequence[float], k_rrf: float = 60.0) -> list[Hit]:
    """Weighted reciprocal-rank fusion; ranks are positions in each run (1-based).

    Ties go to the chunk first seen (runs in the order given), so results are deterministic. The
    fused hit keeps a vector if any run supplied one.
    """
    scores: dict[str, float] = {}
    hits: dict[str, Hit] = {}
    for run, weight in zip(runs, weights, strict=True):
        for position, hit in enumerate(run, 1):
            cid = hit.chunk.id
            scores[cid] = scores.get(cid, 0.0) + weight / (k_rrf + position)
            if cid not in hits or (hits[cid].vector is None and hit.vector is not None):
                hits[cid] = hit
    order = sorted(scores, key=lambda c: scores[c], reverse=True)  # stable: first seen wins ties
    return [dataclasses.replace(hits[c], score=scores[c]) for c in order]


def mmr(hits: Sequence[Hit], vectors: npt.NDArray[np.float32], k: int, lam: float) -> list[Hit]:
    """Maximal marginal relevance: each pick trades relevance (``lam``) against redundancy.

    Relevance is the hit's score as a share of the best score, so one ``lam`` serves cosine, BM25
    and fused scores alike; redundancy is the highest cosine to any chunk already picked.
    """
    relevance = np.array(_relative([h.score for h in hits]), dtype=np.float64)
    sims = vectors.astype(np.float64) @ vectors.T.astype(np.float64)
    picked: list[int] = []
    redundancy = np.full(len(hits), -np.inf)
    free = np.ones(len(hits), dtype=bool)
    while len(picked) < min(k, len(hits)):
        penalty = np.where(np.isfinite(redundancy), redundancy, 0.0)
        value = np.where(free, lam * relevance - (1 - lam) * penalty, -np.inf)
        best = int(np.argmax(value))  # first maximum: earlier (better ranked) hits win ties
        picked.append(best)
        free[best] = False
        redundancy = np.maximum(redundancy, sims[best])
    return [hits[i] for i in picked]


def search(
    index: Searchable,
    query: str,
    *,
    embedder: Embedder | None = None,
    k: int = 5,
    mode: Mode = "hybrid",
    filters: Filters | None = None,
    candidates: int = 50,
    mmr_lambda: float | None = None,
    reranker: Reranker | None = None,
    query_vector: npt.NDArray[np.float32] | None = None,
    weights: FusionWeights | None = None,
) -> list[Hit]:
    """The ``k`` best chunks for ``query``, ranked 1..k.

    ``candidates`` hits are drawn from each run before fusion, reranking and MMR. Pass
    ``query_vector`` to reuse an embedding already computed (e.g. for a semantic cache lookup).
    """
    if mode not in MODES:
        raise UserError(f"unknown search mode {mode!r}", hint=f"choose one of: {', '.join(MODES)}")
    if mmr_lambda is not None and not 0.0 <= mmr_lambda <= 1.0:
        raise UserError(f"mmr_lambda must be between 0 and 1, got {mmr_lambda}")
    if k <= 0:
        return []
    weights = weights or FusionWeights()
    widen = mode == "hybrid" or reranker is not None or mmr_lambda is not None
    depth = max(k, candidates) if widen else k
    keyword = index.keyword_search(query, depth, filters) if mode != "dense" else []
    dense: list[Hit] = []
    if mode != "keyword":
        vector = query_vector if query_vector is not None else _embed_query(query, embedder)
        dense = index.dense_search(vector, depth, filters)
    if mode == "hybrid":
        kw_weight = keyword_weight(query, keyword, weights)
        fused = rrf([dense, keyword], [weights.dense, kw_weight], weights.k_rrf)
    else:
        fused = dense or keyword
    if reranker is not None:
        fused = reranker.rerank(query, fused)
    if mmr_lambda is not None and len(fused) > 1:
        fused = mmr(fused, _vectors_of(fused, index, embedder), k, mmr_lambda)
    return [dataclasses.replace(h, rank=i) for i, h in enumerate(fused[:k], 1)]


@dataclass
class Retriever:
    """An index, its embedder and search defaults, bundled for an assistant."""

    index: Index
    embedder: Embedder | None = None
    k: int = 5
    mode: Mode = "hybrid"
    candidates: int = 50
    mmr_lambda: float | None = None
    reranker: Reranker | None = None
    weights: FusionWeights = field(default_factory=FusionWeights)

    def search(
        self,
        query: str,
        *,
        k: int | None = None,
        filters: Filters | None = None,
        query_vector: npt.NDArray[np.float32] | None = None,
    ) -> list[Hit]:
        return search(
            self.index,
            query,
            embedder=self.embedder,
            k=self.k if k is None else k,
            mode=self.mode,
            filters=filters,
            candidates=self.candidates,
            mmr_lambda=self.mmr_lambda,
            reranker=self.reranker,
            query_vector=query_vector,
            weights=self.weights,
        )


def _embed_query(query: str, embedder: Embedder | None) -> npt.NDArray[np.float32]:
    if embedder is None:
        raise UserError("dense and hybrid search need an embedder (or a query_vector)")
    vector: npt.NDArray[np.float32] = embedder.embed([query], kind="query")[0]
    return vector


def _vectors_of(
    hits: Sequence[Hit], index: Searchable, embedder: Embedder | None
) -> npt.NDArray[np.float32]:
    """Each hit's chunk vector: carried by the hit, stored in the index, or embedded anew."""
    found = {h.chunk.id: h.vector for h in hits if h.vector is not None}
    missing = [h.chunk.id for h in hits if h.chunk.id not in found]
    if missing and isinstance(index, VectorSource):
        found.update(index.vectors(missing))
    missing_hits = [h for h in hits if h.chunk.id not in found]
    if missing_hits:
        if embedder is None:
            raise UserError("MMR needs chunk vectors: give an embedder or use dense search")
        fresh = embedder.embed([h.chunk.text for h in missing_hits], kind="passage")
        found.update((h.chunk.id, v) for h, v in zip(missing_hits, fresh, strict=True))
    return np.stack([np.asarray(found[h.chunk.id], dtype=np.float32) for h in hits])


def _relative(scores: Sequence[float]) -> list[float]:
    """Scores as shares of the best one, negatives as 0: the same scale for cosine, BM25 and RRF.

    Not min-max: that would always give the last candidate zero relevance, however good it is.
    """
    top = max(scores, default=0.0)
    if top <= 0:
        return [1.0] * len(scores)
    return [max(s, 0.0) / top for s in scores]
