"""What the loaders share: naming a file source, reading it, table rows as text, heading paths."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from acllm.ingest.document import Document, LoadError
from acllm.ingest.loaders._encoding import decode_bytes

_NUMBER = re.compile(r"^[-+]?[\d.,\s]*\d[\d.,\s]*%?$")


def file_source(path: str | Path) -> tuple[Path, str, str]:
    """(resolved path, source_id, source): the id is the absolute path, a citation shows the name."""
    resolved = Path(path).expanduser().resolve()
    return resolved, str(resolved), resolved.name


def read_bytes(path: Path) -> bytes | LoadError:
    try:
        return path.read_bytes()
    except OSError as exc:
        return LoadError(str(path), f"cannot read: {exc.strerror or exc}")


def read_text(path: Path) -> tuple[str, str] | LoadError:
    """(text, encoding) of a text file, or why it is not one."""
    data = read_bytes(path)
    if isinstance(data, LoadError):
        return data
    decoded = decode_bytes(data)
    if decoded is None:
        return LoadError(str(path), "not a text file (binary content or unknown encoding)")
    text, encoding = decoded
    return text.replace("\r\n", "\n").replace("\r", "\n"), encoding


def reason(exc: BaseException) -> str:
    """A one-line reason for a LoadError: the exception's message, or its type when it has none."""
    text = " ".join(str(exc).split())
    return text[:500] if text else type(exc).__name__


def cell_text(value: Any) -> str:
    """A cell as a citation would show it: 3.0 -> "3", dates ISO, None -> ""."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bytes | bytearray | memoryview):
        return ""  # binary columns carry no text to search
    return str(value).strip()


def plausible_header(cells: Sequence[str]) -> bool:
    """A header row: every cell filled, no two alike, none a number (numbers are data)."""
    stripped = [c.strip() for c in cells]
    return (
        bool(stripped)
        and all(stripped)
        and len(set(stripped)) == len(stripped)
        and not any(_NUMBER.match(c) for c in stripped)
    )


def column_names(cells: Sequence[str], width: int) -> tuple[str, ...]:
    """Header cells made usable: blanks become "column N", repeats get " (2)"."""
    names: list[str] = []
    for i in range(max(width, len(cells))):
        name = cells[i].strip() if i < len(cells) else ""
        name = name or f"column {i + 1}"
        base, n = name, 2
        while name in names:
            name, n = f"{base} ({n})", n + 1
        names.append(name)
    return tuple(names)


def row_text(header: Sequence[str], values: Sequence[str]) -> str:
    """'col: value; col: value' (one pair a line when long), or the bare values without a header."""
    if not header:
        return "; ".join(v for v in values if v)
    pairs = [f"{h}: {v}" for h, v in zip(header, values, strict=False) if v]
    pairs += [v for v in values[len(header) :] if v]
    long = sum(len(p) for p in pairs) > 300 or any("\n" in p for p in pairs)
    return ("\n" if long else "; ").join(pairs)


class Sections:
    """Text grouped under a heading path ("Intro > Pricing"), one Document per non-empty section."""

    def __init__(self, source_id: str, source: str, metadata: dict[str, Any]) -> None:
        self.source_id, self.source, self.metadata = source_id, source, metadata
        self.path: list[tuple[int, str]] = []
        self.title = ""
        self.lines: list[str] = []
        self.seen: dict[str, int] = {}

    def heading(self, level: int, title: str) -> Document | None:
        done = self.flush()
        title = " ".join(title.split())
        if title:
            self.path = [(lv, t) for lv, t in self.path if lv < level] + [(level, title)]
            self.title = title  # the heading belongs to its section's text
        return done

    def add(self, text: str) -> None:
        self.lines.append(text)

    def flush(self) -> Document | None:
        body = re.sub(r"\n{3,}", "\n\n", "\n".join(self.lines).strip())
        title, self.title, self.lines = self.title, "", []
        if not body:
            return None  # a heading with nothing under it shows up in its subsections' paths
        path = " > ".join(t for _, t in self.path)
        location = f"section {path}" if path else ""
        n = self.seen[location] = self.seen.get(location, 0) + 1
        if n > 1:  # two sections with the same path: citations must tell them apart
            location = f"{location} ({n})" if location else f"part {n}"
        text = f"{title}\n\n{body}" if title else body
        heading = self.path[-1][1] if self.path else ""
        meta = {**self.metadata, "section": path, "heading": heading}
        return Document(text, self.source_id, self.source, location, "text", metadata=meta)
