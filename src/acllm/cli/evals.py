"""``acllm eval run SUITE.toml [--resume RUN]``, ``acllm eval list``, ``acllm eval show RUN``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from acllm.cli.output import emit
from acllm.errors import UserError

EXIT_GATE = 4  # the gate's rules failed: the build should stop (not a usage or backend error)


def _store(runtime: Any) -> Any:
    from acllm.evals.store import RunStore

    return RunStore(runtime.data_dir / "evals.sqlite")


def _summary_text(run_id: str, summary: dict[str, Any]) -> str:
    lines = [f"run {run_id}"]
    for dataset, block in summary.items():
        scores = ", ".join(f"{k} {v['mean']:.3f}" for k, v in sorted(block["scores"].items()))
        lines.append(f"  {dataset}: {block['cases']} cases, {block['failed']} failed; {scores}")
    return "\n".join(lines)


def _run(args: argparse.Namespace, runtime: Any) -> int:
    from acllm.evals import runner

    if not args.target:
        raise UserError("give the suite file", hint="acllm eval run suite.toml")
    suite, base = runner.load_suite(args.target)
    datasets = runner.load_datasets(suite, base)
    for data in datasets:
        for error in data.errors:  # reported, the rest is evaluated
            print(f"warning: {error}", file=sys.stderr)
    call = runner.make_target(suite, runtime)
    store = _store(runtime)
    try:
        if args.resume:
            run_id = store.run(args.resume).id
        else:
            run_id = store.create(suite.name, runner.config_snapshot(suite, runtime.settings))
        total = sum(len(d) for d in datasets)
        bar = None
        if not args.json and sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(total=total, desc=suite.name, unit="case")
        counts = asyncio.run(
            runner.run_suite(
                suite,
                datasets,
                call,
                store,
                run_id,
                progress=bar.update if bar else None,
                price=runner.target_price(suite, runtime.settings),
            )
        )
        if bar is not None:
            bar.close()
        summary = runner.summary(store.results(run_id))
    finally:
        store.close()
    report = {"run": run_id, "counts": counts, "summary": summary}
    text = _summary_text(run_id, summary)
    if counts["failed"]:
        text += f"\n{counts['failed']} cases failed: acllm eval run {args.target} --resume {run_id}"
    return emit(report, as_json=args.json, text=text)


def _report(args: argparse.Namespace, store: Any) -> int:
    from pathlib import Path

    from acllm.evals import report

    info = store.run(args.target)
    baseline = None
    if args.vs:
        old = store.run(args.vs)
        baseline = (old, store.results(old.id))
    built = report.build(info, store.results(info.id), baseline)
    if args.action == "gate":
        problems = report.gate(built, report.parse_rules(args.min, args.max_drop))
        text = "gate passed" if not problems else "gate FAILED\n  " + "\n  ".join(problems)
        emit({"run": info.id, "passed": not problems, "problems": problems},
             as_json=args.json, text=text)  # fmt: skip
        return EXIT_GATE if problems else 0
    out = Path(args.out or f"eval-report-{info.id}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.html").write_text(report.html_page(built), encoding="utf-8")
    (out / "report.md").write_text(report.markdown(built), encoding="utf-8")
    (out / "report.json").write_text(json.dumps(built, indent=1), encoding="utf-8")
    files = [str(out / n) for n in ("report.html", "report.md", "report.json")]
    return emit({"run": info.id, "files": files}, as_json=args.json, text="\n".join(files))


def _export_feedback(args: argparse.Namespace, runtime: Any) -> int:
    from pathlib import Path

    from acllm.evals import from_feedback
    from acllm.feedback import FeedbackStore

    store = FeedbackStore(runtime.data_dir / "feedback.sqlite")
    try:
        items = store.list(limit=1_000_000)
    finally:
        store.close()
    out = Path(args.out or "feedback-export")
    cases = from_feedback.regression_cases(items, include_good=args.good)
    records = from_feedback.finetune_records(items)
    n_cases = from_feedback.write_jsonl(out / "regression.jsonl", cases)
    n_records = from_feedback.write_jsonl(out / "finetune.jsonl", records)
    text = (
        f"{n_cases} regression cases -> {out / 'regression.jsonl'}\n"
        f"{n_records} fine-tuning conversations -> {out / 'finetune.jsonl'}"
    )
    data = {"feedback": len(items), "cases": n_cases, "finetune": n_records, "out": str(out)}
    return emit(data, as_json=args.json, text=text)


def _make_dataset(args: argparse.Namespace, runtime: Any) -> int:
    from pathlib import Path

    from acllm.evals.from_documents import generate
    from acllm.evals.from_feedback import write_jsonl
    from acllm.ingest import sources
    from acllm.ingest.chunking import chunk_documents
    from acllm.ingest.document import Document

    if not args.target or not args.index:
        raise UserError(
            "give the documents and their index",
            hint="acllm eval make-dataset examples/data --index bicis --out cases.jsonl",
        )
    if not runtime.index_exists(args.index):
        raise UserError(f"no index named '{args.index}'", hint="ingest the documents first")
    pending, _ = sources.from_path(Path(args.target))
    docs = [d for p in pending for d in p.read() if isinstance(d, Document)]
    chunks = list(chunk_documents(docs))
    index = runtime.index(args.index)
    embedder = runtime.embedder(runtime.index_spec(args.index).embedder)
    made = asyncio.run(
        generate(runtime.task_model(), index, embedder, chunks, n=args.n,
                 languages=runtime.settings.languages)
    )  # fmt: skip
    out = Path(args.out or "generated.jsonl")
    write_jsonl(out, made.cases)
    data = {
        "out": str(out),
        "kept": len(made.cases),
        "tried": made.tried,
        "dropped_unparsed": made.dropped_unparsed,
        "dropped_unretrieved": made.dropped_unretrieved,
        "dropped_unfounded": made.dropped_unfounded,
    }
    text = (
        f"{len(made.cases)} of {made.tried} generated questions kept -> {out} "
        f"({made.dropped_unretrieved} not retrieved back, {made.dropped_unfounded} with an answer "
        f"not in the passage, {made.dropped_unparsed} unparsable)"
    )
    return emit(data, as_json=args.json, text=text)


def run(args: argparse.Namespace) -> int:
    from acllm.runtime import Runtime

    runtime = Runtime.from_config(args.config)
    try:
        if args.action == "run":
            return _run(args, runtime)
        if args.action == "export-feedback":
            return _export_feedback(args, runtime)
        if args.action == "make-dataset":
            return _make_dataset(args, runtime)
        store = _store(runtime)
        try:
            if args.action == "list":
                runs = store.runs()
                rows = [{"id": r.id, "suite": r.suite, "finished": r.finished is not None}
                        for r in runs]  # fmt: skip
                text = "\n".join(f"{r['id']}  {r['suite']}" for r in rows) or "no runs yet"
                return emit({"runs": rows}, as_json=args.json, text=text)
            if not args.target:
                raise UserError("give the run id", hint="acllm eval list shows them")
            if args.action in ("report", "gate"):
                return _report(args, store)
            from acllm.evals.runner import summary

            info = store.run(args.target)
            found = summary(store.results(info.id))
            return emit(
                {"run": info.id, "suite": info.suite, "summary": found},
                as_json=args.json,
                text=_summary_text(info.id, found),
            )
        finally:
            store.close()
    finally:
        runtime.close()
