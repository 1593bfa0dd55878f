"""Reading responses: heads (interim ones skipped, or awaited for `Expect: 100-continue`) and
`ResponseBody`, which hands its connection back to the pool when read to its end."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, NamedTuple

from ._connection import Connection
from ._exceptions import (
    HttpConnectionClosedError,
    HttpDataTimeoutError,
    HttpError,
    HttpProtocolError,
    translated,
)
from ._http11 import ChunkedDecoder, Headers, ResponseHead, find_head_end, parse_head

if TYPE_CHECKING:
    from ._state import PoolState
    from ._trace import Tracer

# 1xx responses skipped before a final one: a few 103 Early Hints are normal, an endless stream
# of them is a server holding the request forever.
MAX_INTERIM_RESPONSES = 16


class HeadLimits(NamedTuple):
    """How large a response head may be, and how long it may take."""

    head_timeout: float  # seconds for a whole head, however slowly it trickles in
    max_bytes: int
    max_headers: int
    late: str = ""  # the error's message when a head takes longer than head_timeout
    late_line: str = ""  # ... and when a chunk-size line or the trailers do

    @classmethod
    def of(cls, head_timeout: float, max_bytes: int, max_headers: int) -> HeadLimits:
        late = f"the response head was not complete within {head_timeout} s"
        late_line = f"a chunk-size line or the trailers were not complete within {head_timeout} s"
        return cls(head_timeout, max_bytes, max_headers, late, late_line)


async def _next_head(conn: Connection, timeout: float, limits: HeadLimits) -> ResponseHead:
    """Read one response head, interim or final: each read within `timeout` seconds of the
    last, the whole within `limits.head_timeout` (a server sending a byte at a time is
    bounded too)."""
    deadline = conn.loop.time() + limits.head_timeout
    searched = 0
    while (at := find_head_end(conn.buf, conn.start, conn.end, searched, limits.max_bytes)) < 0:
        if conn.eof:
            raise HttpConnectionClosedError(
                "connection closed before the response head was complete"
                f" ({conn.end - conn.start} bytes of it received)"
            ) from conn.lost_error
        searched = conn.end - conn.start
        remaining = max(deadline - conn.loop.time(), 0.0)
        await conn.read_more(min(timeout, remaining), limits.late if remaining < timeout else None)
    head = parse_head(bytes(conn.view[conn.start : at - 4]), limits.max_headers)
    conn.consume(at)
    if head.status == 101:
        raise HttpProtocolError("101 Switching Protocols, but no upgrade was asked for")
    return head


async def read_head(conn: Connection, timeout: float, limits: HeadLimits) -> ResponseHead:
    """Read the final response head, skipping interim 1xx responses (RFC 9110 15.2)."""
    for _ in range(MAX_INTERIM_RESPONSES + 1):
        head = await _next_head(conn, timeout, limits)
        if head.status >= 200:
            return head
    raise HttpProtocolError(f"more than {MAX_INTERIM_RESPONSES} interim (1xx) responses")


async def await_continue(
    conn: Connection, timeout: float, limits: HeadLimits
) -> ResponseHead | None:
    """After a head with `Expect: 100-continue`, wait up to `timeout` for 100 (Continue): None
    means send the body now; a final response that came first is returned instead, and the
    body is not sent (RFC 9110 10.1.1)."""
    for _ in range(MAX_INTERIM_RESPONSES + 1):
        try:
            head = await _next_head(conn, timeout, limits)
        except HttpDataTimeoutError:
            return None  # the server may not know 100-continue: send anyway
        if head.status == 100:
            return None
        if head.status >= 200:
            return head
    raise HttpProtocolError(f"more than {MAX_INTERIM_RESPONSES} interim (1xx) responses")


def early_response(conn: Connection, limits: HeadLimits) -> ResponseHead | None:
    """While the request body is still being sent: a complete final response head already
    buffered, or None. Interim (1xx) heads before it are consumed; the final one is not, so
    that `read_head` reads it again."""
    while (at := find_head_end(conn.buf, conn.start, conn.end, 0, limits.max_bytes)) >= 0:
        head = parse_head(bytes(conn.view[conn.start : at - 4]), limits.max_headers)
        if head.status >= 200 or head.status == 101:
            return head
        conn.consume(at)
    return None


class ResponseBody:
    """The response body, an async iterator of `bytes`.

    Read to its end, it returns its connection to the pool; abandoned (`aclose()`, a `break`,
    cancellation, garbage collection), it closes the connection. After a chunked body,
    `trailers` holds the trailer fields as `(lowercased name, value)` pairs. Framing between
    chunks (size lines, trailers) that trickles in without payload is bounded as a whole by
    `head_timeout`, as a head is.
    """

    __slots__ = (
        "_chunk",
        "_conn",
        "_decoder",
        "_keep_alive",
        "_limits",
        "_line_deadline",
        "_remaining",
        "_request_id",
        "_size",
        "_state",
        "_timeout",
        "_trace",
    )

    def __init__(
        self,
        conn: Connection | None,
        state: PoolState,
        length: int | None,
        decoder: ChunkedDecoder | None,
        keep_alive: float | None,
        timeout: float,
        limits: HeadLimits,
        chunk: bytes,
        trace: Tracer | None,
        request_id: int,
    ) -> None:
        self._conn = conn
        self._state = state
        self._remaining = length  # of a content-length body; None if chunked or until close
        self._decoder = decoder
        self._keep_alive = keep_alive  # seconds the connection may idle after; None: close it
        self._timeout = timeout
        self._limits = limits
        self._line_deadline: float | None = None  # while waiting on framing, not payload
        self._chunk = chunk  # the whole body, when it was already read with the head
        self._trace = trace
        self._request_id = request_id
        self._size = len(chunk)

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
            self._abandon("error")
            if self._trace is not None:
                self._trace.emit("request_failed", request_id=self._request_id, error=exc)
            if isinstance(exc, Exception) and not isinstance(exc, HttpError):
                raise translated(exc, True, str(conn.origin)) from exc
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
        self._size += len(chunk)
        if not remaining:
            self.finish(conn)
        return chunk

    async def _next_chunked(self, conn: Connection, decoder: ChunkedDecoder) -> bytes:
        while True:
            # All the payload already buffered, joined: one copy and one iteration per read
            # rather than per chunk (servers often send chunks of a few KiB).
            pieces = []
            start, end, consumed = decoder.read(conn.buf, conn.start, conn.end)
            while start != end:
                pieces.append(conn.view[start:end])
                self._size += end - start
                start, end, consumed = decoder.read(conn.buf, consumed, conn.end)
            conn.consume(consumed)
            if decoder.done:
                self.finish(conn)
            if pieces:
                self._line_deadline = None
                return b"".join(pieces)
            if decoder.done:
                return b""
            if conn.eof:
                raise HttpConnectionClosedError(
                    "connection closed inside the chunked body"
                ) from conn.lost_error
            if not decoder.framing:
                await conn.read_more(self._timeout)
                continue
            # A size line or trailers trickled a byte at a time: bounded as a whole.
            now = conn.loop.time()
            if self._line_deadline is None:
                self._line_deadline = now + self._limits.head_timeout
            remaining = max(self._line_deadline - now, 0.0)
            late = self._limits.late_line if remaining < self._timeout else None
            await conn.read_more(min(self._timeout, remaining), late)

    async def _next_until_close(self, conn: Connection) -> bytes:
        while conn.start == conn.end:
            if conn.eof:
                if conn.lost_error is not None:
                    raise conn.lost_error  # a reset, not a close: the body may be cut short
                self.finish(conn)
                return b""
            await conn.read_more(self._timeout)
        self._size += conn.end - conn.start
        return conn.take(conn.end - conn.start)

    def finish(self, conn: Connection) -> None:
        """Hand `conn` back to the pool: the whole body has been read from it."""
        self._conn = None
        if self._trace is not None:
            self._trace.emit(
                "response_body_received",
                request_id=self._request_id,
                size=self._size,
                trailers=self.trailers,
            )
        # Bytes after the end of the response, unasked for, mean the connection is not reused.
        reusable = conn.start == conn.end
        self._state.release(conn, self._keep_alive if reusable else None)

    def _abandon(self, reason: str) -> None:
        conn = self._conn
        if conn is not None:
            self._conn = None
            self._state.discard(conn, reason)

    async def aclose(self) -> None:
        """Stop reading: the connection is closed unless the body was read to its end."""
        self._abandon("body abandoned")

    def __del__(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(RuntimeError):  # the event loop may already be closed
                self._abandon("body abandoned")
