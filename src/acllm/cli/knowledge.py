"""``acllm ingest``, ``acllm ask`` and ``acllm index list|show|drop``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from acllm.cli.output import emit
from acllm.errors import UserError


def _runtime(args: argparse.Namespace) -> Any:
    from acllm.runtime import Runtime

    return Runtime.from_config(args.config)


def _ingest(args: argparse.Namespace) -> int:
    from acllm.ingest import sources
    from acllm.ingest.chunking import chunk_documents
    from acllm.ingest.pipeline import Ingestor

    runtime = _runtime(args)
    index = runtime.index(args.index)
    embedder = runtime.embedder(args.embedder or runtime.index_spec(args.index).embedder)
    if args.embedder and embedder.name != index.stats()["embedder"]:
        raise UserError(
            f"embedder '{args.embedder}' makes {embedder.name} vectors, but index "
            f"'{args.index}' holds {index.stats()['embedder']} vectors",
            hint="use an engine of the same model (e5 and e5-torch are both e5-small)",
        )
    remove: list[str] = []
    if sources.is_url(args.target):
        pending, errors = sources.from_sql(
            args.target, table=args.table, query=args.query, key=args.key
        )
    else:
        root = Path(args.target)
        pending, errors = sources.from_path(root, include=args.include, ignore=args.ignore)
        present = {p.source_id for p in pending}
        remove = [s for s in sources.owned_by(root, list(index.sources())) if s not in present]
    ingestor = Ingestor(
        index, embedder, chunker=chunk_documents, progress=not args.json and sys.stderr.isatty()
    )
    report = ingestor.run(pending, remove=remove)
    report.errors[:0] = errors
    data = {"index": args.index, **report.as_dict()}
    lines = [
        f"index '{args.index}': {report.written} sources written ({report.chunks} chunks), "
        f"{report.unchanged} unchanged, {report.removed} removed, "
        f"{len(report.errors)} errors in {report.seconds:.1f}s"
    ]
    lines += [
        f"  error: {e.source}{' ' + e.location if e.location else ''}: {e.reason}"
        for e in report.errors
    ]
    emit(data, as_json=args.json, text="\n".join(lines))
    # Unreadable sources are the caller's data problem: say so in the exit code too.
    return 2 if report.errors else 0


def _ask(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    if not args.assistant and not args.index:
        raise UserError("say which data to ask", hint="use --index NAME or --assistant NAME")
    if args.index and not runtime.index_exists(args.index):  # asking never creates one
        raise UserError(
            f"no index named '{args.index}'",
            hint=f"ingest data first: acllm ingest PATH --index {args.index}",
        )
    pipeline = runtime.pipeline(args.assistant, index=args.index)
    if args.forget:
        return _forget(args, pipeline)
    options = {"session": args.session, "use_cache": not args.no_cache}
    if args.stream and not args.json:
        return asyncio.run(_ask_streaming(pipeline, args.question, options))
    answer = asyncio.run(pipeline.ask(args.question, **options))
    emit(answer.as_dict(), as_json=args.json, text=_format_answer(answer))
    return 0


def _forget(args: argparse.Namespace, pipeline: Any) -> int:
    if not args.session:
        raise UserError("--forget needs --session ID: the conversation to delete")
    if pipeline.memory is None:
        raise UserError(
            f"assistant '{pipeline.name}' keeps no memory",
            hint="set enabled = true under [assistants.NAME.memory]",
        )
    deleted = pipeline.memory.forget(args.session)
    text = f"session {args.session}: " + ("deleted" if deleted else "nothing was kept")
    return emit({"session": args.session, "deleted": deleted}, as_json=args.json, text=text)


async def _ask_streaming(pipeline: Any, question: str, options: dict[str, Any]) -> int:
    from acllm.assist.types import Answer

    async for item in pipeline.stream(question, **options):
        if isinstance(item, Answer):
            print()
            print(_format_citations(item))
        else:
            print(item, end="", flush=True)
    return 0


def _format_citations(answer: Any) -> str:
    return "\n".join(
        f"  [{c.n}] {c.source}{', ' + c.location if c.location else ''}: "
        f"{' '.join(c.text.split())[:200]}"
        for c in answer.citations
    )


def _format_answer(answer: Any) -> str:
    lines = [str(answer.answer)]
    if answer.citations:
        lines.append(_format_citations(answer))
    lines += [f"  -> {s}" for s in answer.suggestions]
    if answer.cache:
        lines.append(f"  (from the cache: {answer.cache.get('kind', '')} match)")
    if answer.override:
        lines.append("  (a reviewed answer)")
    lines += [
        f"  (guard {e.get('guard', '?')}: {e.get('action', '?')} {e.get('detail', '')})"
        for e in answer.guards
    ]
    return "\n".join(lines)


def _index(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    if args.action == "list":
        rows = [{**runtime.index(n).stats(), "name": n} for n in runtime.index_names()]
        text = (
            "\n".join(
                f"{r['name']:20} {r.get('sources', 0):>6} sources "
                f"{r.get('chunks', 0):>8} chunks  {r.get('embedder', '')}"
                for r in rows
            )
            or "no indexes yet (acllm ingest PATH --index NAME)"
        )
        emit({"indexes": rows}, as_json=args.json, text=text)
        return 0
    if not args.name:
        raise UserError(f"'acllm index {args.action}' needs an index name")
    if not runtime.index_exists(args.name):
        raise UserError(f"no index named '{args.name}'", hint="see acllm index list")
    index = runtime.index(args.name)
    if args.action == "show":
        stats = {"name": args.name, **index.stats()}
        emit(stats, as_json=args.json, text="\n".join(f"{k}: {v}" for k, v in stats.items()))
        return 0
    if not args.yes:
        raise UserError(
            f"dropping '{args.name}' deletes it for good",
            hint=f"confirm with: acllm index drop {args.name} --yes",
        )
    index.drop()
    emit({"dropped": args.name}, as_json=args.json, text=f"dropped index '{args.name}'")
    return 0


def run(args: argparse.Namespace) -> int:
    handlers = {"ingest": _ingest, "ask": _ask, "index": _index}
    return handlers[args.command](args)
