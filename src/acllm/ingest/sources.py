"""What to ingest: files under a path, or a table/query from a database URL, as PendingSources."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from acllm.errors import UserError
from acllm.ingest.document import Document, LoadError
from acllm.ingest.pipeline import PendingSource, documents_hash, file_hash


def is_url(target: str) -> bool:
    return "://" in target


def from_path(
    root: Path, *, include: Sequence[str] | None = None, ignore: Sequence[str] = ()
) -> tuple[list[PendingSource], list[LoadError]]:
    """One PendingSource per readable file; hashing reads bytes only, parsing happens later."""
    from acllm.ingest.loaders import iter_files, load_file

    if not root.exists():
        raise UserError(f"{root} does not exist", hint="give a file, a folder or a database URL")
    pending, errors = [], []
    for path in iter_files(root, include=include, ignore=ignore):
        try:
            digest = file_hash(path)
        except OSError as exc:
            errors.append(LoadError(str(path), f"cannot read: {exc.strerror}"))
            continue
        pending.append(
            PendingSource(str(path.resolve()), digest, partial(load_file, path), path.name)
        )
    return pending, errors


def owned_by(root: Path, source_ids: Sequence[str]) -> list[str]:
    """Sources the index holds from under ``root``: the candidates for removal."""
    base = str(root.resolve())
    return [s for s in source_ids if s == base or s.startswith(base.rstrip(os.sep) + os.sep)]


def from_sql(
    url: str, *, table: str | None, query: str | None, key: str | None = None
) -> tuple[list[PendingSource], list[LoadError]]:
    """A table or query is one source; it must be read to be hashed."""
    from acllm.ingest.loaders import load_sql

    if not table and not query:
        raise UserError(
            "a database URL needs --table or --query",
            hint="e.g. acllm ingest sqlite:///shop.db --table products --index shop",
        )
    docs: list[Document] = []
    errors: list[LoadError] = []
    for got in load_sql(url, table=table, query=query, key=key):
        (errors if isinstance(got, LoadError) else docs).append(got)  # type: ignore[arg-type]
    if not docs:
        return [], errors
    frozen = tuple(docs)
    return [
        PendingSource(docs[0].source_id, documents_hash(docs), lambda: frozen, docs[0].source)
    ], errors
