"""What `retry` must never do, against scripted servers on 127.0.0.1 that count what they
receive: replay a request that is not idempotent once its bytes reached a server (whatever the
way the exchange then failed), replay a body other than byte for byte, go past its limits, or
retry a caller's cancellation. And what it must do: retry for any method what the server never
processed. Time is faked (`sleep`, `clock`); the timeouts that are real are 50 ms.
Complements test_retry.py.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import pytest
from conftest import Recorder, pool, read_request, serve
from retry_support import FakeTime, retrying

from lowhaio import (
    HttpConnectionClosedError,
    HttpDataTimeoutError,
    HttpInvalidRequestError,
    HttpPoolClosedError,
    HttpPoolTimeoutError,
    HttpProtocolError,
    HttpStaleConnectionError,
    Pool,
    buffered,
)
from lowhaio_retry import IDEMPOTENT_METHODS, retry

MIB = 1024 * 1024


def reply(code: bytes = b"200", body: bytes = b"ok", headers: bytes = b"") -> bytes:
    return b"HTTP/1.1 %s X\r\ncontent-length: %d\r\n%s\r\n%s" % (code, len(body), headers, body)


class Act(NamedTuple):
    """What the server does with one request: whether it reads the body first, what it writes,
    and then whether it keeps serving the connection, closes it (an abort) or hangs."""

    write: bytes = b""
    then: str = "keep"  # "keep", "close" or "hang"
    read_body: bool = True


OK = Act(reply())
CLOSE = Act(then="close")  # the whole request read, then the connection aborted, no answer
HANG = Act(then="hang")  # the whole request read, then no answer ever
GARBAGE = Act(b"not http\r\n\r\n", "hang")  # an HttpProtocolError
PARTIAL_HEAD = Act(b"HTTP/1.1 200 OK\r\ncontent-", "close")  # closed inside the head
CLOSE_IN_BODY = Act(then="close", read_body=False)  # the head read, the body not


class Script:
    """A handler: the n-th request head received, over all connections, gets the n-th `Act`
    (beyond them, `CLOSE`). `heads` counts requests that reached the server; `bodies` holds
    the bodies read whole."""

    def __init__(self, *acts: Act) -> None:
        self.acts = acts
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.received = asyncio.Event()  # set at each request head

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            self.received.set()
            index = len(self.heads) - 1
            act = self.acts[index] if index < len(self.acts) else CLOSE
            if act.read_body:
                self.bodies.append(await read_body(reader, head))
            if act.write:
                writer.write(act.write)
                await writer.drain()
            if act.then == "close":
                writer.transport.abort()
                return
            if act.then == "hang":
                await reader.read()
                return

    @property
    def methods(self) -> list[bytes]:
        return [head.split(b" ", 1)[0] for head in self.heads]


async def read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    """The body after `head`, decoded if chunked."""
    lower = head.lower()
    if b"\r\ncontent-length:" in lower:
        length = int(lower.split(b"\r\ncontent-length:")[1].split(b"\r\n")[0])
        return await reader.readexactly(length)
    body = b""
    if b"\r\ntransfer-encoding: chunked" in lower:
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        while await reader.readuntil(b"\r\n") != b"\r\n":
            pass
    return body


class Reasons:
    """An `on_retry` that records the reason of each retry."""

    def __init__(self) -> None:
        self.reasons: list[BaseException | bytes] = []

    def __call__(self, attempt: int, delay: float, reason: BaseException | bytes) -> None:
        self.reasons.append(reason)


class Factory:
    """A replayable body factory: records its calls' arguments, and yields `pieces` (of any
    bytes-like type) each time."""

    def __init__(self, *pieces: bytes | bytearray | memoryview, pause: float = 0.0) -> None:
        self.pieces = pieces
        self.pause = pause  # seconds between pieces, on the first call only
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> AsyncIterator[bytes | bytearray | memoryview]:
        self.calls.append((args, kwargs))
        return self._yield()

    async def _yield(self) -> AsyncIterator[bytes | bytearray | memoryview]:
        pause = self.pause if len(self.calls) == 1 else 0.0
        for piece in self.pieces:
            yield piece
            await asyncio.sleep(pause)

    @property
    def data(self) -> bytes:
        return b"".join(bytes(piece) for piece in self.pieces)


def sized(data: bytes) -> tuple[tuple[bytes, bytes], ...]:
    return ((b"content-length", b"%d" % len(data)),)


# Definitions -------------------------------------------------------------------------------


def test_idempotent_methods_are_those_of_rfc_9110() -> None:
    # RFC 9110 9.2.2: PUT, DELETE and the safe methods; POST and PATCH are not.
    assert frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE")) == (
        IDEMPOTENT_METHODS
    )


# A request that reached the server is never replayed unless idempotent ----------------------


@pytest.mark.parametrize(
    ("act", "error"),
    [
        pytest.param(HANG, HttpDataTimeoutError, id="no-answer"),
        pytest.param(GARBAGE, HttpProtocolError, id="not-http"),
        pytest.param(PARTIAL_HEAD, HttpConnectionClosedError, id="closed-in-the-head"),
        pytest.param(CLOSE_IN_BODY, HttpConnectionClosedError, id="closed-in-the-upload"),
    ],
)
async def test_a_post_that_reached_the_server_is_not_replayed_however_it_failed(
    act: Act, error: type[Exception]
) -> None:
    script = Script(act, OK, OK)
    fake = FakeTime()
    reasons = Reasons()
    data = b"x" * (4 * MIB if act is CLOSE_IN_BODY else 10)  # more than the socket buffers
    factory = Factory(data)
    async with serve(script) as server, pool(read_timeout=0.05) as request:
        with pytest.raises(error):
            await retrying(request, fake, on_retry=reasons)(
                b"POST", server.url(), headers=sized(data), body=factory
            )
    assert script.methods == [b"POST"]
    assert len(factory.calls) == 1
    assert fake.delays == []
    assert reasons.reasons == []


@pytest.mark.parametrize(
    "method",
    [
        pytest.param(b"LOCK", id="a-method-not-listed"),
        pytest.param(b"put", id="lower-case-put-is-not-put"),  # RFC 9110 9.1: case-sensitive
    ],
)
async def test_a_method_not_known_to_be_idempotent_is_not_replayed(method: bytes) -> None:
    script = Script(CLOSE, OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        with pytest.raises(HttpConnectionClosedError):
            await retrying(request, fake)(method, server.url())
    assert script.methods == [method]
    assert fake.delays == []


async def test_put_is_not_replayed_when_the_caller_leaves_it_out() -> None:
    script = Script(CLOSE, OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        retriable = retrying(request, fake, idempotent_methods=(b"GET", b"HEAD"))
        with pytest.raises(HttpConnectionClosedError):
            await retriable(b"PUT", server.url(), headers=sized(b"abc"), body=Factory(b"abc"))
    assert script.methods == [b"PUT"]
    assert fake.delays == []


async def test_a_post_the_caller_opts_in_is_replayed_after_a_timeout_with_the_same_body() -> None:
    script = Script(HANG, OK)
    fake = FakeTime()
    factory = Factory(b"pay=1")
    async with serve(script) as server, pool(read_timeout=0.05) as request:
        retriable = retrying(request, fake, idempotent_methods=IDEMPOTENT_METHODS | {b"POST"})
        code, _, body = await retriable(
            b"POST", server.url(), headers=sized(factory.data), body=factory
        )
        assert (code, await buffered(body)) == (b"200", b"ok")
    assert script.methods == [b"POST", b"POST"]
    assert script.bodies == [b"pay=1", b"pay=1"]
    assert fake.delays == [0.05]


# What the server never processed is retried for any method -----------------------------------


async def test_a_stale_connection_is_retried_for_patch_with_its_body_replayed() -> None:
    # Closed while the body was still coming (paced on the first call, so that the reset
    # arrives mid-upload): the server cannot have processed it.
    script = Script(OK, CLOSE_IN_BODY, Act(reply(body=b"patched")))
    fake = FakeTime()
    reasons = Reasons()
    factory = Factory(b"op=", bytearray(b"add"), memoryview(b"&v=1"), pause=0.1)
    async with serve(script) as server, pool() as request:
        retriable = retrying(request, fake, on_retry=reasons)
        _, _, body = await retriable(b"GET", server.url())
        assert await buffered(body) == b"ok"
        code, _, body = await retriable(
            b"PATCH",
            server.url(),
            headers=sized(factory.data),
            body=factory,
            body_args=(1,),
            body_kwargs={"k": 2},
        )
        assert (code, await buffered(body)) == (b"200", b"patched")
    assert [type(reason) for reason in reasons.reasons] == [HttpStaleConnectionError]
    assert script.methods == [b"GET", b"PATCH", b"PATCH"]
    assert script.bodies[1:] == [b"op=add&v=1"]  # the first PATCH's body was never read
    assert factory.calls == [((1,), {"k": 2})] * 2
    assert server.connections == 2


async def test_a_pool_timeout_is_retried_for_post_which_is_then_sent_once() -> None:
    held = Act(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf-", "hang")  # stays busy
    script = Script(held, OK)
    fake = FakeTime()
    reasons = Reasons()
    async with (
        serve(script) as server,
        pool(max_connections=1, pool_timeout=0.05) as request,
    ):
        code, _, busy = await request(b"GET", server.url())
        assert code == b"200"
        fake.actions[1] = busy.aclose  # during the first wait, the only connection is freed
        retriable = retrying(request, fake, on_retry=reasons)
        code, _, body = await retriable(
            b"POST", server.url(), headers=sized(b"once"), body=Factory(b"once")
        )
        assert (code, await buffered(body)) == (b"200", b"ok")
    assert [type(reason) for reason in reasons.reasons] == [HttpPoolTimeoutError]
    assert script.methods == [b"GET", b"POST"]
    assert script.bodies == [b"", b"once"]


# Bodies are replayed byte for byte ----------------------------------------------------------


BIG = bytes(range(256)) * 1024  # 256 KiB


@pytest.mark.parametrize(
    ("framing", "pieces", "decoded"),
    [
        pytest.param(
            (b"content-length", b"%d" % (len(BIG) + 3)),
            (BIG[:1000], bytearray(BIG[1000:]), memoryview(b"end")),
            BIG + b"end",
            id="content-length",
        ),
        pytest.param(
            (b"transfer-encoding", b"chunked"),
            (b"%x\r\n" % len(BIG), BIG, b"\r\n3\r\nend\r\n", b"0\r\n\r\n"),
            BIG + b"end",
            id="chunked",
        ),
    ],
)
async def test_a_put_cut_off_in_its_upload_is_replayed_byte_for_byte(
    framing: tuple[bytes, bytes], pieces: tuple[bytes, ...], decoded: bytes
) -> None:
    script = Script(CLOSE_IN_BODY, OK)
    fake = FakeTime()
    factory = Factory(*pieces)
    async with serve(script) as server, pool() as request:
        code, _, body = await retrying(request, fake)(
            b"PUT", server.url(), headers=(framing,), body=factory, body_args=("a",)
        )
        assert (code, await buffered(body)) == (b"200", b"ok")
    assert script.methods == [b"PUT", b"PUT"]
    assert script.bodies == [decoded]  # the second attempt's, whole
    assert factory.calls == [(("a",), {})] * 2


async def test_a_body_that_cannot_be_replayed_fails_the_retry_without_a_complete_request() -> None:
    """A "factory" that returns the same generator each time gives nothing the second time:
    the core refuses to send a body shorter than its content-length, and that is not retried."""

    async def once() -> AsyncIterator[bytes]:
        yield b"abc"

    generator = once()
    script = Script(CLOSE, OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        with pytest.raises(HttpInvalidRequestError):
            await retrying(request, fake)(
                b"PUT", server.url(), headers=sized(b"abc"), body=lambda: generator
            )
        await asyncio.sleep(0.02)
    # The second head may arrive, with no body after it: never a second complete request.
    assert script.methods in ([b"PUT"], [b"PUT", b"PUT"])
    assert script.bodies == [b"abc"]
    assert fake.delays == [0.05]


async def test_an_error_from_the_body_factory_is_not_retried() -> None:
    calls = []

    async def failing() -> AsyncIterator[bytes]:
        calls.append(1)
        yield b"ab"
        raise OSError("disk gone")

    script = Script(OK, OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        with pytest.raises(OSError, match="disk gone"):
            await retrying(request, fake)(
                b"PUT", server.url(), headers=sized(b"abcd"), body=failing
            )
    assert calls == [1]
    assert fake.delays == []


async def test_a_closed_pool_is_not_retried() -> None:
    request, close = Pool()
    await close()
    fake = FakeTime()
    with pytest.raises(HttpPoolClosedError):
        await retrying(request, fake)(b"GET", "http://127.0.0.1:1/")
    assert fake.delays == []


# Limits --------------------------------------------------------------------------------------


async def test_errors_and_statuses_share_one_budget_of_attempts() -> None:
    script = Script(CLOSE, Act(reply(b"503", b"first")), Act(reply(b"503", b"second")), OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        retriable = retrying(request, fake, statuses=(b"503",), attempts=3)
        code, _, body = await retriable(b"GET", server.url())
        assert (code, await buffered(body)) == (b"503", b"second")
    assert len(script.heads) == 3
    assert len(fake.delays) == 2


async def test_a_post_retried_after_a_503_is_not_retried_after_a_data_error() -> None:
    # The 503 closes its connection: the retry is on a fresh one, so its failure is not stale.
    script = Script(Act(reply(b"503", headers=b"connection: close\r\n"), "close"), CLOSE, OK)
    fake = FakeTime()
    factory = Factory(b"abc")
    async with serve(script) as server, pool() as request:
        retriable = retrying(request, fake, statuses=(b"503",), attempts=5)
        with pytest.raises(HttpConnectionClosedError):
            await retriable(b"POST", server.url(), headers=sized(b"abc"), body=factory)
    assert script.methods == [b"POST", b"POST"]
    assert script.bodies == [b"abc", b"abc"]
    assert fake.delays == [0.05]


async def test_a_post_answered_429_is_sent_attempts_times_then_the_last_answer_returned() -> None:
    too_many = [Act(reply(b"429", b"%d" % i, b"retry-after: 7\r\n")) for i in range(4)]
    script = Script(*too_many)
    fake = FakeTime()
    factory = Factory(b"q=", b"1")
    async with serve(script) as server, pool() as request:
        retriable = retrying(request, fake, statuses=(b"429",), attempts=3, max_retry_after=5)
        code, _, body = await retriable(b"POST", server.url(), headers=sized(b"q=1"), body=factory)
        assert (code, await buffered(body)) == (b"429", b"2")
    assert script.bodies == [b"q=1"] * 3
    assert fake.delays == [5, 5]  # Retry-After, capped at max_retry_after
    assert server.connections == 1  # each 429's body was read: the connection kept


# A caller's cancellation is never retried ------------------------------------------------------


async def test_a_cancellation_during_the_upload_is_not_retried() -> None:
    paused = asyncio.Event()
    closed = []

    async def slow() -> AsyncIterator[bytes]:
        try:
            yield b"first"
            paused.set()
            await asyncio.Event().wait()
            yield b"never"
        finally:
            closed.append(1)

    script = Script(Act(then="hang", read_body=False), OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        retriable = retrying(request, fake, exception_intervals=((BaseException, (0, 0)),))
        task = asyncio.ensure_future(
            retriable(b"PUT", server.url(), headers=sized(b"firstnever"), body=slow)
        )
        async with asyncio.timeout(1):
            await paused.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.02)
    assert closed == [1]  # the caller's generator was closed, once
    assert fake.delays == []
    assert len(script.heads) == 1
    assert server.connections == 1


@pytest.mark.parametrize("deadline", [None, 5.0])
async def test_a_callers_timeout_is_not_retried(deadline: float | None) -> None:
    script = Script(HANG, OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        retriable = retrying(
            request, fake, exception_intervals=((Exception, (0, 0)),), deadline=deadline
        )
        with pytest.raises(TimeoutError):  # the caller's own (HttpDeadlineExceeded is not one)
            async with asyncio.timeout(0.05):
                await retriable(b"GET", server.url())
        await asyncio.sleep(0.02)
    assert fake.delays == []
    assert len(script.heads) == 1


async def test_a_cancellation_as_the_deadline_passes_is_the_callers() -> None:
    """The caller's cancellation and the deadline reach the attempt in the same turn of the
    event loop: the caller's is raised as it is, and the task's count is the caller's alone
    (the deadline's own cancellation is taken back)."""
    script = Script(HANG, OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        retriable = retrying(request, fake, deadline=0.05)
        task = asyncio.ensure_future(retriable(b"GET", server.url()))
        async with asyncio.timeout(1):
            await script.received.wait()
        # The loop blocked past the deadline, whose timer is then due in the next turn, and the
        # caller's cancellation in a callback that runs in that turn too, just before it.
        time.sleep(0.1)  # noqa: ASYNC251
        asyncio.get_running_loop().call_soon(task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.02)
    assert task.cancelling() == 1
    assert fake.delays == []
    assert len(script.heads) == 1


async def test_a_cancellation_while_a_status_body_is_dropped_is_not_retried() -> None:
    # A 503 whose body trickles: the wrapper reads it to drop it, and is cancelled meanwhile.
    trickle = Act(b"HTTP/1.1 503 X\r\ncontent-length: 1000\r\n\r\nslow", "hang")
    script = Script(trickle, OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        retriable = retrying(request, fake, statuses=(b"503",), discard_limit=10_000)
        task = asyncio.ensure_future(retriable(b"GET", server.url()))
        async with asyncio.timeout(1):
            await script.received.wait()
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.02)
    assert fake.delays == []
    assert len(script.heads) == 1


async def test_an_error_in_the_returned_body_is_the_callers() -> None:
    """Once the response is returned, the wrapper is done: a body cut short raises to the
    caller, even for a GET, and nothing is sent again."""
    script = Script(Act(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\npart", "close"), OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        code, _, body = await retrying(request, fake)(b"GET", server.url())
        assert code == b"200"
        with pytest.raises(HttpConnectionClosedError):
            await buffered(body)
    assert len(script.heads) == 1
    assert fake.delays == []


async def test_a_body_let_go_after_a_retry_closes_its_connection() -> None:
    """What the soak found, on its own: a response body that the caller lets go of unread
    closes its connection at once (as without the wrapper), even when the response came from
    a second attempt. Garbage collection is off, so that only reference counting can do it."""
    attempts = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        await read_request(reader)
        attempts += 1
        if attempts == 1:
            return  # closed without an answer: the GET is retried
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345")
        await reader.read()

    # Errors recorded as their repr: kept, the first attempt's traceback would hold the
    # wrapper's frame, and with it the response.
    recorder = Recorder(keep_errors=False)

    def closed() -> list[str]:
        return [fields["reason"] for _, fields in recorder.select("connection_closed")]

    gc.disable()
    try:
        async with serve(handler) as server:
            request, close = Pool(plugins=(recorder,))
            try:
                retrying = retry(request, backoff=0)
                code, _, body = await retrying(b"GET", server.url("/"))
                assert (code, closed()) == (b"200", ["error"])
                del body
                assert closed() == ["error", "body abandoned"]
            finally:
                await close()
    finally:
        gc.enable()
