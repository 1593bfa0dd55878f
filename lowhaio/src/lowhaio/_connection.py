"""One connection: a `BufferedProtocol` whose buffer the HTTP parsers read in place.

Strategy: the event loop `recv_into`s a preallocated buffer; the request's own task parses from
it and waits on a future only when it needs more bytes, so no task is created and a response
that arrives in one read costs one wake-up. Reading pauses while the buffer is full and resumes
when the task asks for more, so memory stays bounded however fast the server is. Writes wait
for the transport to drain before the body factory is asked for its next chunk, so a chunk the
caller reuses after yielding it is never sent half-overwritten.

Waits raise `HttpDataTimeoutError` after `timeout` seconds without progress, from a timer that
fails the future: the task is never cancelled, so its cancellation count is never touched.
"""

from __future__ import annotations

import asyncio
import enum
import select
import socket
import ssl
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, cast

from ._exceptions import HttpDataTimeoutError

if TYPE_CHECKING:
    from ._http11 import Origin


# A waiter can be woken, time out and be cancelled in the same turn of the loop, in any order;
# only the first counts. Tests cannot order a loop's turn, hence "no branch".


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():  # pragma: no branch
        waiter.set_result(None)


def _timed_out(waiter: asyncio.Future[None], message: str) -> None:
    if not waiter.done():  # pragma: no branch
        waiter.set_exception(HttpDataTimeoutError(message))


class Phase(enum.Enum):
    """Where a connection is in its life; `PoolState` moves it on."""

    OPENING = "opening"  # TCP, then TLS, under way: not yet in the pool
    ACTIVE = "active"  # carrying a request, until its response body is read or abandoned
    IDLE = "idle"  # in the pool's idle list, waiting to be reused
    CLOSED = "closed"  # closed, and forgotten by the pool


# As module constants: looking up a member on an Enum class costs twice a global's, on the path
# of every request.
OPENING, ACTIVE, IDLE, CLOSED = Phase


