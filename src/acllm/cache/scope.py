"""What must match for any cache hit: a scope, and the digests that key entries within it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from acllm.cache.text import exact_form


def digest(text: str) -> str:
    """A short hex digest (sha256, 128 bits) of a text: prompts and histories are keyed by it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class CacheScope:
    """Every field must be equal for a hit, exact or semantic.

    ``index_version`` changes on every re-ingest, so old answers stop being served; ``tenant`` is
    the API key id ("" for anonymous) so tenants never see each other's answers; ``conversation``
    is a digest of the prior turns ("" for a first turn), so a follow-up ("and in Spain?") is only
    served an answer given after the same history. Use ``CacheScope.of`` to hash the raw texts.
    """

    assistant: str
    index_version: str
    system_prompt: str  # a digest, not the prompt itself
    model: str
    tenant: str = ""
    conversation: str = ""  # a digest of the prior turns
    _key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = (
            self.assistant,
            self.index_version,
            self.system_prompt,
            self.model,
            self.tenant,
            self.conversation,
        )
        # Length-prefixed, so no two different scopes join to the same text.
        joined = "".join(f"{len(p)}:{p}" for p in parts)
        object.__setattr__(self, "_key", digest(joined))

    @classmethod
    def of(
        cls,
        *,
        assistant: str,
        index_version: str,
        system_prompt: str,
        model: str,
        tenant: str = "",
        history: str = "",
    ) -> CacheScope:
        """A scope from the raw system prompt and prior turns (as text), hashed here."""
        return cls(
            assistant=assistant,
            index_version=index_version,
            system_prompt=digest(system_prompt),
            model=model,
            tenant=tenant,
            conversation=digest(history) if history else "",
        )

    def key(self) -> str:
        """A 32-hex-digit digest of every field: the name of this scope in a store."""
        return self._key


def question_key(question: str) -> str:
    """The exact-match key of a question: a digest of its normalised form (see text.exact_form)."""
    return digest(exact_form(question))
