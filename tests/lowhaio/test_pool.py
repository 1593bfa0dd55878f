"""Connection pooling, seen from the outside: scripted servers on 127.0.0.1 count the connections
they accept and notice when the client closes one; tests assert codes, bodies and exceptions.

Keep-alive reuse, idle expiry, limits and FIFO waiting, abandoned bodies, cancellation and
`close()`. Request building, TLS, timeouts and the parser are tested elsewhere.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from conftest import get, pool, read_request, serve

import lowhaio
from lowhaio import buffered

Answer = Callable[[int, bytes], bytes]


def ok(body: bytes = b"ok", *headers: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    """A 200 response framed by content-length, with `headers` as raw `name: value` lines."""
    lines = [version + b" 200 OK", b"content-length: %d" % len(body), *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def always(response: bytes) -> Answer:
    return lambda number, head: response


class Script:
    """A server handler that answers each request with `answer(connection number, head)`.

    It records which connection carried each request, in arrival order, and when the client
    closed each connection. With a `gate`, each response's head is sent at once and its body
    only once the gate is set, so that the client holds the connection with a body unfinished.
    """

    def __init__(self, answer: Answer | None = None, gate: asyncio.Event | None = None) -> None:
        self.answer = answer or always(ok())
        self.gate = gate
        self.opened = 0
        self.requests: list[tuple[int, bytes]] = []  # (connection number, request target)
        self.closed: dict[int, float] = {}  # connection number -> when the client closed it
        self.changed = asyncio.Event()
        self.arrived = asyncio.Event()  # set once a request has arrived
        self.active = 0
        self.max_active = 0

    @property
    def paths(self) -> list[bytes]:
        return [path for _, path in self.requests]

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = self.opened
        self.opened += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            while True:
                # At EOF, the client closed the connection (reader.read() would return b"").
                head, _ = await read_request(reader)
                self.requests.append((number, head.split(b" ", 2)[1]))
                self.arrived.set()
                data = self.answer(number, head)
                if self.gate is not None:
                    at = data.index(b"\r\n\r\n") + 4
                    writer.write(data[:at])
                    await writer.drain()
                    data = data[at:]
                    while not self.gate.is_set():
                        if reader.at_eof() or reader.exception() is not None:
                            raise ConnectionResetError("closed by the client while held")
                        await asyncio.sleep(0.005)
                writer.write(data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed[number] = asyncio.get_running_loop().time()
            self.changed.set()
        finally:
            self.active -= 1

    async def wait_closed(self, number: int, within: float = 1.0) -> float:
        """When the client closed connection `number`; fails if it is not closed `within` s."""
        async with asyncio.timeout(within):
            while number not in self.closed:
                self.changed.clear()
                await self.changed.wait()
        return self.closed[number]


async def send(request: lowhaio.Request, url: str) -> lowhaio.Response:
    """`request` as a coroutine, for `asyncio.create_task`."""
    return await request(b"GET", url)


async def finish(*tasks: asyncio.Task[object]) -> None:
    """Cancel and wait for tasks a failing test may leave behind."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def now() -> float:
    return asyncio.get_running_loop().time()


def state_of(request: lowhaio.Request) -> Any:
    """The pool's `PoolState`, found where a debugger finds it: in `request`'s closures."""
    acquire = inspect.getclosurevars(request).nonlocals["acquire"]
    return inspect.getclosurevars(acquire).nonlocals["state"]


# Keep-alive reuse ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        ok(b"hello"),
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ],
    ids=["content-length", "chunked"],
)
@pytest.mark.parametrize("gated", [False, True], ids=["with-head", "streamed"])
async def test_connection_reused_after_body_read_to_end(response: bytes, gated: bool) -> None:
    gate = asyncio.Event()
    script = Script(always(response), gate if gated else None)
    async with serve(script) as server, pool() as request:
        for path in ("/first", "/second", "/third"):
            code, _, body = await request(b"GET", server.url(path))
            assert code == b"200"
            gate.set()
            assert await buffered(body) == b"hello"
    assert server.connections == 1
    assert script.requests == [(0, b"/first"), (0, b"/second"), (0, b"/third")]


async def test_unfinished_body_means_a_new_connection() -> None:
    gate = asyncio.Event()
    script = Script(always(ok(b"hello")), gate)
    async with serve(script) as server, pool() as request:
        _, _, first = await request(b"GET", server.url("/1"))
        _, _, second = await request(b"GET", server.url("/2"))
        assert server.connections == 2
        gate.set()
        assert await buffered(second) == b"hello"
        assert await buffered(first) == b"hello"
        # Both are idle now: no third connection is needed.
        assert await get(request, server.url("/3")) == b"hello"
        assert await get(request, server.url("/4")) == b"hello"
    assert server.connections == 2
    assert script.closed == {}  # both were kept until the pool closed


async def test_partly_read_body_means_a_new_connection() -> None:
    big = b"x" * 1_000_000  # more than the client's read buffer
    script = Script(always(ok(big)))
    async with serve(script) as server, pool() as request:
        _, _, first = await request(b"GET", server.url("/1"))
        assert len(await anext(first)) < len(big)
        assert await get(request, server.url("/2")) == big
        await first.aclose()
        await script.wait_closed(0)
        assert await get(request, server.url("/3")) == big
    assert script.requests == [(0, b"/1"), (1, b"/2"), (1, b"/3")]


