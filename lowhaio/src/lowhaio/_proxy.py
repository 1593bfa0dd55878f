"""Proxies: HTTP proxies (a forward proxy for http:// origins, a `CONNECT` tunnel for https://
ones, over TLS to an https:// proxy too) and SOCKS5 (RFC 1928, with RFC 1929's credentials).

The messages are built and checked here as plain functions over bytes; the handshakes run on
the connection's own buffer and waits, in the caller's task, before it carries a request. A
proxy's credentials go to the proxy only: `str(proxy)` and `repr(proxy)` never show them, so
no error, log line or trace event can.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote, urlsplit

from ._exceptions import HttpError, HttpInvalidRequestError, HttpProxyError
from ._http11 import Origin, ResponseLimits, ResponseReader
from ._response import HeadLimits, read_head

if TYPE_CHECKING:
    from ._connection import Connection

_DEFAULT_PORTS = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}


class Proxy(NamedTuple):
    """A proxy, parsed from a URL such as `http://user:password@proxy:3128`."""

    scheme: str  # http, https (TLS to the proxy), socks5 (names resolved here), socks5h (there)
    host: str
    port: int
    user: bytes | None
    password: bytes

    def __str__(self) -> str:
        """`scheme://host:port`: what errors, logs and trace events name, never credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def __repr__(self) -> str:
        return f"Proxy({str(self)!r})"

    @property
    def socks(self) -> bool:
        return self.scheme in ("socks5", "socks5h")

    @property
    def is_ip(self) -> bool:
        """Whether the proxy's host is an IP literal (not resolved by DNS)."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def basic_authorization(self) -> bytes:
        """The value of a `proxy-authorization` header for this proxy's credentials."""
        return b"Basic " + base64.b64encode((self.user or b"") + b":" + self.password)


class Route(NamedTuple):
    """Where a pooled connection goes: an origin, through a proxy. The pool's key for a proxied
    connection (a direct one is keyed by its origin alone)."""

    origin: Origin
    proxy: Proxy

    def __str__(self) -> str:
        return f"{self.origin} via {self.proxy}"


_BAD_USERINFO = "its user:password@ part is invalid (percent-encode / ? # @ : in them)"


def _invalid(url: str) -> str:
    """Why urllib refuses `url`, told from the URL without its userinfo: urllib's reason may
    quote the password (a `/` in it ends the host early, and what follows its colon is then
    taken for a port)."""
    scheme, sep, rest = url.partition("://")
    try:
        urlsplit(f"{scheme}{sep}{rest.rpartition('@')[2]}").port  # noqa: B018
    except ValueError as exc:
        return str(exc)
    return _BAD_USERINFO


@functools.lru_cache(maxsize=64)
def parse_proxy(url: str) -> Proxy:
    """Parse a proxy URL; a refusal never repeats the credentials."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts = None
    if parts is None:  # raised outside the `except`: urllib's error is not kept as context
        raise HttpInvalidRequestError(f"proxy url is invalid: {_invalid(url)}")
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise HttpInvalidRequestError(
            f"proxy url scheme must be http, https, socks5 or socks5h, not {scheme[:20]!r}"
        )
    host = parts.hostname
    if not host or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise HttpInvalidRequestError("proxy url must be scheme://[user:password@]host[:port]")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise HttpInvalidRequestError("proxy url host is not a valid name") from None
    user = None if parts.username is None else unquote(parts.username).encode()
    password = unquote(parts.password or "").encode()
    if user is not None and b":" in user:
        raise HttpInvalidRequestError(f"proxy url is invalid: {_BAD_USERINFO}: a colon in the user")
    return Proxy(scheme, host, port or _DEFAULT_PORTS[scheme], user, password)


# HTTP proxies ---------------------------------------------------------------------------------


def _authority(origin: Origin) -> bytes:
    host = f"[{origin.host}]" if ":" in origin.host else origin.host
    return f"{host}:{origin.port}".encode("ascii")


def connect_head(origin: Origin, proxy: Proxy) -> bytes:
    """The `CONNECT` request that asks `proxy` for a tunnel to `origin` (RFC 9110 9.3.6)."""
    authority = _authority(origin)
    lines = [b"CONNECT ", authority, b" HTTP/1.1\r\nhost: ", authority, b"\r\n"]
    if proxy.user is not None:
        lines += (b"proxy-authorization: ", proxy.basic_authorization(), b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


async def open_tunnel(
    conn: Connection, origin: Origin, proxy: Proxy, timeout: float, limits: ResponseLimits
) -> None:
    """Ask an HTTP proxy for a tunnel to `origin`: open when this returns, else HttpProxyError
    with the proxy's status."""
    conn.write(connect_head(origin, proxy))
    reader = ResponseReader(b"CONNECT", limits)
    try:
        head = await read_head(conn, reader, timeout, HeadLimits.of(timeout))
    except HttpError as exc:
        raise HttpProxyError(f"no valid answer to CONNECT: {exc}", str(proxy)) from exc
    if not 200 <= head.status < 300:
        raise HttpProxyError(
            f"the proxy answered {head.code.decode()} to CONNECT {_authority(origin).decode()}",
            str(proxy),
            head.code,
        )
    if conn.end != conn.start:
        # A 2xx to CONNECT has no body (RFC 9110 9.3.6): bytes now are neither the proxy's
        # answer nor the origin's, which has not been asked anything yet.
        raise HttpProxyError("the proxy sent bytes after its answer to CONNECT", str(proxy))


