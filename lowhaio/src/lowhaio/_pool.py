"""`Pool`: connections opened, reused and closed; requests sent and responses framed.

Strategy: `Pool(...)` returns `request` and `close` closures over one `_PoolState`, the only
home of mutable pool state. A request runs entirely in its caller's task: it takes an idle
connection, or a free slot to open one, or waits its turn (FIFO) for either; it writes the head
and streams the body; it reads the response head and returns a `ResponseBody`. When the body is
read to its end the connection goes back to the pool; when the caller abandons it (aclose,
break, cancellation, garbage collection) the connection is closed, so the pool never leaks.

Low-level exceptions are translated to lowhaio's in one place, `_translated`, which knows
whether any byte of the request was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

from ._connection import Connection
from ._exceptions import (
    HttpConnectionClosedError,
    HttpConnectionError,
    HttpConnectTimeoutError,
    HttpDataError,
    HttpDataTimeoutError,
    HttpDnsError,
    HttpError,
    HttpInvalidRequestError,
    HttpPoolClosedError,
    HttpPoolTimeoutError,
    HttpProtocolError,
    HttpTlsError,
)
from ._http11 import (
    ChunkedDecoder,
    Headers,
    Origin,
    RequestFraming,
    ResponseFraming,
    ResponseHead,
    find_head_end,
    parse_head,
    parse_url,
    request_head,
    request_target,
    response_framing,
)

logger = logging.getLogger("lowhaio")

# 1xx responses skipped before a final one: a few 103 Early Hints are normal, an endless stream
# of them is a server holding the request forever.
MAX_INTERIM_RESPONSES = 16

Chunk = bytes | bytearray | memoryview
BodyFactory = Callable[..., AsyncIterable[Chunk]]
Params = Iterable[tuple[str | bytes, str | bytes]]
RequestHeaders = Iterable[tuple[bytes, bytes]]
Response = tuple[bytes, Headers, "ResponseBody"]


async def empty_body() -> AsyncIterator[bytes]:
    """The default body factory: no body."""
    return
    yield b""  # pragma: no cover - makes this an async generator


_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


class Request(Protocol):
    """The signature of `request`, and of every wrapper that takes and returns one."""

    def __call__(
        self,
        method: bytes,
        url: str,
        params: Params = (),
        headers: RequestHeaders = (),
        body: BodyFactory = empty_body,
        body_args: tuple[Any, ...] = (),
        body_kwargs: Mapping[str, Any] = _NO_KWARGS,
    ) -> Awaitable[Response]: ...


Close = Callable[[], Awaitable[None]]


def default_ssl_context() -> ssl.SSLContext:
    """Certificates verified against the system's CAs, host names checked, ALPN `http/1.1`."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


async def system_resolve(host: str) -> list[str]:
    """The host's addresses from the system resolver (getaddrinfo), in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _translated(exc: Exception, sent: bool, origin: Origin) -> HttpError:
    """The one place where low-level exceptions become lowhaio's; `exc` becomes the cause."""
    cls: type[HttpError]
    if isinstance(exc, TimeoutError):
        cls = HttpDataTimeoutError if sent else HttpConnectTimeoutError
    elif not sent:
        if isinstance(exc, socket.gaierror):
            cls = HttpDnsError
        elif isinstance(exc, ssl.SSLError):
            cls = HttpTlsError
        else:
            cls = HttpConnectionError
    elif isinstance(exc, (ConnectionError, EOFError)):
        cls = HttpConnectionClosedError
    else:
        cls = HttpDataError
    return cls(f"{origin.scheme}://{origin.host}:{origin.port}: {type(exc).__name__}: {exc}")