@pytest.mark.parametrize("value", [b"close", b"Close", b"keep-alive, close"])
async def test_connection_close_in_response_means_no_reuse(value: bytes) -> None:
    script = Script(always(ok(b"hello", b"connection: " + value)))
    async with serve(script) as server, pool() as request:
        assert await get(request, server.url()) == b"hello"
        await script.wait_closed(0)  # closed by the client, though the server did not close
        assert await get(request, server.url()) == b"hello"
    assert server.connections == 2


async def test_connection_close_in_request_means_no_reuse() -> None:
    seen: list[bytes] = []

    def answer(number: int, head: bytes) -> bytes:
        seen.append(head.lower())
        return ok(b"hello")

    script = Script(answer)
    async with serve(script) as server, pool() as request:
        close = ((b"connection", b"close"),)
        assert await get(request, server.url(), headers=close) == b"hello"
        await script.wait_closed(0)
        assert await get(request, server.url()) == b"hello"
        assert await get(request, server.url()) == b"hello"
    assert server.connections == 2
    assert b"\r\nconnection: close\r\n" in seen[0]


@pytest.mark.parametrize(
    ("headers", "connections"),
    [((), 2), ((b"Connection: keep-alive",), 1), ((b"connection: Keep-Alive",), 1)],
    ids=["plain", "keep-alive", "keep-alive-mixed-case"],
)
async def test_http10_response_reused_only_with_keep_alive(
    headers: tuple[bytes, ...], connections: int
) -> None:
    script = Script(always(ok(b"old", *headers, version=b"HTTP/1.0")))
    async with serve(script) as server, pool() as request:
        assert await get(request, server.url()) == b"old"
        assert await get(request, server.url()) == b"old"
    assert server.connections == connections


async def test_close_delimited_body_read_to_eof_and_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nuntil ")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"the close")
        await writer.drain()
        writer.close()

    async with serve(handler) as server, pool() as request:
        assert await get(request, server.url()) == b"until the close"
        assert await get(request, server.url()) == b"until the close"
    assert server.connections == 2


@pytest.mark.parametrize("gated", [False, True], ids=["with-head", "streamed"])
async def test_extra_bytes_after_a_response_never_reach_the_next_request(gated: bool) -> None:
    def answer(number: int, head: bytes) -> bytes:
        if number == 0:
            # Two responses to one request: the second must not answer the next request.
            return ok(b"first") + ok(b"smuggled")
        return ok(b"second")

    script = Script(answer, asyncio.Event() if gated else None)
    async with serve(script) as server, pool() as request:
        _, _, body = await request(b"GET", server.url("/1"))
        if script.gate is not None:
            script.gate.set()
        assert await buffered(body) == b"first"
        assert await get(request, server.url("/2")) == b"second"
        await script.wait_closed(0)
    assert server.connections == 2
    assert script.requests == [(0, b"/1"), (1, b"/2")]


async def test_bytes_sent_to_an_idle_connection_mean_no_reuse() -> None:
    sent = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first_connection = server.connections == 1
        await read_request(reader)
        if first_connection:
            writer.write(ok(b"first"))
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(ok(b"unasked"))  # while the client's connection is idle
            sent.set()
        else:
            writer.write(ok(b"second"))
        await writer.drain()
        await reader.read()

    async with serve(handler) as server, pool() as request:
        assert await get(request, server.url()) == b"first"
        await sent.wait()
        await asyncio.sleep(0.05)
        assert await get(request, server.url()) == b"second"
    assert server.connections == 2


async def test_server_closing_an_idle_connection_means_a_new_one() -> None:
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(ok(b"hello"))
        await writer.drain()
        await asyncio.sleep(0.05)  # the client's connection is idle by now
        writer.close()
        closed.set()

    async with serve(handler) as server, pool() as request:
        assert await get(request, server.url()) == b"hello"
        await closed.wait()
        await asyncio.sleep(0.05)
        assert await get(request, server.url()) == b"hello"
    assert server.connections == 2


async def test_server_closing_right_after_the_body_means_a_new_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"hello")
        writer.close()

    async with serve(handler) as server, pool() as request:
        for _ in range(2):
            _, _, body = await request(b"GET", server.url())
            await asyncio.sleep(0.1)  # the body and the server's EOF both arrive meanwhile
            assert await buffered(body) == b"hello"
    assert server.connections == 2


# Idle expiry -----------------------------------------------------------------------------------


async def test_idle_connection_closed_by_the_client_after_keep_alive_timeout() -> None:
    script = Script()
    async with serve(script) as server, pool(keep_alive_timeout=0.2) as request:
        assert await get(request, server.url()) == b"ok"
        released = now()
        closed = await script.wait_closed(0, within=0.5)  # without any new request
        assert 0.15 <= closed - released < 0.5
        assert await get(request, server.url()) == b"ok"
        assert await get(request, server.url()) == b"ok"
    assert server.connections == 2
    assert script.requests == [(0, b"/"), (1, b"/"), (1, b"/")]


