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


def password_from_env(dsn: str, password_env: str | None, key: str) -> str | None:
    """The password for ``dsn``: never written in it (ConfigError), read from ``password_env``.

    ``key`` is the config key prefix the errors name ("kv." or "indexes.NAME.").
    """
    import os

    from acllm.errors import ConfigError

    if re.search(r"(://[^:@/?#]*:[^@/?#]*@)|password\s*=", dsn, flags=re.IGNORECASE):
        raise ConfigError(
            f"{key}dsn",
            "secrets are not written in the config",
            hint='leave the password out of the DSN and set password_env = "VARIABLE"',
        )
    if password_env is None:
        return None
    password = os.environ.get(password_env)
    if not password:
        raise ConfigError(
            f"{key}password_env",
            f"environment variable {password_env} is not set",
            hint=f"export {password_env}=<password>",
        )
    return password
