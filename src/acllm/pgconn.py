"""PostgreSQL connection strings, shared by the pg index and the pg KV (no psycopg needed)."""

from __future__ import annotations

import re
from typing import Any


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
    from acllm.config import env_secret
    from acllm.errors import ConfigError

    if re.search(r"(://[^:@/?#]*:[^@/?#]*@)|password\s*=", dsn, flags=re.IGNORECASE):
        raise ConfigError(
            f"{key}dsn",
            "secrets are not written in the config",
            hint='leave the password out of the DSN and set password_env = "VARIABLE"',
        )
    return env_secret(password_env, f"{key}password_env")


def connect(
    dsn: str,
    where: str,
    *,
    password: str | None,
    connect_timeout: float,
    application_name: str,
    key: str,
) -> Any:
    """An autocommit psycopg connection; a bad DSN is a UserError, a failure a ServiceError that
    names ``where`` (the redacted DSN) and, by ``key``, the settings to check."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from acllm.errors import ServiceError, UserError

    try:
        params: dict[str, Any] = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise UserError(f"invalid PostgreSQL DSN {where}: {exc}") from exc
    params.setdefault("connect_timeout", max(1, round(connect_timeout)))
    params.setdefault("application_name", application_name)
    if password is not None:
        params["password"] = password
    try:
        return psycopg.connect(**params, autocommit=True)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServiceError(
            f"cannot connect to PostgreSQL at {where}: {reason}",
            hint=f"check that the server is running and reachable, and {key}dsn's host, port, "
            f"user and database; a password comes from {key}password_env, PGPASSWORD or "
            "~/.pgpass",
        ) from exc
