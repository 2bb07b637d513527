"""acllm.models.http1 against real local servers (plain and TLS) that script the wire bytes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import gzip
import ipaddress
import json
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import acllm.models.openai as openai_module
from acllm.errors import RetryableError, ServiceError, UserError
from acllm.models.http1 import (
    ConnectError,
    ConnectionPool,
    HTTPTimeout,
    ProtocolError,
    ProxyError,
    StreamedResponse,
)
from acllm.models.openai import OpenAIChat, OpenAIOptions, pool_connections
from acllm.models.proxy import (
    Origin,
    Proxy,
    UnsupportedProxy,
    env_proxy,
    no_proxy_covers,
)
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


# --- proxies from the environment ----------------------------------------------------------------

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "REQUEST_METHOD")


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without proxy variables, whatever the shell running pytest has."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


class ForwardProxy:
    """A tiny forward proxy on 127.0.0.1: absolute-URI requests are passed on (one upstream
    connection per client connection, both kept alive), CONNECT opens a tunnel. It records what
    it saw; with ``credentials`` set it answers 407 to a request without them, and with
    ``connect_status`` it refuses every CONNECT with that status."""

    def __init__(self, credentials: str | None = None, connect_status: str | None = None) -> None:
        self.credentials = credentials
        self.connect_status = connect_status
        self.forwarded: list[tuple[str, str, dict[str, str]]] = []  # (method, target, headers)
        self.tunnels: list[tuple[str, dict[str, str]]] = []  # (authority, headers)
        self.server = RawServer(self.handle)

    @property
    def url(self) -> str:
        return self.server.url.removesuffix("/v1")

    def authorized(self, headers: dict[str, str]) -> bool:
        expected = f"Basic {self.credentials}" if self.credentials else None
        return expected is None or headers.get("proxy-authorization") == expected

    async def handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                try:
                    head = await r.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                request_line, *lines = head[:-4].decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ")
                headers = {k.lower(): v for k, _, v in (x.partition(": ") for x in lines)}
                body = await r.readexactly(int(headers.get("content-length", "0")))
                if method == "CONNECT":
                    self.tunnels.append((target, headers))
                    await self.tunnel(r, w, target, headers)
                    return
                self.forwarded.append((method, target, headers))
                if not self.authorized(headers):
                    w.write(answer(b"who are you?", status="407 Proxy Authentication Required"))
                    await w.drain()
                    continue
                parts = urlsplit(target)
                assert parts.scheme == "http" and parts.hostname and parts.port
                if upstream is None:
                    upstream = await asyncio.open_connection(parts.hostname, parts.port)
                up_r, up_w = upstream
                lines = [x for x in lines if not x.lower().startswith("proxy-authorization:")]
                up_w.write(f"{method} {parts.path} HTTP/1.1\r\n".encode())
                up_w.write("".join(f"{x}\r\n" for x in lines).encode("latin-1") + b"\r\n" + body)
                await up_w.drain()
                answer_head = await up_r.readuntil(b"\r\n\r\n")
                length = 0
                for line in answer_head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                w.write(answer_head + await up_r.readexactly(length))
                await w.drain()
        finally:
            if upstream is not None:
                upstream[1].transport.abort()
                with contextlib.suppress(Exception):
                    await upstream[1].wait_closed()

    async def tunnel(
        self, r: asyncio.StreamReader, w: asyncio.StreamWriter, target: str, headers: dict[str, str]
    ) -> None:
        if not self.authorized(headers):
            w.write(answer(b"", "Proxy-Authenticate: Basic realm=t", status="407 Who Are You"))
        elif self.connect_status:
            w.write(answer(b"no", status=self.connect_status))
        else:
            host, _, port = target.rpartition(":")
            up_r, up_w = await asyncio.open_connection(host, int(port))
            w.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            try:
                await asyncio.gather(pipe(r, up_w), pipe(up_r, w))
            finally:
                up_w.transport.abort()
                with contextlib.suppress(Exception):
                    await up_w.wait_closed()
        await w.drain()
        await r.read()  # until the client closes

    async def __aenter__(self) -> ForwardProxy:
        await self.server.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.__aexit__()


async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    while data := await src.read(65536):
        dst.write(data)
        await dst.drain()
    dst.transport.abort()  # one side ended: end the tunnel


def basic(userpass: str) -> str:
    return base64.b64encode(userpass.encode()).decode()


@pytest.fixture
def tls_pair(tls_files: tuple[Path, Path]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with the self-signed certificate and a client context trusting it."""
    cert_file, key_file = tls_files
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    return server_tls, ssl.create_default_context(cafile=str(cert_file))


