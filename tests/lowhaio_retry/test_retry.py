"""`lowhaio_retry.retry` against scripted servers on 127.0.0.1, with a fake clock: what is
retried (and what never is), how long each wait is, and what the caller gets in the end."""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import email.utils
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from conftest import Recorder, Server, pool, read_request, serve
from retry_support import NOW, FakeTime, retrying

from lowhaio import (
    HttpConnectionClosedError,
    HttpConnectionError,
    HttpDataError,
    HttpInvalidRequestError,
    HttpProtocolError,
    HttpTimeoutError,
    buffered,
    streamed,
)
from lowhaio_retry import HttpDeadlineExceeded, retry, retry_after

CLOSE = b""  # a reply that reads the request, then closes the connection without answering
HANG = b"hang"  # a reply that reads the request, then never answers
GARBAGE = b"not http\r\n\r\n"  # a reply that is not HTTP: an HttpProtocolError
MIB = 1024 * 1024


def reply(code: bytes = b"200", body: bytes = b"ok", headers: bytes = b"") -> bytes:
    return b"HTTP/1.1 %s Status\r\ncontent-length: %d\r\n%s\r\n%s" % (
        code,
        len(body),
        headers,
        body,
    )


OK = reply()


class Script:
    """A server handler whose n-th request, counted over all connections, gets the n-th reply
    (and any request beyond them, `CLOSE`)."""

    def __init__(self, *replies: bytes) -> None:
        self.replies = replies
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body) of each request
        self.received = asyncio.Event()  # set at each request

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            self.requests.append(await read_request(reader))
            self.received.set()
            index = len(self.requests) - 1
            answer = self.replies[index] if index < len(self.replies) else CLOSE
            if answer == CLOSE:
                writer.transport.abort()
                return
            if answer == HANG:
                await reader.read()
                return
            writer.write(answer)
            await writer.drain()

    @property
    def methods(self) -> list[bytes]:
        return [head.split(b" ", 1)[0] for head, _ in self.requests]


class LateServer:
    """A server on a reserved port that refuses connections until `start()` (the socket is
    bound, so no one else can take the port, but not listening)."""

    def __init__(self, handler: Script) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = Server(handler)
        self.listener: asyncio.Server | None = None

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        self.listener = await asyncio.start_server(self.server._handle, sock=self.sock)

    async def stop(self) -> None:
        if self.listener is None:
            self.sock.close()
            return
        self.listener.close()
        for writer in self.server.writers:
            writer.transport.abort()
        for task in list(self.server.tasks):
            task.cancel()
        await asyncio.gather(*self.server.tasks, return_exceptions=True)
        await self.listener.wait_closed()


@contextlib.asynccontextmanager
async def late_server(handler: Script) -> AsyncIterator[LateServer]:
    server = LateServer(handler)
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def refusing() -> AsyncIterator[str]:
    """The URL of a port that refuses every connection."""
    async with late_server(Script()) as server:
        yield server.url()


# The seed's form: exception_intervals ------------------------------------------------------


SEED = ((HttpConnectionError, (0, 1, 2)),)


async def test_seed_a_server_that_starts_late_is_reached_after_the_listed_waits() -> None:
    script = Script(reply(body=b"the-response-data"))
    fake = FakeTime()
    async with late_server(script) as server, pool() as request:
        fake.actions[2] = server.start
        retriable = retrying(request, fake, exception_intervals=SEED)
        code, _, body = await retriable(
            b"POST",
            server.url(),
            headers=((b"content-length", b"9"),),
            body=streamed(b"some-data"),
        )
        assert (code, await buffered(body)) == (b"200", b"the-response-data")
    assert fake.delays == [0, 1]
    assert script.requests[0][1] == b"some-data"
    assert server.server.connections == 1


async def test_seed_a_server_that_never_comes_raises_the_last_error() -> None:
    fake = FakeTime()
    seen: list[BaseException | bytes] = []
    async with refusing() as url, pool() as request:
        retriable = retrying(
            request,
            fake,
            exception_intervals=((HttpConnectionError, (0, 1)),),
            on_retry=lambda _, __, reason: seen.append(reason),
        )
        with pytest.raises(HttpConnectionError) as info:
            await retriable(b"GET", url)
    assert fake.delays == [0, 1]
    assert len(seen) == 2
    assert all(info.value is not error for error in seen)  # the third error, not an earlier one
    assert isinstance(info.value.__cause__, OSError)


