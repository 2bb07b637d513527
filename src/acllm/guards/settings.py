"""Per-assistant guard settings (imports nothing but pydantic, so acllm.config can import it).

Each guard has an action: ``block`` (refuse with a friendly message in the user's language),
``redact`` (replace what was found with a visible mark such as ``[EMAIL]``, or drop unsupported
sentences on output), ``flag`` (let the text through and record an event) or ``off``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PIIKind = Literal["email", "phone", "card", "iban", "dni", "nie", "curp", "rfc"]
ALL_PII_KINDS: tuple[PIIKind, ...] = ("email", "phone", "card", "iban", "dni", "nie", "curp", "rfc")


class GuardSettings(BaseModel):
    """Input and output guardrails of one assistant. The defaults are safe to switch on: PII is
    redacted both ways, injections are blocked (and poisoned chunks dropped), grounding only flags
    until its precision is measured on the assistant's own traffic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- input -------------------------------------------------------------------------------
    pii: Literal["redact", "block", "flag", "off"] = "redact"
    pii_kinds: tuple[PIIKind, ...] = Field(default=ALL_PII_KINDS, min_length=1)
    injection: Literal["block", "flag", "off"] = "block"
    # Score in [0, 1) at or above which a text counts as an injection (tuned on the dev half of
    # bench/data/guards/injection.jsonl).
    injection_threshold: float = Field(default=0.5, gt=0, lt=1)
    # What to do with a retrieved chunk that carries hidden instructions: block = drop it.
    context_injection: Literal["block", "flag", "off"] = "block"
    topics_allow: tuple[str, ...] = ()  # keywords or phrases; empty: every topic is allowed
    topics_deny: tuple[str, ...] = ()
    topic_action: Literal["block", "flag", "off"] = "block"
    # With an embedder: a message also matches a topic when its cosine to the topic's text
    # reaches this (multilingual-e5-small puts related questions above about 0.85).
    topic_similarity: float = Field(default=0.86, ge=-1, le=1)
    # Messages with fewer content words than this skip the allow list ("hola", "thanks!").
    topic_min_words: int = Field(default=3, ge=0)
    max_input_chars: int = Field(default=8000, gt=0)
    max_input_tokens: int | None = Field(default=None, gt=0)  # estimated: words and punctuation
    # -- output ------------------------------------------------------------------------------
    grounding: Literal["flag", "redact", "block", "off"] = "flag"
    output_pii: Literal["redact", "block", "flag", "off"] = "redact"
    schema_action: Literal["block", "flag", "off"] = "block"
    # -- model-based checks (only when named: a configured model, e.g. "local") ---------------
    judge_model: str | None = None