async def test_http_through_the_proxy_uses_the_absolute_uri_and_keeps_it_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with serving(keep_alive_server(b"via")) as srv, ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # not for an http URL
        async with pool_for(srv, headers={"Authorization": "Bearer k"}) as pool:
            assert pool.proxy == Proxy(
                "127.0.0.1", int(proxy.url.rsplit(":", 1)[1]), None, "HTTP_PROXY"
            )
            assert await post(pool, b'{"a":1}') == (200, b"via")
            assert await post(pool, b'{"a":2}') == (200, b"via")
        assert proxy.server.connections == 1  # kept alive to the proxy
        origin = srv.url.removesuffix("/v1")
        assert [(m, t) for m, t, _ in proxy.forwarded] == [
            ("POST", f"{origin}/v1/chat/completions")
        ] * 2
        headers = proxy.forwarded[0][2]
        assert headers["host"] == origin.removeprefix("http://")
        assert headers["authorization"] == "Bearer k"
        assert "proxy-authorization" not in headers
        assert [body for _, _, body in srv.requests] == [b'{"a":1}', b'{"a":2}']
        assert srv.requests[0][1].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")


async def test_https_through_a_connect_tunnel_with_credentials(
    monkeypatch: pytest.MonkeyPatch, tls_pair: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_tls, client_tls = tls_pair
    credentials = basic("user:p@ss")
    async with (
        serving(keep_alive_server(b"secret"), server_tls) as srv,
        ForwardProxy(credentials=credentials) as proxy,
    ):
        with_creds = proxy.url.replace("http://", "http://user:p%40ss@")
        monkeypatch.setenv("https_proxy", with_creds)
        monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # the lower-case one wins
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
        async with pool_for(srv, ssl_context=client_tls) as pool:
            assert pool.proxy is not None and pool.proxy.source == "https_proxy"
            assert await post(pool) == (200, b"secret")
            assert await post(pool) == (200, b"secret")
            assert pool.open_count == 1
        authority = srv.url.removeprefix("https://").removesuffix("/v1")
        assert [t for t, _ in proxy.tunnels] == [authority]  # one tunnel, reused
        assert proxy.tunnels[0][1]["proxy-authorization"] == f"Basic {credentials}"
        assert proxy.tunnels[0][1]["host"] == authority
        assert not proxy.forwarded
        assert srv.connections == 1 and len(srv.requests) == 2
        assert b"roxy-" not in srv.requests[0][1]  # the proxy's credentials stay out of the tunnel


async def test_all_proxy_serves_both_schemes(
    monkeypatch: pytest.MonkeyPatch, tls_pair: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_tls, client_tls = tls_pair
    async with (
        serving(keep_alive_server(b"plain")) as plain,
        serving(keep_alive_server(b"tls"), server_tls) as secure,
        ForwardProxy() as proxy,
    ):
        monkeypatch.setenv("ALL_PROXY", proxy.url.removeprefix("http://"))  # no scheme: http
        async with pool_for(plain) as pool:
            assert await post(pool) == (200, b"plain")
        async with pool_for(secure, ssl_context=client_tls) as pool:
            assert await post(pool) == (200, b"tls")
        assert len(proxy.forwarded) == 1 and len(proxy.tunnels) == 1


@pytest.mark.parametrize(
    "no_proxy",
    ["127.0.0.1", "localhost, 127.0.0.1", "*", "example.com,*", "127.0.0.0/8", "127.0.0.1:{port}"],
)
async def test_no_proxy_goes_direct(monkeypatch: pytest.MonkeyPatch, no_proxy: str) -> None:
    async with serving(keep_alive_server(b"direct")) as srv, ForwardProxy() as proxy:
        port = srv.url.rsplit(":", 1)[1].removesuffix("/v1")
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.setenv("no_proxy", no_proxy.format(port=port))
        async with pool_for(srv) as pool:
            assert pool.proxy is None
            assert await post(pool) == (200, b"direct")
        assert proxy.server.connections == 0 and srv.connections == 1
        # The same pool settings with NO_PROXY naming some other port or host: proxied.
        monkeypatch.setenv("NO_PROXY", "127.0.0.1:1,other.example")
        monkeypatch.delenv("no_proxy")
        async with pool_for(srv) as pool:
            assert pool.proxy is not None
            assert await post(pool) == (200, b"direct")
        assert len(proxy.forwarded) == 1


def test_no_proxy_matching() -> None:
    covers = no_proxy_covers
    assert covers("example.com", "example.com", 443)
    assert covers("example.com", "API.Example.com", 443)
    assert covers(".example.com", "example.com", 443)
    assert not covers("example.com", "badexample.com", 443)
    assert not covers("api.example.com", "example.com", 443)
    assert covers("localhost", "localhost", 80)
    assert not covers("localhost", "127.0.0.1", 80)  # loopback only when listed
    assert covers("::1", "::1", 80) and covers("[::1]", "::1", 80)
    assert covers("[::1]:8000", "::1", 8000) and not covers("[::1]:8000", "::1", 8001)
    assert covers("10.0.0.0/8", "10.1.2.3", 80) and not covers("10.0.0.0/8", "11.1.2.3", 80)
    assert covers("example.com:8443", "a.example.com", 8443)
    assert not covers("example.com:8443", "a.example.com", 443)
    assert covers(" , foo.org , *", "anything", 1)
    assert not covers("", "example.com", 443)


def test_env_proxy_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    http, https = Origin.parse("http://h.test/v1"), Origin.parse("https://h.test/v1")
    assert env_proxy(http) is None and env_proxy(https) is None
    monkeypatch.setenv("HTTP_PROXY", "http://p1:3128")
    assert env_proxy(http) == Proxy("p1", 3128, None, "HTTP_PROXY")
    assert env_proxy(https) is None  # HTTP_PROXY is for http URLs only
    monkeypatch.setenv("ALL_PROXY", "http://u@p2")
    assert env_proxy(https) == Proxy("p2", 80, f"Basic {basic('u:')}", "ALL_PROXY")
    assert env_proxy(http) is not None and env_proxy(http).host == "p1"  # type: ignore[union-attr]
    monkeypatch.setenv("REQUEST_METHOD", "GET")  # a CGI process: HTTP_PROXY may be a header
    assert env_proxy(http) == Proxy("p2", 80, f"Basic {basic('u:')}", "ALL_PROXY")
    monkeypatch.setenv("NO_PROXY", ".test")
    assert env_proxy(http) is None and env_proxy(https) is None


@pytest.mark.parametrize(
    "url", ["https://u:secret@proxy.test:443", "socks5://u:secret@proxy.test:1080", "http://:80"]
)
def test_unsupported_proxy_urls_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", url)
    with pytest.raises(UnsupportedProxy) as err:
        ConnectionPool("https://api.test/v1")
    assert err.value.source == "HTTPS_PROXY"
    assert str(err.value).startswith("HTTPS_PROXY=")
    assert "secret" not in str(err.value)
    with pytest.raises(UserError) as user_err:
        OpenAIChat(OpenAIOptions(base_url="https://api.test/v1", model="m"))
    assert "HTTPS_PROXY" in str(user_err.value) and "http://" in user_err.value.hint
    assert "secret" not in str(user_err.value)
    monkeypatch.setenv("NO_PROXY", "api.test")  # not used for this host: no error
    assert ConnectionPool("https://api.test/v1").proxy is None
    assert ConnectionPool("http://api.test/v1", proxy=None).proxy is None


@pytest.mark.parametrize(
    ("status", "retryable"),
    [("407 Proxy Authentication Required", False), ("502 Bad Gateway", True)],
)
async def test_a_refused_connect_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
    tls_pair: tuple[ssl.SSLContext, ssl.SSLContext],
    status: str,
    retryable: bool,
) -> None:
    server_tls, client_tls = tls_pair
    async with (
        serving(keep_alive_server(), server_tls) as srv,
        ForwardProxy(connect_status=status) as proxy,
    ):
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        code = int(status.split()[0])
        async with pool_for(srv, ssl_context=client_tls) as pool:
            with pytest.raises(ProxyError) as err:
                await post(pool)
            assert err.value.status == code
            assert pool.open_count == 0
        assert srv.connections == 0
        monkeypatch.setattr(openai_module, "tls_verify", lambda url: client_tls)
        model = OpenAIChat(OpenAIOptions(base_url=srv.url, model="m"))
        with pytest.raises(ServiceError) as service_err:
            await model.chat(HI)
        assert service_err.value.retryable is retryable
        assert f"HTTP {code}" in str(service_err.value)
        assert "HTTPS_PROXY" in service_err.value.hint
        assert service_err.value.status == 502  # a gateway failure, whatever the proxy said


async def test_a_407_for_a_plain_request_hints_at_the_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with (
        serving(openai_server()) as srv,
        ForwardProxy(credentials=basic("u:p")) as proxy,
    ):
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        model = OpenAIChat(OpenAIOptions(base_url=srv.url, model="m"))
        with pytest.raises(ServiceError) as err:
            await model.chat(HI)
        assert not err.value.retryable and err.value.status == 502
        assert "HTTP 407" in str(err.value) and "user:password in HTTP_PROXY" in err.value.hint
        assert srv.connections == 0


async def test_an_unreachable_proxy_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    model = OpenAIChat(OpenAIOptions(base_url="https://api.test/v1", model="m"))
    with pytest.raises(RetryableError) as err:
        await model.chat(HI)
    assert f"through proxy http://127.0.0.1:{port} (from HTTPS_PROXY)" in str(err.value)
    assert "HTTPS_PROXY" in err.value.hint


async def test_openai_chat_through_the_proxy(
    monkeypatch: pytest.MonkeyPatch, tls_pair: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_tls, client_tls = tls_pair
    monkeypatch.setattr(openai_module, "tls_verify", lambda url: client_tls)
    async with (
        serving(openai_server()) as plain,
        serving(openai_server(), server_tls) as secure,
        ForwardProxy(credentials=basic("me:pw")) as proxy,
    ):
        monkeypatch.setenv("http_proxy", proxy.url.replace("//", "//me:pw@"))
        monkeypatch.setenv("https_proxy", proxy.url.replace("//", "//me:pw@"))
        for srv in (plain, secure):
            model = OpenAIChat(OpenAIOptions(base_url=srv.url, model="m"))
            with pool_connections():
                for _ in range(2):
                    assert (await model.chat(HI)).text == "hi"
                    assert "".join([d.text async for d in model.stream(HI)]) == "hi"
                (pool,) = model._pools.values()
                assert pool.proxy is not None and pool.open_count == 1
                await model.aclose()
            assert srv.connections == 1 and len(srv.requests) == 4
            # Outside pooling: a connection per call, still through the proxy.
            assert (await model.chat(HI)).text == "hi"
            assert srv.connections == 2
        assert len(proxy.forwarded) == 5 and len(proxy.tunnels) == 2
        assert all(
            h["proxy-authorization"] == f"Basic {basic('me:pw')}" for _, _, h in proxy.forwarded
        )
        assert all(h["proxy-authorization"] == f"Basic {basic('me:pw')}" for _, h in proxy.tunnels)
