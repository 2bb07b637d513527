"""Per-key budgets hold across server processes that share one real Redis.

Two ``acllm serve`` processes (two workers each, so four processes count) run on the same config:
the KV is a real ``redis-server`` started for the test, keys live in the shared data folder. A key
allowed N requests per minute gets exactly N answers across both servers together; every other
request is a 429 with Retry-After — the failure of enforcing per pod only cannot happen here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from redisserver import RedisServer, redis_server_fixture  # noqa: F401  (the fixture)

CLI = Path(sys.executable).parent / "acllm"
RPM = 12


def config(tmp: Path, redis_url: str) -> Path:
    path = tmp / "acllm.toml"
    path.write_text(
        f'data_dir = "{tmp / "home"}"\n'
        'default_model = "fake"\n'
        'default_embedder = "hash"\n'
        "[models.fake]\n"
        'backend = "fake"\n'
        'default = "hello"\n'
        "[kv]\n"
        'backend = "redis"\n'
        f'url = "{redis_url}"\n'
        'prefix = "serve-test:"\n'
    )
    return path


def acllm(*args: str, cfg: Path) -> dict[str, Any]:
    done = subprocess.run(
        [str(CLI), *args, "--config", str(cfg), "--json"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("ACLLM_")},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    return out


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[tuple[list[str], Path]]:
    tmp = tmp_path_factory.mktemp("serve-redis")
    cfg = config(tmp, redis_server.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACLLM_")}
    procs: list[subprocess.Popen[str]] = []
    urls = []
    try:
        for i in range(2):
            log = (tmp / f"serve-{i}.log").open("w")
            command = [str(CLI), "serve", "--port", "0", "--workers", "2", "--auth", "on"]
            proc = subprocess.Popen(
                [*command, "--config", str(cfg), "--json"],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=env,
            )
            log.close()
            procs.append(proc)
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line, (tmp / f"serve-{i}.log").read_text()
            urls.append(json.loads(line)["url"])
        with httpx.Client(timeout=30) as client:
            for url in urls:
                for _ in range(200):  # a bound on attempts, not a timing assertion
                    try:
                        if client.get(f"{url}/readyz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.1)
        yield urls, cfg
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def chat(client: httpx.Client, url: str, secret: str | None) -> httpx.Response:
    body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return client.post(f"{url}/v1/chat/completions", json=body, headers=headers)


def test_a_key_budget_is_shared_by_every_worker_of_every_server(
    servers: tuple[list[str], Path],
) -> None:
    urls, cfg = servers
    key = acllm("keys", "create", "--name", "shared", "--route", "chat", "--rpm", str(RPM), cfg=cfg)
    secret = key["secret"]
    # Start inside a minute window: the sliding window then counts this minute alone, exactly.
    while time.time() % 60 > 45:
        time.sleep(1)
    statuses: dict[str, list[int]] = {url: [] for url in urls}
    retry_after = []
    with httpx.Client(timeout=30) as client:
        for i in range(3 * RPM):
            url = urls[i % 2]
            r = chat(client, url, secret)
            statuses[url].append(r.status_code)
            if r.status_code == 429:
                retry_after.append(int(r.headers["retry-after"]))
                assert r.json()["error"]["type"] == "OverBudgetError"
    every = [s for codes in statuses.values() for s in codes]
    assert every.count(200) == RPM, statuses
    assert every.count(429) == 2 * RPM, statuses
    assert all(codes.count(200) > 0 for codes in statuses.values())  # both servers answered
    assert all(1 <= s <= 120 for s in retry_after)


def test_without_a_key_or_with_a_revoked_one_both_servers_say_401(
    servers: tuple[list[str], Path],
) -> None:
    urls, cfg = servers
    key = acllm("keys", "create", "--name", "short-lived", "--route", "chat", cfg=cfg)
    acllm("keys", "revoke", key["key"]["id"], cfg=cfg)
    with httpx.Client(timeout=30) as client:
        for url in urls:
            assert chat(client, url, None).status_code == 401
            r = chat(client, url, key["secret"])
            assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
            assert r.headers["www-authenticate"].startswith("Bearer")
