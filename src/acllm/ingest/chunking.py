"""Documents to chunks that fit the embedder's token budget, each keeping its citation.

Text is split at paragraphs, then lines, then sentences, then words (a word longer than the budget
is cut), and the pieces are packed up to ``max_tokens``; every chunk after the first starts with
the tail of the previous one (``overlap_tokens``) so a fact cut at a boundary is still found whole.
A table row is one chunk when it fits; a longer row is split with the header line repeated at the
start of every piece, and ``pack_rows=True`` packs short rows of one table under one header line.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple

from acllm.errors import UserError
from acllm.ingest.document import Chunk, Document

_TOKEN = re.compile(r"\w+|[^\w\s]")
_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_LINE = re.compile(r"\n")
_SENTENCE = re.compile(r"(?<=[.!?…;:])\s+")
_SPACE = re.compile(r"\s+")
_TEXT_LEVELS = ((_PARAGRAPH, "\n\n"), (_LINE, "\n"), (_SENTENCE, " "), (_SPACE, " "))
_ROW_LEVELS = ((_LINE, "\n"), (re.compile(r";\s+"), "; "), (_SPACE, " "))


def approx_tokens(text: str) -> int:
    """A fast stand-in for a tokenizer: a word or punctuation mark is a token, long words more."""
    return sum(1 + (len(m) - 1) // 6 for m in _TOKEN.findall(text))


def chunk_id(source_id: str, location: str, ordinal: int) -> str:
    """Stable across runs: the same source, place and position give the same id."""
    key = f"{source_id}\x00{location}\x00{ordinal}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


class _Atom(NamedTuple):
    sep: str  # what joined it to the piece before it in the source text
    text: str
    cost: int


class _Budget:
    def __init__(self, count: Callable[[str], int], max_tokens: int) -> None:
        self.count, self.max = count, max_tokens
        self.base = count("")  # special tokens a real tokenizer adds to every text

    def cost(self, text: str) -> int:
        return max(self.count(text) - self.base, 0)

    def fits(self, text: str) -> bool:
        return self.count(text) <= self.max


def _split(
    text: str, levels: Sequence[tuple[re.Pattern[str], str]], limit: int, b: _Budget, sep: str = ""
) -> list[_Atom]:
    """Pieces of at most ``limit`` tokens, cutting at the coarsest boundary that works."""
    cost = b.cost(text)
    if cost <= limit:
        return [_Atom(sep, text, cost)]
    for i, (pattern, joiner) in enumerate(levels):
        parts = [p.strip() for p in pattern.split(text)]
        parts = [p for p in parts if p]
        if len(parts) > 1:
            atoms: list[_Atom] = []
            for n, part in enumerate(parts):
                atoms += _split(part, levels[i + 1 :], limit, b, sep if n == 0 else joiner)
            return atoms
    return _cut(text, limit, b, sep)


def _cut(text: str, limit: int, b: _Budget, sep: str) -> list[_Atom]:
    """A single word over the budget (a hash, a URL): cut by characters."""
    atoms: list[_Atom] = []
    while text:
        size = max(1, len(text) * limit // max(b.cost(text), 1))
        while size > 1 and b.cost(text[:size]) > limit:
            size = size * 3 // 4
        atoms.append(_Atom(sep if not atoms else "", text[:size], b.cost(text[:size])))
        text = text[size:]
    return atoms


def _join(atoms: Sequence[_Atom]) -> str:
    return "".join(a.text if i == 0 else a.sep + a.text for i, a in enumerate(atoms))


def _tail(atoms: Sequence[_Atom], overlap: int, b: _Budget) -> list[_Atom]:
    """The end of a chunk, at most ``overlap`` tokens, to repeat at the start of the next."""
    tail: list[_Atom] = []
    used = 0
    for atom in reversed(atoms):
        if used + atom.cost > overlap:
            break
        tail.insert(0, atom)
        used += atom.cost
    if tail or not atoms or overlap <= 0:
        return tail
    words: list[str] = []  # the last piece alone is too long: repeat its last words
    for word in reversed(atoms[-1].text.split()):
        if used + b.cost(word) > overlap:
            break
        words.insert(0, word)
        used += b.cost(word)
    return [_Atom("", " ".join(words), used)] if words else []


def _pack(
    atoms: Iterable[_Atom], limit: int, overlap: int, b: _Budget, fits: Callable[[str], bool]
) -> Iterator[str]:
    """Greedy packing up to ``limit``; ``fits`` checks the joined text with the real counter."""
    pending = deque(atoms)
    carry: list[_Atom] = []  # overlap repeated from the previous chunk
    fresh: list[_Atom] = []
    used = 0  # summed cost of carry and fresh
    while pending:
        atom = pending.popleft()
        if fresh and used + atom.cost > limit:
            pending.appendleft(atom)
        else:
            if not fresh and used + atom.cost > limit:  # keep only the overlap that still fits
                carry = _tail(carry, limit - atom.cost, b)
                used = sum(a.cost for a in carry)
            fresh.append(atom)
            used += atom.cost
            if pending:
                continue
        # Costs are summed per piece; the joined text may count a little more: give pieces back.
        while len(fresh) > 1 and not fits(_join(carry + fresh)):
            pending.appendleft(fresh.pop())
        if carry and not fits(_join(carry + fresh)):
            carry = []
        yield _join(carry + fresh)
        carry, fresh = _tail(carry + fresh, overlap, b), []
        used = sum(a.cost for a in carry)


def _header_line(doc: Document, b: _Budget) -> str:
    line = " | ".join(doc.header)
    # A header wider than half the budget would crowd out the row it is meant to label.
    return line if line and b.cost(line) <= b.max // 2 else ""


def _row_pieces(doc: Document, b: _Budget) -> list[str]:
    text = doc.text.strip()
    if b.fits(text):
        return [text]
    head = _header_line(doc, b)
    prefix = head + "\n" if head else ""
    limit = max(b.max - b.base - b.cost(prefix), 1)
    atoms = _split(text, _ROW_LEVELS, limit, b)
    return [prefix + p for p in _pack(atoms, limit, 0, b, lambda t: b.fits(prefix + t))]


def _span(locations: Sequence[str]) -> str:
    """'rows 3-7' (or 'sheet S, rows 3-7') for packed rows; otherwise 'first … last'."""
    first = re.fullmatch(r"(.*?)row (\d+)", locations[0])
    last = re.fullmatch(r"(.*?)row (\d+)", locations[-1])
    if first and last and first.group(1) == last.group(1):
        return f"{first.group(1)}rows {first.group(2)}-{last.group(2)}"
    return f"{locations[0]} … {locations[-1]}"


def _make(doc: Document, location: str, ordinal: int, text: str, **extra: object) -> Chunk:
    meta = {**doc.metadata, "kind": doc.kind, **extra}
    return Chunk(
        chunk_id(doc.source_id, location, ordinal), doc.source_id, doc.source, location, text, meta
    )


def _packed(rows: list[Document], text: str) -> Chunk:
    locations = [r.location for r in rows]
    meta = {k: v for k, v in rows[0].metadata.items() if k != "row"}
    doc = Document("", rows[0].source_id, rows[0].source, "", "table", rows[0].header, meta)
    return _make(doc, _span(locations), 0, text, locations=locations)


def _packs(docs: Iterable[Document], b: _Budget) -> Iterator[Document | Chunk]:
    """Runs of two or more short rows of one table as packed chunks, other documents as they are."""
    run: list[Document] = []
    lines: list[str] = []
    key: tuple[object, ...] = ()
    for doc in docs:
        line = " ".join(doc.text.split("\n"))
        k = (doc.source_id, doc.header, *(doc.metadata.get(f) for f in ("sheet", "page", "table")))
        joins = doc.kind == "table" and bool(line.strip()) and b.fits(line)
        if run and (not joins or k != key or not b.fits("\n".join([*lines, line]))):
            yield _packed(run, "\n".join(lines)) if len(run) > 1 else run[0]
            run = []
        if not joins:
            yield doc
            continue
        if not run:
            head = _header_line(doc, b)
            key, lines = k, [head] if head and b.fits(f"{head}\n{line}") else []
        run.append(doc)
        lines.append(line)
    if run:
        yield _packed(run, "\n".join(lines)) if len(run) > 1 else run[0]


def chunk_documents(
    docs: Iterable[Document],
    *,
    max_tokens: int = 256,
    overlap_tokens: int = 32,
    count_tokens: Callable[[str], int] | None = None,
    pack_rows: bool = False,
) -> Iterator[Chunk]:
    """Chunks of at most ``max_tokens`` (by ``count_tokens``, default ``approx_tokens``).

    The overlap is capped at half the budget, so every chunk brings mostly new text.
    """
    if max_tokens < 1 or overlap_tokens < 0:
        raise UserError(
            f"chunking needs max_tokens >= 1 and overlap_tokens >= 0, "
            f"got {max_tokens} and {overlap_tokens}"
        )
    overlap_tokens = min(overlap_tokens, max_tokens // 2)
    b = _Budget(count_tokens or approx_tokens, max_tokens)
    seen: dict[str, int] = {}  # per source: locations used, so repeated ones get new ordinals
    current = ""
    for item in _packs(docs, b) if pack_rows else docs:
        if isinstance(item, Chunk):
            yield item
            continue
        doc = item
        if not doc.text.strip():
            continue
        if doc.kind == "table":
            pieces = _row_pieces(doc, b)
        else:
            limit = max(b.max - b.base, 1)
            atoms = _split(doc.text.strip(), _TEXT_LEVELS, limit, b)
            pieces = list(_pack(atoms, limit, overlap_tokens, b, b.fits))
        start = 0
        if doc.kind != "table":  # rows have unique locations; sections may repeat
            if doc.source_id != current:
                seen, current = {}, doc.source_id
            start = seen.get(doc.location, 0)
            seen[doc.location] = start + len(pieces)
        for i, text in enumerate(pieces):
            if text.strip():
                yield _make(doc, doc.location, start + i, text)
