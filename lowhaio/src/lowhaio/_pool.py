"""`Pool`: requests sent over pooled connections, and their responses framed.

Strategy: `Pool(...)` returns `request` and `close` closures over one `PoolState` (the only home
of mutable pool state). A request runs entirely in its caller's task: it resolves the host, takes
an idle connection, or a free slot to open one, or waits its turn for either; it writes the head
and streams the body; it reads the response head and returns a `ResponseBody`. Low-level
exceptions are translated to lowhaio's in one place (`_exceptions.translated`), by whether any
byte of the request was sent; events go to the debug log and the plugins from one emit point
(`_trace.Tracer`).
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import ssl
import threading
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from ._connect import connect_first
from ._connection import Connection
from ._dns import DnsAnswers, DnsResolver, default_dns_resolver
from ._exceptions import (
    HttpError,
    HttpInvalidRequestError,
    HttpPoolClosedError,
    HttpProxyError,
    HttpProxyTimeoutError,
    HttpTimeoutError,
    HttpTlsError,
    request_error,
    translated,
)
from ._http11 import (
    Headers,
    Origin,
    RequestFraming,
    ResponseLimits,
    ResponseReader,
    parse_url,
    request_head,
    request_target,
)
from ._proxy import Proxy, Route, open_tunnel, parse_proxy, socks5_handshake
from ._response import (
    BodySettings,
    HeadLimits,
    ResponseBody,
    await_continue,
    early_response,
    read_head,
)
from ._state import Addresses, PoolState
from ._trace import Tracer

Chunk = bytes | bytearray | memoryview
BodyFactory = Callable[..., AsyncIterable[Chunk]]
Params = Iterable[tuple[str | bytes, str | bytes]]
RequestHeaders = Iterable[tuple[bytes, bytes]]
Response = tuple[bytes, Headers, ResponseBody]


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


def _proxy_chooser(proxy: str | ProxyChooser | None) -> ProxyChooser | None:
    """The pool's proxy for each origin: one for all (a URL, checked at once), or the caller's
    choice (`proxy_from_env()`'s, say), or none."""
    if not isinstance(proxy, str):
        return proxy
    parse_proxy(proxy)
    return lambda scheme, host, port: proxy


class PoolFunctions(NamedTuple):
    """What `Pool` returns: its `request` and `close`, as a pair or an async context manager."""

    request: Request
    close: Close

    async def __aenter__(self) -> Request:
        return self.request

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class _Lifetime:
    """Held by a pool's `request` and `close` only (never by its connections, which its event
    loop holds): when the caller has let go of both without `close()`, it says so, as an
    unclosed file does, and closes the connections that nothing else could close any more."""

    __slots__ = ("closed", "request_ids", "state")

    def __init__(self, state: PoolState) -> None:
        self.state = state
        self.request_ids = itertools.count(1)
        self.closed = False

    def __del__(self) -> None:
        if not self.closed and self.state.connections:
            warnings.warn(
                f"a lowhaio pool with {len(self.state.connections)} open connections was"
                " dropped without close(): await close() when done, or use async with Pool()",
                ResourceWarning,
                source=self,
                stacklevel=1,
            )
            self.state.drop()


def default_ssl_context() -> ssl.SSLContext:
    """Certificates verified against the system's CAs, host names checked, ALPN `http/1.1`."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


def target_of(url: str, params: Params = ()) -> tuple[bytes, bytes]:
    """The `host` header and the request target that `request` sends for `url` and `params`,
    byte for byte: what a signature over the request has to cover."""
    target = parse_url(url)
    return target.host_header, request_target(target, params)


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


ProxyChooser = Callable[[str, str, int], "str | None"]  # (scheme, host, port) -> proxy URL


class Prepared:
    """A request checked and serialised, before any connection is used: every
    `HttpInvalidRequestError` is raised here, before DNS or a connection. (A class whose
    constructor does the work: one call on the path of every request, not two.)"""

    __slots__ = (
        "chunks",
        "framing",
        "head",
        "key",
        "method",
        "proxy",
        "request_id",
        "target",
        "trace",
        "url",
    )

    def __init__(
        self,
        method: bytes,
        url: str,
        params: Params,
        headers: RequestHeaders,
        body: BodyFactory,
        body_args: tuple[Any, ...],
        body_kwargs: Mapping[str, Any],
        choose_proxy: ProxyChooser | None,
    ) -> None:
        self.request_id = 0  # the pool's number for it, and its tracer if tracing: set after
        self.trace: Tracer | None = None
        self.method = method
        self.url = url
        self.target = target = parse_url(url)
        origin = target.origin
        self.key: Origin | Route = origin  # where a pooled connection for it goes
        self.proxy: Proxy | None = None
        request_line_target = request_target(target, params)
        if choose_proxy is not None:
            chosen = choose_proxy(origin.scheme, origin.host, origin.port)
            if chosen is not None:
                self.proxy = proxy = parse_proxy(chosen)
                self.key = Route(origin, proxy)
                if origin.scheme == "http" and not proxy.socks:
                    # Forwarded, not tunnelled: the absolute URL goes to the proxy (RFC 9112
                    # 3.2.2), and its credentials with it; they would never reach the origin.
                    request_line_target = b"http://" + target.host_header + request_line_target
                    if proxy.user is not None:
                        credentials = (b"proxy-authorization", proxy.basic_authorization())
                        headers = (*headers, credentials)
        self.head, self.framing = request_head(
            method,
            request_line_target,
            target.host_header,
            headers,
            body=body is not empty_body,
        )
        self.chunks = None  # the body, opened; None for no body
        framing = self.framing
        if body is not empty_body or framing.length or framing.chunked:
            self.chunks = _open_body(body, body_args, body_kwargs)

    @property
    def forwarded(self) -> bool:
        """Whether an HTTP proxy forwards it (an http:// origin), rather than a tunnel."""
        proxy = self.proxy
        return proxy is not None and not proxy.socks and self.target.origin.scheme == "http"

    def locate(self, error: HttpError) -> None:
        """Say in `error` where this request went (see `HttpError`)."""
        error.located(self.method, self.target.safe_url(), str(self.target.origin))


class Sent(NamedTuple):
    """How sending a request ended, when the connection did not fail: the body sent, or a
    final response that came first (the body withheld or cut short), or the caller's body
    factory raising."""

    whole: bool  # every byte of the request reached the transport
    caller_error: Exception | None = None  # raised by the body factory: the caller's own


BODY_SENT = Sent(whole=True)
ANSWERED_EARLY = Sent(whole=False)
NOT_SENT = Sent(whole=False)  # until sending ends


def trace_head_sent(trace: Tracer, conn: Connection, prepared: Prepared) -> None:
    origin = prepared.target.origin
    trace.emit(
        "request_head_sent",
        request_id=conn.request_id,
        method=prepared.method,
        scheme=origin.scheme,
        host=origin.host,
        port=origin.port,
        path=prepared.target.path_query.partition(b"?")[0],
    )


async def _send(conn: Connection, chunk: Chunk, timeout: float, reader: ResponseReader) -> bool:
    """Write one chunk of the body and wait until the kernel has taken it, watching for a
    response meanwhile (RFC 9112 9.5): False if a final one that closes the connection came,
    or one followed by a reset (the server reads no more of the body). A final response that
    keeps the connection open is read after the whole body, as the server expects."""
    try:
        conn.write(chunk)
        while not await conn.drain(timeout):  # woken by response bytes
            if early_response(conn, reader) is not None:
                assert reader.framing is not None
                if not reader.framing.keep_alive:
                    return False
    except ConnectionError:
        if early_response(conn, reader) is not None:
            return False
        raise
    return True


async def _send_body(
    conn: Connection,
    chunks: AsyncIterator[Chunk],
    framing: RequestFraming,
    timeout: float,
    reader: ResponseReader,
    trace: Tracer | None,
) -> Sent:
    """Stream the body. An exception the caller's factory raises is returned in the result,
    for the caller to get back as it was, not translated."""
    remaining = framing.length
    sent = 0
    try:
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except Exception as exc:
                return Sent(whole=False, caller_error=exc)
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
            if not await _send(conn, chunk, timeout, reader):
                return ANSWERED_EARLY
            sent += size
        if remaining:
            raise HttpInvalidRequestError(
                f"request body is {remaining} bytes shorter than its content-length"
            )
        if trace is not None:
            trace.emit("request_body_sent", request_id=conn.request_id, size=sent)
        return BODY_SENT
    finally:
        await _close_body(chunks)


async def _close_body(chunks: AsyncIterator[Chunk]) -> None:
    """Let the caller's body generator run its `finally` (close its file) now, not at GC."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


def Pool(
    *,
    get_dns_resolver: Callable[[], DnsResolver] = default_dns_resolver,
    get_ssl_context: Callable[[], ssl.SSLContext] = default_ssl_context,
    plugins: Iterable[object] = (),
    connect_timeout: float = 10.0,
    read_timeout: float = 30.0,
    write_timeout: float = 30.0,
    pool_timeout: float | None = None,
    continue_timeout: float = 1.0,
    head_timeout: float = 60.0,
    keep_alive_timeout: float = 15.0,
    max_connections: int = 100,
    max_connections_per_host: int = 100,
    max_requests_per_connection: int | None = None,
    max_head_bytes: int = 64 * 1024,
    max_headers: int = 2000,
    max_line_bytes: int = 8 * 1024,
    read_buffer_bytes: int = 256 * 1024,
    proxy: str | ProxyChooser | None = None,
    unix_socket: str | None = None,
) -> PoolFunctions:
    """Create a connection pool; returns its `request` and `close` functions, which unpack
    (`request, close = Pool()`) or serve as an async context manager (`async with Pool() as
    request:` closes the pool at the end of the block).

    Timeouts are in seconds. `connect_timeout` bounds TCP and TLS (Happy Eyeballs tries each
    address of a name in turn within it); `read_timeout` and `write_timeout` are idle timeouts
    that reset whenever bytes move; `continue_timeout` is how long a request with `Expect:
    100-continue` waits for 100 before sending its body anyway; `pool_timeout` bounds the wait
    for a free connection (None: as long as it takes, first come first served); `head_timeout`
    bounds a whole response head however slowly it trickles in, and so the framing between
    chunks (size lines, trailers). `keep_alive_timeout` is how long an idle connection is kept
    (shorter if the server's `Keep-Alive: timeout=` says so). A bound on a whole request is
    the caller's: `async with asyncio.timeout(...)`.
    `max_head_bytes` and `max_headers` bound a response head (and the trailers);
    `max_line_bytes` a chunk-size or trailer line. `get_dns_resolver` is called once, at the
    first name to resolve, and returns aiodnsresolver's `(resolve, clear_cache)`; if `resolve`
    has a `names(host)` method, the names it lists are asked in turn (the default resolver's
    follow /etc/hosts and the search list of /etc/resolv.conf), else the host alone.
    `get_ssl_context` is called once, at the first https request (a custom context should set
    ALPN itself). `plugins` implement hooks from `lowhaio.hookspecs`. May be called outside a
    running event loop.
    `proxy` sends requests through a proxy: a URL (`http://`; `https://` for TLS to the proxy;
    `socks5://`, names resolved here; `socks5h://`, by the proxy; credentials as
    `user:password@`, sent to the proxy only), or a function of an origin's (scheme, host,
    port) that returns one or None, such as `proxy_from_env()`'s. Connections are pooled, and
    `max_connections_per_host` counted, per origin and proxy; `connect_timeout` bounds the
    proxy's part too (TCP, TLS, `CONNECT` or the SOCKS5 handshake). `unix_socket` sends every
    request to a Unix socket path instead: URLs still name the host, for `host` and TLS.
    """
    if proxy is not None and unix_socket is not None:
        raise ValueError("a pool goes through a proxy or to a Unix socket, not both")
    tracer = Tracer(plugins)
    head_limits = HeadLimits.of(head_timeout)
    response_limits = ResponseLimits(max_head_bytes, max_headers, max_line_bytes)
    state = PoolState(
        max_connections,
        max_connections_per_host,
        max_requests_per_connection,
        keep_alive_timeout,
        tracer,
    )
    lifetime = _Lifetime(state)  # held by `request` and `close`, and so by the caller
    choose_proxy = _proxy_chooser(proxy)
    body_settings = BodySettings(state, read_timeout, head_limits, response_limits)
    dns_resolver: DnsResolver | None = None
    addresses_of: DnsAnswers | None = None
    ssl_context: ssl.SSLContext | None = None

    async def resolve(
        host: str, request_id: int, trace: Tracer | None, loop: asyncio.AbstractEventLoop
    ) -> tuple[str, ...]:
        nonlocal dns_resolver, addresses_of
        if addresses_of is None:
            dns_resolver = get_dns_resolver()
            addresses_of = DnsAnswers(dns_resolver[0])
        addresses = await addresses_of(host, loop)
        if trace is not None:
            trace.emit("dns_resolved", request_id=request_id, host=host, addresses=addresses)
        return addresses

    async def connect(
        prepared: Prepared, addresses: Addresses, loop: asyncio.AbstractEventLoop
    ) -> Connection:
        """A new connection for `prepared`: to its origin, through its proxy, or to the pool's
        socket path, with TLS to the origin (and to an https:// proxy)."""
        origin, proxy, key = prepared.target.origin, prepared.proxy, prepared.key
        if proxy is None:
            conn = await open_to(origin, origin, key, addresses, loop, tls=origin.scheme)
            return checked_alpn(conn)
        try:
            conn = await open_to(proxy, origin, key, addresses, loop, tls=proxy.scheme)
        except HttpError as exc:
            cls = HttpProxyTimeoutError if isinstance(exc, HttpTimeoutError) else HttpProxyError
            cause = exc.__cause__ or exc  # what went wrong, without the proxy named twice
            reason = f"{type(cause).__name__}: {cause}"
            raise cls(f"the proxy could not be reached: {reason}", str(proxy)) from exc
        try:
            async with asyncio.timeout(connect_timeout):
                if proxy.socks:
                    address = None
                    if proxy.scheme == "socks5" and not prepared.target.is_ip:
                        # socks5://: the name is resolved here, and the proxy given an address.
                        address = (await resolve(origin.host, prepared.request_id, None, loop))[0]
                    await socks5_handshake(conn, origin, proxy, address, connect_timeout)
                elif origin.scheme == "https":
                    await open_tunnel(conn, origin, proxy, connect_timeout, response_limits)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, TimeoutError):
                raise HttpProxyTimeoutError(
                    f"no tunnel within connect_timeout={connect_timeout} s", str(proxy)
                ) from exc
            raise
        if origin.scheme == "https":
            await tls_to_origin(conn, origin)
        return conn

    def context() -> ssl.SSLContext:
        nonlocal ssl_context
        ssl_context = ssl_context or get_ssl_context()
        return ssl_context

    async def open_to(
        where: Origin | Proxy,
        origin: Origin,
        key: Origin | Route,
        addresses: Addresses,
        loop: asyncio.AbstractEventLoop,
        tls: str,
    ) -> Connection:
        """TCP (or the pool's Unix socket) to `where`, the origin or its proxy, and TLS if
        `tls` is https; errors name `where`."""
        tls_context = context() if tls == "https" else None
        hostname = where.host if tls_context else None
        via = str(where) if isinstance(where, Proxy) else None
        if unix_socket is not None:
            via = f"unix:{unix_socket}"
        try:
            async with asyncio.timeout(connect_timeout):
                if unix_socket is None:
                    sock = await connect_first(loop, addresses or (where.host,), where.port)
                    address = sock.getpeername()[0]
                else:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.setblocking(False)
                    address = unix_socket
                try:
                    factory = lambda: Connection(  # noqa: E731
                        loop, origin, sock, address, read_buffer_bytes, state.idle_event, key, via
                    )
                    if unix_socket is None:
                        _, conn = await loop.create_connection(
                            factory, sock=sock, ssl=tls_context, server_hostname=hostname
                        )
                    else:
                        await loop.sock_connect(sock, unix_socket)
                        _, conn = await loop.create_unix_connection(
                            factory, sock=sock, ssl=tls_context, server_hostname=hostname
                        )
                except BaseException:
                    sock.close()
                    raise
        except Exception as exc:
            raise translated(exc, False, via or str(where)) from exc
        return conn

    async def tls_to_origin(conn: Connection, origin: Origin) -> None:
        """TLS with the origin at the end of a proxy's tunnel; its certificate is the origin's,
        checked against the origin's name, never the proxy's."""
        try:
            async with asyncio.timeout(connect_timeout):
                await conn.start_tls(context(), origin.host)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, Exception) and not isinstance(exc, HttpError):
                raise translated(exc, False, str(origin)) from exc
            raise
        checked_alpn(conn)

    def checked_alpn(conn: Connection) -> Connection:
        """`conn`, if its TLS (to the origin: over a tunnel, the inner one) chose HTTP/1.1."""
        ssl_object = conn.transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            alpn = ssl_object.selected_alpn_protocol()
            if alpn not in (None, "http/1.1"):
                conn.close()
                raise HttpTlsError(f"server chose ALPN protocol {alpn!r}, not http/1.1")
        return conn

    async def acquire(prepared: Prepared, request_id: int, trace: Tracer | None) -> Connection:
        if state.closed:
            raise HttpPoolClosedError("the pool was closed")
        loop = state.loop
        # The pool's loop, running in this thread, is the running loop (one runs per thread):
        # known without asyncio.get_running_loop(), a getpid() system call on Python 3.11.
        if loop is None or state.thread != threading.get_ident() or not loop.is_running():
            loop = asyncio.get_running_loop()
            state.move_to(loop)
        target, proxy, key = prepared.target, prepared.proxy, prepared.key
        # The addresses a pooled connection must still be among: the proxy's, if there is one
        # (a name sent to a proxy is not resolved here); none for a socket path or an IP.
        addresses = None
        if unix_socket is None:
            if proxy is not None:
                if not proxy.is_ip:
                    addresses = await resolve(proxy.host, request_id, trace, loop)
            elif not target.is_ip:
                addresses = await resolve(target.origin.host, request_id, trace, loop)
        conn = state.take_idle(key, addresses)
        event = "connection_reused"
        if conn is None and not state.reserve(key):
            conn = await state.wait_turn(key, addresses, pool_timeout)
        if conn is None:
            event = "connection_opened"
            try:
                conn = await connect(prepared, addresses, loop)
            except BaseException:
                state.unreserve(key)
                raise
            state.opened(conn)
            if state.closed:  # close() ran while this connection was being opened
                state.discard(conn, "pool closed")
                raise HttpPoolClosedError("the pool was closed")
        state.assign(conn, request_id)
        if trace is not None:
            origin = target.origin
            trace.emit(
                event,
                request_id=request_id,
                scheme=origin.scheme,
                host=origin.host,
                port=origin.port,
                address=conn.address,
                via=conn.via,
            )
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
        """Send `method` to `url` (with `params` added to its query, and `headers`), the body
        from `body(*body_args, **body_kwargs)`, an async iterable of bytes-like chunks, framed
        by a content-length or transfer-encoding header the caller gives; return the status
        code, the response's header fields (lowercased names) and its body, to read to the end
        or `aclose()`. Raises `HttpError`s: their classes say whether a retry is safe."""
        request_id = next(lifetime.request_ids)
        trace = tracer if tracer.active() else None
        prepared = None
        try:
            prepared = Prepared(
                method, url, params, headers, body, body_args, body_kwargs, choose_proxy
            )
            prepared.request_id, prepared.trace = request_id, trace
            conn = await acquire(prepared, request_id, trace)
            return await exchange(conn, prepared, request_id, trace)
        except BaseException as exc:
            if prepared is not None and isinstance(exc, HttpError):
                prepared.locate(exc)
            if trace is not None:
                trace.emit("request_failed", request_id=request_id, error=exc)
            raise

    async def exchange(
        conn: Connection, prepared: Prepared, request_id: int, trace: Tracer | None
    ) -> Response:
        """Send the request on `conn` and read the response head; the connection goes to the
        `ResponseBody`, or is closed if anything fails."""
        reused, writes_before, received_before = conn.requests > 1, conn.writes, conn.received
        sent = NOT_SENT
        try:
            # The head goes out first: the server works on it while this task does the rest.
            conn.write(prepared.head)
            reader = ResponseReader(prepared.method, response_limits)
            if trace is not None:
                trace_head_sent(trace, conn, prepared)
            if prepared.chunks is not None:
                sent = await send_body(conn, prepared.chunks, prepared.framing, reader, trace)
            else:
                sent = BODY_SENT
            if sent.caller_error is None:
                head = await read_head(conn, reader, read_timeout, head_limits)
        except BaseException as exc:
            state.discard(conn, "error")
            if not isinstance(exc, Exception):
                raise
            error = request_error(
                exc,
                str(prepared.target.origin),
                sent=conn.writes > writes_before,
                whole=sent.whole,
                reused=reused,
                answered=conn.received > received_before,
            )
            try:
                if error is not exc:
                    raise error from exc
                raise
            finally:
                # Not kept in this frame, which the error's traceback holds: that cycle would
                # keep the frame's response and connection until the garbage collector ran.
                del error
        if sent.caller_error is not None:
            state.discard(conn, "error")
            raise sent.caller_error
        if head.status == 407 and prepared.forwarded:
            # The proxy's own answer, never an origin's: the request went no further.
            state.discard(conn, "error")
            raise HttpProxyError(
                "the proxy asks for credentials (407): give them in the proxy URL",
                str(prepared.proxy),
                head.code,
            )
        if trace is not None:
            trace.emit(
                "response_head_received",
                request_id=request_id,
                code=head.code,
                headers=head.headers,
            )
        return (
            head.code,
            head.headers,
            response_body(conn, prepared, reader, sent),
        )

    async def send_body(
        conn: Connection,
        chunks: AsyncIterator[Chunk],
        framing: RequestFraming,
        reader: ResponseReader,
        trace: Tracer | None,
    ) -> Sent:
        """Stream the body, unless an `expect: 100-continue` is answered first."""
        if framing.expect_continue and await await_continue(
            conn, reader, continue_timeout, head_limits
        ):
            await _close_body(chunks)
            return Sent(whole=framing.length == 0)  # answered first: the body is withheld
        return await _send_body(conn, chunks, framing, write_timeout, reader, trace)

    def response_body(
        conn: Connection, prepared: Prepared, reader: ResponseReader, sent: Sent
    ) -> ResponseBody:
        """The body of the response, reading from `conn`; with how long the connection may
        idle after it, or None if it must be closed."""
        framing = reader.framing
        assert framing is not None
        keep_alive = None
        # A withheld body leaves the server unsure where the next request would start.
        if framing.keep_alive and not prepared.framing.close and sent.whole:
            keep_alive = framing.keep_alive_timeout
            if keep_alive is None:
                keep_alive = keep_alive_timeout
        return ResponseBody(
            settings=body_settings,
            request=prepared,
            conn=conn,
            framing=framing,
            keep_alive=keep_alive,
        )

    async def close() -> None:
        """Close every connection, idle or in use (their bodies then fail), fail the requests
        waiting for one, and release the DNS resolver; later requests raise
        `HttpPoolClosedError`."""
        lifetime.closed = True
        await state.close()
        if dns_resolver is not None:
            await dns_resolver[1]()

    return PoolFunctions(request, close)