async def test_idle_connection_reused_before_keep_alive_timeout() -> None:
    script = Script()
    async with serve(script) as server, pool(keep_alive_timeout=0.5) as request:
        for _ in range(3):
            assert await get(request, server.url()) == b"ok"
            await asyncio.sleep(0.15)  # each reuse starts a new idle period
    assert server.connections == 1


async def test_server_keep_alive_timeout_shorter_than_the_pool_limits_idle_time() -> None:
    # The server's timeout is in whole seconds: this test waits about one.
    script = Script(always(ok(b"ok", b"Keep-Alive: timeout=1, max=100")))
    async with serve(script) as server, pool(keep_alive_timeout=15.0) as request:
        assert await get(request, server.url()) == b"ok"
        released = now()
        closed = await script.wait_closed(0, within=2.0)
        assert 0.9 <= closed - released < 2.0
        assert await get(request, server.url()) == b"ok"
    assert server.connections == 2


async def test_server_keep_alive_timeout_longer_than_the_pool_does_not_extend_it() -> None:
    script = Script(always(ok(b"ok", b"keep-alive: timeout=60")))
    async with serve(script) as server, pool(keep_alive_timeout=0.2) as request:
        assert await get(request, server.url()) == b"ok"
        released = now()
        assert await script.wait_closed(0, within=0.5) - released < 0.5


@pytest.mark.parametrize("pause", [False, True], ids=["at-once", "after-a-pause"])
async def test_server_keep_alive_timeout_zero_means_no_reuse(pause: bool) -> None:
    script = Script(always(ok(b"ok", b"keep-alive: timeout=0")))
    async with serve(script) as server, pool() as request:
        assert await get(request, server.url()) == b"ok"
        if pause:
            await script.wait_closed(0, within=0.5)
        assert await get(request, server.url()) == b"ok"
        await script.wait_closed(0, within=0.5)
    assert server.connections == 2


async def test_expired_idle_connection_skipped_for_an_older_live_one() -> None:
    def answer(number: int, head: bytes) -> bytes:
        return ok(b"ok", b"keep-alive: timeout=0") if number == 1 else ok()

    script = Script(answer, asyncio.Event())
    async with serve(script) as server, pool() as request:
        _, _, first = await request(b"GET", server.url("/1"))
        _, _, second = await request(b"GET", server.url("/2"))
        assert script.gate is not None
        script.gate.set()
        assert await buffered(first) == b"ok"  # idle for 15 s
        assert await buffered(second) == b"ok"  # idle, but expired at once
        # Most recently used first: the expired one is closed, the other one reused.
        assert await get(request, server.url("/3")) == b"ok"
        await script.wait_closed(1)
    assert script.requests == [(0, b"/1"), (1, b"/2"), (0, b"/3")]


async def test_short_keep_alive_closed_when_another_idle_connection_expires_later() -> None:
    long = Script()
    short = Script(always(ok(b"ok", b"keep-alive: timeout=0")))
    async with serve(long) as long_server, serve(short) as short_server, pool() as request:
        assert await get(request, long_server.url()) == b"ok"  # idle for 15 s
        assert await get(request, short_server.url()) == b"ok"  # the server allows no idle time
        # The client must not hold the second connection open until the first one expires.
        await short.wait_closed(0, within=0.5)
        assert long.closed == {}


async def test_idle_connections_closed_each_at_its_own_expiry() -> None:
    first = Script()
    gate = asyncio.Event()
    second = Script(always(ok()), gate)
    async with (
        serve(first) as first_server,
        serve(second) as second_server,
        pool(keep_alive_timeout=0.2) as request,
    ):
        start = now()
        assert await get(request, first_server.url()) == b"ok"
        await asyncio.sleep(0.15)
        _, _, a = await request(b"GET", second_server.url())
        _, _, b = await request(b"GET", second_server.url())
        gate.set()
        assert await buffered(a) == b"ok"
        assert await buffered(b) == b"ok"
        times = [
            await first.wait_closed(0),
            await second.wait_closed(0),
            await second.wait_closed(1),
        ]
        assert times == sorted(times)
        assert 0.15 <= times[0] - start < 0.35
        assert 0.3 <= times[1] - start < 0.6
        assert times[1] - times[0] >= 0.1
        assert await get(request, second_server.url()) == b"ok"
    assert second.opened == 3


# Requests per connection -----------------------------------------------------------------------


async def test_max_requests_per_connection() -> None:
    script = Script()
    async with serve(script) as server, pool(max_requests_per_connection=2) as request:
        for path in (b"/1", b"/2", b"/3"):
            assert await get(request, server.url(path.decode())) == b"ok"
        await script.wait_closed(0)
    assert server.connections == 2
    assert script.requests == [(0, b"/1"), (0, b"/2"), (1, b"/3")]


# Limits and waiting ----------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["max_connections_per_host", "max_connections"])
async def test_limit_of_one_serves_concurrent_requests_in_fifo_order(limit: str) -> None:
    gate = asyncio.Event()
    script = Script(lambda number, head: ok(b"for " + head.split(b" ")[1]), gate)
    async with (
        serve(script) as server,
        pool(**{limit: 1}) as request,
        asyncio.TaskGroup() as group,
    ):
        tasks = [group.create_task(get(request, server.url(f"/{i}"))) for i in range(4)]
        await script.arrived.wait()  # however loaded the machine, the first gets through
        await asyncio.sleep(0.05)
        assert script.paths == [b"/0"]  # the others wait their turn
        gate.set()
    assert [task.result() for task in tasks] == [b"for /0", b"for /1", b"for /2", b"for /3"]
    assert script.paths == [b"/0", b"/1", b"/2", b"/3"]
    assert server.connections == 1
    assert script.max_active == 1


