"""PostgreSQL connection strings, shared by the pg index and the pg KV (no psycopg needed)."""

from __future__ import annotations

import re


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ``***`` (URL and key=value forms)."""
    if "://" in dsn:
        out = re.sub(r"(://[^:@/?#]*:)[^@/?#]*@", r"\1***@", dsn)
        return re.sub(r"([?&]password=)[^&#]*", r"\1***", out, flags=re.IGNORECASE)
    return re.sub(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn, flags=re.IGNORECASE)


def libpq_dsn(dsn: str) -> str:
    """Accept SQLAlchemy-style URLs too: ``postgresql+psycopg://`` -> ``postgresql://``."""
    return re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", dsn.strip())
