"""``acllm keys create|list|revoke``: API keys for ``acllm serve``, kept in <data_dir>/keys.sqlite."""

from __future__ import annotations

import argparse
from typing import Any

from acllm.cli.output import emit
from acllm.errors import UserError

NOT_STORED = "This secret is not stored and cannot be shown again: copy it now."
_CREATE_ONLY = ("name", "route", "assistant", "rpm", "tpm", "admin")


def _store(args: argparse.Namespace) -> Any:
    from acllm.runtime import Runtime
    from acllm.service.keys import KeyStore

    return KeyStore.at(Runtime.from_config(args.config).data_dir)


def _budget(value: int | None) -> str:
    return "default" if value is None else str(value)


def _describe(key: dict[str, Any]) -> str:
    return (
        f"routes {', '.join(key['routes'])}; assistants {', '.join(key['assistants'])}; "
        f"rpm {_budget(key['rpm'])}; tpm {_budget(key['tpm'])}"
    )


def _create(args: argparse.Namespace) -> int:
    if args.key_id:
        raise UserError(
            "'acllm keys create' takes no key id: ids are made for new keys",
            hint="acllm keys create --name NAME [--route GROUP] [--assistant NAME]",
        )
    with _store(args) as store:
        key, secret = store.create(
            args.name,
            routes=args.route,
            assistants=args.assistant,
            rpm=args.rpm,
            tpm=args.tpm,
            admin=args.admin,
        )
    data = key.as_dict()
    text = "\n".join(
        [
            f"created API key {key.id} '{key.name}' ({_describe(data)})",
            f"secret: {secret}",
            NOT_STORED,
            "Clients send it as the header: Authorization: Bearer <secret>",
        ]
    )
    return emit({"key": data, "secret": secret, "note": NOT_STORED}, as_json=args.json, text=text)


def _list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        keys = [k.as_dict() for k in store.list()]
    lines = [
        f"{k['id']}  {k['status']:7}  {k['name']}  ({_describe(k)}; "
        f"last used {k['last_used'] or 'never'})"
        for k in keys
    ]
    text = "\n".join(lines) or "no API keys yet (acllm keys create --name NAME)"
    return emit({"keys": keys}, as_json=args.json, text=text)


def _revoke(args: argparse.Namespace) -> int:
    if not args.key_id:
        raise UserError("'acllm keys revoke' needs the id of the key", hint="see acllm keys list")
    with _store(args) as store:
        key, revoked_now = store.revoke(args.key_id)
    text = (
        f"revoked API key {key.id} '{key.name}': it is refused from now on"
        if revoked_now
        else f"API key {key.id} '{key.name}' was already revoked at {key.as_dict()['revoked_at']}"
    )
    data = {"key": key.as_dict(), "already_revoked": not revoked_now}
    return emit(data, as_json=args.json, text=text)


def run(args: argparse.Namespace) -> int:
    if args.action != "create":
        given = [f"--{o}" for o in _CREATE_ONLY if getattr(args, o) not in (None, False)]
        if given:
            raise UserError(
                f"{', '.join(given)} only applies to 'acllm keys create'",
                hint=f"drop it from 'acllm keys {args.action}'",
            )
    if args.action == "list" and args.key_id:
        raise UserError("'acllm keys list' takes no key id", hint="acllm keys list")
    handlers = {"create": _create, "list": _list, "revoke": _revoke}
    return handlers[args.action](args)
