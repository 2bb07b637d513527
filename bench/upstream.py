"""A minimal OpenAI-compatible upstream for the load benchmark: a fixed chat completion.

    python -m bench.upstream --port 0 [--delay 0.05]

Prints one JSON line ``{"url": "http://127.0.0.1:PORT"}`` once listening, then serves
``POST /v1/chat/completions`` (plain JSON, or server-sent events when the body says
``"stream": true``, as acllm's ``openai`` backend asks) and ``GET /healthz``. Every answer waits
``--delay`` seconds first (a model's time, without its CPU) and then says the same few words.

It is raw asyncio HTTP/1.1 with keep-alive, not a web framework, on purpose: it shares two cores with
the load generator and acllm, so the less CPU it spends per request the less it disturbs the
comparison "direct vs through acllm" it is there for. It parses just enough HTTP for wrk and httpx
(Content-Length bodies; no chunked uploads) and is not meant for anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import time

REPLY = "Hello! This is a fixed answer."
MODEL = "upstream-fake"


def _completion() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-upstream",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": REPLY},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
        }
    ).encode()


def _stream() -> bytes:
    base = {"id": "chatcmpl-upstream", "object": "chat.completion.chunk", "model": MODEL}
    words = REPLY.split(" ")
    pieces = [w + " " for w in words[:-1]] + words[-1:]  # the streamed text equals the plain one
    events = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        *({**base, "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces),
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
        },
    ]
    out = b"".join(b"data: " + json.dumps(ev).encode() + b"\n\n" for ev in events)
    return out + b"data: [DONE]\n\n"


PLAIN = _completion()
STREAM = _stream()
HEALTH = b'{"status":"ok"}'


def _response(status: str, body: bytes, content_type: str, keep_alive: bool) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\n"
        f"connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode() + body


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, path, version = [*lines[0].split(" "), "", "", ""][:3]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name:
                    headers[name.strip().lower()] = value.strip()
            body = b""
            length = int(headers.get("content-length") or 0)
            if length:
                try:
                    body = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return  # the client left mid-request (wrk stopping)
            keep_alive = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
            if method == "POST" and path.rstrip("/").endswith("/chat/completions"):
                try:
                    stream = bool(json.loads(body or b"{}").get("stream"))
                except ValueError:
                    writer.write(_response("400 Bad Request", b"{}", "application/json", False))
                    return
                if delay > 0:
                    await asyncio.sleep(delay)
                if stream:
                    writer.write(_response("200 OK", STREAM, "text/event-stream", keep_alive))
                else:
                    writer.write(_response("200 OK", PLAIN, "application/json", keep_alive))
            elif path == "/healthz":
                writer.write(_response("200 OK", HEALTH, "application/json", keep_alive))
            else:
                writer.write(_response("404 Not Found", b"{}", "application/json", keep_alive))
            await writer.drain()
            if not keep_alive:
                return
    except ConnectionError:
        return
    finally:
        writer.close()


async def serve(port: int, delay: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    server = await asyncio.start_server(lambda r, w: _handle(r, w, delay), sock=sock, limit=1 << 20)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    print(json.dumps({"url": url, "delay_s": delay}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.delay))


if __name__ == "__main__":
    main()