async def test_limit_of_one_with_connection_close_opens_one_connection_per_request() -> None:
    script = Script(always(ok(b"ok", b"connection: close")))
    async with (
        serve(script) as server,
        pool(max_connections_per_host=1) as request,
        asyncio.TaskGroup() as group,
    ):
        tasks = [group.create_task(get(request, server.url(f"/{i}"))) for i in range(3)]
    assert [task.result() for task in tasks] == [b"ok"] * 3
    assert script.paths == [b"/0", b"/1", b"/2"]
    assert server.connections == 3
    assert script.requests == [(0, b"/0"), (1, b"/1"), (2, b"/2")]


async def test_per_host_limit_does_not_hold_up_other_hosts() -> None:
    gate = asyncio.Event()
    held = Script(always(ok()), gate)
    other = Script()
    async with (
        serve(held) as held_server,
        serve(other) as other_server,
        pool(max_connections_per_host=1, pool_timeout=0.2) as request,
    ):
        _, _, body = await request(b"GET", held_server.url())
        assert await get(request, other_server.url()) == b"ok"
        with pytest.raises(lowhaio.HttpPoolTimeoutError):
            await request(b"GET", held_server.url())
        gate.set()
        assert await buffered(body) == b"ok"


async def test_max_connections_closes_idle_connection_of_another_origin() -> None:
    first, second = Script(), Script()
    async with (
        serve(first) as first_server,
        serve(second) as second_server,
        pool(max_connections=1) as request,
    ):
        assert await get(request, first_server.url()) == b"ok"
        assert await get(request, second_server.url()) == b"ok"
        await first.wait_closed(0)  # closed to make room
        assert await get(request, first_server.url()) == b"ok"
        await second.wait_closed(0)
    assert (first.opened, second.opened) == (2, 1)


async def test_max_connections_evicts_the_least_recently_used_idle_connection() -> None:
    scripts = [Script(), Script(), Script()]
    async with (
        serve(scripts[0]) as a,
        serve(scripts[1]) as b,
        serve(scripts[2]) as c,
        pool(max_connections=2) as request,
    ):
        assert await get(request, a.url()) == b"ok"
        assert await get(request, b.url()) == b"ok"
        assert await get(request, a.url()) == b"ok"  # a is now the most recently used
        assert await get(request, c.url()) == b"ok"
        await scripts[1].wait_closed(0)
        assert await get(request, a.url()) == b"ok"
        assert scripts[0].closed == {}
    assert [script.opened for script in scripts] == [1, 1, 1]


async def test_max_connections_waiter_for_another_origin_gets_room_when_holder_finishes() -> None:
    gate = asyncio.Event()
    first, second = Script(always(ok()), gate), Script()
    async with (
        serve(first) as first_server,
        serve(second) as second_server,
        pool(max_connections=1, pool_timeout=1.0) as request,
    ):
        _, _, body = await request(b"GET", first_server.url())
        waiting = asyncio.create_task(get(request, second_server.url()))
        try:
            await asyncio.sleep(0.05)
            assert not waiting.done()
            assert second.opened == 0
            gate.set()
            # The finished connection goes idle, then is closed to make room for the waiter.
            assert await buffered(body) == b"ok"
            assert await waiting == b"ok"
            await first.wait_closed(0)
            # And the single slot is still usable, by either origin.
            assert await get(request, second_server.url()) == b"ok"
            assert await get(request, first_server.url()) == b"ok"
        finally:
            await finish(waiting)


async def test_waiter_whose_idle_connection_expired_at_once_gets_a_new_one() -> None:
    gate = asyncio.Event()
    script = Script(always(ok(b"ok", b"keep-alive: timeout=0")), gate)
    async with serve(script) as server, pool(max_connections_per_host=1) as request:
        _, _, body = await request(b"GET", server.url("/held"))
        waiting = asyncio.create_task(get(request, server.url("/waits")))
        try:
            await asyncio.sleep(0.05)
            gate.set()
            assert await buffered(body) == b"ok"
            assert await waiting == b"ok"
        finally:
            await finish(waiting)
        await script.wait_closed(0)
    assert script.requests == [(0, b"/held"), (1, b"/waits")]


async def test_pool_timeout_when_the_only_slot_is_held() -> None:
    gate = asyncio.Event()
    script = Script(always(ok()), gate)
    async with serve(script) as server, pool(max_connections=1, pool_timeout=0.2) as request:
        _, _, body = await request(b"GET", server.url("/held"))
        start = now()
        with pytest.raises(lowhaio.HttpPoolTimeoutError) as raised:
            await request(b"GET", server.url("/waits"))
        assert 0.15 <= now() - start < 0.5
        assert isinstance(raised.value, lowhaio.HttpConnectionError)
        assert isinstance(raised.value, lowhaio.HttpTimeoutError)
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
        gate.set()
        assert await buffered(body) == b"ok"
        assert await get(request, server.url("/after")) == b"ok"
    assert script.paths == [b"/held", b"/after"]
    assert server.connections == 1


