"""The exceptions lowhaio raises, arranged so that each answers "can I retry?".

- `HttpInvalidRequestError`: the request itself is wrong; retrying cannot help.
- `HttpConnectionError`: no byte of the request was sent; retrying is always safe.
- `HttpDataError`: bytes of the request were sent; retry only idempotent requests.

Timeouts are in the branch that says what was sent, and also subclass `HttpTimeoutError`.
Where a lower-level exception caused the error, it is in `__cause__`. `CancelledError` and
other `BaseException`s are never translated.
"""

from __future__ import annotations

import ssl

__all__ = [
    "HttpConnectTimeoutError",
    "HttpConnectionClosedError",
    "HttpConnectionError",
    "HttpDataError",
    "HttpDataTimeoutError",
    "HttpDnsError",
    "HttpDnsTimeoutError",
    "HttpError",
    "HttpHeaderTooLong",
    "HttpInvalidRequestError",
    "HttpPoolClosedError",
    "HttpPoolLoopError",
    "HttpPoolTimeoutError",
    "HttpProtocolError",
    "HttpProxyError",
    "HttpProxyTimeoutError",
    "HttpStaleConnectionError",
    "HttpTimeoutError",
    "HttpTlsError",
    "HttpTooManyHeaders",
]


class HttpError(Exception):
    """Base class of every error that lowhaio raises.

    Raised by a request or its body, it says where the request went: `method`, and `url`
    without userinfo, query or fragment (they may hold secrets), as attributes, and the origin
    (`scheme://host:port`) at the start of its message. Both are None for an invalid request.
    """

    method: bytes | None = None
    url: str | None = None

    def located(self, method: bytes, url: str, origin: str) -> None:
        """Say where the failed request went, once: the first (innermost) caller to know
        decides."""
        if self.url is not None:
            return
        self.method, self.url = method, url
        message = self.args[0] if self.args else ""
        if isinstance(message, str) and not message.startswith(origin):
            self.args = (f"{origin}: {message}", *self.args[1:])


class HttpInvalidRequestError(HttpError, ValueError):
    """The request is invalid (URL, method, header or body framing): fix it, do not retry."""


class HttpPoolClosedError(HttpError, RuntimeError):
    """The pool was closed: it makes no more requests."""


class HttpPoolLoopError(HttpError, RuntimeError):
    """The pool holds connections in another event loop than the running one: a pool serves
    one loop at a time (make one per loop, or `close()` it before its loop ends)."""


class HttpTimeoutError(HttpError):
    """A timeout expired; the other base class says whether request bytes were sent."""


class HttpConnectionError(HttpError):
    """No byte of the request was sent: always safe to retry."""


class HttpDnsError(HttpConnectionError):
    """The host name could not be resolved."""


class HttpTlsError(HttpConnectionError):
    """The TLS handshake failed: certificate, protocol version or ALPN."""


class HttpConnectTimeoutError(HttpConnectionError, HttpTimeoutError):
    """Opening the connection (TCP and TLS) took longer than `connect_timeout`."""


class HttpPoolTimeoutError(HttpConnectionError, HttpTimeoutError):
    """No connection became free within `pool_timeout`."""


class HttpProxyError(HttpConnectionError):
    """A proxy could not be reached, refused (407, 403, 502 to `CONNECT`, a SOCKS5 error) or
    broke the protocol before the tunnel was open: nothing reached the origin, so a retry is
    safe. `proxy` names it (`scheme://host:port`, never its credentials); `status` is its
    answer's status code, if it answered one."""

    def __init__(self, message: str, proxy: str, status: bytes | None = None) -> None:
        super().__init__(f"{proxy}: {message}")
        self.proxy = proxy
        self.status = status


class HttpProxyTimeoutError(HttpProxyError, HttpTimeoutError):
    """Reaching the proxy, or its answer to `CONNECT` or the SOCKS5 handshake, took longer than
    `connect_timeout`."""


class HttpDataError(HttpError):
    """Bytes of the request were sent: retry only if the request is idempotent."""


class HttpDataTimeoutError(HttpDataError, HttpTimeoutError):
    """Sending or receiving made no progress for `write_timeout` or `read_timeout`."""


class HttpConnectionClosedError(HttpDataError):
    """The connection closed before the response was complete."""


class HttpProtocolError(HttpDataError):
    """The response broke HTTP/1.1 syntax or framing (RFC 9112)."""


class HttpHeaderTooLong(HttpProtocolError):
    """The response head, or a chunk-size or trailer line, exceeded its size limit."""


class HttpTooManyHeaders(HttpProtocolError):
    """The response head, or its trailers, had more fields than the limit."""


class HttpDnsTimeoutError(HttpDnsError, HttpTimeoutError):
    """The DNS servers did not answer in time."""


class HttpStaleConnectionError(HttpConnectionError):
    """A reused keep-alive connection closed before the whole request was sent and before any
    byte of the response arrived: the server closed it while idle, so it did not process the
    request, and retrying is safe. (Closed after the whole request was sent, it is an
    `HttpConnectionClosedError`: the server may have processed the request.)"""


def translated(exc: Exception, sent: bool, where: str) -> HttpError:
    """The one place where low-level exceptions become lowhaio's, by what was sent; the caller
    raises the result `from exc`."""
    cls: type[HttpError]
    if isinstance(exc, TimeoutError):
        cls = HttpDataTimeoutError if sent else HttpConnectTimeoutError
    elif not sent:
        cls = HttpTlsError if isinstance(exc, ssl.SSLError) else HttpConnectionError
    elif isinstance(exc, (ConnectionError, EOFError)):
        cls = HttpConnectionClosedError
    else:
        cls = HttpDataError
    return cls(f"{where}: {type(exc).__name__}: {exc}")


def request_error(
    exc: Exception, where: str, *, sent: bool, whole: bool, reused: bool, answered: bool
) -> HttpError:
    """What a request that failed with `exc` raises (the caller raises it `from exc`, unless it
    is `exc` itself): the one rule for whether the server may have processed it.

    `sent`: a byte of the request reached the transport; `whole`: all of it did; `reused`: the
    connection had carried a request before; `answered`: a byte of a response arrived. A
    request is known not to be processed only if the server went away before it was whole and
    without a word; once it was whole, even a reused connection that closes without a word may
    have been closed after processing it (RFC 9112 9.3.1).
    """
    if (
        reused
        and not whole
        and not answered
        and isinstance(exc, (ConnectionError, HttpConnectionClosedError))
    ):
        return HttpStaleConnectionError(
            f"{where}: the reused connection closed before the whole request was sent"
            " and before any response: the request was not processed"
        )
    if isinstance(exc, HttpError):
        return exc
    return translated(exc, sent, where)