# SOCKS5 ----------------------------------------------------------------------------------------

_NO_AUTHENTICATION, _USER_PASSWORD, _NO_ACCEPTABLE = 0x00, 0x02, 0xFF
_IPV4, _DOMAIN, _IPV6 = 0x01, 0x03, 0x04
_SOCKS_REPLIES = {  # RFC 1928 6
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused",
    0x06: "TTL expired",
    0x07: "command not supported",
    0x08: "address type not supported",
}


def socks5_greeting(proxy: Proxy) -> bytes:
    """The methods offered: no authentication, and username/password if the URL has them."""
    if proxy.user is None:
        return bytes((5, 1, _NO_AUTHENTICATION))
    return bytes((5, 2, _NO_AUTHENTICATION, _USER_PASSWORD))


def socks5_credentials(proxy: Proxy) -> bytes:
    """RFC 1929: the username and password, each at most 255 bytes."""
    user, password = proxy.user or b"", proxy.password
    if len(user) > 255 or len(password) > 255:
        raise HttpProxyError("SOCKS5 credentials are longer than 255 bytes", str(proxy))
    return bytes((1, len(user))) + user + bytes((len(password),)) + password


def socks5_connect(host: str, port: int) -> bytes:
    """The CONNECT request for `host` (an IP address, or a name for the proxy to resolve)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("ascii")
        target = bytes((_DOMAIN, len(name))) + name
    else:
        target = bytes((_IPV4 if address.version == 4 else _IPV6,)) + address.packed
    return bytes((5, 1, 0)) + target + port.to_bytes(2, "big")


def socks5_reply_size(reply: bytes) -> int:
    """The size of a CONNECT reply, from its first 5 bytes (its address's length varies)."""
    kind = reply[3]
    if kind == _IPV4:
        return 4 + 4 + 2
    if kind == _IPV6:
        return 4 + 16 + 2
    return 4 + 1 + reply[4] + 2  # a domain: its length, then it


async def _exactly(conn: Connection, size: int, timeout: float, proxy: Proxy) -> bytes:
    """The next `size` bytes from the proxy."""
    while conn.end - conn.start < size:
        if conn.eof:
            raise HttpProxyError("the proxy closed the connection during SOCKS5", str(proxy))
        await conn.read_more(timeout)
    start = conn.start
    data = bytes(conn.buf[start : start + size])
    conn.consume(start + size)
    return data


async def socks5_handshake(
    conn: Connection, origin: Origin, proxy: Proxy, address: str | None, timeout: float
) -> None:
    """Open a SOCKS5 tunnel to `origin`: to `address`, resolved here (socks5://), or to the
    origin's name, which the proxy resolves (socks5h://, or socks5:// to an IP literal)."""
    conn.write(socks5_greeting(proxy))
    version, method = await _exactly(conn, 2, timeout, proxy)
    if version != 5:
        raise HttpProxyError(f"not a SOCKS5 answer (version {version})", str(proxy))
    if method == _USER_PASSWORD and proxy.user is not None:
        conn.write(socks5_credentials(proxy))
        _, status = await _exactly(conn, 2, timeout, proxy)
        if status:
            raise HttpProxyError("the proxy refused the credentials", str(proxy))
    elif method != _NO_AUTHENTICATION:
        wanted = "credentials" if method == _USER_PASSWORD else f"method {method}"
        if method == _NO_ACCEPTABLE:
            wanted = "a method not offered"
        raise HttpProxyError(f"the proxy asks for {wanted}", str(proxy))
    conn.write(socks5_connect(address or origin.host, origin.port))
    start = await _exactly(conn, 5, timeout, proxy)
    if start[0] != 5 or start[3] not in (_IPV4, _DOMAIN, _IPV6):
        raise HttpProxyError("not a SOCKS5 reply", str(proxy))
    if start[1]:
        reason = _SOCKS_REPLIES.get(start[1], f"reply {start[1]}")
        raise HttpProxyError(
            f"the proxy could not connect to {_authority(origin).decode()}: {reason}",
            str(proxy),
        )
    await _exactly(conn, socks5_reply_size(start) - 5, timeout, proxy)  # its bound address
