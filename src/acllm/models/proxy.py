"""Where a connection goes: the origin of a base URL, and the ``http://`` forward proxy the
environment names for it (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY, either case), as httpx's default
``trust_env=True`` finds them. Used by acllm.models.http1 once per connection pool.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit


class UnsupportedProxy(ValueError):
    """A proxy URL this client cannot use (not ``http://``, or malformed); ``source`` names the
    environment variable it came from ("" when given directly)."""

    def __init__(self, message: str, source: str) -> None:
        super().__init__(message)
        self.source = source


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int
    base_path: str  # the URL's path without a trailing slash, e.g. "/v1"

    @classmethod
    def parse(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"a base URL has no query or fragment: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


_PROXY_KEY: Final = "_proxy"  # getproxies_environment reads variables named *_proxy, any case


@dataclass(frozen=True, slots=True)
class Proxy:
    """An ``http://`` forward proxy: plain requests go to it with the absolute URI, https ones
    through a CONNECT tunnel. ``source`` is the environment variable it came from, for messages."""

    host: str
    port: int
    authorization: str | None = None  # the Proxy-Authorization value, from user:password
    source: str = ""

    @classmethod
    def parse(cls, url: str, source: str = "") -> Proxy:
        """``http://[user:password@]host[:port]``; a URL without a scheme is taken as http://
        (as httpx and curl do). ``UnsupportedProxy`` for https://, socks and the like."""
        where = f"{source}={_redact(url)}" if source else f"proxy {_redact(url)}"
        if "://" not in url:
            url = f"http://{url}"
        try:
            parts = urlsplit(url)
            port = parts.port or 80
        except ValueError as exc:
            raise UnsupportedProxy(f"{where}: not a valid proxy URL ({exc})", source) from None
        if parts.scheme.lower() != "http":
            raise UnsupportedProxy(
                f"{where}: {parts.scheme}:// proxies are not supported, only http:// ones "
                "(https targets go through them by CONNECT)",
                source,
            )
        if not parts.hostname:
            raise UnsupportedProxy(f"{where}: the proxy URL has no host", source)
        authorization = None
        if parts.username is not None:
            userpass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(userpass.encode()).decode("ascii")
        return cls(parts.hostname, port, authorization, source)

    @property
    def display(self) -> str:
        """The proxy's URL without credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def from_where(self) -> str:
        return f" (from {self.source})" if self.source else ""


def env_proxy(origin: Origin) -> Proxy | None:
    """The proxy the environment names for ``origin``, as httpx's ``trust_env=True`` finds it.

    ``HTTPS_PROXY`` for https, ``HTTP_PROXY`` for http, else ``ALL_PROXY``; lower-case names win
    over upper-case ones (``urllib.request.getproxies_environment``, which also ignores
    ``HTTP_PROXY`` in a CGI process). None when no proxy is set or ``NO_PROXY`` covers the host
    (see ``no_proxy_covers``). ``UnsupportedProxy`` when the proxy that applies is not http://.
    """
    if not any(name[-6:].lower() == _PROXY_KEY for name in os.environ):
        return None  # the common case: no need to import urllib.request (8 ms)
    from urllib.request import getproxies_environment

    proxies = getproxies_environment()
    key = origin.scheme if proxies.get(origin.scheme) else "all"
    url = proxies.get(key)
    if not url:
        return None
    no_proxy = proxies.get("no")
    if no_proxy and no_proxy_covers(no_proxy, origin.host, origin.port):
        return None
    return Proxy.parse(url, _proxy_variable(key))


def no_proxy_covers(no_proxy: str, host: str, port: int) -> bool:
    """Whether a ``NO_PROXY`` list (comma-separated) names ``host``:``port``.

    Entries as curl, urllib and httpx read them: ``*`` covers every host; a name covers itself and
    its subdomains (a leading dot is ignored: ``example.com`` and ``.example.com`` both cover
    ``example.com`` and ``api.example.com``, not ``badexample.com``); an IP address covers itself
    (``127.0.0.1``, ``::1`` or ``[::1]``) and a network its addresses (``10.0.0.0/8``). An entry
    may name a port (``localhost:8000``, ``[::1]:8000``), then it covers that port only. Names
    compare without case. Loopback is not bypassed unless listed, as with httpx.
    """
    host = host.lower().rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        name, entry_port = _split_entry(entry)
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(name, strict=False):
                    return True
                continue
            except ValueError:
                pass  # not an address: compared as a name below
        name = name.strip(".")
        if name and (host == name or host.endswith(f".{name}")):
            return True
    return False


def _split_entry(entry: str) -> tuple[str, int | None]:
    """A NO_PROXY entry's host and port, if it names one."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None  # a name, an IPv4 address or network, or a bare IPv6 address


def _proxy_variable(key: str) -> str:
    """The variable getproxies_environment took ``key``'s proxy from (lower case wins)."""
    lower = f"{key}{_PROXY_KEY}"
    if os.environ.get(lower):
        return lower
    return next((n for n, v in os.environ.items() if v and n.lower() == lower), lower.upper())


def _redact(url: str) -> str:
    """``url`` with its user:password hidden."""
    scheme, sep, rest = url.rpartition("://")
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return f"{scheme}{sep}{netloc}{slash}{path}"
