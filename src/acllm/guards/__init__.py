"""Guardrails on the way in and out of a model: PII redaction, prompt-injection detection (in
messages and in retrieved chunks), topic lists, length limits, grounding, schema validity.

Redaction marks are ``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[IBAN]``, ``[DNI]``, ``[NIE]``,
``[CURP]``, ``[RFC]``: plain text, so every channel (web chat, WhatsApp, logs) shows them as is.
"""

from acllm.guards.events import GuardEvent, GuardOutcome
from acllm.guards.pipeline import InputGuards, OutputGuards
from acllm.guards.settings import GuardSettings

__all__ = ["GuardEvent", "GuardOutcome", "GuardSettings", "InputGuards", "OutputGuards"]
