"""Guardrails on the way in and out of a model: PII redaction, prompt-injection detection (in
messages and in retrieved chunks), topic lists, length limits, grounding, schema validity.

Redaction marks are ``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[IBAN]``, ``[DNI]``, ``[NIE]``,
``[CURP]``, ``[RFC]``: plain text, so every channel (web chat, WhatsApp, logs) shows them as is.

The names below load on first use (PEP 562): ``acllm.config`` imports ``acllm.guards.settings``
and must stay light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from acllm.guards.events import GuardEvent, GuardOutcome
    from acllm.guards.pipeline import InputGuards, OutputGuards
    from acllm.guards.settings import GuardSettings

_WHERE = {
    "GuardEvent": "events",
    "GuardOutcome": "events",
    "InputGuards": "pipeline",
    "OutputGuards": "pipeline",
    "GuardSettings": "settings",
}
__all__ = ["GuardEvent", "GuardOutcome", "GuardSettings", "InputGuards", "OutputGuards"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'acllm.guards' has no attribute {name!r}")
    return getattr(importlib.import_module(f"acllm.guards.{_WHERE[name]}"), name)
