"""The six task commands."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from acllm.cli.output import emit
from acllm.errors import UserError


def read_text(arg: str | None) -> str:
    if arg is not None and arg != "-":
        return arg
    if sys.stdin is None or sys.stdin.isatty():
        raise UserError("no text given", hint="pass it as an argument or pipe it on standard input")
    try:
        return sys.stdin.read()
    except UnicodeDecodeError:
        raise UserError(
            "standard input is not valid UTF-8", hint="convert the text to UTF-8"
        ) from None


def _runtime(args: argparse.Namespace) -> Any:
    from acllm.config import load_settings
    from acllm.runtime import Runtime

    settings = load_settings(args.config)
    if args.model:
        settings = settings.model_copy(
            update={"tasks": settings.tasks.model_copy(update={"model": args.model})}
        )
    return Runtime(settings)


def _format(command: str, r: dict[str, Any]) -> str:
    if command == "translate":
        return str(r["translation"])
    if command == "sentiment":
        return f"{r['label']} ({r['score']:.2f})"
    if command == "summarize":
        return str(r["summary"])
    if command == "paraphrase" and "same" in r:
        verdict = "same meaning" if r["same"] else "different meaning"
        return f"{verdict} (score {r['score']:.2f}, {r['method']})"
    if command == "paraphrase":
        return str(r["paraphrase"])
    if command == "correct":
        lines = [str(r["corrected"])]
        if r["rejected"]:
            lines.append("(the model rewrote the text instead of correcting it; left unchanged)")
        lines += [f"  {e['original'] or '∅'!r} -> {e['replacement'] or '∅'!r}" for e in r["edits"]]
        return "\n".join(lines)
    marks = [
        f"{'PASS' if x['passed'] else 'FAIL'}  {x['rule']}: {x['reason']}" for x in r["results"]
    ]
    return "\n".join([*marks, "all rules pass" if r["passed"] else "some rules fail"])


def run(args: argparse.Namespace) -> int:
    from acllm.tasks import Tasks

    text = read_text(args.text)
    tasks = Tasks(_runtime(args))
    call: Any
    if args.command == "translate":
        call = tasks.translate(text, target=args.target, source=args.source)
    elif args.command == "sentiment":
        labels = [x.strip() for x in args.labels.split(",")] if args.labels else None
        call = tasks.sentiment(text, method=args.method, labels=labels, lang=args.lang)
    elif args.command == "summarize":
        call = tasks.summarize(text, max_words=args.max_words, method=args.method, lang=args.lang)
    elif args.command == "paraphrase" and args.compare is not None:
        call = tasks.same_meaning(text, args.compare, method=args.method, threshold=args.threshold)
    elif args.command == "paraphrase":
        call = tasks.paraphrase(text, lang=args.lang)
    elif args.command == "correct":
        call = tasks.correct(text, lang=args.lang)
    else:
        rules: Any = args.rule
        if args.rules_file:
            rules = Path(args.rules_file)
        elif not rules:
            raise UserError("no rules given", hint="use --rule TEXT (repeatable) or --rules-file")
        call = tasks.check_rules(text, rules, lang=args.lang)
    result: dict[str, Any] = asyncio.run(call)
    return emit(result, as_json=args.json, text=_format(args.command, result))