@pytest.mark.parametrize("exception_intervals", [((HttpConnectionError, ()),), ()])
async def test_seed_no_intervals_raise_at_once(exception_intervals: Any) -> None:
    fake = FakeTime()
    async with refusing() as url, pool() as request:
        retriable = retrying(request, fake, exception_intervals=exception_intervals)
        with pytest.raises(HttpConnectionError):
            await retriable(b"GET", url)
    assert fake.delays == []


async def test_seed_an_error_of_an_unlisted_class_is_raised_at_once() -> None:
    script = Script(CLOSE, OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        retriable = retrying(request, fake, exception_intervals=SEED)
        with pytest.raises(HttpConnectionClosedError):
            await retriable(b"GET", server.url())  # idempotent, yet not listed
    assert fake.delays == []
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    ("replies", "delays", "raised"),
    [
        ((CLOSE, GARBAGE, CLOSE, OK), [1, 5, 2], None),
        ((CLOSE, GARBAGE, GARBAGE, OK), [1, 5], HttpProtocolError),
        ((CLOSE, CLOSE, CLOSE, OK), [1, 2], HttpConnectionClosedError),
    ],
)
async def test_seed_each_entry_has_its_own_intervals(
    replies: tuple[bytes, ...], delays: list[float], raised: type[Exception] | None
) -> None:
    script = Script(*replies)
    fake = FakeTime()
    intervals = ((HttpConnectionClosedError, (1, 2)), (HttpProtocolError, (5,)))
    async with serve(script) as server, pool() as request:
        retriable = retrying(request, fake, exception_intervals=intervals)
        if raised is None:
            code, _, body = await retriable(b"GET", server.url())
            assert (code, await buffered(body)) == (b"200", b"ok")
        else:
            with pytest.raises(raised):
                await retriable(b"GET", server.url())
    assert fake.delays == delays
    assert len(script.requests) == len(delays) + 1


# Errors, by default ------------------------------------------------------------------------


@pytest.mark.parametrize("method", [b"GET", b"POST"])
async def test_a_refused_connection_is_retried_for_any_method(method: bytes) -> None:
    script = Script(OK)
    fake = FakeTime()
    async with late_server(script) as server, pool() as request:
        fake.actions[1] = server.start
        retriable = retrying(request, fake)
        code, _, body = await retriable(method, server.url())
        assert (code, await buffered(body)) == (b"200", b"ok")
    assert fake.delays == [0.05]
    assert script.methods == [method]


async def test_a_connection_refused_every_time_raises_after_the_attempts() -> None:
    fake = FakeTime()
    async with refusing() as url, pool() as request:
        with pytest.raises(HttpConnectionError) as info:
            await retrying(request, fake)(b"POST", url)
    assert fake.delays == [0.05, 0.1]
    assert isinstance(info.value.__cause__, OSError)


async def test_a_post_whose_reused_connection_closed_after_it_was_sent_is_not_retried() -> None:
    # The server had all of it, then closed without a word: it may have processed it.
    script = Script(OK, CLOSE, reply(body=b"posted"))
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        retriable = retrying(request, fake)
        _, _, body = await retriable(b"GET", server.url())
        assert await buffered(body) == b"ok"
        with pytest.raises(HttpConnectionClosedError):
            await retriable(
                b"POST", server.url(), headers=((b"content-length", b"3"),), body=streamed(b"abc")
            )
    assert fake.delays == []
    assert script.methods == [b"GET", b"POST"]


