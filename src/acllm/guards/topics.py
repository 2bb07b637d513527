"""Topic allow and deny lists: keywords and phrases matched without regard to case, accents or
look-alike letters, and, when an embedder is given, the meaning of each topic as well."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from acllm.embed.base import Embedder, Vectors
from acllm.guards.fold import plain

Verdict = Literal["ok", "denied", "off_topic"]
_WORD = re.compile(r"\w{3,}")


def _phrase(topic: str) -> re.Pattern[str]:
    words = plain(topic).split()
    return re.compile(r"\b" + r"\W+".join(re.escape(w) for w in words) + r"\w{0,3}\b")


@dataclass
class TopicGuard:
    allow: Sequence[str] = ()
    deny: Sequence[str] = ()
    embedder: Embedder | None = None
    similarity: float = 0.86
    min_words: int = 3
    _allow_re: list[re.Pattern[str]] = field(init=False, repr=False)
    _deny_re: list[re.Pattern[str]] = field(init=False, repr=False)
    _vectors: dict[str, Vectors] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._allow_re = [_phrase(t) for t in self.allow if t.strip()]
        self._deny_re = [_phrase(t) for t in self.deny if t.strip()]

    def _topic_vectors(self, which: str, topics: Sequence[str]) -> Vectors:
        assert self.embedder is not None
        if which not in self._vectors:
            self._vectors[which] = self.embedder.embed(list(topics), kind="passage")
        return self._vectors[which]

    def _close(self, query: Vectors | None, which: str, topics: Sequence[str]) -> int | None:
        """The index of the topic nearest in meaning when it is close enough, else None."""
        if query is None or not topics:
            return None
        sims = self._topic_vectors(which, topics) @ query
        best = int(np.argmax(sims))
        return best if float(sims[best]) >= self.similarity else None

    def check(self, text: str) -> tuple[Verdict, str]:
        """("ok" | "denied" | "off_topic", detail naming the topic, never quoting the text)."""
        folded = plain(text)
        for i, pattern in enumerate(self._deny_re):
            if pattern.search(folded):
                return "denied", f"deny topic #{i} (keyword)"
        query = None
        if self.embedder is not None and (self.deny or self.allow):
            query = self.embedder.embed([text], kind="query")[0]
        hit = self._close(query, "deny", self.deny)
        if hit is not None:
            return "denied", f"deny topic #{hit} (similarity)"
        if not self._allow_re or len(_WORD.findall(folded)) < self.min_words:
            return "ok", ""
        if any(p.search(folded) for p in self._allow_re):
            return "ok", ""
        if self._close(query, "allow", self.allow) is not None:
            return "ok", ""
        return "off_topic", "matches no allowed topic"
