"""`PoolState`: every mutable part of a pool, in one place, changed only by its methods.

A connection is counted (in `total` and `per_key`) from the moment its slot is reserved, so
that limits hold while it connects, until it is closed. Requests that find no idle connection
and no free slot wait in one FIFO queue; whatever becomes free (an idle connection or a slot)
goes to the oldest waiter that can use it. An idle connection is reused only while it is
unexpired, its address is still in the host's current DNS answer, and a zero-timeout poll of
its socket, at every reuse, shows that the server has not closed it.

A connection's `phase` is moved on here only: OPENING while it connects (not yet known here);
ACTIVE from `opened`, or from `take_idle`, while a request uses it; IDLE from `release`, in
`idle`; CLOSED from `_forget`, which every close goes through.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Hashable

from ._connection import ACTIVE, CLOSED, IDLE, Connection
from ._exceptions import HttpPoolClosedError, HttpPoolLoopError, HttpPoolTimeoutError
from ._trace import Tracer

Addresses = tuple[str, ...] | None  # the host's current DNS answer; None for an IP literal
# Where a pooled connection goes: its origin, or its origin and proxy (`_proxy.Route`).
Key = Hashable
Waiter = tuple[Key, Addresses, "asyncio.Future[Connection | None]"]


def _pool_timed_out(waiter: asyncio.Future[Connection | None], message: str) -> None:
    if not waiter.done():
        waiter.set_exception(HttpPoolTimeoutError(message))


class PoolState:
    def __init__(
        self,
        max_connections: int,
        max_connections_per_host: int,
        max_requests_per_connection: int | None,
        keep_alive_timeout: float,
        tracer: Tracer,
    ) -> None:
        self.max_total = max_connections
        self.max_per_key = max_connections_per_host
        self.max_requests = max_requests_per_connection
        self.keep_alive_timeout = keep_alive_timeout
        self.tracer = tracer
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop its connections are in
        self.thread: int | None = None  # ... and the thread that loop runs in

        self.connections: set[Connection] = set()  # every open connection, idle or in use
        self.idle: dict[Key, list[Connection]] = {}  # reusable, most recently used last
        self.per_key: dict[Key, int] = {}  # connections open or opening, per origin and proxy
        self.total = 0  # connections open or opening
        self.waiters: deque[Waiter] = deque()  # requests waiting for a connection, oldest first
        self.sweep: asyncio.TimerHandle | None = None  # closes idle connections as they expire
        self.closed = False

    def __repr__(self) -> str:
        idle = sum(map(len, self.idle.values()))
        return (
            f"<PoolState {self.total} connections ({self.total - len(self.connections)} opening,"
            f" {len(self.connections) - idle} active, {idle} idle), {len(self.waiters)} waiting"
            f"{', closed' if self.closed else ''}>"
        )

    # Acquiring ---------------------------------------------------------------------------------

    def take_idle(self, key: Key, addresses: Addresses) -> Connection | None:
        """A reusable idle connection for `key`, the most recently used; unusable ones met
        on the way are closed."""
        idle = self.idle.get(key)
        while idle:
            conn = idle.pop()
            if not idle:
                del self.idle[key]
            conn.phase = ACTIVE
            if conn.expires_at <= conn.loop.time():
                self._forget(conn, "expired")
            elif addresses is not None and conn.address not in addresses:
                self._forget(conn, "dns changed")
            elif conn.peer_closed():
                self._forget(conn, "server closed")
            else:
                return conn
            idle = self.idle.get(key)
        return None

    def reserve(self, key: Key) -> bool:
        """Count a connection about to be opened for `key`, if the limits allow one."""
        count = self.per_key.get(key, 0)
        if count >= self.max_per_key:
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
            self._forget(oldest, "evicted")
        self.per_key[key] = count + 1
        self.total += 1
        return True

    async def wait_turn(
        self, key: Key, addresses: Addresses, timeout: float | None
    ) -> Connection | None:
        """Wait in FIFO order for an idle connection (returned) or a reserved slot (None); for
        `timeout` seconds at most, or as long as it takes if None."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Connection | None] = loop.create_future()
        self.waiters.append((key, addresses, waiter))
        timer = None
        if timeout is not None:
            message = (
                f"{key}: no connection was free within pool_timeout={timeout} s"
                f" ({self.per_key.get(key, 0)} of max_connections_per_host="
                f"{self.max_per_key} and {self.total} of max_connections={self.max_total} in"
                " use): raise a limit or pool_timeout, or read or aclose() bodies sooner"
            )
            timer = loop.call_later(timeout, _pool_timed_out, waiter, message)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Granted just as this task was cancelled: pass it on.
                granted = waiter.result()
                if granted is None:
                    self.unreserve(key)
                else:
                    self.release(granted, self.keep_alive_timeout)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def grant(self) -> None:
        """Give waiters, oldest first, what has become free. `take_idle` and `reserve` close
        connections with `_forget`, which never grants, so this is never re-entered."""
        waiting: deque[Waiter] = deque()
        for key, addresses, waiter in self.waiters:
            if waiter.done():
                continue  # timed out or cancelled
            conn = self.take_idle(key, addresses)
            if conn is not None:
                waiter.set_result(conn)
            elif self.reserve(key):
                waiter.set_result(None)
            else:
                waiting.append((key, addresses, waiter))
        self.waiters = waiting

    def move_to(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve requests in `loop` from now on, if this pool holds nothing in another: its
        connections, timers and waiters belong to the loop they were made in."""
        if self.total or self.waiters:
            raise HttpPoolLoopError(
                f"this pool holds {self.total} connections in another event loop than the"
                " running one: make a pool per event loop (a fixture of the loop's scope), or"
                " close() it before its loop ends"
            )
        self.loop = loop
        self.thread = threading.get_ident()
        self.sweep = None  # a timer of the other loop, with nothing left to sweep

    def opened(self, conn: Connection) -> None:
        self.connections.add(conn)
        conn.phase = ACTIVE

    def assign(self, conn: Connection, request_id: int) -> None:
        """Give an active connection, new or reused, to the request `request_id`."""
        conn.request_id = request_id
        conn.requests += 1

    def unreserve(self, key: Key) -> None:
        """Uncount a connection that failed to open."""
        self._uncount(key)
        self.grant()

    # Releasing ---------------------------------------------------------------------------------

    def release(self, conn: Connection, keep_alive_timeout: float | None) -> None:
        """Return a connection whose exchange is complete: idle if reusable, else closed.
        `keep_alive_timeout` is None when the connection must not be reused."""
        if keep_alive_timeout is None or conn.eof or self.closed:
            self.discard(conn, "pool closed" if self.closed else "not reusable")
            return
        if self.max_requests is not None and conn.requests >= self.max_requests:
            self.discard(conn, "max requests")
            return
        conn.phase = IDLE
        conn.request_id = None  # no request uses it
        conn.expires_at = conn.loop.time() + min(keep_alive_timeout, self.keep_alive_timeout)
        self.idle.setdefault(conn.key, []).append(conn)
        if self.sweep is None or conn.expires_at < self.sweep.when():
            if self.sweep is not None:
                self.sweep.cancel()
            self.sweep = conn.loop.call_at(conn.expires_at, self._sweep)
        if self.waiters:
            self.grant()

    def discard(self, conn: Connection, reason: str) -> None:
        """Close a connection, forget it, and give its slot to a waiter."""
        if self._forget(conn, reason) and self.waiters:
            self.grant()

    def idle_event(self, conn: Connection) -> None:
        # Bytes or EOF on an idle connection: it cannot frame another response.
        self.discard(conn, "server closed")

    def _forget(self, conn: Connection, reason: str) -> bool:
        """Close a connection and forget it; whether it was still counted."""
        conn.close()
        if conn not in self.connections:
            return False
        self.connections.remove(conn)
        if conn.phase is IDLE:
            idle = self.idle[conn.key]
            idle.remove(conn)
            if not idle:
                del self.idle[conn.key]
        conn.phase = CLOSED
        self._uncount(conn.key)
        if self.tracer.active():
            origin = conn.origin
            self.tracer.emit(
                "connection_closed",
                request_id=conn.request_id,
                scheme=origin.scheme,
                host=origin.host,
                port=origin.port,
                address=conn.address,
                via=conn.via,
                reason=reason,
            )
        return True

    def _uncount(self, key: Key) -> None:
        self.total -= 1
        count = self.per_key[key] - 1
        if count:
            self.per_key[key] = count
        else:
            del self.per_key[key]

    def _sweep(self) -> None:
        """Close the idle connections that have expired; run again at the next expiry."""
        assert self.loop is not None
        self.sweep = None
        now = self.loop.time()
        next_expiry = None
        for conns in list(self.idle.values()):
            for conn in list(conns):
                if conn.expires_at <= now:
                    self.discard(conn, "expired")
                elif next_expiry is None or conn.expires_at < next_expiry:
                    next_expiry = conn.expires_at
        if next_expiry is not None:
            self.sweep = self.loop.call_at(next_expiry, self._sweep)

    def drop(self) -> None:
        """Close every connection at once, for a pool its owner let go of without `close()`:
        nothing else could close them any more."""
        self.closed = True
        for conn in list(self.connections):
            with contextlib.suppress(RuntimeError):  # its event loop may be closed already
                self.discard(conn, "pool dropped")

    async def close(self) -> None:
        self.closed = True
        if self.sweep is not None:
            self.sweep.cancel()
            self.sweep = None
        for _, _, waiter in self.waiters:
            if not waiter.done():
                waiter.set_exception(HttpPoolClosedError("the pool was closed"))
        self.waiters.clear()
        conns = list(self.connections)
        for conn in conns:
            self.discard(conn, "pool closed")
        for conn in conns:
            await conn.wait_closed()
