"""The wire format of an HTTP/1.1 response for acllm.models.http1: its failures, its head, and its
body as it is framed (Content-Length, chunked, or read to the close) and encoded (gzip, deflate).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass

from acllm.models.proxy import Proxy

CRLF = b"\r\n"
_READ_SIZE = 65536


class TransportError(Exception):
    """The exchange with the server failed below HTTP's status codes."""


class HTTPTimeout(TransportError):
    """A wait for the server ran out; ``phase`` is "connect", "write" or "read"."""

    def __init__(self, phase: str, wait_s: float) -> None:
        super().__init__(f"{phase} timed out after {wait_s:g} s")
        self.phase = phase


class ConnectError(TransportError):
    """No connection: refused, unreachable, name not found, TLS handshake failed."""


class ProtocolError(TransportError):
    """The connection was reset or closed before the response ended, or the response is malformed."""


class ProxyError(TransportError):
    """The proxy would not open a tunnel: CONNECT answered with ``status`` (not 2xx)."""

    def __init__(self, proxy: Proxy, status: int, reason: str) -> None:
        super().__init__(
            f"proxy {proxy.display}{proxy.from_where} answered CONNECT with HTTP {status} {reason}"
        )
        self.proxy = proxy
        self.status = status


@dataclass(slots=True)
class Response:
    """A response; ``body`` is filled by ``pool.request`` (a stream's body is read from it)."""

    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes = b""
    version: str = "HTTP/1.1"

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def check_headers(headers: Mapping[str, str]) -> None:
    """ValueError for a header name or value that would break the request's framing."""
    for name, value in headers.items():
        if not name or any(c in name for c in ":\r\n \t") or "\r" in value or "\n" in value:
            raise ValueError(f"invalid HTTP header {name!r}")


class BodyReader:
    """Reads one response body as it is framed; ``reusable`` once it ended cleanly on a
    connection both sides keep alive."""

    __slots__ = ("_decoder", "_done", "_keep", "_left", "_mode", "_reader", "_wait_s", "reusable")

    def __init__(
        self, reader: asyncio.StreamReader, response: Response, method: str, wait_s: float
    ) -> None:
        self._reader = reader
        self._wait_s = wait_s
        self.reusable = False
        headers = response.headers
        self._keep = keep_alive(response)
        self._decoder = _decoder(headers.get("content-encoding"))
        self._left = 0
        self._done = False
        status = response.status
        if method == "HEAD" or status in (204, 304):
            self._mode = "none"
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._mode = "chunked"
        elif (length := headers.get("content-length")) is not None:
            try:
                self._left = int(length)
            except ValueError:
                raise ProtocolError(f"bad Content-Length {length!r}") from None
            if self._left < 0:
                raise ProtocolError(f"bad Content-Length {length!r}")
            self._mode = "length"
        else:
            self._mode = "close"  # the body runs to the end of the connection
            self._keep = False
        if self._mode == "none" or (self._mode == "length" and self._left == 0):
            self._end()

    def _end(self) -> None:
        self._done = True
        self.reusable = self._keep

    async def read_all(self) -> bytes:
        if self._mode == "length" and not self._done and self._decoder is None:
            data = await self._exactly(self._left)
            self._end()
            return data
        parts = []
        while chunk := await self.read_some():
            parts.append(chunk)
        return b"".join(parts)

    async def read_some(self) -> bytes:
        """The next piece of the (decoded) body; b"" at its end."""
        while not self._done:
            data = await self._next_raw()
            if self._decoder is not None:
                data = self._decoder.decompress(data)
                if self._done:
                    data += self._decoder.flush()
            if data:
                return data
        return b""

    async def _next_raw(self) -> bytes:
        mode = self._mode
        if mode == "length":
            data = await self._some(min(self._left, _READ_SIZE))
            if not data:
                raise ProtocolError("the server closed the connection in the middle of the body")
            self._left -= len(data)
            if self._left == 0:
                self._end()
            return data
        if mode == "chunked":
            if self._left == 0:
                size_line = await self._line()
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size {size_line[:40]!r}") from None
                if size == 0:
                    while await self._line():  # trailers, up to the empty line
                        pass
                    self._end()
                    return b""
                self._left = size
            data = await self._some(min(self._left, _READ_SIZE))
            if not data:
                raise ProtocolError("the server closed the connection in the middle of the body")
            self._left -= len(data)
            if self._left == 0 and await self._exactly(2) != CRLF:
                raise ProtocolError("chunk not followed by CRLF")
            return data
        # "close": everything up to the end of the connection
        data = await self._some(_READ_SIZE)
        if not data:
            self._done = True  # never reusable
        return data

    async def _some(self, n: int) -> bytes:
        return await self._wait(self._reader.read(n))

    async def _exactly(self, n: int) -> bytes:
        return await self._wait(self._reader.readexactly(n))

    async def _line(self) -> bytes:
        return (await self._wait(self._reader.readuntil(CRLF)))[:-2]

    async def _wait(self, read: Awaitable[bytes]) -> bytes:
        """``read`` within the call's wait, its failures as TransportErrors."""
        try:
            async with asyncio.timeout(self._wait_s):
                return await read
        except TimeoutError:
            raise HTTPTimeout("read", self._wait_s) from None
        except asyncio.IncompleteReadError as exc:
            raise ProtocolError(
                "the server closed the connection in the middle of the body"
            ) from exc
        except asyncio.LimitOverrunError as exc:
            raise ProtocolError("chunk header too long") from exc
        except OSError as exc:
            raise ProtocolError(f"connection failed: {exc or type(exc).__name__}") from exc


def parse_head(head: bytes) -> Response:
    lines = head[:-4].split(CRLF)
    status_line = lines[0]
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP/1.x response: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for raw in lines[1:]:
        name, sep, value = raw.partition(b":")
        if not sep:
            raise ProtocolError(f"malformed header line {raw[:80]!r}")
        key = name.strip().lower().decode("latin-1")
        val = value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {val}" if key in headers else val
    return Response(int(parts[1]), headers, version=parts[0].decode("latin-1"))


def keep_alive(response: Response) -> bool:
    connection = response.headers.get("connection", "").lower()
    if response.version == "HTTP/1.0":
        return "keep-alive" in connection
    return "close" not in connection


class _Decoder:
    """gzip or deflate, decoded as the body arrives."""

    def __init__(self, wbits: int) -> None:
        self._obj = zlib.decompressobj(wbits)

    def decompress(self, data: bytes) -> bytes:
        try:
            return self._obj.decompress(data)
        except zlib.error as exc:
            raise ProtocolError(f"cannot decode the body: {exc}") from exc

    def flush(self) -> bytes:
        return self._obj.flush()


def _decoder(encoding: str | None) -> _Decoder | None:
    if not encoding or encoding.lower() == "identity":
        return None
    name = encoding.lower().strip()
    if name in ("gzip", "x-gzip"):
        return _Decoder(16 + zlib.MAX_WBITS)
    if name == "deflate":
        return _Decoder(zlib.MAX_WBITS)
    raise ProtocolError(f"unsupported Content-Encoding {encoding!r}")
