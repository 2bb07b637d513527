"""Guardrails on the way in and out of a model (issue in progress: PII first)."""
