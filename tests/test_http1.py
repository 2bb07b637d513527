"""acllm.models.http1 against real local servers (plain and TLS) that script the wire bytes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gzip
import ipaddress
import json
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from acllm.models.http1 import (
    ConnectError,
    ConnectionPool,
    HTTPTimeout,
    Origin,
    ProtocolError,
    StreamedResponse,
)
from acllm.models.openai import OpenAIChat, OpenAIOptions, pool_connections
from acllm.types import Message

HI = [Message("user", "Say hi.")]

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class RawServer:
    """An asyncio server on 127.0.0.1 whose ``handler(reader, writer, conn_no)`` writes raw bytes;
    it records the requests it read (``read_request``) and counts connections."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl = ssl_context
        self.connections = 0
        self.requests: list[tuple[int, bytes, bytes]] = []  # (connection, head, body)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"{'https' if self.ssl else 'http'}://127.0.0.1:{port}/v1"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            await self.handler(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.transport.abort()
            self._tasks.discard(task)

    async def read_request(self, reader: asyncio.StreamReader, conn: int) -> bool:
        """Read one request; False when the client closed the connection instead."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        self.requests.append((conn, head, body))
        return True


def answer(body: bytes, *extra: str, status: str = "200 OK") -> bytes:
    head = "".join(f"{h}\r\n" for h in extra)
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body


def keep_alive_server(body: bytes = b'{"ok": true}') -> Handler:
    """Answers every request on a connection with ``body``, keeping it open."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        while await srv_of[0].read_request(r, n):
            w.write(answer(body))
            await w.drain()

    srv_of: list[RawServer] = []
    handler.srv_of = srv_of  # type: ignore[attr-defined]
    return handler


