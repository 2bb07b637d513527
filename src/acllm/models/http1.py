"""A lean HTTP/1.1 client on asyncio streams, for the one origin of an upstream model server.

Why not httpx: through the service every chat request makes one upstream call, and httpx/httpcore
spent about a third of a worker's CPU on it (anyio streams, a pool that polls every idle connection
twice per request, header models). This client does just what an OpenAI-compatible backend needs:

- ``ConnectionPool(url, ...)``: keep-alive connections to one origin (``http://`` or ``https://``
  with the caller's shared ``ssl.SSLContext``), bound to the event loop that uses it. Idle ones are
  kept last-in-first-out, at most ``max_idle`` of them and for at most ``keepalive_s`` seconds;
  taking one is O(1) (no pass over all connections). ``max_idle=0`` keeps none: a pool for one call.
- ``await pool.request(method, path, body)``: the whole response (``Response``); ``async with
  pool.stream(...) as resp`` reads the head and leaves the body to ``resp.iter_lines()`` /
  ``resp.read()``. Bodies framed by Content-Length, chunked transfer coding or the end of the
  connection; gzip/deflate decoded if a server sends them anyway (we ask for identity).
- Timeouts: every wait for the server (connecting, writing, the response head, each piece of the
  body) is bounded by the call's ``wait_s`` seconds, like httpx's connect/read/write timeouts.
- A request sent on a reused idle connection that the server had already closed (the keep-alive
  race: no byte of a response arrived) is sent once more on a new connection.
- Proxies as httpx's default ``trust_env=True`` finds them (``env_proxy``: HTTP(S)_PROXY,
  ALL_PROXY, NO_PROXY, either case), decided once when the pool is made, so every connection of
  a pool takes the same route and a pool without a proxy pays nothing per request. ``http://``
  proxies only: a plain request goes to the proxy with the absolute URI in its request line
  (connections to the proxy kept alive as usual); an https one through a ``CONNECT`` tunnel with
  TLS to the origin inside it. Credentials in the proxy URL become ``Proxy-Authorization: Basic``
  (on the CONNECT only, never inside the tunnel). ``proxy=`` overrides the environment. The route
  itself (origin, proxy, NO_PROXY matching) is acllm.models.proxy.

Failures are ``HTTPTimeout`` (a wait ran out), ``ConnectError`` (no connection), ``ProxyError``
(the proxy refused the tunnel) and ``ProtocolError`` (reset, closed early or malformed); all are
``TransportError``. A proxy URL that cannot be used is ``UnsupportedProxy`` (a ValueError) when
the pool is made. The response's wire format (head, body framing and decoding, the errors) is
acllm.models.http1_wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from collections.abc import AsyncGenerator, Mapping
from types import TracebackType
from typing import Literal

from acllm.models.http1_wire import (
    CRLF,
    BodyReader,
    ConnectError,
    HTTPTimeout,
    ProtocolError,
    ProxyError,
    Response,
    TransportError,
    check_headers,
    parse_head,
)
from acllm.models.proxy import (
    Origin,
    Proxy,
    env_proxy,
)

__all__ = [
    "ConnectError",
    "ConnectionPool",
    "HTTPTimeout",
    "ProtocolError",
    "ProxyError",
    "Response",
    "StreamedResponse",
    "TransportError",
    "check_headers",
]

_HEAD_END = b"\r\n\r\n"
_STREAM_LIMIT = 1 << 20  # longest response head or chunk-size line we accept (StreamReader limit)


class _Stale(Exception):
    """A reused connection turned out closed before any byte of the response: send again."""


# --- one connection ------------------------------------------------------------------------------


class _Connection:
    __slots__ = ("idle_since", "reader", "reused", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reused = False
        self.idle_since = 0.0

    def usable(self) -> bool:
        """Still open, and nothing unasked-for arrived while it sat idle."""
        return not self.writer.transport.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        """Close now, without TLS close_notify (its wait can be long); the socket is released
        when the loop next runs (``wait_closed`` waits for that)."""
        self.writer.transport.abort()

    async def wait_closed(self) -> None:
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


# --- the pool ------------------------------------------------------------------------------------


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections to one origin, for use on one event loop."""

    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        headers: Mapping[str, str] | None = None,
        max_idle: int = 64,
        keepalive_s: float = 5.0,
        user_agent: str = "acllm",
        proxy: Proxy | Literal["env"] | None = "env",
    ) -> None:
        self.origin = Origin.parse(url)
        if self.origin.scheme == "https" and ssl_context is None:
            ssl_context = ssl.create_default_context()
        self._ssl = ssl_context if self.origin.scheme == "https" else None
        # Decided once: every connection of a pool takes the same route, direct or by one proxy.
        self.proxy = env_proxy(self.origin) if proxy == "env" else proxy
        self._max_idle = max_idle
        self._keepalive_s = keepalive_s
        self._idle: deque[_Connection] = deque()  # oldest left, most recently used right
        self._open: set[_Connection] = set()
        self._closed_unawaited: list[_Connection] = []  # only a pool that keeps none tracks these
        self._closed = False
        fixed = {
            "Host": self.origin.host_header,
            "User-Agent": user_agent,
            "Accept": "*/*",
            "Accept-Encoding": "identity",
            **(headers or {}),
        }
        # A plain request through a proxy names the whole URL; one to an https origin goes
        # through a tunnel, so the proxy's credentials go only on its CONNECT.
        self._target_prefix = ""
        self._connect_request = b""
        if self.proxy is not None:
            if self._ssl is None:
                self._target_prefix = f"http://{self.origin.host_header}"
                if self.proxy.authorization:
                    fixed["Proxy-Authorization"] = self.proxy.authorization
            else:
                self._connect_request = self._connect_head(self.proxy, user_agent)
        check_headers(fixed)
        self._fixed_headers = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())

    def _connect_head(self, proxy: Proxy, user_agent: str) -> bytes:
        origin = self.origin
        host = f"[{origin.host}]" if ":" in origin.host else origin.host
        authority = f"{host}:{origin.port}"
        headers = {"Host": authority, "User-Agent": user_agent}
        if proxy.authorization:
            headers["Proxy-Authorization"] = proxy.authorization
        check_headers(headers)
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return f"CONNECT {authority} HTTP/1.1\r\n{lines}\r\n".encode("latin-1")

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    @property
    def open_count(self) -> int:
        return len(self._open)

    def path(self, suffix: str) -> str:
        """The request target for ``suffix`` under the base URL's path."""
        return self.origin.base_path + suffix

    def _head(self, method: str, target: str, body: bytes, content_type: str) -> bytes:
        return (
            f"{method} {self._target_prefix}{target} HTTP/1.1\r\n{self._fixed_headers}"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1") + body

    # --- connections ------------------------------------------------------------------------

    def _checkout(self) -> _Connection | None:
        idle = self._idle
        if not idle:
            return None
        expired = time.monotonic() - self._keepalive_s
        while idle:
            conn = idle.pop()
            if conn.idle_since >= expired and conn.usable():
                return conn
            self._discard(conn)
            # The most recent one was too old, or closed: the older ones are likely the same.
            while idle and idle[0].idle_since < expired:
                self._discard(idle.popleft())
        return None

    async def _connect(self, wait_s: float) -> _Connection:
        if self._closed:
            raise ConnectError("the connection pool is closed")
        origin, proxy = self.origin, self.proxy
        try:
            async with asyncio.timeout(wait_s):
                if proxy is None:
                    reader, writer = await asyncio.open_connection(
                        origin.host,
                        origin.port,
                        ssl=self._ssl,
                        server_hostname=origin.host if self._ssl is not None else None,
                        limit=_STREAM_LIMIT,
                    )
                else:
                    reader, writer = await self._connect_proxy(proxy)
        except TimeoutError:
            raise HTTPTimeout("connect", wait_s) from None
        except OSError as exc:  # refused, unreachable, DNS, ssl.SSLError
            reason = str(exc) or type(exc).__name__
            if proxy is not None:
                reason = f"through proxy {proxy.display}{proxy.from_where}: {reason}"
            raise ConnectError(reason) from exc
        conn = _Connection(reader, writer)
        self._open.add(conn)
        return conn

    async def _connect_proxy(
        self, proxy: Proxy
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the proxy; for an https origin, tunnelled by CONNECT and then TLS
        (with the origin's name) inside the tunnel."""
        reader, writer = await asyncio.open_connection(proxy.host, proxy.port, limit=_STREAM_LIMIT)
        if self._ssl is None:
            return reader, writer
        try:
            writer.write(self._connect_request)
            await writer.drain()
            try:
                head = await reader.readuntil(_HEAD_END)
            except asyncio.IncompleteReadError as exc:
                raise ConnectionResetError("the proxy closed the connection on CONNECT") from exc
            except asyncio.LimitOverrunError as exc:
                raise ProtocolError("the proxy's answer to CONNECT is too long") from exc
            response = parse_head(head)
            if not 200 <= response.status < 300:
                reason = head.split(CRLF, 1)[0].split(b" ", 2)[2:]
                raise ProxyError(proxy, response.status, b"".join(reason).decode("latin-1"))
            await writer.start_tls(self._ssl, server_hostname=self.origin.host)
        except BaseException:
            writer.transport.abort()
            raise
        return reader, writer

    def _release(self, conn: _Connection, reusable: bool) -> None:
        """Back to the idle list if the exchange ended cleanly and there is room; else closed."""
        if reusable and not self._closed and len(self._idle) < self._max_idle and conn.usable():
            conn.reused = True
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            self._discard(conn)

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self._open.discard(conn)
        if self._max_idle == 0:
            self._closed_unawaited.append(conn)

    async def aclose(self) -> None:
        """Close every connection, idle or in use, and wait until their sockets are released."""
        self._closed = True
        conns = [*self._open, *self._closed_unawaited]
        self._idle.clear()
        self._open.clear()
        self._closed_unawaited.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            await conn.wait_closed()

    # --- one exchange -----------------------------------------------------------------------

    async def _send(self, conn: _Connection, request: bytes, wait_s: float) -> Response:
        """Write the request, read the response head. ``_Stale`` for a reused connection that
        ends before any byte of the answer."""
        writer, reader = conn.writer, conn.reader
        try:
            writer.write(request)
            if writer.transport.get_write_buffer_size():
                try:
                    async with asyncio.timeout(wait_s):
                        await writer.drain()
                except TimeoutError:
                    raise HTTPTimeout("write", wait_s) from None
            while True:
                try:
                    async with asyncio.timeout(wait_s):
                        head = await reader.readuntil(_HEAD_END)
                except TimeoutError:
                    raise HTTPTimeout("read", wait_s) from None
                response = parse_head(head)
                if not 100 <= response.status < 200 or response.status == 101:
                    return response
                conn.reused = False  # an interim answer (100 Continue): bytes arrived
        except asyncio.IncompleteReadError as exc:
            if conn.reused and not exc.partial:
                raise _Stale from exc
            raise ProtocolError("the server closed the connection without an answer") from exc
        except asyncio.LimitOverrunError as exc:
            raise ProtocolError("response head too long") from exc
        except (ConnectionError, OSError) as exc:  # reset, broken pipe
            if conn.reused and isinstance(exc, ConnectionError):
                raise _Stale from exc
            raise ProtocolError(f"connection failed: {exc or type(exc).__name__}") from exc

    async def _exchange(self, request: bytes, wait_s: float) -> tuple[_Connection, Response]:
        conn = self._checkout()
        if conn is not None:
            try:
                return conn, await self._send(conn, request, wait_s)
            except _Stale:
                self._discard(conn)
            except BaseException:
                self._discard(conn)
                raise
        conn = await self._connect(wait_s)
        try:
            return conn, await self._send(conn, request, wait_s)
        except _Stale as exc:  # cannot happen on a new connection; kept for the type checker
            self._discard(conn)
            raise ProtocolError("the server closed the connection without an answer") from exc
        except BaseException:
            self._discard(conn)
            raise

    async def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        *,
        wait_s: float,
        content_type: str = "application/json",
    ) -> Response:
        """Send one request and read its whole response."""
        conn, response = await self._exchange(
            self._head(method, target, body, content_type), wait_s
        )
        reusable = False
        try:
            body_reader = BodyReader(conn.reader, response, method, wait_s)
            response.body = await body_reader.read_all()
            reusable = body_reader.reusable
        finally:
            self._release(conn, reusable)
        return response

    def stream(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        *,
        wait_s: float,
        content_type: str = "application/json",
    ) -> StreamedResponse:
        """``async with pool.stream(...) as resp``: the head read, the body left to read."""
        return StreamedResponse(
            self, self._head(method, target, body, content_type), method, wait_s
        )


class StreamedResponse:
    """The context manager of ``ConnectionPool.stream``; the connection goes back to the pool when
    the body was read to its end, else it is closed."""

    def __init__(self, pool: ConnectionPool, request: bytes, method: str, wait_s: float) -> None:
        self._pool = pool
        self._request = request
        self._method = method
        self._wait_s = wait_s
        self._conn: _Connection | None = None
        self._body: BodyReader | None = None
        self.status = 0
        self.headers: dict[str, str] = {}

    async def __aenter__(self) -> StreamedResponse:
        conn, response = await self._pool._exchange(self._request, self._wait_s)
        self._conn = conn
        self.status, self.headers = response.status, response.headers
        try:
            self._body = BodyReader(conn.reader, response, self._method, self._wait_s)
        except BaseException:
            self._finish(False)
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._finish(self._body is not None and self._body.reusable)

    def _finish(self, reusable: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool._release(conn, reusable)

    def _reader(self) -> BodyReader:
        if self._body is None or self._conn is None:
            raise RuntimeError("the response is not open")
        return self._body

    async def read(self) -> bytes:
        """The rest of the body."""
        return await self._reader().read_all()

    async def iter_chunks(self) -> AsyncGenerator[bytes, None]:
        reader = self._reader()
        while chunk := await reader.read_some():
            yield chunk

    async def iter_lines(self) -> AsyncGenerator[str, None]:
        """The body's lines (LF, CRLF or CR endings removed), decoded as UTF-8; read as they
        arrive, so a line of a server-sent event is seen as soon as its end is."""
        reader = self._reader()
        pending = b""
        while chunk := await reader.read_some():
            data = pending + chunk if pending else chunk
            if b"\r" in data:
                # CRLF and lone CR as LF; a CR at the very end may be half a CRLF: keep it.
                keep_cr = data.endswith(b"\r")
                data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                if keep_cr:
                    data = data[:-1]
                lines = data.split(b"\n")
                pending = lines.pop() + (b"\r" if keep_cr else b"")
            else:
                lines = data.split(b"\n")
                pending = lines.pop()
            for line in lines:
                yield line.decode("utf-8", errors="replace")
        if pending.rstrip(b"\r"):
            yield pending.rstrip(b"\r").decode("utf-8", errors="replace")
