"""Settings of an assistant's conversation memory (``[assistants.NAME.memory]``).

Imports nothing but pydantic and the standard library, so ``acllm.config`` can import it freely.
The budget is split in two: ``summary_tokens`` are reserved for the rolling summary, the rest holds
the window of recent turns (at most ``window_turns``). Both are counted with the chat model's
tokenizer, so what ``ConversationMemory.context`` returns always fits ``budget_tokens``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

WEEK_S = 7 * 24 * 3600.0


class MemorySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False  # off unless an assistant turns it on
    budget_tokens: int = Field(default=1024, ge=64, le=1_000_000)  # summary + window, all told
    window_turns: int = Field(default=6, ge=1, le=100)  # recent turns kept verbatim, at most
    summary_tokens: int = Field(default=256, ge=16)  # bound of the rolling summary
    ttl_s: float = Field(default=WEEK_S, gt=0)  # a session idle this long is forgotten
    # extractive: deterministic, keeps the salient sentences of evicted turns (names, numbers,
    # dates, first-person facts); model: a chat model rewrites summary + evicted turns, falling
    # back to extractive when it fails or overflows the bound.
    summarizer: Literal["extractive", "model"] = "extractive"
    model: str | None = None  # for summarizer = "model"; None: the assistant's model

    @model_validator(mode="after")
    def _summary_leaves_room(self) -> MemorySettings:
        if self.summary_tokens * 4 > self.budget_tokens * 3:
            raise ValueError(
                f"summary_tokens ({self.summary_tokens}) must leave at least a quarter of "
                f"budget_tokens ({self.budget_tokens}) to the window of recent turns"
            )
        if self.model is not None and self.summarizer != "model":
            raise ValueError('model is set but summarizer is not "model"')
        return self