class Connection(asyncio.BufferedProtocol):
    """A connection's transport, read buffer and wake-ups, plus what the pool keeps about it."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        origin: Origin,
        sock: socket.socket,
        address: str,
        buffer_bytes: int,
        on_idle_event: Callable[[Connection], None],
        key: Hashable = None,
        via: str | None = None,
    ) -> None:
        self.loop = loop
        # The pool's key for it: its origin, or its origin and proxy (`_proxy.Route`).
        self.key = origin if key is None else key
        self.via = via  # the proxy it goes through, or "unix:" and the socket path
        self.origin = origin
        self.sock = sock  # owned by the transport: kept alive with it, never read here
        # Polled by `peer_closed`; a poll object is a list of descriptors, not a kernel resource.
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)
        self.address = address  # the IP address connected to
        self.transport: asyncio.Transport
        # Unconsumed bytes are buf[start:end]; the loop writes into buf[end:].
        self.buf = bytearray(buffer_bytes)
        self.view = memoryview(self.buf)
        self.start = 0
        self.end = 0
        self.received = 0  # bytes received in all, to tell whether a response has begun
        self.writes = 0  # writes handed to the transport, to tell whether a request began
        self.eof = False  # the server closed its side, or the connection is lost
        self.lost = False
        self.lost_error: Exception | None = None  # why, when it was not a clean close
        self._read_waiter: asyncio.Future[None] | None = None
        self._read_timeout = 0.0
        self._read_message: str | None = None
        self._read_deadline = 0.0  # when the current read wait times out (loop time)
        self._watchdog: asyncio.TimerHandle | None = None  # fails a read wait at its deadline
        self._watch_at = 0.0  # when the watchdog fires
        self._write_waiter: asyncio.Future[None] | None = None
        self._lost_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._pause_short = 1  # reading pauses this many bytes short of a full buffer
        # Kept by the pool, and changed only by `PoolState`'s methods: see `Phase`.
        self.phase = OPENING
        self.expires_at = 0.0  # when an idle connection is closed
        self.requests = 0  # how many requests it has carried
        self.request_id: int | None = None  # of the request using it, or that last used it
        # The pool's: called if the server sends or closes while the connection is idle.
        self.on_idle_event = on_idle_event

    def __repr__(self) -> str:
        return (
            f"<Connection {self.key} at {self.address} {self.phase.value},"
            f" {self.requests} requests, {self.end - self.start} bytes unread"
            f"{', at eof' if self.eof else ''}>"
        )

    # Protocol callbacks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP or TLS transport, asyncio's or uvloop's (which does not subclass Transport).
        self.transport = cast(asyncio.Transport, transport)
        # Pause as soon as anything is buffered, so that writes wait for the kernel to take
        # each chunk (see the module's docstring). A TCP transport pauses above `high`, so 0;
        # a TLS transport at or above it, and so with nothing buffered: with 0, its state
        # flipped at every write, and a pause that no later write undid stalled an upload
        # until write_timeout (found by the proxy tests).
        tls = transport.get_extra_info("ssl_object") is not None
        self.transport.set_write_buffer_limits(high=1 if tls else 0, low=0)
        # Reads are offered the buffer one byte short of full. asyncio's own loop reads a plain
        # socket once per readiness event and runs the woken task before the next, so a read
        # that fills that room needs no pause: two system calls saved per read of a fast
        # download. TLS and uvloop read again at once while there is room: there, a read that
        # fills it pauses, rather than a one-byte read following it.
        if isinstance(self.loop, asyncio.BaseEventLoop) and not tls:
            self._pause_short = 0

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.end == len(self.buf):
            if self.start:
                # Move the unconsumed bytes to the front. Same-size slice assignment never
                # resizes, so it is allowed while the loop holds a view of the buffer.
                size = self.end - self.start
                self.buf[:size] = self.buf[self.start : self.end]
                self.start, self.end = 0, size
            else:
                # Full of unconsumed bytes: a transport delivered more after pause_reading().
                # Grow rather than drop data; bounded by the read that was already in flight.
                self.buf = self.buf + bytes(len(self.buf))
                self.view = memoryview(self.buf)
        # One byte short of full (see connection_made).
        last = len(self.buf) - 1
        return self.view[self.end : last if self.end < last else None]

    def buffer_updated(self, nbytes: int) -> None:
        self.end += nbytes
        self.received += nbytes
        if self.end + self._pause_short >= len(self.buf) and not self.start:
            self.transport.pause_reading()
            self._reading_paused = True
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = self.lost = True
        self.lost_error = exc
        if self._watchdog is not None:
            self._watchdog.cancel()
        _wake(self._write_waiter)
        _wake(self._lost_waiter)
        self._wake_reader()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        _wake(self._write_waiter)

    def _wake_reader(self) -> None:
        if self._read_waiter is not None:
            _wake(self._read_waiter)
            self._read_waiter = None
        elif self._write_waiter is not None:
            # A response while the request body is being sent: the sender looks at it.
            _wake(self._write_waiter)
        elif self.phase is IDLE:
            # Bytes or EOF from a server while no request is using the connection: it can no
            # longer be trusted to frame the next response.
            self.on_idle_event(self)

    # Used by the request's task -------------------------------------------------------------

    async def read_more(
        self, timeout: float, message: str | None = None, *, now: float | None = None
    ) -> None:
        """Wait until more bytes arrive or the server closes; `eof` tells which. After `timeout`
        seconds, HttpDataTimeoutError, with `message` if given. `now`, the loop's time if the
        caller has just read it."""
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()
        waiter = self._read_waiter = self.loop.create_future()
        self._read_timeout = timeout
        self._read_message = message
        self._read_deadline = deadline = (self.loop.time() if now is None else now) + timeout
        # One timer per connection rather than one per wait: it is moved only when this wait
        # must end before it fires, and when it fires for a later deadline it moves itself.
        if self._watchdog is None or deadline < self._watch_at:
            self._watch(deadline)
        try:
            await waiter
        finally:
            self._read_waiter = None

    def _watch(self, when: float) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watch_at = when
        self._watchdog = self.loop.call_at(when, self._watched)

    def _watched(self) -> None:
        self._watchdog = None
        waiter = self._read_waiter
        if waiter is None:
            return  # nothing waits; the next wait starts the timer again
        if self._read_deadline <= self._watch_at:
            message = self._read_message or f"no progress reading for {self._read_timeout} s"
            _timed_out(waiter, message)
        else:
            self._watch(self._read_deadline)

    def consume(self, end: int) -> None:
        """Mark `buf[:end]` as consumed."""
        if end == self.end:
            self.start = self.end = 0
        else:
            self.start = end

    def _check_open(self) -> None:
        if self.lost:
            raise ConnectionResetError("connection lost while sending") from self.lost_error

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check_open()
        self.transport.write(data)
        self.writes += 1

    async def drain(self, timeout: float) -> bool:
        """Wait until the transport has handed everything written to the kernel (True), or
        until response bytes arrive first (False)."""
        if not self._writing_paused:
            return True
        self._check_open()
        waiter = self._write_waiter = self.loop.create_future()
        message = f"no progress writing for {timeout} s"
        timer = self.loop.call_later(timeout, _timed_out, waiter, message)
        try:
            await waiter
        finally:
            self._write_waiter = None
            timer.cancel()
        if not self._writing_paused:
            # All of it reached the kernel, even if the connection was lost just after: what
            # the server made of it is for the response to tell.
            return True
        self._check_open()
        return False

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        """TLS over this connection, for an origin at the end of a proxy's tunnel (over TLS to
        the proxy too, if it is https://): its bytes from now on are the TLS layer's."""
        # The TLS layer above this transport does its own flow control over it: the usual
        # limits, not the pause at the first buffered byte that this connection sets for itself.
        self.transport.set_write_buffer_limits()
        transport = await self.loop.start_tls(
            self.transport, self, context, server_hostname=server_hostname
        )
        if transport is None:  # pragma: no cover - only if the connection closed meanwhile
            raise ConnectionResetError("connection lost during the TLS handshake")
        self.connection_made(transport)

    def peer_closed(self) -> bool:
        """Whether the server has closed this idle connection, reset it or sent on it, as far
        as the kernel knows. Checked at every reuse: a server that closes right after answering
        has its FIN in the kernel before the event loop runs again, and a request written after
        it would fail as one the server may have processed (RFC 9112 9.3.1). A zero-timeout
        poll: one system call, and no exception as a non-blocking peek would raise."""
        return bool(self._poll.poll(0))  # POLLIN: EOF or unasked bytes; POLLERR, POLLHUP

    def close(self) -> None:
        """Close at once: a connection is closed only when it cannot be reused."""
        self.transport.abort()

    async def wait_closed(self) -> None:
        if not self.lost:
            self._lost_waiter = self.loop.create_future()
            await self._lost_waiter