async def test_the_pool_timeout_error_says_where_and_what_to_change() -> None:
    gate = asyncio.Event()
    async with (
        serve(Script(always(ok()), gate)) as server,
        pool(max_connections=1, pool_timeout=0.1) as request,
    ):
        _, _, body = await request(b"GET", server.url("/held"))
        with pytest.raises(lowhaio.HttpPoolTimeoutError) as raised:
            await request(b"GET", server.url("/waits"))
        assert str(raised.value) == (
            f"http://127.0.0.1:{server.port}: no connection was free within pool_timeout=0.1 s"
            " (1 of max_connections_per_host=100 and 1 of max_connections=1 in use): raise a"
            " limit or pool_timeout, or read or aclose() bodies sooner"
        )
        gate.set()
        assert await buffered(body) == b"ok"


async def test_by_default_a_request_waits_its_turn_however_long_it_takes() -> None:
    loop = asyncio.get_running_loop()
    if not isinstance(loop, asyncio.BaseEventLoop):  # pragma: no cover - uvloop session
        pytest.skip("uvloop's clock cannot be moved on")
    gate = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        await gate.wait()  # no timer: only the pool's own would notice the clock move
        writer.write(b"ok")
        await read_request(reader)
        writer.write(ok())
        await reader.read()

    async with serve(handler) as server, pool(max_connections=1) as request:
        _, _, body = await request(b"GET", server.url("/held"))
        waiting = asyncio.create_task(get(request, server.url("/waits")))
        await asyncio.sleep(0.05)
        real = loop.time
        # 20 s on: past the 10 s that once was the default, within the test's own 30 s.
        loop.time = lambda: real() + 20  # type: ignore[method-assign]
        try:
            for _ in range(3):
                await asyncio.sleep(0)  # turns of the loop, each running the timers due
            assert not waiting.done()  # no timer gave up on it
        finally:
            del loop.time  # type: ignore[method-assign]
        gate.set()
        assert await buffered(body) == b"ok"
        assert await waiting == b"ok"


async def test_waiter_granted_as_its_pool_timeout_expires_does_not_lose_the_slot() -> None:
    gate = asyncio.Event()
    script = Script(always(ok()), gate)
    async with serve(script) as server, pool(max_connections=1, pool_timeout=0.1) as request:
        _, _, body = await request(b"GET", server.url("/held"))
        waiting = asyncio.create_task(get(request, server.url("/waits")))
        try:
            await asyncio.sleep(0)  # the waiter queues, its pool timeout due in 0.1 s
            time.sleep(0.15)  # noqa: ASYNC251 - block the loop until that timeout is due
            await asyncio.sleep(0)
            # The timeout and the grant now fall in the same turn of the loop.
            await body.aclose()
            gate.set()
            outcome = await asyncio.gather(waiting, return_exceptions=True)
        finally:
            await finish(waiting)
        # Either outcome is right (asyncio grants first); what matters is the slot's fate.
        assert outcome[0] == b"ok" or isinstance(outcome[0], lowhaio.HttpPoolTimeoutError)
        assert await get(request, server.url("/after")) == b"ok"
        assert await get(request, server.url("/again")) == b"ok"


@pytest.mark.parametrize("how", ["finished", "aclosed"])
async def test_waiter_proceeds_when_the_holder_releases(how: str) -> None:
    gate = asyncio.Event()
    script = Script(always(ok()), gate)
    async with serve(script) as server, pool(max_connections=1) as request:
        _, _, body = await request(b"GET", server.url("/held"))
        waiting = asyncio.create_task(get(request, server.url("/waits")))
        try:
            await asyncio.sleep(0.05)
            assert not waiting.done()
            if how == "finished":
                gate.set()
                assert await buffered(body) == b"ok"
            else:
                await body.aclose()
                await script.wait_closed(0)
                gate.set()
            assert await waiting == b"ok"
        finally:
            await finish(waiting)
    assert server.connections == (1 if how == "finished" else 2)


async def test_cancelled_waiter_does_not_lose_the_slot() -> None:
    gate = asyncio.Event()
    script = Script(always(ok()), gate)
    seen: list[int] = []

    async def cancelled() -> None:
        try:
            await request(b"GET", server.url("/cancelled"))
        except asyncio.CancelledError:
            seen.append(asyncio.current_task().cancelling())  # type: ignore[union-attr]
            raise

    async with serve(script) as server, pool(max_connections=1, pool_timeout=1.0) as request:
        _, _, body = await request(b"GET", server.url("/held"))
        first = asyncio.create_task(cancelled())
        second = asyncio.create_task(get(request, server.url("/second")))
        try:
            await asyncio.sleep(0.05)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            gate.set()
            assert await buffered(body) == b"ok"
            assert await second == b"ok"
        finally:
            await finish(first, second)
    assert seen == [1]
    assert script.paths == [b"/held", b"/second"]
    assert server.connections == 1


