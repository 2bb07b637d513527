"""Loaders: files and databases to ``Document``s, each knowing its source and location.

Every format module has ``load(path, **options) -> Iterator[Document | LoadError]``: a bad part
of a file is a LoadError and the rest goes on; nothing raises for bad content. ``load_path`` walks
a file or folder and dispatches by extension; ``load_sql`` reads a table or query. Format modules
import their heavy libraries only when called.
"""

from __future__ import annotations

import fnmatch
import importlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acllm.ingest.document import Document, LoadError

if TYPE_CHECKING:
    from acllm.ingest.loaders.sql import load_sql
else:

    def load_sql(*args: Any, **kwargs: Any) -> Iterator[Document | LoadError]:
        """Rows of a table or query; see acllm.ingest.loaders.sql.load_sql."""
        from acllm.ingest.loaders.sql import load_sql as _load_sql

        return _load_sql(*args, **kwargs)


__all__ = ["DEFAULT_IGNORE", "LOADERS", "iter_files", "load_file", "load_path", "load_sql"]

# extension -> module in this package
LOADERS: dict[str, str] = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".csv": "delimited",
    ".tsv": "delimited",
    ".json": "records",
    ".jsonl": "records",
    ".ndjson": "records",
    ".pdf": "pdf",
    ".xlsx": "spreadsheet",
    ".xlsm": "spreadsheet",
    ".docx": "word",
    ".html": "webpage",
    ".htm": "webpage",
}

# Version control, caches, editor and Office lock files: never client content.
DEFAULT_IGNORE: tuple[str, ...] = (
    ".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", ".mypy_cache",
    ".pytest_cache", ".DS_Store", "Thumbs.db", "*.tmp", "*.temp", "*.swp", "*~", "~$*", ".~lock.*",
)  # fmt: skip


def load_file(path: str | Path, **options: Any) -> Iterator[Document | LoadError]:
    """One file through the loader for its extension; options go to that loader."""
    suffix = Path(path).suffix.lower()
    if suffix not in LOADERS:
        yield LoadError(str(Path(path).resolve()), f"unsupported file type '{suffix or path}'")
        return
    module = importlib.import_module(f"acllm.ingest.loaders.{LOADERS[suffix]}")
    yield from module.load(path, **options)


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    """A pattern matches any component of the relative path, or the whole relative path."""
    parts = rel.split("/")
    return any(
        fnmatch.fnmatchcase(rel, p) or any(fnmatch.fnmatchcase(part, p) for part in parts)
        for p in patterns
    )


def _included(rel: str, include: Sequence[str] | None) -> bool:
    if not include:
        return True
    suffix = Path(rel).suffix.lower()
    for pattern in include:
        if not any(ch in pattern for ch in "*?["):  # "pdf" or ".pdf": an extension
            if suffix == "." + pattern.lower().lstrip("."):
                return True
        elif fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(Path(rel).name, pattern):
            return True
    return False


def _walk(root: Path, recursive: bool, ignore: Sequence[str]) -> Iterator[tuple[Path, str]]:
    """(file, path relative to root) not ignored, sorted so every run yields the same order."""
    for current, dirs, files in os.walk(root, followlinks=False):  # no symlink loops
        base = Path(current).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        # Pruned here so an ignored node_modules or .git is never walked.
        dirs[:] = [d for d in sorted(dirs) if recursive and not _matches(prefix + d, ignore)]
        for name in sorted(files):
            if not _matches(prefix + name, ignore):
                yield Path(current) / name, prefix + name


def iter_files(
    path: str | Path,
    *,
    recursive: bool = True,
    include: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
) -> Iterator[Path]:
    """The files ``load_path`` would read: a single file as given, or a folder's supported files.

    ``include`` keeps only files matching one of its extensions ("pdf", ".md") or globs
    ("reports/*.csv"); ``ignore`` adds glob patterns to ``DEFAULT_IGNORE``, matched against each
    path component and the whole path relative to ``path``.
    """
    root = Path(path).expanduser()
    if root.is_file():
        yield root  # named explicitly: load_file reports an unsupported type
        return
    for file, rel in _walk(root, recursive, [*DEFAULT_IGNORE, *ignore]):
        if file.suffix.lower() in LOADERS and _included(rel, include):
            yield file


def load_path(
    path: str | Path,
    *,
    recursive: bool = True,
    include: list[str] | None = None,
    ignore: list[str] | None = None,
    **options: Any,
) -> Iterator[Document | LoadError]:
    """Documents of a file, or of every supported file in a folder (see ``iter_files``).

    ``options`` go to every loader, each taking the ones it knows (``text_field`` for JSON,
    ``header`` for CSV/XLSX, ``ocr``/``password`` for PDF).
    """
    root = Path(path).expanduser()
    if not root.exists():
        yield LoadError(str(root.resolve()), "no such file or folder")
        return
    for file in iter_files(root, recursive=recursive, include=include, ignore=ignore or ()):
        yield from load_file(file, **options)
