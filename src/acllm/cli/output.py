"""Printing results: readable text by default, exactly one JSON document with --json."""

from __future__ import annotations

import json
import sys
from typing import Any

from acllm.errors import AcllmError, ServiceError


def emit(data: dict[str, Any], *, as_json: bool, text: str) -> int:
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print(text)
    return 0


def fail(exc: AcllmError, *, as_json: bool) -> int:
    kind = "backend_error" if isinstance(exc, ServiceError) else "user_error"
    if as_json:
        print(
            json.dumps(
                {"error": {"type": kind, "message": exc.message, "hint": exc.hint}},
                ensure_ascii=False,
            )
        )
    print(f"error: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"  hint: {exc.hint}", file=sys.stderr)
    return exc.exit_code