@pytest.mark.parametrize("how", ["connection", "slot"])
async def test_waiter_cancelled_just_after_its_turn_came_passes_it_on(how: str) -> None:
    gate = asyncio.Event()
    script = Script(always(ok()), gate)
    async with serve(script) as server, pool(max_connections=1, pool_timeout=1.0) as request:
        _, _, body = await request(b"GET", server.url("/held"))
        first = asyncio.create_task(get(request, server.url("/first")))
        second = asyncio.create_task(get(request, server.url("/second")))
        try:
            await asyncio.sleep(0.05)
            if how == "connection":
                gate.set()
                assert await buffered(body) == b"ok"  # the idle connection goes to `first`...
            else:
                await body.aclose()  # the free slot goes to `first`...
                gate.set()
            first.cancel()  # ... which is cancelled before it could run
            with pytest.raises(asyncio.CancelledError):
                await first
            assert await second == b"ok"
        finally:
            await finish(first, second)
        assert await get(request, server.url("/after")) == b"ok"
    assert script.paths == [b"/held", b"/second", b"/after"]
    assert server.connections == (1 if how == "connection" else 2)


async def test_failed_connect_gives_its_slot_to_the_next_waiter() -> None:
    gate = asyncio.Event()
    script = Script(always(ok()), gate)
    dead = f"http://127.0.0.1:{unused_port()}/"
    async with serve(script) as server, pool(max_connections=1, pool_timeout=1.0) as request:
        _, _, body = await request(b"GET", server.url("/held"))
        failing = asyncio.create_task(send(request, dead))
        waiting = asyncio.create_task(get(request, server.url("/waits")))
        try:
            await asyncio.sleep(0.05)
            await body.aclose()  # the slot goes to `failing`, then to `waiting`
            gate.set()
            with pytest.raises(lowhaio.HttpConnectionError) as raised:
                await failing
            assert isinstance(raised.value.__cause__, OSError)
            assert await waiting == b"ok"
        finally:
            await finish(failing, waiting)
        # Without waiters: the slot is given back too.
        with pytest.raises(lowhaio.HttpConnectionError):
            await request(b"GET", dead)
        assert await get(request, server.url("/after")) == b"ok"
    assert script.paths == [b"/held", b"/waits", b"/after"]


# Abandoned bodies ------------------------------------------------------------------------------


async def test_break_then_aclose_closes_the_connection() -> None:
    body_bytes = b"x" * 1_000_000
    script = Script(always(ok(body_bytes)))
    async with serve(script) as server, pool(max_connections=1, pool_timeout=1.0) as request:
        _, _, body = await request(b"GET", server.url())
        async for chunk in body:
            assert chunk
            break
        await body.aclose()
        await body.aclose()  # twice is harmless
        await script.wait_closed(0)
        assert await get(request, server.url()) == body_bytes
    assert server.connections == 2


async def _fail_inside_async_for(body: lowhaio.ResponseBody) -> None:
    async for _ in body:
        raise ZeroDivisionError


@pytest.mark.parametrize("how", ["break", "exception", "async with"])
async def test_a_body_left_early_releases_its_connection_at_once(how: str) -> None:
    # The body stays referenced: only leaving it (the documented ways) frees the connection.
    body_bytes = b"x" * 1_000_000
    script = Script(always(ok(body_bytes)))
    async with serve(script) as server, pool(max_connections=1, pool_timeout=0.5) as request:
        _, _, body = await request(b"GET", server.url())
        if how == "break":
            async for chunk in body:
                assert chunk
                break
        elif how == "exception":
            with pytest.raises(ZeroDivisionError):
                await _fail_inside_async_for(body)
        else:
            async with body:
                pass  # an ignored response, not read at all
        await script.wait_closed(0)
        assert await get(request, server.url()) == body_bytes  # no wait for the first
        # Reading what was left is an error, not a silent end.
        with pytest.raises(lowhaio.HttpConnectionClosedError, match="closed before its end"):
            await buffered(body)
    assert server.connections == 2


async def test_a_body_read_to_its_end_in_async_with_keeps_its_connection() -> None:
    script = Script()
    async with serve(script) as server, pool() as request:
        _, _, body = await request(b"GET", server.url())
        async with body:
            assert await buffered(body) == b"ok"
        assert await get(request, server.url()) == b"ok"
    assert server.connections == 1


async def test_async_with_pool_closes_it() -> None:
    script = Script()
    async with serve(script) as server:
        async with lowhaio.Pool() as request:
            assert await get(request, server.url()) == b"ok"
        await script.wait_closed(0)
        with pytest.raises(lowhaio.HttpPoolClosedError):
            await get(request, server.url())


async def test_a_pool_dropped_without_close_warns_and_closes_its_connections() -> None:
    script = Script()
    async with serve(script) as server:
        request, close = lowhaio.Pool()
        assert await get(request, server.url()) == b"ok"
        with pytest.warns(ResourceWarning, match="1 open connections was dropped without close"):
            del request, close  # the last references: it goes at once
        await script.wait_closed(0)


async def test_a_pool_dropped_after_close_or_with_nothing_open_says_nothing() -> None:
    script = Script(always(ok(b"ok", b"connection: close")))
    async with serve(script) as server:
        request, close = lowhaio.Pool()
        assert await get(request, server.url()) == b"ok"  # its connection closed after it
        del request, close
        gc.collect()  # no warning: filterwarnings = error would fail the test
        request, close = lowhaio.Pool()
        assert await get(request, server.url()) == b"ok"
        await close()
        del request, close
        gc.collect()


