"""A real OpenAI-compatible HTTP server on 127.0.0.1 whose failures are scripted per request.

    with FaultServer("A") as srv:
        srv.script(["429:3", "500", "ok"])  # then "ok" for every later request
        ... OpenAIOptions(base_url=srv.base_url, model="m") ...
        assert len(srv.requests) == 3

Faults, one per request in arrival order: ``"ok"``; any status code (``"500"``, ``"400"``);
``"429"`` / ``"429:<Retry-After>"`` (header value as sent, seconds or an HTTP-date; default "1");
``"slow"`` / ``"slow:<seconds>"`` (wait, then answer normally; default 0.5 s); ``"drop"`` (close the
socket without answering); ``"drop_mid"`` (stream one delta, then close); ``"bad_json"``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None


@dataclass(frozen=True)
class Fault:
    kind: str
    arg: str | None = None

    @classmethod
    def parse(cls, spec: str) -> Fault:
        kind, _, arg = spec.partition(":")
        return cls(kind, arg or None)


def unused_url() -> str:
    """A base URL where nothing listens (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


class _Server(ThreadingHTTPServer):
    owner: FaultServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # clients hanging up: expected
            super().handle_error(request, client_address)


class FaultServer:
    def __init__(self, name: str = "A", *, embed_dim: int = 8) -> None:
        self.name = name
        self.reply = f"hello from {name}"
        self.embed_dim = embed_dim
        self._faults: list[Fault] = []
        self._requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def script(self, faults: list[str]) -> None:
        with self._lock:
            self._faults = [Fault.parse(f) for f in faults]

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def _take(self, rec: Recorded) -> Fault:
        with self._lock:
            self._requests.append(rec)
            return self._faults.pop(0) if self._faults else Fault("ok")

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # wakes "slow" handlers so server_close does not wait for them
        self._httpd.shutdown()
        self._httpd.server_close()  # joins the handler threads
        self._thread.join()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked SSE, like vLLM; a drop mid-body is then detectable
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        fs = self.server.owner
        headers = {k.lower(): v for k, v in self.headers.items()}
        fault = fs._take(Recorded(self.command, self.path, headers, body))
        if fault.kind == "slow" and fs._stop.wait(float(fault.arg or 0.5)):
            return self._drop()
        if fault.kind == "drop":
            return self._drop()
        if fault.kind == "bad_json":
            return self._send(200, b'{"choices": [', "application/json")
        if fault.kind.isdigit():
            extra = {}
            if fault.kind == "429":
                extra["Retry-After"] = fault.arg or "1"
            error = {"error": {"message": f"scripted {fault.kind}", "type": "fault"}}
            return self._json(int(fault.kind), error, extra)
        if self.path == "/v1/chat/completions" and self.command == "POST":
            if body.get("stream"):
                return self._stream(body, drop_mid=fault.kind == "drop_mid")
            return self._json(200, self._completion(body))
        if self.path == "/v1/embeddings" and self.command == "POST":
            return self._json(200, self._embeddings(body))
        if self.path == "/v1/models":
            return self._json(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})
        return self._json(404, {"error": {"message": f"no route {self.path}"}})

    # --- answers ---------------------------------------------------------------------------------

    def _text(self, body: dict[str, Any]) -> str:
        reply = self.server.owner.reply
        return json.dumps({"answer": reply}) if "response_format" in body else reply

    @staticmethod
    def _usage(body: dict[str, Any], text: str) -> dict[str, int]:
        prompt = sum(len(m["content"]) for m in body["messages"]) // 4 + 1
        completion = len(text.split())
        total = prompt + completion
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        text = self._text(body)
        return {
            "id": "cmpl-1",
            "object": "chat.completion",
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": self._usage(body, text),
        }

    def _stream(self, body: dict[str, Any], *, drop_mid: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        text = self._text(body)

        def chunk(choices: list[Any], **extra: Any) -> None:
            self._chunk(f"data: {json.dumps({'choices': choices, **extra})}\n\n".encode())

        self._chunk(b": keep-alive\n\n")
        chunk([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}])
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            chunk([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
            if drop_mid:
                return self._drop()
        chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        if (body.get("stream_options") or {}).get("include_usage"):
            chunk([], usage=self._usage(body, text))
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dim = self.server.owner.embed_dim
        data = []
        for i, text in enumerate(inputs):
            digest = hashlib.sha256(text.encode()).digest()
            # Deterministic and deliberately not unit length: the client must normalise.
            vector = [(digest[j % 32] - 127.5) / 8 for j in range(dim)]
            data.append({"object": "embedding", "index": i, "embedding": vector})
        data.reverse()  # indexes, not order, say which text a vector belongs to
        return {"object": "list", "data": data, "model": body.get("model"), "usage": {}}

    # --- wire ------------------------------------------------------------------------------------

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", headers)

    def _send(
        self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
