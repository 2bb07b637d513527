"""``acllm serve``: the model process (when a local model is used), then uvicorn workers.

Order of events: bind the public socket first (a port in use fails at once, exit 2, before any
model loads; clients that connect during start-up wait in the backlog), start the model process
on a loopback socket bound here and handed down, wait until it has loaded its models, then run
the workers. SIGINT/SIGTERM stop the workers gracefully, then the model process. The model process
and the workers also watch this process and stop if it dies without stopping them.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from acllm.errors import ServiceError, UserError

READY_TIMEOUT_S = 600.0  # loading models on a busy 2-core machine can take minutes
STOP_TIMEOUT_S = 15.0


class _Stop(Exception):
    """SIGTERM before the workers run: unwind so the model process is stopped too."""


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise UserError(f"cannot resolve host '{host}': {exc}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UserError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="is another server using that port? pick another with --port",
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class ModelProcess:
    """The child that runs the local models; started and stopped by ``acllm serve``."""

    def __init__(self, config: str) -> None:
        from acllm.service.modelproc import ENV_CONFIG, ENV_FD, ENV_PARENT, ENV_TOKEN

        self.token = secrets.token_urlsafe(32)
        inner = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        inner.bind(("127.0.0.1", 0))
        inner.listen(512)
        self.url = f"http://127.0.0.1:{inner.getsockname()[1]}"
        env = {
            **os.environ,
            ENV_CONFIG: config,
            ENV_TOKEN: self.token,
            ENV_FD: str(inner.fileno()),
            ENV_PARENT: str(os.getpid()),
        }
        try:
            # Its own session: a Ctrl-C in the terminal reaches the workers first, and this
            # process is stopped after them, so no worker loses its model mid-request.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "acllm.service.modelproc"],
                env=env,
                pass_fds=(inner.fileno(),),
                start_new_session=True,
            )
        finally:
            inner.close()

    def wait_ready(self) -> list[str]:
        import httpx

        deadline = time.monotonic() + READY_TIMEOUT_S
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=10) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise ServiceError(
                        f"the model process exited with code {self.proc.returncode}",
                        hint="its error is printed above",
                    )
                try:
                    resp = client.get("/readyz")
                except httpx.HTTPError:
                    time.sleep(0.2)
                    continue
                body: dict[str, Any] = resp.json()
                if resp.status_code == 200:
                    return [*body.get("chat", []), *body.get("embedders", [])]
                if resp.status_code == 500:
                    err = body.get("error", {})
                    cls = UserError if int(err.get("code", 500)) < 500 else ServiceError
                    raise cls(
                        f"the model process could not load: {err.get('message')}",
                        hint=str(err.get("hint", "")),
                    )
                time.sleep(0.2)
        raise ServiceError(f"the model process was not ready after {READY_TIMEOUT_S:g} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop()


def _log_config() -> dict[str, Any]:
    """uvicorn's logging with access lines on stderr too: stdout carries only the start-up line."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config


def _run_workers(sock: socket.socket, workers: int) -> bool:
    """uvicorn's supervisor over ``workers`` processes; returns False when a worker cannot start."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        "acllm.service.app:factory",
        factory=True,
        workers=workers,
        timeout_graceful_shutdown=5,
        log_config=_log_config(),
        access_log=False,  # acllm writes its own JSON access line, with the request id and key
        # asyncio + h11 even where uvloop/httptools are installed: measured side by side
        # (bench/load.py), uvloop answered 27% more /healthz per second but let p99 reach 5.5 s
        # at 1,000 clients (max 9.8 s) where asyncio kept it at 0.55 s.
        loop="asyncio",
        http="h11",
    )
    supervisor = Multiprocess(config, sockets=[sock])  # handles SIGINT/SIGTERM from here on
    supervisor.run()
    return all(p.exitcode != STARTUP_FAILURE for p in supervisor.processes)


def run(args: argparse.Namespace) -> int:
    from acllm.config import find_config_file, load_settings
    from acllm.service.app import ENV_AUTH, ENV_HOST, ENV_MODEL_URL
    from acllm.service.modelproc import ENV_CONFIG, ENV_PARENT, ENV_TOKEN, needs_model_process

    settings = load_settings(args.config)
    found = find_config_file(args.config, dict(os.environ))
    config = str(Path(found).resolve()) if found else ""
    workers = args.workers or settings.service.workers
    if workers < 1:
        raise UserError("--workers must be at least 1")
    sock = _bind(args.host, args.port)
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    model: ModelProcess | None = None
    # Workers and the model process are separate processes: prometheus_client's multiprocess
    # mode lets /metrics sum what each wrote to this folder (fresh per run, removed at the end).
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="acllm-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        os.environ.update(
            {
                ENV_CONFIG: config,
                ENV_HOST: args.host,
                ENV_AUTH: args.auth or settings.service.auth,
                ENV_PARENT: str(os.getpid()),
            }
        )
        loaded: list[str] = []
        if needs_model_process(settings):
            model = ModelProcess(config)
            loaded = model.wait_ready()
            os.environ.update({ENV_MODEL_URL: model.url, ENV_TOKEN: model.token})
        url = _url(args.host, sock)
        info = {
            "url": url,
            "docs": f"{url}/docs",
            "workers": workers,
            "model_process": model.proc.pid if model else None,
            "models": loaded,
        }
        where = f"model process pid {model.proc.pid}" if model else "no model process"
        plural = "worker" if workers == 1 else "workers"
        text = f"acllm serve: {url} ({workers} {plural}, {where}); API docs at {url}/docs"
        print(json.dumps(info) if args.json else text, flush=True)  # one line: scripts read it
        signal.signal(signal.SIGTERM, previous)
        started = _run_workers(sock, workers)
    except _Stop:
        return 0
    finally:
        sock.close()
        if model is not None:
            model.stop()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    if not started:
        raise ServiceError("a worker could not start", hint="its error is printed above")
    return 0
