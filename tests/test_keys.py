"""The API key store (hashed secrets, scopes, revocation, a SQLite file) and ``acllm keys``."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from acllm.cli.main import main
from acllm.errors import ServiceError, UserError
from acllm.service.guard import ROUTE_GROUPS
from acllm.service.keys import SCHEMA_VERSION, KeyStore, UnknownKeyError

T0 = 1_700_000_040.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[KeyStore]:
    with KeyStore(tmp_path / "keys.sqlite", clock=clock) as s:
        yield s


# --- the store -----------------------------------------------------------------------------------


def test_create_then_verify(store: KeyStore) -> None:
    key, secret = store.create("ci-bot", routes=["chat", "ask"], assistants=["support"], rpm=5)
    assert re.fullmatch(r"key_[0-9a-f]{12}", key.id)
    assert re.fullmatch(r"acllm-[A-Za-z0-9_-]{43}", secret)  # 32 random bytes, URL-safe
    assert key.routes == {"chat", "ask"} and key.assistants == {"support"}
    assert (key.rpm, key.tpm, key.created) == (5, None, T0)
    assert store.verify(secret) == key
    assert store.get(key.id) == key


def test_wrong_secrets_verify_to_none(store: KeyStore) -> None:
    _, secret = store.create("a")
    assert store.verify(secret + "x") is None
    assert store.verify(secret[:-1]) is None
    assert store.verify("acllm-") is None
    assert store.verify("") is None


def test_every_secret_and_id_is_new(store: KeyStore) -> None:
    made = [store.create(f"k{i}") for i in range(20)]
    assert len({k.id for k, _ in made}) == len({s for _, s in made}) == 20
    assert all(store.verify(s) == k for k, s in made)


def test_list_is_oldest_first_and_never_has_secrets(store: KeyStore, clock: Clock) -> None:
    first, s1 = store.create("first")
    clock.now += 5
    second, s2 = store.create("second", admin=True)
    listed = store.list()
    assert [k.id for k in listed] == [first.id, second.id]
    dumped = json.dumps([k.as_dict() for k in listed])
    assert s1 not in dumped and s2 not in dumped and "secret" not in dumped
    assert listed[1].as_dict()["created"] == "2023-11-14T22:14:05+00:00"


def test_revoke_refuses_the_secret_and_twice_is_reported(store: KeyStore, clock: Clock) -> None:
    key, secret = store.create("temp")
    clock.now += 60
    revoked, now = store.revoke(key.id)
    assert now is True and revoked.revoked_at == T0 + 60 and not revoked.active
    assert store.verify(secret) is None
    found = store.find(secret)  # still known, so the guard can say it was revoked
    assert found is not None and found.revoked_at == T0 + 60
    clock.now += 60
    again, now = store.revoke(key.id)
    assert now is False and again.revoked_at == T0 + 60  # the first revocation's time is kept
    assert store.list()[0].as_dict()["status"] == "revoked"


def test_revoke_unknown_id(store: KeyStore) -> None:
    with pytest.raises(UnknownKeyError, match="no API key with id 'key_nope'") as info:
        store.revoke("key_nope")
    assert "acllm keys list" in info.value.hint
    assert info.value.status == 404


def test_secrets_are_stored_only_as_hashes(tmp_path: Path) -> None:
    path = tmp_path / "keys.sqlite"
    with KeyStore(path) as store:
        key, secret = store.create("bot")
        raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # the file and any WAL
    assert key.id.encode() in raw  # we are reading the rows
    assert hashlib.sha256(secret.encode()).digest() in raw
    assert secret.encode() not in raw
    assert secret.removeprefix("acllm-").encode() not in raw


def test_a_second_store_on_the_file_sees_changes(tmp_path: Path) -> None:
    path = tmp_path / "keys.sqlite"
    with KeyStore(path) as a, KeyStore(path) as b:
        key, secret = a.create("shared")
        assert b.verify(secret) == key
        b.revoke(key.id)
        assert a.verify(secret) is None


def test_touch_records_last_use(store: KeyStore, clock: Clock) -> None:
    key, _ = store.create("x")
    assert store.get(key.id).last_used is None
    store.touch(key.id, T0 + 7)
    assert store.get(key.id).last_used == T0 + 7


# --- scopes and budgets are checked --------------------------------------------------------------


def test_default_scopes_are_everything_but_admin(store: KeyStore) -> None:
    key, _ = store.create("all")
    assert key.routes == {"*"} and key.assistants == {"*"} and not key.admin


def test_admin_key_has_admin_routes_only(store: KeyStore) -> None:
    key, _ = store.create("ops", admin=True)
    assert key.routes == {"admin"} and key.admin
    both, _ = store.create("ops+chat", admin=True, routes=["chat"])
    assert both.routes == {"admin", "chat"}
    by_name, _ = store.create("ops2", routes=["admin"])
    assert by_name.admin


def test_star_absorbs_other_groups_but_not_admin(store: KeyStore) -> None:
    key, _ = store.create("k", routes=["*", "chat"], assistants=["a", "*"])
    assert key.routes == {"*"} and key.assistants == {"*"}
    admin, _ = store.create("k2", routes=["*"], admin=True)
    assert admin.routes == {"*", "admin"}


def test_unknown_route_group_lists_the_valid_ones(store: KeyStore) -> None:
    with pytest.raises(UserError, match="unknown route group 'chats'") as info:
        store.create("x", routes=["chat", "chats"])
    for group in ROUTE_GROUPS:
        assert group in info.value.hint
    assert store.list() == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rpm": 0}, "rpm must be a whole number of at least 1"),
        ({"tpm": -5}, "tpm must be a whole number of at least 1"),
        ({"assistants": ["two words"]}, "invalid assistant name"),
        ({"assistants": [""]}, "invalid assistant name"),
    ],
)
def test_bad_scopes_and_budgets(store: KeyStore, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        store.create("x", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", [None, "", "   ", "x" * 101, "tab\there"])
def test_a_key_needs_a_printable_name(store: KeyStore, name: str | None) -> None:
    with pytest.raises(UserError, match="needs a name"):
        store.create(name)


# --- the file ------------------------------------------------------------------------------------


def _user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        return version
    finally:
        conn.close()


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "keys.sqlite"
    path.write_bytes(b"not a database at all " * 300)
    with pytest.raises(
        ServiceError, match=r"API key store .* is not a usable SQLite database"
    ) as info:
        KeyStore(path)
    assert str(path) in str(info.value)
    assert "backup" in info.value.hint


def test_another_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 1")  # claims our schema but has no keys table
    conn.close()
    with pytest.raises(ServiceError, match="is an SQLite file, but not one acllm wrote"):
        KeyStore(path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.sqlite"
    KeyStore(path).close()
    assert _user_version(path) == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ServiceError, match="upgrade acllm"):
        KeyStore(path)
    assert _user_version(path) == SCHEMA_VERSION + 1


def test_closed_store_raises(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.sqlite")
    store.close()
    store.close()
    with pytest.raises(ServiceError, match="closed"):
        store.list()


# --- acllm keys ----------------------------------------------------------------------------------


def keys_file(home: Path) -> Path:
    return home / "home" / "keys.sqlite"  # the conftest `home` fixture sets ACLLM_HOME here


def test_cli_create_prints_the_secret_once(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["keys", "create", "--name", "ci", "--route", "chat", "--rpm", "30"])
    out = capsys.readouterr().out
    assert code == 0
    secret = re.search(r"secret: (acllm-\S+)", out)
    assert secret, out
    assert "not stored and cannot be shown again" in out
    assert "routes chat; assistants *; rpm 30; tpm default" in out
    with KeyStore(keys_file(home)) as store:
        key = store.verify(secret.group(1))
    assert key is not None and key.name == "ci" and key.routes == {"chat"}


def test_cli_create_json(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["keys", "create", "--name", "ops", "--admin", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["key"]["routes"] == ["admin"] and data["key"]["admin"] is True
    assert data["secret"].startswith("acllm-")
    assert "cannot be shown again" in data["note"]


def test_cli_list_and_revoke(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "list"]) == 0
    assert "no API keys yet" in capsys.readouterr().out
    main(["keys", "create", "--name", "a", "--json"])
    created = json.loads(capsys.readouterr().out)
    key_id, secret = created["key"]["id"], created["secret"]

    assert main(["keys", "list"]) == 0
    out = capsys.readouterr().out
    assert key_id in out and "active" in out and "last used never" in out
    assert secret not in out

    assert main(["keys", "list", "--json"]) == 0
    out = capsys.readouterr().out
    assert [k["id"] for k in json.loads(out)["keys"]] == [key_id]
    assert secret not in out

    assert main(["keys", "revoke", key_id]) == 0
    assert f"revoked API key {key_id}" in capsys.readouterr().out
    assert main(["keys", "revoke", key_id, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["already_revoked"] is True and data["key"]["status"] == "revoked"
    assert main(["keys", "revoke", key_id]) == 0
    assert "already revoked" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["keys", "create", "--name", "x", "--route", "chatt"], "unknown route group 'chatt'"),
        (["keys", "create"], "needs a name"),
        (["keys", "create", "--name", "x", "--rpm", "0"], "rpm must be"),
        (["keys", "create", "key_123", "--name", "x"], "takes no key id"),
        (["keys", "revoke"], "needs the id of the key"),
        (["keys", "revoke", "key_000000000000"], "no API key with id"),
        (["keys", "list", "--rpm", "5"], "--rpm only applies to 'acllm keys create'"),
    ],
)
def test_cli_user_errors_exit_2(
    home: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "hint:" in err


def test_cli_bad_route_group_json(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--name", "x", "--route", "nope", "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["error"]["type"] == "user_error"
    assert "chat, embeddings" in data["error"]["hint"]


def test_cli_corrupt_store_exits_3(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = keys_file(home)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage " * 1000)
    assert main(["keys", "list"]) == 3
    assert "is not a usable SQLite database" in capsys.readouterr().err