def test_a_pool_moves_to_another_event_loop_when_it_holds_nothing_in_the_first() -> None:
    # As with pytest-asyncio's loop per test: a pool made at module level.
    request, close = lowhaio.Pool()

    async def use() -> bytes:
        async with serve(Script(always(ok(b"ok", b"connection: close")))) as server:
            return await get(request, server.url())

    assert asyncio.run(use()) == b"ok"
    assert asyncio.run(use()) == b"ok"  # a second loop: nothing was left in the first
    asyncio.run(close())


async def test_a_pool_with_connections_in_another_event_loop_says_so() -> None:
    async with serve(Script()) as server, pool() as request:
        assert await get(request, server.url()) == b"ok"  # its connection stays, idle

        def elsewhere() -> BaseException | None:
            try:
                asyncio.run(get(request, server.url()))
            except BaseException as exc:
                return exc
            return None  # pragma: no cover - the test fails

        error = await asyncio.to_thread(elsewhere)
        assert isinstance(error, lowhaio.HttpPoolLoopError)
        assert "holds 1 connections in another event loop" in str(error)
        assert await get(request, server.url()) == b"ok"  # unharmed, in its own loop
    assert server.connections == 1


async def test_aclose_after_the_end_keeps_the_connection() -> None:
    script = Script()
    async with serve(script) as server, pool() as request:
        _, _, body = await request(b"GET", server.url())
        assert await buffered(body) == b"ok"
        await body.aclose()
        assert await get(request, server.url()) == b"ok"
    assert server.connections == 1


async def test_dropped_body_frees_the_slot() -> None:
    gate = asyncio.Event()
    script = Script(always(ok()), gate)
    async with serve(script) as server, pool(max_connections=1, pool_timeout=1.0) as request:
        _, _, body = await request(b"GET", server.url("/dropped"))
        del body
        gc.collect()
        await script.wait_closed(0)
        gate.set()
        assert await get(request, server.url("/after")) == b"ok"
    assert server.connections == 2


async def test_cancelling_a_task_reading_a_body_closes_the_connection() -> None:
    gate = asyncio.Event()
    script = Script(always(ok()), gate)
    started = asyncio.Event()
    seen: list[int] = []

    async def reader() -> bytes:
        _, _, body = await request(b"GET", server.url("/cancelled"))
        started.set()
        try:
            return await buffered(body)
        except asyncio.CancelledError:
            seen.append(asyncio.current_task().cancelling())  # type: ignore[union-attr]
            raise

    async with serve(script) as server, pool(max_connections=1, pool_timeout=1.0) as request:
        task = asyncio.create_task(reader())
        try:
            await started.wait()
            await asyncio.sleep(0.02)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            await finish(task)
        await script.wait_closed(0)
        gate.set()
        assert await get(request, server.url("/after")) == b"ok"
    assert seen == [1]
    assert server.connections == 2


async def test_timeout_around_a_body_read_leaves_cancelling_count_as_it_was() -> None:
    gate = asyncio.Event()
    script = Script(always(ok()), gate)
    task = asyncio.current_task()
    assert task is not None
    async with serve(script) as server, pool(max_connections=1, pool_timeout=1.0) as request:
        _, _, body = await request(b"GET", server.url("/slow"))
        assert task.cancelling() == 0
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await buffered(body)
        assert task.cancelling() == 0
        await script.wait_closed(0)
        gate.set()
        assert await get(request, server.url("/after")) == b"ok"
    assert server.connections == 2


