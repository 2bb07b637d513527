"""Headline-figure tables from bench/results into docs/BENCHMARKS.md (or a quick-run page).

    python -m bench.docs --full           # fill the generated blocks of docs/BENCHMARKS.md
    python -m bench.docs --quick          # write bench/results/BENCHMARKS-quick.md; docs untouched
    python -m bench.docs --markers-only   # only add the empty generated-block markers to the docs

Each section of docs/BENCHMARKS.md (``<!-- NAME:start -->`` ... ``<!-- NAME:end -->``) carries one
generated block, ``<!-- gen:NAME -->`` ... ``<!-- /gen:NAME -->``, at its top. Only the text between
those two markers is rewritten; every other byte of the file stays as it was. A source whose
results file is absent here (bench/results is not in git, and ``--only`` runs a few steps) keeps
the figures the document already holds, dated by their own "Run on" line, instead of losing them.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import report
from bench.common import RESULTS, ROOT
from bench.report import Json, Renderer
from bench.suite import step_by_name

DOCS = ROOT / "docs" / "BENCHMARKS.md"
QUICK_PAGE = RESULTS / "BENCHMARKS-quick.md"
NOTICE = (
    "_Headline figures, generated from bench/results by `python -m bench.docs --{mode}` (the last "
    "step of `python -m bench.suite --{mode}`): edit the prose around this block, not the block._"
)


@dataclass(frozen=True)
class Source:
    """One results file (``pattern``: a glob with ``{mode}``) and its renderer."""

    title: str
    pattern: str
    step: str
    render: Renderer


SECTIONS: dict[str, tuple[str, tuple[Source, ...]]] = {
    "core-tasks": ("Core: tasks", (Source("Tasks", "tasks-{mode}.json", "tasks", report.render_tasks),)),
    "core-own-sets": ("Core: check_rules and correct on our own sets",
                      (Source("Own sets", "own-sets.json", "own_sets", report.render_own_sets),)),
    "core-speed": ("Core: speed", (Source("Speed", "speed-{mode}.json", "speed", report.render_speed),)),
    "knowledge-retrieval": ("Knowledge: retrieval", (
        Source("Retrieval", "retrieval-{mode}.json", "knowledge", report.render_retrieval),)),
    "knowledge-ingest": ("Knowledge: ingestion", (
        Source("Ingestion speed (e5)", "ingest_speed-{mode}.json", "knowledge",
               report.render_ingest_speed),
        Source("Ingestion pipeline", "ingest_pipeline-{mode}.json", "knowledge",
               report.render_ingest_pipeline),
    )),
    "knowledge-qa": ("Knowledge: question answering and refusals",
                     (Source("Question answering", "qa-{mode}.json", "knowledge", report.render_qa),)),
    "evals-faithfulness": ("Evals: the faithfulness checker against human judgements", (
        Source("Faithfulness checker on FRANK", "faithfulness-{mode}.json", "faithfulness",
               report.render_faithfulness),)),
    "evals-halueval": ("Evals: the LLM judge against human hallucination labels (HaluEval)", (
        Source("LLM judge on HaluEval", "halueval-{mode}-*.json", "halueval",
               report.render_halueval),)),
    "evals-truthfulqa": ("Evals: closed-book truthfulness (TruthfulQA)", (
        Source("TruthfulQA", "truthfulqa-{mode}.json", "truthfulqa", report.render_truthfulqa),)),
    "evals-text2sql": ("Evals: execution accuracy of generated SQL (GeoQuery)", (
        Source("GeoQuery text-to-SQL", "text2sql-{mode}.json", "text2sql",
               report.render_text2sql),)),
    "service-load": ("Service: load and overhead",
                     (Source("Load", "load-{mode}.json", "load", report.render_load),)),
    "patterns": ("Patterns: cache, guardrails, memory", (
        Source("Response cache", "cache-{mode}.json", "cache", report.render_cache),
        Source("Guardrails", "guards-{mode}.json", "guards", report.render_guards),
        Source("Conversation memory", "memory-{mode}.json", "memory", report.render_memory),
    )),
}  # fmt: skip


# --- rendering -----------------------------------------------------------------------------------


def find(pattern: str, mode: str, results: Path) -> Path | None:
    """The newest results file matching ``pattern`` for ``mode``."""
    found = [p for p in results.glob(pattern.format(mode=mode)) if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def render_source(source: Source, mode: str, results: Path) -> str:
    """The headline table of one results file, or a line saying how to produce it."""
    command = f"`{step_by_name(source.step).command(mode)}`"
    path = find(source.pattern, mode, results)
    if path is None:
        return f"**{source.title}**: not run yet: {command}\n"
    where = f"`bench/results/{path.name}`"
    try:
        data: Json = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"**{source.title}**: {where} could not be read ({exc}); re-run {command}\n"
    made_in = report.mode_of(data)
    if made_in is not None and made_in != mode:
        return f"**{source.title}**: not run yet in {mode} mode ({where} holds a {made_in} run): {command}\n"
    try:
        table = source.render(data)
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as exc:
        print(f"bench.docs: cannot render {path.name}: {exc!r}", file=sys.stderr)
        return (
            f"**{source.title}**: {where} has a shape bench/report.py does not know "
            f"({type(exc).__name__}: {exc}); re-run {command}\n"
        )
    return f"**{source.title}** ({where})\n\n{table}"


def block(name: str, mode: str, results: Path, earlier: dict[str, str] | None = None) -> str:
    """The whole generated block of one section.

    ``earlier`` maps a source's title to its part of the block as the document holds it now; a
    source with no results file keeps that part when it has figures, rather than becoming "not run
    yet".
    """
    parts = [NOTICE.format(mode=mode)]
    for source in SECTIONS[name][1]:
        kept = (earlier or {}).get(source.title, "")
        has_figures = kept.startswith(f"**{source.title}** (`bench/results/")
        if find(source.pattern, mode, results) is None and has_figures:
            print(f"bench.docs: kept the earlier figures of {source.title!r} (no results file)")
            parts.append(kept)
        else:
            parts.append(render_source(source, mode, results).rstrip("\n"))
    return "\n\n".join(parts) + "\n"


def earlier_parts(text: str, name: str) -> dict[str, str]:
    """Each source's part of the generated block ``name`` in ``text``, by source title."""
    opening, closing = markers(name)
    if text.count(opening) != 1 or text.count(closing) != 1:
        return {}
    body = text.partition(opening)[2].partition(closing)[0]
    starts = sorted(
        (body.index(f"\n**{s.title}**"), s.title)
        for s in SECTIONS[name][1]
        if f"\n**{s.title}**" in body
    )
    if not starts:
        return {}
    ends = [at for at, _ in starts[1:]] + [len(body)]
    return {title: body[at:end].strip("\n") for (at, title), end in zip(starts, ends, strict=True)}


