"""JSON (.json) and JSON Lines (.jsonl, .ndjson): one Document of kind "record" per record.

A JSON file holds a list of records, a dict with exactly one list inside ({"items": [...]}), or a
single object. ``text_field`` names the field holding the text (its other scalar fields go to
metadata); otherwise nested keys are flattened into "a.b: value" lines. In JSON Lines the record
number is the line number, so a citation finds the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from acllm.ingest.document import Document, LoadError
from acllm.ingest.loaders._common import cell_text, file_source, read_text, reason

_LINES = {".jsonl", ".ndjson"}


def flatten(value: Any, prefix: str = "") -> list[str]:
    """'a.b: value' lines; lists of scalars joined with ", ", lists of objects indexed a[0].b."""
    if isinstance(value, dict):
        lines: list[str] = []
        for key, item in value.items():
            lines += flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return lines
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            joined = ", ".join(t for t in (cell_text(v) for v in value) if t)
            return [f"{prefix}: {joined}" if prefix else joined] if joined else []
        lines = []
        for i, item in enumerate(value):
            lines += flatten(item, f"{prefix}[{i}]")
        return lines
    text = cell_text(value)
    if not text:
        return []
    return [f"{prefix}: {text}" if prefix else text]


def _records(data: Any) -> list[Any]:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    return [data]


def _document(
    record: Any, number: int, ids: tuple[str, str], meta: dict[str, Any], text_field: str | None
) -> Document | LoadError | None:
    location = f"record {number}"
    meta = {**meta, "record": number}
    if text_field is not None:
        if not isinstance(record, dict) or text_field not in record:
            return LoadError(ids[0], f"{location}: no field '{text_field}'", location)
        text = (
            cell_text(record[text_field])
            if not isinstance(record[text_field], dict | list)
            else ("\n".join(flatten(record[text_field])))
        )
        fields = {k: v for k, v in record.items() if k != text_field and _scalar(v)}
        if fields:
            meta["fields"] = fields
    else:
        text = "\n".join(flatten(record))
    if not text.strip():
        return None  # an empty record has nothing to cite
    return Document(text, ids[0], ids[1], location, "record", metadata=meta)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def load(
    path: str | Path, *, text_field: str | None = None, **_options: object
) -> Iterator[Document | LoadError]:
    resolved, source_id, source = file_source(path)
    decoded = read_text(resolved)
    if isinstance(decoded, LoadError):
        yield decoded
        return
    text, _encoding = decoded
    ids = (source_id, source)
    if resolved.suffix.lower() in _LINES:
        meta = {"format": "jsonl"}
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError) as exc:
                msg = f"line {number}: invalid JSON: {_why(exc, in_line=True)}"
                yield LoadError(source_id, msg, f"record {number}")
                continue
            if doc := _document(record, number, ids, meta, text_field):
                yield doc
        return
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        yield LoadError(source_id, f"invalid JSON: {_why(exc)}")
        return
    meta = {"format": "json"}
    for number, record in enumerate(_records(data), start=1):
        if doc := _document(record, number, ids, meta, text_field):
            yield doc


def _why(exc: Exception, *, in_line: bool = False) -> str:
    if isinstance(exc, json.JSONDecodeError):
        where = f"column {exc.colno}" if in_line else f"line {exc.lineno}, column {exc.colno}"
        return f"{exc.msg} ({where})"
    return reason(exc)  # nesting too deep, a number too long