async def test_cancellation_caught_by_the_task_that_requested_it() -> None:
    gate = asyncio.Event()
    script = Script(always(ok()), gate)
    task = asyncio.current_task()
    assert task is not None
    async with serve(script) as server, pool(max_connections=1, pool_timeout=1.0) as request:
        _, _, body = await request(b"GET", server.url("/slow"))
        asyncio.get_running_loop().call_later(0.05, task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await buffered(body)
        assert task.cancelling() == 1  # neither swallowed nor uncancelled by lowhaio
        assert task.uncancel() == 0
        await script.wait_closed(0)
        gate.set()
        assert await get(request, server.url("/after")) == b"ok"
    assert server.connections == 2


async def test_cancelled_while_waiting_for_the_response_head() -> None:
    script = Script(lambda number, head: ok() if number else b"")  # the first gets no answer
    async with serve(script) as server, pool(max_connections=1, pool_timeout=1.0) as request:
        task = asyncio.create_task(get(request, server.url("/cancelled")))
        try:
            await asyncio.sleep(0.05)
            assert script.paths == [b"/cancelled"]
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            await finish(task)
        await script.wait_closed(0)
        assert await get(request, server.url("/after")) == b"ok"
    assert server.connections == 2


# close() ---------------------------------------------------------------------------------------


async def test_close_closes_idle_and_in_use_connections() -> None:
    gate = asyncio.Event()
    idle, in_use = Script(), Script(always(ok()), gate)
    async with serve(idle) as idle_server, serve(in_use) as in_use_server:
        request, close = lowhaio.Pool()
        assert await get(request, idle_server.url()) == b"ok"
        _, _, body = await request(b"GET", in_use_server.url())
        await close()
        await idle.wait_closed(0)
        gate.set()
        await in_use.wait_closed(0)
        with pytest.raises(lowhaio.HttpDataError):
            await buffered(body)
        await body.aclose()
        await close()  # twice is harmless


async def test_requests_after_close_raise_pool_closed() -> None:
    script = Script()
    async with serve(script) as server:
        request, close = lowhaio.Pool()
        assert await get(request, server.url()) == b"ok"
        await close()
        with pytest.raises(lowhaio.HttpPoolClosedError):
            await request(b"GET", server.url())
        with pytest.raises(lowhaio.HttpPoolClosedError):
            await request(b"GET", f"http://127.0.0.1:{unused_port()}/")
    assert server.connections == 1


async def test_close_wakes_waiters_with_pool_closed() -> None:
    gate = asyncio.Event()
    script = Script(always(ok()), gate)
    async with serve(script) as server:
        request, close = lowhaio.Pool(max_connections=1, pool_timeout=1.0)
        _, _, body = await request(b"GET", server.url())
        waiters = [asyncio.create_task(send(request, server.url())) for _ in range(2)]
        try:
            await asyncio.sleep(0.05)
            await close()
            for waiter in waiters:
                with pytest.raises(lowhaio.HttpPoolClosedError):
                    await waiter
        finally:
            await finish(*waiters)
            await close()
        gate.set()
        with pytest.raises(lowhaio.HttpDataError):
            await buffered(body)
    assert server.connections == 1


async def test_close_after_a_waiter_timed_out() -> None:
    gate = asyncio.Event()
    script = Script(always(ok()), gate)
    async with serve(script) as server:
        request, close = lowhaio.Pool(max_connections=1, pool_timeout=0.1)
        try:
            _, _, body = await request(b"GET", server.url())
            with pytest.raises(lowhaio.HttpPoolTimeoutError):
                await request(b"GET", server.url())
        finally:
            await close()
        await script.wait_closed(0)
        with pytest.raises(lowhaio.HttpConnectionClosedError):
            await buffered(body)


# Event loops and tasks -------------------------------------------------------------------------


def test_pool_created_outside_an_event_loop() -> None:
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    request, close = lowhaio.Pool(keep_alive_timeout=0.1)

    async def use() -> list[bytes]:
        script = Script()
        async with serve(script) as server:
            try:
                return [await get(request, server.url()) for _ in range(2)]
            finally:
                await close()

    assert asyncio.run(use()) == [b"ok", b"ok"]


async def test_requests_create_no_tasks() -> None:
    me = asyncio.current_task()
    extra: list[set[asyncio.Task[object]]] = []

    def others() -> set[asyncio.Task[object]]:
        return asyncio.all_tasks() - {me} - server.tasks

    def answer(number: int, head: bytes) -> bytes:
        extra.append(others())
        return ok(b"hello")

    async def factory() -> AsyncIterator[bytes]:
        extra.append(others())
        yield b"data"
        extra.append(others())

    script = Script(answer)
    async with serve(script) as server, pool(keep_alive_timeout=0.2) as request:
        assert await get(request, server.url()) == b"hello"
        extra.append(others())
        headers = ((b"content-length", b"4"),)
        _, _, body = await request(b"POST", server.url(), headers=headers, body=factory)
        extra.append(others())
        assert await buffered(body) == b"hello"
        extra.append(others())
        await script.wait_closed(0)  # the expiry timer is not a task either
        extra.append(others())
    assert server.connections == 1
    assert extra == [set()] * 8


# What a debugger or a failing test shows ----------------------------------------------------


async def test_the_pool_and_its_connections_say_where_each_is_in_its_life() -> None:
    gate = asyncio.Event()
    async with serve(Script(gate=gate)) as server:
        request, close = lowhaio.Pool(max_connections=1)
        state = state_of(request)
        assert repr(state) == "<PoolState 0 connections (0 opening, 0 active, 0 idle), 0 waiting>"
        _, _, body = await request(b"GET", server.url())  # the head; the body waits for the gate
        (conn,) = state.connections
        where = f"http://127.0.0.1:{server.port} at 127.0.0.1"
        assert repr(conn) == f"<Connection {where} active, 1 requests, 0 bytes unread>"
        waiting = asyncio.create_task(send(request, server.url()))
        await asyncio.sleep(0.01)
        assert repr(state) == "<PoolState 1 connections (0 opening, 1 active, 0 idle), 1 waiting>"
        gate.set()
        assert await buffered(body) == b"ok"
        _, _, body = await waiting  # the same connection, handed on
        # Its body came whole with the head: the connection is back in the pool already.
        assert repr(conn) == f"<Connection {where} idle, 2 requests, 0 bytes unread>"
        assert await buffered(body) == b"ok"
        assert repr(state) == "<PoolState 1 connections (0 opening, 0 active, 1 idle), 0 waiting>"
        await close()
        assert repr(conn) == f"<Connection {where} closed, 2 requests, 0 bytes unread, at eof>"
        assert repr(state) == (
            "<PoolState 0 connections (0 opening, 0 active, 0 idle), 0 waiting, closed>"
        )