# --- markers -------------------------------------------------------------------------------------


def markers(name: str) -> tuple[str, str]:
    return f"<!-- gen:{name} -->", f"<!-- /gen:{name} -->"


def insert_markers(text: str, names: list[str]) -> str:
    """Add an empty generated block under the heading of each section that has none yet."""
    for name in names:
        start = f"<!-- {name}:start -->\n"
        opening, closing = markers(name)
        if opening in text or start not in text:
            continue
        at = text.index(start) + len(start)
        if text.startswith("#", at):  # after the section's heading line
            at = text.index("\n", at) + 1
        text = f"{text[:at]}\n{opening}\n{closing}\n{text[at:]}"
    return text


def replace_block(text: str, name: str, content: str) -> str:
    """Put ``content`` between the markers of ``name``; nothing outside them changes."""
    opening, closing = markers(name)
    if text.count(opening) != 1 or text.count(closing) != 1:
        raise ValueError(f"expected exactly one {opening} ... {closing} pair")
    begin = text.index(opening) + len(opening)
    end = text.index(closing)
    if end < begin:
        raise ValueError(f"{closing} comes before {opening}")
    body = content.strip("\n")
    inner = f"\n{body}\n\n" if body else "\n"
    return text[:begin] + inner + text[end:]


def fill(text: str, mode: str, results: Path) -> str:
    """Every section's generated block filled from ``results`` (markers inserted where missing)."""
    text = insert_markers(text, list(SECTIONS))
    for name in SECTIONS:
        if markers(name)[0] in text:
            text = replace_block(text, name, block(name, mode, results, earlier_parts(text, name)))
    return text


def quick_page(results: Path) -> str:
    """A standalone page of the quick run's tables (docs/BENCHMARKS.md stays for the full run)."""
    out = [
        "# Benchmarks: quick run\n",
        "Seeded samples, not the published figures (those are docs/BENCHMARKS.md, from "
        "`python -m bench.suite --full`). Read each figure with its n and interval.\n",
    ]
    for name, (title, _) in SECTIONS.items():
        out.append(f"## {title}\n\n{block(name, 'quick', results)}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.docs", description=__doc__.split("\n")[0]
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_const", dest="mode", const="quick")
    mode.add_argument("--full", action="store_const", dest="mode", const="full")
    mode.add_argument("--markers-only", action="store_const", dest="mode", const="markers")
    parser.add_argument("--docs", type=Path, default=DOCS, help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode == "quick":
        args.results.mkdir(parents=True, exist_ok=True)
        target = args.results / QUICK_PAGE.name
        target.write_text(quick_page(args.results), encoding="utf-8")
        print(f"written {target}")
        return {"written": str(target)}
    old = args.docs.read_bytes().decode("utf-8")  # bytes: line endings kept as they are
    if args.mode == "markers":
        new = insert_markers(old, list(SECTIONS))
    else:
        new = fill(old, args.mode, args.results)
    if new != old:
        args.docs.write_bytes(new.encode("utf-8"))
    print(f"{'updated' if new != old else 'unchanged'}: {args.docs}")
    return {"written": str(args.docs), "changed": new != old}


if __name__ == "__main__":
    main()
