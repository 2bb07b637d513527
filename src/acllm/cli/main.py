"""The ``acllm`` command. The parser imports nothing heavy, so ``acllm --help`` stays fast;
each command's module is imported only when that command runs.

Exit codes: 0 success, 2 the caller's mistake (bad input or config), 3 a backend failed,
4 an evaluation gate failed, 1 a bug in acllm.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from acllm import __version__

EXIT_OK, EXIT_BUG, EXIT_USER, EXIT_BACKEND = 0, 1, 2, 3


class Parser(argparse.ArgumentParser):
    """argparse, except that with --json a usage error is one JSON object on stdout as well."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.json_errors = False

    def error(self, message: str) -> NoReturn:
        if self.json_errors:
            hint = f"see: {self.prog} --help"
            error = {"type": "usage_error", "message": message, "hint": hint}
            print(json.dumps({"error": error}, ensure_ascii=False))
        super().error(message)  # usage on stderr, exit code 2


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")
    p.add_argument("--config", metavar="FILE", help="config file (default: ./acllm.toml)")
    p.add_argument("--model", metavar="NAME", help="model from the config to use")


def _text(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", nargs="?", help="the text; omit or '-' to read standard input")
    p.add_argument("--lang", metavar="CODE", help="language of the text (default: detected)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="acllm",
        description="Private LLM applications on a local model or any OpenAI-compatible endpoint.",
    )
    parser.add_argument("--version", action="version", version=f"acllm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("translate", help="translate text (source language detected)")
    _text(p)
    p.add_argument("--to", dest="target", required=True, metavar="CODE", help="target language")
    p.add_argument("--from", dest="source", metavar="CODE", help="source language")
    _common(p)

    p = sub.add_parser("sentiment", help="positive / negative / neutral with a score")
    _text(p)
    p.add_argument("--method", choices=["embedding", "generate"])
    p.add_argument("--labels", help="comma-separated subset, e.g. positive,negative")
    _common(p)

    p = sub.add_parser("summarize", help="summarise text under a word budget")
    _text(p)
    p.add_argument("--max-words", type=int, default=60)
    p.add_argument("--method", choices=["extractive", "generate"])
    _common(p)

    p = sub.add_parser("paraphrase", help="rewrite text, or --compare it with another")
    _text(p)
    p.add_argument("--compare", metavar="OTHER", help="say whether OTHER means the same as text")
    p.add_argument("--method", choices=["embedding", "generate"])
    p.add_argument("--threshold", type=float, help="similarity threshold for --compare")
    _common(p)

    p = sub.add_parser("correct", help="fix grammar and spelling, listing the edits")
    _text(p)
    _common(p)

    p = sub.add_parser("check-rules", help="check text against natural-language rules")
    _text(p)
    p.add_argument("--rule", action="append", default=[], help="a rule (repeatable)")
    p.add_argument("--rules-file", metavar="FILE", help="JSON list or one rule per line")
    _common(p)

    p = sub.add_parser("ingest", help="ingest files, a folder or a database into an index")
    p.add_argument("target", help="file, folder, or SQLAlchemy URL (sqlite:///x.db)")
    p.add_argument("--index", required=True, metavar="NAME", help="index to write")
    p.add_argument("--table", help="database table to ingest")
    p.add_argument("--query", help="SQL query to ingest (read-only)")
    p.add_argument("--key", help="primary-key column for citations (default: detected)")
    p.add_argument(
        "--embedder",
        metavar="NAME",
        help="embedder for this run, e.g. e5-torch: e5-small at twice the speed for big ingests",
    )
    p.add_argument("--include", action="append", metavar="GLOB", help="only matching files")
    p.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip matching files (repeatable)",
    )
    _common(p)

    p = sub.add_parser("ask", help="ask a question of your data, with citations")
    p.add_argument("question")
    p.add_argument("--index", metavar="NAME", help="index to answer from")
    p.add_argument("--assistant", metavar="NAME", help="configured assistant to use")
    p.add_argument("--stream", action="store_true", help="print the answer as it is produced")
    p.add_argument(
        "--session", metavar="ID", help="a conversation the assistant's memory keeps across calls"
    )
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument(
        "--forget", action="store_true", help="delete what the memory keeps of --session, then exit"
    )
    _common(p)

    p = sub.add_parser("index", help="list, show or drop indexes")
    p.add_argument("action", choices=["list", "show", "drop"])
    p.add_argument("name", nargs="?")
    p.add_argument("--yes", action="store_true", help="confirm drop")
    _common(p)

    p = sub.add_parser("serve", help="run the HTTP service (OpenAI-compatible API, web chat)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, help="HTTP worker processes (default: from config)")
    p.add_argument(
        "--auth",
        choices=["auto", "on", "off"],
        help="API keys: auto = required unless bound to loopback (default: service.auth)",
    )
    _common(p)

    p = sub.add_parser("keys", help="create, list or revoke API keys for the service")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("key_id", nargs="?", help="key to revoke")
    p.add_argument("--name", help="who or what the key is for")
    p.add_argument(
        "--route", action="append", metavar="GROUP", help="route group the key may use (repeatable)"
    )
    p.add_argument(
        "--assistant",
        action="append",
        metavar="NAME",
        help="assistant the key may use (repeatable)",
    )
    p.add_argument("--rpm", type=int, help="requests per minute")
    p.add_argument("--tpm", type=int, help="tokens per minute (prompt + answer)")
    p.add_argument("--admin", action="store_true", help="a key that manages keys")
    _common(p)

    p = sub.add_parser("review", help="review bad or corrected answers; manage overrides")
    p.add_argument("action", choices=["list", "approve", "reject", "overrides", "retire"])
    p.add_argument("id", nargs="?", help="feedback id (approve, reject) or override id (retire)")
    p.add_argument("--assistant", metavar="NAME", help="list: only this assistant's")
    p.add_argument("--answer", help="approve: the answer to serve (default: the correction)")
    p.add_argument("--note", help="why, kept with the decision")
    p.add_argument("--reviewer", help="who decided (kept with the decision)")
    p.add_argument("--limit", type=int, default=100, help="list: at most this many")
    p.add_argument("--all", action="store_true", help="overrides: retired ones too")
    _common(p)

    p = sub.add_parser("eval", help="evaluate a task, an assistant or a service over datasets")
    p.add_argument(
        "action",
        choices=["run", "list", "show", "report", "gate", "export-feedback", "make-dataset"],
    )
    p.add_argument(
        "target",
        nargs="?",
        help="suite file (run), run id (show, report, gate), documents folder (make-dataset)",
    )
    p.add_argument("--index", metavar="NAME", help="make-dataset: the index built from them")
    p.add_argument("--n", type=int, default=30, help="make-dataset: chunks to write questions for")
    p.add_argument("--resume", metavar="RUN", help="continue this run: only cases not done yet")
    p.add_argument("--vs", metavar="RUN", help="report/gate: compare with this baseline run")
    p.add_argument(
        "--out", metavar="DIR", help="report / export-feedback: the folder to write into"
    )
    p.add_argument(
        "--min", action="append", default=[], metavar="METRIC=VALUE", help="gate: a minimum mean"
    )
    p.add_argument("--max-drop", type=float, help="gate: the largest regression vs --vs")
    p.add_argument(
        "--good", action="store_true", help="export-feedback: answers rated good become cases too"
    )
    _common(p)

    p = sub.add_parser("models", help="known model families, licences, what is installed")
    _common(p)

    p = sub.add_parser("config", help="show the effective configuration")
    _common(p)
    return parser


_HANDLERS = {
    "translate": "acllm.cli.tasks",
    "sentiment": "acllm.cli.tasks",
    "summarize": "acllm.cli.tasks",
    "paraphrase": "acllm.cli.tasks",
    "correct": "acllm.cli.tasks",
    "check-rules": "acllm.cli.tasks",
    "ingest": "acllm.cli.knowledge",
    "ask": "acllm.cli.knowledge",
    "index": "acllm.cli.knowledge",
    "serve": "acllm.cli.serve",
    "keys": "acllm.cli.keys",
    "eval": "acllm.cli.evals",
    "review": "acllm.cli.review",
    "models": "acllm.cli.info",
    "config": "acllm.cli.info",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    if "--json" in words:  # known before parsing, so usage errors can be JSON too
        for p in _all_parsers(parser):
            p.json_errors = True
    args = parser.parse_args(words)
    from acllm.cli.output import fail
    from acllm.errors import AcllmError

    try:
        module = importlib.import_module(_HANDLERS[args.command])
        code: int = module.run(args)
        return code
    except AcllmError as exc:
        return fail(exc, as_json=args.json)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _all_parsers(parser: argparse.ArgumentParser) -> list[Parser]:
    found = [parser] if isinstance(parser, Parser) else []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _all_parsers(sub)
    return found


if __name__ == "__main__":
    sys.exit(main())