@pytest.mark.parametrize("method", [b"GET", b"PUT", b"DELETE"])
async def test_a_data_error_is_retried_for_idempotent_methods(method: bytes) -> None:
    script = Script(CLOSE, CLOSE, OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        code, _, body = await retrying(request, fake)(method, server.url())
        assert (code, await buffered(body)) == (b"200", b"ok")
    assert fake.delays == [0.05, 0.1]
    assert script.methods == [method] * 3


@pytest.mark.parametrize("method", [b"POST", b"PATCH"])
async def test_a_data_error_is_not_retried_for_other_methods(method: bytes) -> None:
    script = Script(CLOSE, OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        with pytest.raises(HttpConnectionClosedError):
            await retrying(request, fake)(method, server.url())
    assert fake.delays == []
    assert script.methods == [method]


@pytest.mark.parametrize(("method", "retried"), [(b"POST", True), (b"GET", False)])
async def test_idempotent_methods_can_be_chosen(method: bytes, retried: bool) -> None:
    script = Script(CLOSE, OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        retriable = retrying(request, fake, idempotent_methods=(b"POST",))
        if retried:
            code, _, body = await retriable(method, server.url())
            assert (code, await buffered(body)) == (b"200", b"ok")
        else:
            with pytest.raises(HttpDataError):
                await retriable(method, server.url())
    assert len(script.requests) == 1 + retried


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("ftp://127.0.0.1:{port}/", ()),
        ("http://127.0.0.1:{port}/", ((b"x-bad", b"a\r\nb"),)),
    ],
)
async def test_an_invalid_request_is_never_retried(
    url: str, headers: tuple[tuple[bytes, bytes], ...]
) -> None:
    script = Script(OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        with pytest.raises(HttpInvalidRequestError):
            await retrying(request, fake)(b"GET", url.format(port=server.port), headers=headers)
    assert fake.delays == []
    assert server.connections == 0


@pytest.mark.parametrize("attempts", [1, 2, 3])
async def test_attempts_bound_the_number_of_requests(attempts: int) -> None:
    script = Script(CLOSE, CLOSE, CLOSE, OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        with pytest.raises(HttpConnectionClosedError):
            await retrying(request, fake, attempts=attempts)(b"GET", server.url())
    assert len(script.requests) == attempts
    assert len(fake.delays) == attempts - 1


@pytest.mark.parametrize(
    ("jitter", "delays"),
    [
        (0.5, [0.05, 0.1, 0.15, 0.15]),
        (1.0 - 1e-9, [0.1, 0.2, 0.3, 0.3]),
        (0.0, [0.0, 0.0, 0.0, 0.0]),
    ],
)
async def test_backoff_is_exponential_capped_with_full_jitter(
    jitter: float, delays: list[float]
) -> None:
    fake = FakeTime()
    async with refusing() as url, pool() as request:
        retriable = retrying(
            request, fake, attempts=5, backoff=0.1, max_backoff=0.3, jitter=lambda: jitter
        )
        with pytest.raises(HttpConnectionError):
            await retriable(b"GET", url)
    assert fake.delays == pytest.approx(delays)


# Deadline ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deadline", "delays"),
    [
        (0.4, []),
        (1.0, [0.5]),
        (1.5, [0.5]),  # a wait that ends at the deadline leaves no time for an attempt
        (1.6, [0.5, 1.0]),
    ],
)
async def test_no_wait_goes_past_the_deadline(deadline: float, delays: list[float]) -> None:
    fake = FakeTime()  # backoff 1.0 with jitter 0.5: waits of 0.5, 1.0, 2.0...
    seen: list[BaseException | bytes] = []
    async with refusing() as url, pool() as request:
        retriable = retrying(
            request,
            fake,
            attempts=10,
            backoff=1.0,
            deadline=deadline,
            on_retry=lambda _, __, reason: seen.append(reason),
        )
        with pytest.raises(HttpConnectionError) as info:
            await retriable(b"GET", url)
    assert fake.delays == delays
    assert len(seen) == len(delays)
    assert all(info.value is not error for error in seen)


async def test_the_deadline_counts_from_each_call() -> None:
    fake = FakeTime()
    async with refusing() as url, pool() as request:
        retriable = retrying(request, fake, attempts=10, backoff=1.0, deadline=1.0)
        for _ in range(2):
            with pytest.raises(HttpConnectionError):
                await retriable(b"GET", url)
    assert fake.delays == [0.5, 0.5]


def elapsed_since(start: float) -> float:
    return asyncio.get_running_loop().time() - start


async def test_an_attempt_in_flight_is_given_up_at_the_deadline() -> None:
    # The issue: retry(request, deadline=2) returned a 5 s response after 5 s.
    script = Script(HANG, OK)
    fake = FakeTime()
    recorder = Recorder()
    async with serve(script) as server, pool(read_timeout=1, plugins=(recorder,)) as request:
        retriable = retrying(request, fake, deadline=0.1)
        start = asyncio.get_running_loop().time()
        with pytest.raises(HttpTimeoutError) as info:
            await retriable(b"GET", server.url())
        assert 0.09 < elapsed_since(start) < 0.5  # the deadline, not read_timeout
        await recorder.wait("connection_closed")
        closed = [fields["reason"] for _, fields in recorder.select("connection_closed")]
    assert isinstance(info.value, HttpDeadlineExceeded)
    assert isinstance(info.value, HttpDataError)  # the request may have been processed
    assert "the deadline of 0.1 s passed" in str(info.value)
    assert isinstance(info.value.__cause__, TimeoutError)
    assert closed == ["error"]  # given up: its connection closed, not reused
    assert len(script.requests) == 1
    assert fake.delays == []
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0  # the deadline's cancellation taken back


async def test_the_waits_count_against_the_attempt_in_flight() -> None:
    script = Script(CLOSE, HANG)
    fake = FakeTime()
    async with serve(script) as server, pool(read_timeout=2) as request:
        retriable = retrying(request, fake, backoff=1.6, deadline=1.0)  # a wait of 0.8 s
        start = asyncio.get_running_loop().time()
        with pytest.raises(HttpDeadlineExceeded):
            await retriable(b"GET", server.url())
        assert elapsed_since(start) < 0.6  # what the wait left (0.2 s), not the whole deadline
    assert fake.delays == pytest.approx([0.8])
    assert len(script.requests) == 2


async def test_dropping_the_body_of_a_response_to_retry_is_within_the_deadline() -> None:
    stalled = b"HTTP/1.1 503 Busy\r\ncontent-length: 100\r\n\r\npart"  # the rest never comes
    script = Script(stalled, OK)
    fake = FakeTime()
    async with serve(script) as server, pool(read_timeout=1) as request:
        retriable = retrying(request, fake, statuses=(b"503",), discard_limit=1000, deadline=0.1)
        start = asyncio.get_running_loop().time()
        with pytest.raises(HttpDeadlineExceeded):
            await retriable(b"GET", server.url())
        assert elapsed_since(start) < 0.5
    assert len(script.requests) == 1
    assert fake.delays == []


async def test_the_deadline_does_not_bound_reading_the_body_returned() -> None:
    big = b"x" * MIB  # more than the client's read buffer: read mostly after the return
    script = Script(reply(body=big))
    async with serve(script) as server, pool() as request:
        code, _, body = await retrying(request, FakeTime(), deadline=0.05)(b"GET", server.url())
        await asyncio.sleep(0.1)  # past the deadline: nothing of it is left to fire
        assert (code, await buffered(body)) == (b"200", big)
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


# Statuses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "limit", "connections"),
    [
        (10, {}, 1),  # read to its end: the connection is reused
        # Bodies longer than the client's read buffer, so not all read with the head:
        (MIB, {}, 2),  # more than lowhaio.DISCARD_LIMIT_BYTES: the connection is closed
        (MIB, {"discard_limit": 2 * MIB}, 1),
        (MIB, {"discard_limit": 1000}, 2),
    ],
)
async def test_a_listed_status_is_retried_and_its_body_dropped(
    size: int, limit: dict[str, int], connections: int
) -> None:
    script = Script(reply(b"503", b"x" * size), OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        retriable = retrying(request, fake, statuses=(b"503",), **limit)
        code, _, body = await retriable(b"GET", server.url())
        assert (code, await buffered(body)) == (b"200", b"ok")
    assert fake.delays == [0.05]
    assert len(script.requests) == 2
    assert server.connections == connections


@pytest.mark.parametrize(
    ("value", "delay"),
    [
        (b"2", 2.0),
        (b"0", 0.0),
        (email.utils.formatdate(NOW + 5, usegmt=True).encode(), 5.0),
        (email.utils.formatdate(NOW - 60, usegmt=True).encode(), 0.0),
        (b"120", 30.0),  # capped
        (email.utils.formatdate(NOW + 3600, usegmt=True).encode(), 30.0),
        (b"soon", 0.05),  # invalid: the backoff
        (b"1.5", 0.05),
        (b"-1", 0.05),
        (b"\xb2", 0.05),  # obs-text "superscript two": not a digit in HTTP
    ],
)
async def test_retry_after_sets_the_wait_for_a_status(value: bytes, delay: float) -> None:
    script = Script(reply(b"503", headers=b"Retry-After: " + value + b"\r\n"), OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        retriable = retrying(request, fake, statuses=(b"503",), max_retry_after=30.0)
        code, _, body = await retriable(b"GET", server.url())
        assert (code, await buffered(body)) == (b"200", b"ok")
    assert fake.delays == [delay]


@pytest.mark.parametrize(
    ("method", "code", "retried"),
    [
        (b"POST", b"502", False),
        (b"PATCH", b"502", False),
        (b"POST", b"503", True),
        (b"POST", b"429", True),
        (b"GET", b"502", True),
    ],
)
async def test_a_status_is_retried_for_any_method_only_if_not_processed(
    method: bytes, code: bytes, retried: bool
) -> None:
    script = Script(reply(code, b"first"), reply(body=b"second"))
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        retriable = retrying(request, fake, statuses=(b"502", b"503", b"429"))
        got, _, body = await retriable(method, server.url())
        expected = (b"200", b"second") if retried else (code, b"first")
        assert (got, await buffered(body)) == expected
    assert script.methods == [method] * (1 + retried)


async def test_when_attempts_run_out_the_last_response_is_returned() -> None:
    script = Script(reply(b"503", b"first"), reply(b"503", b"second"), OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        retriable = retrying(request, fake, statuses=(b"503",), attempts=2)
        code, _, body = await retriable(b"GET", server.url())
        assert (code, await buffered(body)) == (b"503", b"second")
    assert fake.delays == [0.05]
    assert len(script.requests) == 2


# A wait that would end at the deadline is not taken either.
@pytest.mark.parametrize(("retry_after_value", "retried"), [(b"2", True), (b"3", False)])
async def test_a_status_is_not_retried_past_the_deadline(
    retry_after_value: bytes, retried: bool
) -> None:
    script = Script(reply(b"503", b"busy", b"retry-after: " + retry_after_value + b"\r\n"), OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        retriable = retrying(request, fake, statuses=(b"503",), deadline=3.0)
        code, _, body = await retriable(b"GET", server.url())
        expected = (b"200", b"ok") if retried else (b"503", b"busy")
        assert (code, await buffered(body)) == expected
    assert fake.delays == ([2.0] if retried else [])


@pytest.mark.parametrize("statuses", [(), (b"503",)])
async def test_a_status_not_listed_is_returned_at_once(statuses: tuple[bytes, ...]) -> None:
    script = Script(reply(b"500", b"broken"), OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        code, _, body = await retrying(request, fake, statuses=statuses)(b"GET", server.url())
        assert (code, await buffered(body)) == (b"500", b"broken")
    assert fake.delays == []
    assert len(script.requests) == 1


# retry_after -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"120", 120.0),
        (b" 7 ", 7.0),
        (b"Tue, 14 Nov 2023 22:13:30 GMT", 10.0),  # NOW + 10
        (b"Tue, 14 Nov 2023 22:13:10 GMT", 0.0),  # in the past
        (None, None),
        (b"soon", None),
        (b"", None),
        (b"1.5", None),
        (b"-1", None),
        (b"Mon, 32 Oct 2023 07:28:00 GMT", None),
        (b"\xb2", None),  # obs-text "superscript two"
        (b"\xb9\xb3", None),  # "superscript one, superscript three"
    ],
)
def test_retry_after(value: bytes | None, expected: float | None) -> None:
    headers = [(b"content-type", b"text/plain")]
    if value is not None:
        headers.append((b"retry-after", value))
    assert retry_after(tuple(headers), NOW) == expected


@pytest.fixture
def local_time_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "EST+05")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_time_not_utc")
@pytest.mark.parametrize(
    "date",
    [
        b"Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        b"Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850
        b"Sun Nov  6 08:49:37 1994",  # obsolete asctime: UTC too (RFC 9110 5.6.7)
    ],
)
def test_retry_after_reads_every_http_date_format_as_utc(date: bytes) -> None:
    now = calendar.timegm((1994, 11, 6, 8, 49, 27)) + 0.0
    assert retry_after(((b"retry-after", date),), now) == 10.0


# on_retry, replay, cancellation ------------------------------------------------------------


async def test_on_retry_gets_the_attempt_the_delay_and_the_reason() -> None:
    script = Script(CLOSE, reply(b"503", headers=b"retry-after: 2\r\n"), OK)
    fake = FakeTime()
    calls: list[tuple[int, float, BaseException | bytes]] = []
    async with serve(script) as server, pool() as request:
        retriable = retrying(
            request,
            fake,
            statuses=(b"503",),
            on_retry=lambda *args: calls.append(args),
        )
        code, _, body = await retriable(b"GET", server.url())
        assert (code, await buffered(body)) == (b"200", b"ok")
    assert [(attempt, delay) for attempt, delay, _ in calls] == [(1, 0.05), (2, 2.0)]
    assert isinstance(calls[0][2], HttpConnectionClosedError)
    assert calls[1][2] == b"503"
    assert fake.delays == [0.05, 2.0]


async def test_the_body_params_and_headers_are_sent_again_on_every_attempt() -> None:
    script = Script(CLOSE, reply(b"503"), OK)
    fake = FakeTime()
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    async def body(*args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
        calls.append((args, kwargs))
        yield b"part-one,"
        yield b"part-two"

    async with serve(script) as server, pool() as request:
        retriable = retrying(request, fake, statuses=(b"503",))
        code, _, response = await retriable(
            b"PUT",
            server.url("/path"),
            params=((key, value) for key, value in (("a", "1"), ("b", "2"))),
            headers=(field for field in ((b"content-length", b"17"), (b"x-test", b"yes"))),
            body=body,
            body_args=(1, 2),
            body_kwargs={"key": "value"},
        )
        assert (code, await buffered(response)) == (b"200", b"ok")
    assert calls == [((1, 2), {"key": "value"})] * 3
    assert [body for _, body in script.requests] == [b"part-one,part-two"] * 3
    for head, _ in script.requests:
        assert head.startswith(b"PUT /path?a=1&b=2 HTTP/1.1\r\n")
        assert b"\r\nx-test: yes\r\n" in head


async def _wait_forever(_: float) -> None:
    await asyncio.Event().wait()


@pytest.mark.parametrize("sleep", [asyncio.sleep, _wait_forever], ids=["real", "fake"])
async def test_a_cancellation_while_waiting_is_not_retried(
    sleep: Callable[[float], Awaitable[None]],
) -> None:
    script = Script(reply(b"503", headers=b"retry-after: 30\r\n"), OK)
    waiting = asyncio.Event()
    async with serve(script) as server, pool() as request:
        retriable = retry(
            request, statuses=(b"503",), sleep=sleep, on_retry=lambda *_: waiting.set()
        )
        task = asyncio.ensure_future(retriable(b"GET", server.url()))
        await waiting.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.01)
    assert len(script.requests) == 1


async def test_a_cancellation_during_a_request_is_not_retried() -> None:
    script = Script(HANG, OK)
    fake = FakeTime()
    async with serve(script) as server, pool() as request:
        # Not even when the caller lists every exception.
        retriable = retrying(request, fake, exception_intervals=((BaseException, (1, 2)),))
        task = asyncio.ensure_future(retriable(b"GET", server.url()))
        await script.received.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.01)
    assert fake.delays == []
    assert len(script.requests) == 1
