"""Markdown (.md): one Document per section, located by its heading path ("Intro > Pricing").

ATX (``## Title``) and setext (``Title`` over ``===``/``---``) headings split sections; lines in
fenced code blocks are never headings. Text before the first heading has location "".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from acllm.ingest.document import Document, LoadError
from acllm.ingest.loaders._common import Sections, file_source, read_text

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def _strip_inline(title: str) -> str:
    """Heading text as a reader sees it: no emphasis marks, links reduced to their text."""
    title = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", title)
    return re.sub(r"[*_`]+", "", title).strip()


def load(path: str | Path, **_options: object) -> Iterator[Document | LoadError]:
    resolved, source_id, source = file_source(path)
    decoded = read_text(resolved)
    if isinstance(decoded, LoadError):
        yield decoded
        return
    text, encoding = decoded
    sections = Sections(source_id, source, {"format": "markdown", "encoding": encoding})
    lines = text.split("\n")
    fence = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        i += 1
        if fence:
            fence = "" if line.strip().startswith(fence) else fence
            sections.add(line)
            continue
        if m := _FENCE.match(line):
            fence = m.group(1)
            sections.add(line)
            continue
        level_title: tuple[int, str] | None = None
        if m := _ATX.match(line):
            level_title = len(m.group(1)), m.group(2) or ""
        elif line.strip() and (s := _SETEXT.match(nxt)) and not _is_block_start(line):
            level_title = (1 if s.group(1)[0] == "=" else 2), line
            i += 1  # the underline belongs to the heading
        if level_title is None:
            sections.add(line)
        elif done := sections.heading(level_title[0], _strip_inline(level_title[1])):
            yield done
    if done := sections.flush():
        yield done


def _is_block_start(line: str) -> bool:
    # A list item or quote followed by "---" is not a setext heading in practice.
    return bool(re.match(r"^ {0,3}([-*+>]|\d+[.)])\s", line))
