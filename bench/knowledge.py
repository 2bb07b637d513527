"""The knowledge benchmarks in one go: e5 ingestion speed, retrieval quality and latency, QA.

    python -m bench.knowledge --quick   # minutes once the embedding cache is warm
    python -m bench.knowledge --full    # about 16 minutes once warm; resumable (cached vectors)
    python -m bench.knowledge --full --only retrieval   # re-run one part, keep the others

``ingest_speed`` runs twice: on the machine as found, and beside two CPU-bound busy loops.

Each part also runs alone (``python -m bench.ingest_speed|ingest_pipeline|retrieval|qa``). Results:
bench/results/knowledge-{quick,full}.json (plus each part's own file). The first run on a machine
embeds SciFact's 5,183 abstracts with e5 (tens of minutes on two busy cores); the vectors are kept
in bench/results/embeddings-e5.sqlite, so an interrupted run resumes and later runs skip it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from bench import ingest_pipeline, ingest_speed, qa, retrieval
from bench.common import RESULTS, machine, write_results

PARTS = ("ingest_speed", "ingest_pipeline", "retrieval", "qa")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true")
    size.add_argument("--full", action="store_true")
    parser.add_argument("--only", choices=PARTS, action="append", help="run only these parts")
    args = parser.parse_args(argv)
    label = "full" if args.full else "quick"
    flag = ["--full"] if args.full else ["--quick"]
    out: dict[str, Any] = {"machine": machine(), "mode": label, "seconds": {}}
    previous = RESULTS / f"knowledge-{label}.json"
    if args.only and previous.exists():  # re-running some parts keeps the others' results
        out = {**json.loads(previous.read_text()), "machine": machine()}
    for part in args.only or PARTS:
        began = time.perf_counter()
        print(f"\n=== {part} ({label}) ===", flush=True)
        if part == "ingest_speed":
            size = [] if args.full else ["--quick"]
            out[part] = ingest_speed.main(size)
            print("\n--- the same beside two CPU-bound busy loops (a busy machine) ---", flush=True)
            out["ingest_speed_load2"] = ingest_speed.main([*size, "--load", "2"])
        elif part == "ingest_pipeline":
            out[part] = ingest_pipeline.main(flag)
        elif part == "retrieval":
            out[part] = retrieval.main(flag)
        else:
            out[part] = qa.main(flag)
        out["seconds"][part] = round(time.perf_counter() - began, 1)
    path = write_results(f"knowledge-{label}", out)
    print(f"\nresults: {path} ({sum(out['seconds'].values()):.0f}s)", file=sys.stderr)
    return out


if __name__ == "__main__":
    main()
