"""Reading responses from a connection: the small loop around `_http11.ResponseReader` that
waits for more bytes and keeps the deadlines, and `ResponseBody`, which hands its connection
back to the pool when read to its end."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from typing import TYPE_CHECKING, NamedTuple

from ._connection import Connection
from ._exceptions import HttpConnectionClosedError, HttpDataTimeoutError, HttpError, translated
from ._http11 import (
    BodyReader,
    Headers,
    ResponseFraming,
    ResponseHead,
    ResponseLimits,
    ResponseReader,
    SizedBody,
    body_reader,
)

if TYPE_CHECKING:
    from ._pool import Prepared
    from ._state import PoolState


class HeadLimits(NamedTuple):
    """How long a response head, or the framing between chunks, may take as a whole."""

    head_timeout: float  # seconds for a whole head, however slowly it trickles in
    late: str = ""  # the error's message when a head takes longer than head_timeout
    late_line: str = ""  # ... and when a chunk-size line or the trailers do

    @classmethod
    def of(cls, head_timeout: float) -> HeadLimits:
        late = f"the response head was not complete within {head_timeout} s"
        late_line = f"a chunk-size line or the trailers were not complete within {head_timeout} s"
        return cls(head_timeout, late, late_line)


async def _next_head(
    conn: Connection, reader: ResponseReader, timeout: float, limits: HeadLimits
) -> ResponseHead:
    """Read one response head, interim or final: each read within `timeout` seconds of the
    last, the whole within `limits.head_timeout` (a server sending a byte at a time is
    bounded too)."""
    deadline = None  # set at the first wait: the clock is read once per wait, no more
    while True:
        # Asked even when nothing is buffered yet, the usual case of the first pass. Skipping
        # it saves 1 us of CPU but cost sequential requests on loopback 10% (our server and
        # nginx alike): the answer comes within microseconds, and a client that reaches the
        # loop's wait sooner sleeps more often (0.5 -> 0.9 context switches per request).
        head, consumed = reader.next_head(conn.buf, conn.start, conn.end)
        if head is not None:
            conn.consume(consumed)
            return head
        if conn.eof:
            raise reader.closed(conn.end - conn.start) from conn.lost_error
        now = conn.loop.time()
        if deadline is None:
            deadline = now + limits.head_timeout
        remaining = max(deadline - now, 0.0)
        late = limits.late if remaining < timeout else None
        await conn.read_more(min(timeout, remaining), late, now=now)


async def read_head(
    conn: Connection, reader: ResponseReader, timeout: float, limits: HeadLimits
) -> ResponseHead:
    """The final response head (interim 1xx ones skipped, RFC 9110 15.2), or the one that
    `early_response` already read."""
    head = reader.head
    while head is None:
        head = await _next_head(conn, reader, timeout, limits)
        if head.status < 200:
            head = None
    return head


async def await_continue(
    conn: Connection, reader: ResponseReader, timeout: float, limits: HeadLimits
) -> bool:
    """After a head with `Expect: 100-continue`, wait up to `timeout` for 100 (Continue): False
    means send the body now; True, that a final response came first, and the body is not sent
    (RFC 9110 10.1.1)."""
    while True:
        try:
            head = await _next_head(conn, reader, timeout, limits)
        except HttpDataTimeoutError:
            return False  # the server may not know 100-continue: send anyway
        if head.status == 100:
            return False
        if head.status >= 200:
            return True


def early_response(conn: Connection, reader: ResponseReader) -> ResponseHead | None:
    """While the request body is still being sent: the final response head, if it has come
    (interim heads before it are read and skipped), or None. `read_head` then returns it."""
    while reader.head is None:
        head, consumed = reader.next_head(conn.buf, conn.start, conn.end)
        if head is None:
            break
        conn.consume(consumed)
    return reader.head


def _take_payload(conn: Connection, body: BodyReader) -> bytes:
    """All the payload already buffered, joined: one copy and one iteration per read rather
    than per chunk (servers often send chunks of a few KiB)."""
    buf, view, end = conn.buf, conn.view, conn.end
    a, b, consumed = body.read(buf, conn.start, end)
    if a == b:
        conn.consume(consumed)
        return b""
    c, d, consumed = body.read(buf, consumed, end)
    if c == d:  # one span, as a sized body always is: one copy, no join
        chunk = bytes(view[a:b])
    else:
        pieces = [view[a:b]]
        while c != d:
            pieces.append(view[c:d])
            c, d, consumed = body.read(buf, consumed, end)
        chunk = b"".join(pieces)
    conn.consume(consumed)
    return chunk


_WHOLE = SizedBody(0)  # the body reader of a body read whole with its head


class BodySettings(NamedTuple):
    """What every response body of a pool shares: made once, with the pool."""

    state: PoolState
    timeout: float  # read_timeout
    head_limits: HeadLimits
    limits: ResponseLimits


class ResponseBody:
    """The response body, an async iterator of `bytes`.

    Read to its end, it returns its connection to the pool; abandoned (`aclose()`, a `break`,
    cancellation, garbage collection), it closes the connection. After a chunked body,
    `trailers` holds the trailer fields as `(lowercased name, value)` pairs. `url` is the URL
    the response answers, and `history` the redirects followed to reach it (see
    `lowhaio_redirect`). Framing between
    chunks (size lines, trailers) that trickles in without payload is bounded as a whole by
    `head_timeout`, as a head is.
    """

    __slots__ = (
        "_abandoned",
        "_body",
        "_chunk",
        "_conn",
        "_keep_alive",
        "_line_deadline",
        "_request",
        "_settings",
        "_size",
        "history",
        "url",
    )

    def __init__(
        self,
        *,
        settings: BodySettings,
        request: Prepared,
        conn: Connection,
        framing: ResponseFraming,
        keep_alive: float | None,
    ) -> None:
        self.url = request.url  # the URL this response answers
        self._request = request  # for errors, which say where it went, and for tracing
        # The redirects followed to reach it, oldest first, as (status code, URL that answered
        # with it): set by a wrapper that follows redirects, empty otherwise.
        self.history: tuple[tuple[bytes, str], ...] = ()
        self._settings = settings
        self._keep_alive = keep_alive  # seconds the connection may idle after; None: close it
        self._line_deadline: float | None = None  # while waiting on framing, not payload
        self._abandoned: str | None = None  # why the body was closed before its end
        length = framing.length
        start = conn.start
        if length is not None and conn.end - start >= length:
            # The whole body came with its head (small responses do): taken now, and the
            # connection goes back to the pool at once. The hot path of small requests: no
            # body reader is made (`_WHOLE` stands for it), and one copy is all it costs.
            self._chunk = bytes(conn.view[start : start + length])
            conn.consume(start + length)
            self._size = length
            self._body: BodyReader = _WHOLE
            self._finish(conn)
            return
        self._conn: Connection | None = conn  # None once the body is read or abandoned
        self._body = body_reader(framing, settings.limits)
        self._chunk = b""
        self._size = 0

    @property
    def trailers(self) -> Headers:
        return self._body.trailers

    def __aiter__(self) -> ResponseBody | _Iteration:
        # A body read whole already (a small one, with its head) has no connection to release
        # early: iterated as it is, which costs no object on the path of every small request.
        return self if self._conn is None else _Iteration(self)

    async def __aenter__(self) -> ResponseBody:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def __anext__(self) -> bytes:
        chunk = self._chunk
        if chunk:
            self._chunk = b""
            return chunk
        conn = self._conn
        if conn is None:
            if self._abandoned is not None:  # after a `break`, `aclose()` or an error
                raise self._closed_early()
            raise StopAsyncIteration
        try:
            chunk = await self._next(conn, self._body)
        except BaseException as exc:
            self._abandon("error")
            error = exc
            if isinstance(exc, Exception) and not isinstance(exc, HttpError):
                error = translated(exc, True, str(conn.origin))
            if isinstance(error, HttpError):
                self._request.locate(error)
            trace = self._request.trace
            if trace is not None:
                trace.emit("request_failed", request_id=self._request.request_id, error=error)
            try:
                if error is not exc:
                    raise error from exc
                raise
            finally:
                del error  # not kept in this frame: see _pool.exchange
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def _next(self, conn: Connection, body: BodyReader) -> bytes:
        """The next payload, waiting for it if none is buffered; b"" at the end."""
        while True:
            chunk = _take_payload(conn, body)
            self._size += len(chunk)
            if body.done:
                self._finish(conn)
                return chunk
            if chunk:
                self._line_deadline = None
                return chunk
            if conn.eof:
                error = body.closed()
                if error is not None:
                    try:
                        raise error from conn.lost_error
                    finally:
                        del error  # not kept in this frame: see _pool.exchange
                if conn.lost_error is not None:
                    raise conn.lost_error  # a reset, not a close: the body may be cut short
                self._finish(conn)
                return b""
            timeout = self._settings.timeout
            if not body.framing:
                await conn.read_more(timeout)
                continue
            # A size line or trailers trickled a byte at a time: bounded as a whole.
            now = conn.loop.time()
            limits = self._settings.head_limits
            if self._line_deadline is None:
                self._line_deadline = now + limits.head_timeout
            remaining = max(self._line_deadline - now, 0.0)
            late = limits.late_line if remaining < timeout else None
            await conn.read_more(min(timeout, remaining), late, now=now)

    def _closed_early(self) -> HttpConnectionClosedError:
        """The error of a read after the body was left before its end: not an end, or it
        would look like a body cut short silently."""
        closed = HttpConnectionClosedError(
            f"the body was closed before its end ({self._abandoned}): its connection is closed"
        )
        self._request.locate(closed)
        return closed

    def _finish(self, conn: Connection) -> None:
        """Hand `conn` back to the pool: the whole body has been read from it."""
        self._conn = None
        trace = self._request.trace
        if trace is not None:
            trace.emit(
                "response_body_received",
                request_id=self._request.request_id,
                size=self._size,
                trailers=self.trailers,
            )
        # Bytes after the end of the response, unasked for, mean the connection is not reused.
        reusable = conn.start == conn.end
        self._settings.state.release(conn, self._keep_alive if reusable else None)

    def _abandon(self, reason: str) -> None:
        conn = self._conn
        if conn is not None:
            self._conn = None
            self._abandoned = reason
            self._settings.state.discard(conn, reason)

    async def aclose(self) -> None:
        """Stop reading: the connection is closed unless the body was read to its end."""
        self._abandon("body abandoned")

    def __del__(self) -> None:
        if self._conn is not None:
            self._dropped()

    def _dropped(self) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop may already be closed
            self._abandon("body abandoned")


class _Iteration:
    """One `async for` over a body. The loop holds it, and lets go of it when it ends: at
    once, by reference counting, after a `break` or an exception, which then closes the
    connection of a body not read to its end (the caller may still hold the body itself)."""

    __slots__ = ("_body",)

    def __init__(self, body: ResponseBody) -> None:
        self._body = body

    def __aiter__(self) -> _Iteration:
        return self

    def __anext__(self) -> Awaitable[bytes]:
        return self._body.__anext__()

    async def aclose(self) -> None:
        await self._body.aclose()

    def __del__(self) -> None:
        if self._body._conn is not None:
            self._body._dropped()