def _pool_timed_out(waiter: asyncio.Future[Connection | None], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(HttpPoolTimeoutError(f"no connection was free within {timeout} s"))


class _PoolState:
    """Every mutable part of a pool, changed only through the methods below.

    A connection is counted in `total` and `opening` from the moment its slot is reserved (so
    limits hold while it connects) until it is closed.
    """

    def __init__(
        self,
        max_connections: int,
        max_connections_per_host: int,
        max_requests_per_connection: int | None,
        keep_alive_timeout: float,
    ) -> None:
        self.max_total = max_connections
        self.max_per_origin = max_connections_per_host
        self.max_requests = max_requests_per_connection
        self.keep_alive_timeout = keep_alive_timeout
        self.loop: asyncio.AbstractEventLoop | None = None  # taken at the first request

        self.connections: set[Connection] = set()  # every open connection, idle or in use
        self.idle: dict[Origin, list[Connection]] = {}  # reusable, most recently used last
        self.per_origin: dict[Origin, int] = {}  # connections open or opening, per origin
        self.total = 0  # connections open or opening
        self.waiters: deque[tuple[Origin, asyncio.Future[Connection | None]]] = deque()
        self.sweep: asyncio.TimerHandle | None = None  # closes idle connections as they expire
        self.closed = False

    # Acquiring ---------------------------------------------------------------------------------

    def take_idle(self, origin: Origin) -> Connection | None:
        """A live, unexpired idle connection to `origin`, if there is one."""
        idle = self.idle.get(origin)
        while idle:
            conn = idle.pop()
            if not idle:
                del self.idle[origin]
            conn.on_idle_event = None
            if conn.expires_at > conn.loop.time():
                return conn
            self._forget(conn)
            idle = self.idle.get(origin)
        return None

    def reserve(self, origin: Origin) -> bool:
        """Count a connection about to be opened to `origin`, if the limits allow one."""
        count = self.per_origin.get(origin, 0)
        if count >= self.max_per_origin:
            return False
        if self.total >= self.max_total:
            # At the limit: close the least recently used idle connection to another origin.
            oldest = min(
                (conns[0] for conns in self.idle.values()),
                key=lambda conn: conn.expires_at,
                default=None,
            )
            if oldest is None:
                return False
            self._forget(oldest)
        self.per_origin[origin] = count + 1
        self.total += 1
        return True

    async def wait_turn(self, origin: Origin, timeout: float) -> Connection | None:
        """Wait in FIFO order for an idle connection (returned) or a reserved slot (None)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Connection | None] = loop.create_future()
        self.waiters.append((origin, waiter))
        timer = loop.call_later(timeout, _pool_timed_out, waiter, timeout)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Granted just as this task was cancelled: pass it on.
                granted = waiter.result()
                if granted is None:
                    self.unreserve(origin)
                else:
                    self.release(granted, self.keep_alive_timeout)
            raise
        finally:
            timer.cancel()

    def grant(self) -> None:
        """Give waiters, oldest first, what has become free."""
        waiting: deque[tuple[Origin, asyncio.Future[Connection | None]]] = deque()
        for origin, waiter in self.waiters:
            if waiter.done():
                continue  # timed out or cancelled
            conn = self.take_idle(origin)
            if conn is not None:
                waiter.set_result(conn)
            elif self.reserve(origin):
                waiter.set_result(None)
            else:
                waiting.append((origin, waiter))
        self.waiters = waiting

    def opened(self, conn: Connection) -> None:
        self.loop = conn.loop
        self.connections.add(conn)

    def unreserve(self, origin: Origin) -> None:
        """Uncount a connection that failed to open."""
        self._uncount(origin)
        self.grant()

    # Releasing ---------------------------------------------------------------------------------

    def release(self, conn: Connection, keep_alive_timeout: float | None) -> None:
        """Return a connection whose exchange is complete: idle if reusable, else closed.
        `keep_alive_timeout` is None when the connection must not be reused."""
        if (
            keep_alive_timeout is None
            or self.closed
            or conn.eof
            or (self.max_requests is not None and conn.requests >= self.max_requests)
        ):
            self.discard(conn)
            return
        conn.expires_at = conn.loop.time() + min(keep_alive_timeout, self.keep_alive_timeout)
        conn.on_idle_event = self.discard
        self.idle.setdefault(conn.origin, []).append(conn)
        if self.sweep is None or conn.expires_at < self.sweep.when():
            if self.sweep is not None:
                self.sweep.cancel()
            self.sweep = conn.loop.call_at(conn.expires_at, self._sweep)
        if self.waiters:
            self.grant()

    def discard(self, conn: Connection) -> None:
        """Close a connection, forget it, and give its slot to a waiter."""
        if self._forget(conn) and self.waiters:
            self.grant()

    def _forget(self, conn: Connection) -> bool:
        """Close a connection and forget it; whether it was still counted. Never grants, so
        that `grant` (through `take_idle` and `reserve`) is never re-entered."""
        conn.close()
        if conn not in self.connections:
            return False
        self.connections.remove(conn)
        if conn.on_idle_event is not None:
            conn.on_idle_event = None
            idle = self.idle[conn.origin]
            idle.remove(conn)
            if not idle:
                del self.idle[conn.origin]
        self._uncount(conn.origin)
        return True

    def _uncount(self, origin: Origin) -> None:
        self.total -= 1
        count = self.per_origin[origin] - 1
        if count:
            self.per_origin[origin] = count
        else:
            del self.per_origin[origin]

    def _sweep(self) -> None:
        """Close the idle connections that have expired; run again at the next expiry."""
        assert self.loop is not None
        self.sweep = None
        now = self.loop.time()
        next_expiry = None
        for conns in list(self.idle.values()):
            for conn in list(conns):
                if conn.expires_at <= now:
                    self.discard(conn)
                elif next_expiry is None or conn.expires_at < next_expiry:
                    next_expiry = conn.expires_at
        if next_expiry is not None:
            self.sweep = self.loop.call_at(next_expiry, self._sweep)

    async def close(self) -> None:
        self.closed = True
        if self.sweep is not None:
            self.sweep.cancel()
            self.sweep = None
        for _, waiter in self.waiters:
            if not waiter.done():
                waiter.set_exception(HttpPoolClosedError("the pool was closed"))
        self.waiters.clear()
        conns = list(self.connections)
        for conn in conns:
            self.discard(conn)
        for conn in conns:
            await conn.wait_closed()


class ResponseBody:
    """The response body, an async iterator of `bytes`.

    Read to its end, it returns its connection to the pool; abandoned (`aclose()`, a `break`,
    cancellation, garbage collection), it closes the connection. After a chunked body,
    `trailers` holds the trailer fields as `(lowercased name, value)` pairs.
    """

    __slots__ = ("_chunk", "_conn", "_decoder", "_keep_alive", "_remaining", "_state", "_timeout")

    def __init__(
        self,
        conn: Connection | None,
        state: _PoolState,
        framing: ResponseFraming,
        keep_alive: float | None,
        timeout: float,
        chunk: bytes,
        decoder: ChunkedDecoder | None,
    ) -> None:
        self._conn = conn
        self._state = state
        self._remaining = framing.length
        self._decoder = decoder
        self._keep_alive = keep_alive
        self._timeout = timeout
        self._chunk = chunk  # the whole body, when it was already read with the head

    @property
    def trailers(self) -> Headers:
        return () if self._decoder is None else self._decoder.trailers

    def __aiter__(self) -> ResponseBody:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        if conn is None:
            chunk = self._chunk
            if not chunk:
                raise StopAsyncIteration
            self._chunk = b""
            return chunk
        try:
            if self._decoder is not None:
                chunk = await self._next_chunked(conn, self._decoder)
            elif self._remaining is not None:
                chunk = await self._next_sized(conn, self._remaining)
            else:
                chunk = await self._next_until_close(conn)
        except BaseException as exc:
            self._abandon()
            if isinstance(exc, Exception) and not isinstance(exc, HttpError):
                raise _translated(exc, True, conn.origin) from exc
            raise
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def _next_sized(self, conn: Connection, remaining: int) -> bytes:
        while conn.start == conn.end:
            if conn.eof:
                raise HttpConnectionClosedError(
                    f"connection closed with {remaining} bytes of the body unread"
                ) from conn.lost_error
            await conn.read_more(self._timeout)
        chunk = conn.take(remaining)
        self._remaining = remaining = remaining - len(chunk)
        if not remaining:
            self._finish(conn)
        return chunk

    async def _next_chunked(self, conn: Connection, decoder: ChunkedDecoder) -> bytes:
        while True:
            # All the payload already buffered, joined: one copy and one iteration per read
            # rather than per chunk (servers often send chunks of a few KiB).
            pieces = []
            start, end = decoder.read(conn.buf, conn.start, conn.end)
            while start != end:
                pieces.append(conn.view[start:end])
                start, end = decoder.read(conn.buf, end, conn.end)
            conn.consume(end)
            if decoder.done:
                self._finish(conn)
            if pieces:
                return b"".join(pieces)
            if decoder.done:
                return b""
            if conn.eof:
                raise HttpConnectionClosedError(
                    "connection closed inside the chunked body"
                ) from conn.lost_error
            await conn.read_more(self._timeout)

    async def _next_until_close(self, conn: Connection) -> bytes:
        while conn.start == conn.end:
            if conn.eof:
                if conn.lost_error is not None:
                    raise conn.lost_error  # a reset, not a close: the body may be cut short
                self._finish(conn)
                return b""
            await conn.read_more(self._timeout)
        return conn.take(conn.end - conn.start)

    def _finish(self, conn: Connection) -> None:
        self._conn = None
        # Bytes after the end of the response, unasked for, mean the connection is not reused.
        reusable = conn.start == conn.end
        self._state.release(conn, self._keep_alive if reusable else None)

    def _abandon(self) -> None:
        conn = self._conn
        if conn is not None:
            self._conn = None
            self._state.discard(conn)

    async def aclose(self) -> None:
        """Stop reading: the connection is closed unless the body was read to its end."""
        self._abandon()

    def __del__(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(RuntimeError):  # the event loop may already be closed
                self._abandon()


def _open_body(
    body: BodyFactory, body_args: tuple[Any, ...], body_kwargs: Mapping[str, Any]
) -> AsyncIterator[Chunk]:
    """Call the body factory (an exception it raises is the caller's, and propagates)."""
    if not callable(body):
        raise HttpInvalidRequestError(
            f"body must be a factory returning an async iterable, not {type(body).__name__}"
        )
    chunks = body(*body_args, **body_kwargs)
    if not isinstance(chunks, AsyncIterable):
        raise HttpInvalidRequestError(
            f"body factory must return an async iterable, not {type(chunks).__name__}"
        )
    return aiter(chunks)


async def _send_body(
    conn: Connection, chunks: AsyncIterator[Chunk], framing: RequestFraming, timeout: float
) -> Exception | None:
    """Stream the body; an exception the caller's factory raises is returned, not translated."""
    remaining = framing.length
    try:
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except Exception as exc:
                return exc
            if isinstance(chunk, memoryview):
                size = chunk.nbytes
            elif isinstance(chunk, (bytes, bytearray)):
                size = len(chunk)
            else:
                raise HttpInvalidRequestError(
                    f"body chunks must be bytes-like, not {type(chunk).__name__}"
                )
            if not size:
                continue  # an empty chunk is not an end: skipped
            if remaining is not None:
                remaining -= size
                if remaining < 0:
                    raise HttpInvalidRequestError("request body is longer than its content-length")
            elif not framing.chunked:
                raise HttpInvalidRequestError(
                    "request body given without content-length or transfer-encoding"
                )
            conn.write(chunk)
            await conn.drain(timeout)
        if remaining:
            raise HttpInvalidRequestError(
                f"request body is {remaining} bytes shorter than its content-length"
            )
        return None
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


async def _read_head(
    conn: Connection, timeout: float, max_head_bytes: int, max_headers: int
) -> ResponseHead:
    """Read a final response head, skipping interim 1xx responses (RFC 9110 15.2)."""
    for _ in range(MAX_INTERIM_RESPONSES + 1):
        searched = 0
        while (at := find_head_end(conn.buf, conn.start, conn.end, searched, max_head_bytes)) < 0:
            if conn.eof:
                raise HttpConnectionClosedError(
                    "connection closed before the response head was complete"
                    f" ({conn.end - conn.start} bytes of it received)"
                ) from conn.lost_error
            searched = conn.end - conn.start
            await conn.read_more(timeout)
        head = parse_head(bytes(conn.view[conn.start : at - 4]), max_headers)
        conn.consume(at)
        if head.status >= 200:
            return head
        if head.status == 101:
            raise HttpProtocolError("101 Switching Protocols, but no upgrade was asked for")
    raise HttpProtocolError(f"more than {MAX_INTERIM_RESPONSES} interim (1xx) responses")


def Pool(
    *,
    get_ssl_context: Callable[[], ssl.SSLContext] = default_ssl_context,
    resolve: Callable[[str], Awaitable[list[str]]] = system_resolve,
    connect_timeout: float = 10.0,
    read_timeout: float = 30.0,
    write_timeout: float = 30.0,
    pool_timeout: float = 10.0,
    keep_alive_timeout: float = 15.0,
    max_connections: int = 100,
    max_connections_per_host: int = 100,
    max_requests_per_connection: int | None = None,
    max_head_bytes: int = 64 * 1024,
    max_headers: int = 100,
    max_line_bytes: int = 8 * 1024,
    read_buffer_bytes: int = 256 * 1024,
) -> tuple[Request, Close]:
    """Create a connection pool; returns its `request` and `close` functions.

    Timeouts are in seconds. `read_timeout` and `write_timeout` are idle timeouts: they reset
    whenever bytes move. `keep_alive_timeout` is how long an idle connection is kept (shorter
    if the server's `Keep-Alive: timeout=` says so). `max_head_bytes` and `max_headers` bound
    a response head; `max_line_bytes` bounds a chunk-size or trailer line. `get_ssl_context`
    is called once, at the first https request; a custom context should set ALPN itself.
    `resolve(host)` returns the IP addresses to try, in order; IP literals skip it.
    May be called outside a running event loop.
    """
    state = _PoolState(
        max_connections, max_connections_per_host, max_requests_per_connection, keep_alive_timeout
    )
    ssl_context: ssl.SSLContext | None = None

    async def connect(origin: Origin) -> Connection:
        nonlocal ssl_context
        loop = asyncio.get_running_loop()
        context = None
        if origin.scheme == "https":
            context = ssl_context = ssl_context or get_ssl_context()
        try:
            async with asyncio.timeout(connect_timeout):
                addresses = [origin.host] if _is_ip(origin.host) else await resolve(origin.host)
                if not addresses:
                    raise HttpDnsError(f"{origin.host} resolved to no address")
                for address in addresses:
                    try:
                        transport, conn = await loop.create_connection(
                            lambda: Connection(loop, origin, read_buffer_bytes),
                            address,
                            origin.port,
                            ssl=context,
                            server_hostname=origin.host if context else None,
                        )
                        break
                    except OSError as exc:
                        error = exc  # try the next address
                else:
                    raise error  # every address failed: the last error says why
            if context is not None:
                alpn = transport.get_extra_info("ssl_object").selected_alpn_protocol()
                if alpn not in (None, "http/1.1"):
                    conn.close()
                    raise HttpTlsError(f"server chose ALPN protocol {alpn!r}, not http/1.1")
        except HttpError:
            raise
        except Exception as exc:
            raise _translated(exc, False, origin) from exc
        logger.debug("connection opened to %s:%s (%s)", origin.host, origin.port, address)
        return conn

    async def acquire(origin: Origin) -> Connection:
        if state.closed:
            raise HttpPoolClosedError("the pool was closed")
        conn = state.take_idle(origin)
        if conn is not None:
            return conn
        if not state.reserve(origin):
            conn = await state.wait_turn(origin, pool_timeout)
            if conn is not None:
                return conn
        try:
            conn = await connect(origin)
        except BaseException:
            state.unreserve(origin)
            raise
        state.opened(conn)
        if state.closed:  # close() ran while this connection was being opened
            state.discard(conn)
            raise HttpPoolClosedError("the pool was closed")
        return conn

    async def request(
        method: bytes,
        url: str,
        params: Params = (),
        headers: RequestHeaders = (),
        body: BodyFactory = empty_body,
        body_args: tuple[Any, ...] = (),
        body_kwargs: Mapping[str, Any] = _NO_KWARGS,
    ) -> Response:
        target = parse_url(url)
        head, framing = request_head(
            method, request_target(target, params), target.host_header, headers
        )
        chunks = None
        if body is not empty_body or framing.length or framing.chunked:
            chunks = _open_body(body, body_args, body_kwargs)
        origin = target.origin
        conn = await acquire(origin)
        conn.requests += 1
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s://%s:%s%s",
                method.decode(),
                origin.scheme,
                origin.host,
                origin.port,
                target.path_query.split(b"?")[0].decode(),  # queries may hold secrets
            )
        sent = False
        caller_error = None
        try:
            conn.write(head)
            sent = True
            if chunks is not None:
                caller_error = await _send_body(conn, chunks, framing, write_timeout)
            if caller_error is None:
                response = await _read_head(conn, read_timeout, max_head_bytes, max_headers)
                response_frame = response_framing(response, method)
        except BaseException as exc:
            state.discard(conn)
            if isinstance(exc, Exception) and not isinstance(exc, HttpError):
                raise _translated(exc, sent, origin) from exc
            raise
        if caller_error is not None:
            state.discard(conn)
            raise caller_error

        keep_alive = None
        if response_frame.keep_alive and not framing.close:
            keep_alive = response_frame.keep_alive_timeout
            if keep_alive is None:
                keep_alive = keep_alive_timeout
        length = response_frame.length
        if length is not None and conn.end - conn.start >= length:
            # The whole body arrived with the head: release the connection now.
            chunk = conn.take(length)
            response_body = ResponseBody(
                None, state, response_frame, keep_alive, read_timeout, chunk, None
            )
            state.release(conn, keep_alive if conn.start == conn.end else None)
        else:
            decoder = (
                ChunkedDecoder(max_line_bytes, max_headers) if response_frame.chunked else None
            )
            response_body = ResponseBody(
                conn, state, response_frame, keep_alive, read_timeout, b"", decoder
            )
        return response.code, response.headers, response_body

    return request, state.close