@contextlib.asynccontextmanager
async def serving(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[RawServer]:
    server = RawServer(handler, tls)
    srv_of = getattr(handler, "srv_of", None)
    if srv_of is not None:
        srv_of.append(server)
    async with server:
        yield server


@contextlib.asynccontextmanager
async def pool_for(server: RawServer, **kw: object) -> AsyncIterator[ConnectionPool]:
    pool = ConnectionPool(server.url, **kw)  # type: ignore[arg-type]
    try:
        yield pool
    finally:
        await pool.aclose()


async def post(pool: ConnectionPool, body: bytes = b"{}", wait_s: float = 5) -> tuple[int, bytes]:
    resp = await pool.request("POST", pool.path("/chat/completions"), body, wait_s=wait_s)
    return resp.status, resp.body


# --- requests and keep-alive ---------------------------------------------------------------------


async def test_request_bytes_and_keep_alive_reuse() -> None:
    async with (
        serving(keep_alive_server(b"hello")) as srv,
        pool_for(srv, headers={"Authorization": "Bearer k", "X-Org": "o"}) as pool,
    ):
        assert await post(pool, b'{"a":1}') == (200, b"hello")
        assert await post(pool, b'{"a":2}') == (200, b"hello")
        assert srv.connections == 1  # the second request reused the first connection
        assert pool.idle_count == 1 and pool.open_count == 1
        _, head, body = srv.requests[0]
        lines = head.decode().split("\r\n")
        assert lines[0] == "POST /v1/chat/completions HTTP/1.1"
        headers = {k.lower(): v for k, _, v in (x.partition(": ") for x in lines[1:] if x)}
        assert headers["host"] == srv.url.split("//")[1].removesuffix("/v1")
        assert headers["authorization"] == "Bearer k"
        assert headers["x-org"] == "o"
        assert headers["content-type"] == "application/json"
        assert headers["content-length"] == "7"
        assert body == b'{"a":1}'
        assert srv.requests[1][2] == b'{"a":2}'
    assert pool.is_closed and pool.open_count == 0


async def test_connection_close_and_http10_answers_are_not_reused() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await srv.read_request(r, n)
        if n == 1:
            w.write(answer(b"one", "Connection: close"))
        else:  # HTTP/1.0, no length: the body runs to the end of the connection
            w.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end")
        await w.drain()

    async with serving(handler) as srv, pool_for(srv) as pool:
        assert await post(pool) == (200, b"one")
        assert pool.open_count == 0
        assert await post(pool) == (200, b"to the end")
        assert srv.connections == 2 and pool.open_count == 0 and pool.idle_count == 0


async def test_chunked_body_with_extensions_and_trailers() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        while await srv.read_request(r, n):
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for piece in (b"5;name=x\r\nhello\r\n", b"1\r\n \r\n", b"5\r\nwor", b"ld\r\n"):
                w.write(piece)
                await w.drain()
                await asyncio.sleep(0)
            w.write(b"0\r\nX-Trailer: t\r\n\r\n")
            await w.drain()

    async with serving(handler) as srv, pool_for(srv) as pool:
        assert await post(pool) == (200, b"hello world")
        assert await post(pool) == (200, b"hello world")
        assert srv.connections == 1  # the body ended cleanly: the connection was reused


async def test_headers_repeated_interim_and_gzip() -> None:
    packed = gzip.compress(b'{"text": "unpacked"}')

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await srv.read_request(r, n)
        w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        w.write(answer(packed, "Content-Encoding: gzip", "Set-Cookie: a=1", "Set-Cookie: b=2"))
        await w.drain()
        await r.read()

    async with serving(handler) as srv, pool_for(srv) as pool:
        resp = await pool.request("POST", "/v1/x", b"{}", wait_s=5)
        assert resp.status == 200
        assert resp.body == b'{"text": "unpacked"}'
        assert resp.headers["set-cookie"] == "a=1, b=2"
        assert resp.headers["content-encoding"] == "gzip"


async def test_idle_connections_are_bounded() -> None:
    arrived = asyncio.Event()
    handler = keep_alive_server(b"x")

    async def gated(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        if n == 5:
            arrived.set()
        await arrived.wait()  # five requests in flight at once, on five connections
        await handler(r, w, n)

    gated.srv_of = handler.srv_of  # type: ignore[attr-defined]
    async with serving(gated) as srv, pool_for(srv, max_idle=2) as pool:
        results = await asyncio.gather(*(post(pool) for _ in range(5)))
        assert results == [(200, b"x")] * 5
        assert srv.connections == 5
        assert pool.idle_count == 2 and pool.open_count == 2  # three closed on release
        await asyncio.gather(*(post(pool) for _ in range(2)))
        assert srv.connections == 5


async def test_the_connection_idle_last_is_taken_first() -> None:
    async with serving(keep_alive_server(b"x")) as srv, pool_for(srv) as pool:
        async with pool.stream("POST", "/v1/x", b"{}", wait_s=5) as first:
            async with pool.stream("POST", "/v1/x", b"{}", wait_s=5) as second:
                assert await second.read() == b"x"
            assert await first.read() == b"x"  # connection 1 goes idle after connection 2
        assert [c for c, _, _ in srv.requests] == [1, 2]
        await post(pool)
        assert srv.requests[-1][0] == 1


async def test_connections_idle_past_keepalive_are_not_reused() -> None:
    async with serving(keep_alive_server()) as srv, pool_for(srv, keepalive_s=30) as pool:
        await post(pool)
        assert pool.idle_count == 1
        pool._idle[0].idle_since -= 31  # as if it sat idle for 31 s
        await post(pool)
        assert srv.connections == 2 and pool.open_count == 1


# --- failures and the keep-alive race ------------------------------------------------------------


async def test_reused_connection_closed_by_the_server_is_retried_once_on_a_new_one() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        while await srv.read_request(r, n):
            if n == 1 and len(srv.requests) == 2:
                return  # the keep-alive race: read the request, close without a byte
            w.write(answer(b"ok"))
            await w.drain()

    async with serving(handler) as srv, pool_for(srv) as pool:
        assert await post(pool) == (200, b"ok")
        assert await post(pool) == (200, b"ok")
        assert [c for c, _, _ in srv.requests] == [1, 1, 2]  # sent again on connection 2
        assert pool.open_count == 1


async def test_retry_is_only_once_and_never_on_a_new_connection() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        while await srv.read_request(r, n):
            if len(srv.requests) > 1:
                return
            w.write(answer(b"ok"))
            await w.drain()

    async with serving(handler) as srv, pool_for(srv) as pool:
        await post(pool)
        with pytest.raises(ProtocolError, match="without an answer"):
            await post(pool)
        assert [c for c, _, _ in srv.requests] == [1, 1, 2]  # reused once, then one new try
        with pytest.raises(ProtocolError):
            await post(pool)  # a new connection that drops: not sent again
        assert len(srv.requests) == 4
        assert pool.open_count == 0


async def test_no_retry_once_the_answer_started() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        while await srv.read_request(r, n):
            if len(srv.requests) == 2:
                w.write(b"HTTP/1.1 200 OK\r\nContent-Le")
                await w.drain()
                return
            w.write(answer(b"ok"))
            await w.drain()

    async with serving(handler) as srv, pool_for(srv) as pool:
        await post(pool)
        with pytest.raises(ProtocolError):
            await post(pool)
        assert len(srv.requests) == 2


@pytest.mark.parametrize(
    "partial",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n",
    ],
    ids=["content-length", "chunked"],
)
async def test_server_closing_mid_body(partial: bytes) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await srv.read_request(r, n)
        w.write(partial)
        await w.drain()

    async with serving(handler) as srv, pool_for(srv) as pool:
        with pytest.raises(ProtocolError, match="middle of the body"):
            await post(pool)
        assert pool.open_count == 0 and pool.idle_count == 0


@pytest.mark.parametrize(
    "reply",
    [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"],
    ids=["not-http", "bad-header"],
)
async def test_malformed_answers_are_protocol_errors(reply: bytes) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await srv.read_request(r, n)
        w.write(reply)
        await w.drain()
        await r.read()

    async with serving(handler) as srv, pool_for(srv) as pool:
        with pytest.raises(ProtocolError):
            await post(pool)
        assert pool.open_count == 0


async def test_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pool = ConnectionPool(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ConnectError):
        await post(pool)
    await pool.aclose()
    with pytest.raises(ConnectError, match="closed"):
        await post(pool)


async def test_read_timeout_on_the_head_closes_the_connection() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await srv.read_request(r, n)
        await asyncio.Event().wait()  # never answers

    async with serving(handler) as srv, pool_for(srv) as pool:
        with pytest.raises(HTTPTimeout) as err:
            await post(pool, wait_s=0.1)
        assert err.value.phase == "read"
        assert pool.open_count == 0


async def test_connect_timeout() -> None:
    # A listener whose accept queue is full: the kernel drops further SYNs, so connect hangs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(3):
                c = socket.socket()
                c.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    c.connect(("127.0.0.1", port))
                fillers.append(c)
            pool = ConnectionPool(f"http://127.0.0.1:{port}/v1")
            with pytest.raises(HTTPTimeout) as err:
                await post(pool, wait_s=0.2)
            assert err.value.phase == "connect"
            await pool.aclose()
        finally:
            for c in fillers:
                c.close()


async def test_cancelled_request_closes_its_connection() -> None:
    got_it = asyncio.Event()

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await srv.read_request(r, n)
        got_it.set()
        await asyncio.Event().wait()

    async with serving(handler) as srv, pool_for(srv) as pool:
        task = asyncio.create_task(post(pool))
        await got_it.wait()
        assert pool.open_count == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.open_count == 0 and pool.idle_count == 0


# --- streaming -----------------------------------------------------------------------------------


async def test_stream_lines_arrive_as_they_are_sent() -> None:
    go_on = asyncio.Event()

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        while await srv.read_request(r, n):
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            w.write(b"f\r\ndata: one\r\n\r\nda\r\n")  # an event, then half a line
            await w.drain()
            await go_on.wait()  # the client must see "data: one" before anything more comes
            for piece in (b"ta: two\n\n", b"data: three\r", b"\n\r\ndata: [DONE]\n\n"):
                w.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            w.write(b"0\r\n\r\n")
            await w.drain()

    async with serving(handler) as srv, pool_for(srv) as pool:
        lines: list[str] = []
        async with pool.stream("POST", "/v1/chat/completions", b"{}", wait_s=5) as resp:
            assert resp.status == 200
            async for line in resp.iter_lines():
                lines.append(line)
                if line == "data: one":
                    go_on.set()
        assert lines == ["data: one", "", "data: two", "", "data: three", "", "data: [DONE]", ""]
        assert pool.idle_count == 1  # read to its end: kept
        async with pool.stream("POST", "/v1/chat/completions", b"{}", wait_s=5) as resp:
            assert (
                await resp.read()
                == b"data: one\r\n\r\ndata: two\n\ndata: three\r\n\r\ndata: [DONE]\n\n"
            )
        assert srv.connections == 1


async def test_stream_left_early_closes_the_connection_and_a_stall_times_out() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await srv.read_request(r, n)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\ndata: first\n\n")
        await w.drain()
        await asyncio.Event().wait()

    async with serving(handler) as srv, pool_for(srv) as pool:
        async with pool.stream("POST", "/v1/x", b"{}", wait_s=0.1) as resp:
            lines = resp.iter_lines()
            assert await anext(lines) == "data: first"
            assert await anext(lines) == ""
            with pytest.raises(HTTPTimeout):
                await anext(lines)
        assert pool.open_count == 0
        async with pool.stream("POST", "/v1/x", b"{}", wait_s=5) as resp:
            chunks = resp.iter_chunks()
            assert await anext(chunks) == b"data: first\n\n"
            await chunks.aclose()
        assert pool.open_count == 0  # left unread: closed, not pooled
        assert srv.connections == 2


async def test_stream_outside_its_context_is_an_error() -> None:
    async with serving(keep_alive_server()) as srv, pool_for(srv) as pool:
        stream = pool.stream("POST", "/v1/x", b"{}", wait_s=5)
        assert isinstance(stream, StreamedResponse)
        with pytest.raises(RuntimeError):
            await stream.read()
        async with stream as resp:
            assert await resp.read() == b'{"ok": true}'
        with pytest.raises(RuntimeError):
            await stream.read()


# --- URLs, headers, TLS --------------------------------------------------------------------------


def test_origin_and_header_checks() -> None:
    assert Origin.parse("http://h/v1/") == Origin("http", "h", 80, "/v1")
    assert Origin.parse("https://h:8443").host_header == "h:8443"
    assert Origin.parse("https://h:443/x").host_header == "h"
    assert Origin.parse("http://[::1]:8000/v1").host_header == "[::1]:8000"
    for bad in ("ftp://h/v1", "http:///v1", "http://h/v1?x=1"):
        with pytest.raises(ValueError):
            Origin.parse(bad)
    with pytest.raises(ValueError, match="invalid HTTP header"):
        ConnectionPool("http://h/v1", headers={"X-A": "1\r\nX-Injected: 2"})
    with pytest.raises(ValueError, match="invalid HTTP header"):
        ConnectionPool("http://h/v1", headers={"Bad Name": "1"})


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A self-signed certificate for 127.0.0.1 and its key, in PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acllm test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    yield cert_file, key_file


async def test_https_with_a_trusted_certificate_reuses_the_connection(
    tls_files: tuple[Path, Path],
) -> None:
    cert_file, key_file = tls_files
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    client_tls = ssl.create_default_context(cafile=str(cert_file))
    async with serving(keep_alive_server(b"secret"), server_tls) as srv:
        assert srv.url.startswith("https://")
        async with pool_for(srv, ssl_context=client_tls) as pool:
            assert await post(pool) == (200, b"secret")
            assert await post(pool) == (200, b"secret")
            assert srv.connections == 1
        async with pool_for(srv, ssl_context=ssl.create_default_context()) as untrusting:
            with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await post(untrusting)
            assert untrusting.open_count == 0


# --- through OpenAIChat --------------------------------------------------------------------------

COMPLETION = json.dumps(
    {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}], "model": "up"}
).encode()
EVENTS = (
    b'data: {"choices": [{"delta": {"content": "h"}}]}\n\n'
    b'data: {"choices": [{"delta": {"content": "i"}, "finish_reason": "stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


def openai_server() -> Handler:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        while await srv_of[0].read_request(r, n):
            streamed = b'"stream":true' in srv_of[0].requests[-1][2]
            w.write(answer(EVENTS if streamed else COMPLETION))
            await w.drain()

    srv_of: list[RawServer] = []
    handler.srv_of = srv_of  # type: ignore[attr-defined]
    return handler


async def test_openai_chat_keeps_one_connection_for_chats_and_streams() -> None:
    async with serving(openai_server()) as srv:
        model = OpenAIChat(OpenAIOptions(base_url=srv.url, model="m"))
        with pool_connections():
            for _ in range(2):
                assert (await model.chat(HI)).text == "hi"
                deltas = [d async for d in model.stream(HI)]
                assert "".join(d.text for d in deltas) == "hi"
                assert deltas[-1].finish_reason == "stop"
            (pool,) = model._pools.values()
            assert pool.open_count == 1
            await model.aclose()
        assert srv.connections == 1 and len(srv.requests) == 4
        assert pool.open_count == 0


async def test_openai_chat_outside_pooling_closes_each_connection() -> None:
    closed = asyncio.Event()

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await inner(r, w, n)  # returns when the client closed the connection
        if n == 2:
            closed.set()

    inner = openai_server()
    handler.srv_of = inner.srv_of  # type: ignore[attr-defined]
    async with serving(handler) as srv:
        model = OpenAIChat(OpenAIOptions(base_url=srv.url, model="m"))
        assert (await model.chat(HI)).text == "hi"
        assert "".join([d.text async for d in model.stream(HI)]) == "hi"
        await closed.wait()  # the server saw both connections end
        assert srv.connections == 2 and not model._pools
