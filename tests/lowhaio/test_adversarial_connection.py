"""Adversarial servers, in time: responses split at every byte, servers that stall, close or
reset at each phase of a response, answer before the request body is sent, or send a response
nobody asked for to an idle connection.

Each case checks the exact result or typed error, then that the same pool makes a good request
(see `adversarial.py`), over the number of connections that says whether one was reused.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import pytest
from adversarial import (
    BOUNDS,
    EVIL,
    GOOD,
    Result,
    answer_good,
    assert_pool_usable,
    error_of,
    exchange,
    no_delay,
    reset,
    scripted,
)
from conftest import get, pool, read_request, serve

import lowhaio
from lowhaio import streamed

CL_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: b\r\n\r\nhello"
CHUNKED_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    b"5;e=1\r\nhello\r\n1\r\n!\r\n0\r\nx-t: 1\r\nx-u:  2\r\n\r\n"
)
CONTINUE_RESPONSE = (
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: b\r\n\r\nok"
)
FOLDED_RESPONSE = b"HTTP/1.1 200 OK\r\nx-a: a\r\n  b\r\ncontent-length: 2\r\n\r\nok"
UNTIL_CLOSE_RESPONSE = b"HTTP/1.1 200 OK\r\nx-a: b\r\n\r\nuntil close"
EXPECT = ((b"content-length", b"3"), (b"expect", b"100-continue"))


# Split at every byte -------------------------------------------------------------------------


class Split(NamedTuple):
    response: bytes
    expected: Result
    expect_continue: bool = False  # sent as a PUT with `expect: 100-continue`
    after: str = "keep"  # keep: reused; close: closed by the server; drop: not reusable
    offsets: range | None = None  # where to split; by default at every byte


CL_RESULT = Result(b"200", ((b"content-length", b"5"), (b"x-a", b"b")), b"hello", ())
CONTINUE_RESULT = Result(b"200", ((b"content-length", b"2"), (b"x-a", b"b")), b"ok", ())
SPLITS = {
    "content-length": Split(CL_RESPONSE, CL_RESULT),
    "chunked-with-trailers": Split(
        CHUNKED_RESPONSE,
        Result(
            b"200",
            ((b"transfer-encoding", b"chunked"),),
            b"hello!",
            ((b"x-t", b"1"), (b"x-u", b"2")),
        ),
    ),
    "100-then-200": Split(CONTINUE_RESPONSE, CONTINUE_RESULT),
    "100-then-200-to-expect-100-continue": Split(CONTINUE_RESPONSE, CONTINUE_RESULT, True),
    "obs-fold": Split(
        FOLDED_RESPONSE,
        Result(b"200", ((b"x-a", b"a b"), (b"content-length", b"2")), b"ok", ()),
    ),
    "until-close": Split(
        UNTIL_CLOSE_RESPONSE, Result(b"200", ((b"x-a", b"b"),), b"until close", ()), after="close"
    ),
    # Split exactly after the first response, the second one arrives while the connection is
    # idle: the client cannot tell it from the answer to its next request. Every other split
    # puts some of it right behind the first response: never reused.
    "content-length-then-unasked": Split(
        CL_RESPONSE + EVIL,
        CL_RESULT,
        after="drop",
        offsets=range(1, len(CL_RESPONSE)),
    ),
    "content-length-then-unasked-inside": Split(
        CL_RESPONSE + EVIL,
        CL_RESULT,
        after="drop",
        offsets=range(len(CL_RESPONSE) + 1, len(CL_RESPONSE + EVIL)),
    ),
}


@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
async def test_a_response_split_in_two_at_every_byte_gives_the_same_result(split: Split) -> None:
    response = split.response
    offsets = split.offsets or range(1, len(response))
    pending = iter(offsets)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        no_delay(writer)
        while (offset := next(pending, None)) is not None:
            if split.expect_continue:
                await reader.readuntil(b"\r\n\r\n")
            else:
                await read_request(reader)
            writer.write(response[:offset])
            await writer.drain()
            await asyncio.sleep(0.002)  # so that the two parts arrive separately
            writer.write(response[offset:])
            await writer.drain()
            if split.expect_continue:
                await reader.readexactly(3)
            if split.after == "close":
                return
            if split.after == "drop":
                break  # were the connection reused, the next request would get "evil"
        await answer_good(reader, writer)

    kwargs: dict[str, Any] = {}
    if split.expect_continue:
        kwargs = {"method": b"PUT", "headers": EXPECT, "body": streamed(b"abc")}
    async with serve(handler) as server, pool(**BOUNDS, continue_timeout=5) as request:
        for offset in offsets:
            outcome = await exchange(request, server.url(), **kwargs)
            assert outcome == split.expected, f"split at {offset}: {outcome}"
        # One connection in all, or one per response and one for the good request.
        await assert_pool_usable(request, server, 1 if split.after == "keep" else len(offsets) + 1)


# Stall, close or reset at each phase of a response -------------------------------------------

PHASES = {
    "before-the-status-line": b"",
    "inside-the-head": b"HTTP/1.1 200 OK\r\ncontent-",
    "between-head-and-body": b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
    "inside-the-body": b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab",
    "inside-a-chunk": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab",
    "inside-a-chunk-size-line": (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n1"
    ),
    "inside-the-trailers": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\nx-t: 1\r\n",
}
HEAD_PHASES = ("before-the-status-line", "inside-the-head")
# Where head_timeout bounds the wait too: a head, and the framing between chunks.
FRAMING_PHASES = [*HEAD_PHASES, "inside-a-chunk-size-line", "inside-the-trailers"]
STALL = 0.1


@pytest.mark.parametrize(
    ("phase", "timeouts", "message"),
    [
        *(
            pytest.param(
                phase,
                {"read_timeout": STALL},
                f"no progress reading for {STALL} s",
                id=f"read_timeout-{phase}",
            )
            for phase in PHASES
        ),
        *(
            pytest.param(
                phase,
                {"head_timeout": STALL},
                f"not complete within {STALL} s",
                id=f"head_timeout-{phase}",
            )
            for phase in FRAMING_PHASES
        ),
    ],
)
async def test_a_server_that_stalls(phase: str, timeouts: dict[str, float], message: str) -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(PHASES[phase])
        await reader.read()  # until the client gives up and closes

    async with serve(scripted(stall)) as server, pool(**{**BOUNDS, **timeouts}) as request:
        loop = asyncio.get_running_loop()
        started = loop.time()
        at, exc = error_of(await exchange(request, server.url()))
        elapsed = loop.time() - started
        assert (at, type(exc)) == (
            "head" if phase in HEAD_PHASES else "body",
            lowhaio.HttpDataTimeoutError,
        ), repr(exc)
        assert message in str(exc)
        assert STALL * 0.9 <= elapsed < STALL + 0.9
        await assert_pool_usable(request, server, 2)


@pytest.mark.parametrize("reused", [False, True], ids=["fresh", "reused"])
@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize("phase", list(PHASES))
async def test_a_server_that_closes_or_resets(phase: str, how: str, reused: bool) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if reused:
            await read_request(reader)
            writer.write(GOOD)
        await read_request(reader)
        if PHASES[phase]:
            writer.write(PHASES[phase])
            await writer.drain()
            await asyncio.sleep(0.02)  # the client has the bytes before the FIN or RST
        if how == "reset":
            reset(writer)
        else:
            writer.close()

    async with serve(scripted(cut)) as server, pool(**BOUNDS) as request:
        if reused:
            assert await get(request, server.url()) == b"good"
        at, exc = error_of(await exchange(request, server.url()))
        # Even on a reused connection with nothing of a response, not HttpStaleConnectionError:
        # the server had the whole request, it may have processed it (RFC 9112 9.3.1). A request
        # cut short is stale: see the upload and 100-continue tests below.
        expected = lowhaio.HttpConnectionClosedError
        assert (at, type(exc)) == ("head" if phase in HEAD_PHASES else "body", expected), repr(exc)
        await assert_pool_usable(request, server, 2)


# An answer before the request body is sent (RFC 9112 9.5, RFC 9110 10.1.1) ------------------

BIG_CHUNK = bytes(1024 * 1024)
BIG_CHUNKS = 32  # more than the kernel buffers of both ends hold: the upload must block
BIG = ((b"content-length", b"%d" % (len(BIG_CHUNK) * BIG_CHUNKS)),)
TEST_LONG = 20.0  # longer than any test: a sleep cancelled when its server stops
TOO_LARGE = b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 9\r\n%s\r\ntoo large"


class Upload:
    """A large body factory that records how much of it was asked for."""

    def __init__(self) -> None:
        self.chunks = 0

    async def __call__(self) -> AsyncIterator[bytes]:
        for _ in range(BIG_CHUNKS):
            self.chunks += 1
            yield BIG_CHUNK


async def drain_body(reader: asyncio.StreamReader) -> int:
    size = 0
    while size < len(BIG_CHUNK) * BIG_CHUNKS:
        data = await reader.read(1024 * 1024)
        if not data:
            break
        size += len(data)
    return size


@pytest.mark.parametrize("reused", [False, True], ids=["fresh", "reused"])
@pytest.mark.parametrize("answer", [b"", TOO_LARGE % b"connection: close\r\n"], ids=["none", "413"])
async def test_a_server_that_closes_while_a_large_upload_is_sent(
    answer: bytes, reused: bool
) -> None:
    # The server closes with the upload unread: its kernel resets the connection. A 413 that
    # came first is what the caller gets (RFC 9112 9.5: the client watches for a response
    # while it sends); with no answer at all, the request was stale only on a reused
    # connection.
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if reused:
            await read_request(reader)
            writer.write(GOOD)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()

    upload = Upload()
    async with serve(scripted(refuse)) as server, pool(**BOUNDS) as request:
        if reused:
            assert await get(request, server.url()) == b"good"
        outcome = await exchange(request, server.url(), b"PUT", headers=BIG, body=upload)
        if answer:
            assert isinstance(outcome, Result), outcome
            assert (outcome.code, outcome.body) == (b"413", b"too large")
        else:
            at, exc = error_of(outcome)
            expected = (
                lowhaio.HttpStaleConnectionError if reused else lowhaio.HttpConnectionClosedError
            )
            assert (at, type(exc)) == ("head", expected), repr(exc)
        assert upload.chunks < BIG_CHUNKS
        await assert_pool_usable(request, server, 2)


async def test_413_then_no_more_reading_while_a_large_upload_is_sent() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(TOO_LARGE % b"")
        await writer.drain()
        await asyncio.sleep(TEST_LONG)  # neither reads nor closes

    upload = Upload()
    async with (
        serve(scripted(refuse)) as server,
        pool(**{**BOUNDS, "write_timeout": 0.1}) as request,
    ):
        at, exc = error_of(await exchange(request, server.url(), b"PUT", headers=BIG, body=upload))
        assert (at, type(exc)) == ("head", lowhaio.HttpDataTimeoutError), repr(exc)
        assert "writing" in str(exc)
        assert upload.chunks < BIG_CHUNKS
        await assert_pool_usable(request, server, 2)


@pytest.mark.parametrize(
    ("response", "reuse"),
    [
        (TOO_LARGE % b"connection: close\r\n", False),
        (TOO_LARGE % b"", True),  # the server said nothing of closing: it reads on
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", True),
    ],
    ids=["413-close", "413-keep-alive", "200-keep-alive"],
)
async def test_an_early_answer_from_a_server_that_reads_the_whole_upload(
    response: bytes, reuse: bool
) -> None:
    received: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(response)
        received.set_result(await drain_body(reader))
        if b"close" in response:
            return
        await answer_good(reader, writer)

    upload = Upload()
    async with serve(scripted(early)) as server, pool(**BOUNDS) as request:
        outcome = await exchange(request, server.url(), b"PUT", headers=BIG, body=upload)
        assert isinstance(outcome, Result), outcome
        assert (outcome.code, outcome.body) == (
            (b"413", b"too large") if response.startswith(b"HTTP/1.1 413") else (b"200", b"ok")
        )
        if reuse:  # the server said nothing of closing: all of the body, after the answer
            assert await received == len(BIG_CHUNK) * BIG_CHUNKS
        else:  # it is closing: the client stops sending at once (RFC 9112 9.5)
            assert await received < len(BIG_CHUNK) * BIG_CHUNKS
            assert upload.chunks < BIG_CHUNKS
        await assert_pool_usable(request, server, 1 if reuse else 2)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (TOO_LARGE % b"", (b"413", b"too large")),
        (TOO_LARGE % b"connection: close\r\n", (b"413", b"too large")),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            (b"200", b"ok"),
        ),
    ],
    ids=["413", "413-close", "200-chunked"],
)
async def test_a_final_answer_instead_of_100_continue_withholds_a_large_upload(
    response: bytes, expected: tuple[bytes, bytes]
) -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(response)
        await reader.read()  # until the client closes

    upload = Upload()
    async with serve(scripted(refuse)) as server, pool(**BOUNDS, continue_timeout=5) as request:
        headers = (*BIG, (b"expect", b"100-continue"))
        outcome = await exchange(request, server.url(), b"PUT", headers=headers, body=upload)
        assert isinstance(outcome, Result), outcome
        assert (outcome.code, outcome.body) == expected
        assert upload.chunks == 0  # the body was not even asked for
        # Not reused: the server cannot tell whether a body or the next request follows.
        await assert_pool_usable(request, server, 2)


async def test_100_continue_then_413_and_close_while_the_upload_is_sent() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await reader.readexactly(100_000)  # some of the body, then the server changes its mind
        writer.write(TOO_LARGE % b"connection: close\r\n")
        await writer.drain()

    upload = Upload()
    async with serve(scripted(refuse)) as server, pool(**BOUNDS, continue_timeout=5) as request:
        headers = (*BIG, (b"expect", b"100-continue"))
        outcome = await exchange(request, server.url(), b"PUT", headers=headers, body=upload)
        assert isinstance(outcome, Result), outcome
        assert (outcome.code, outcome.body) == (b"413", b"too large")
        assert 0 < upload.chunks < BIG_CHUNKS
        await assert_pool_usable(request, server, 2)


async def test_a_100_continue_after_the_client_stopped_waiting_for_it_is_skipped() -> None:
    async def late(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        assert await reader.readexactly(3) == b"abc"  # sent after continue_timeout
        writer.write(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc"
        )
        await answer_good(reader, writer)

    async with (
        serve(scripted(late)) as server,
        pool(**BOUNDS, continue_timeout=0.05) as request,
    ):
        outcome = await exchange(
            request, server.url(), b"PUT", headers=EXPECT, body=streamed(b"abc")
        )
        assert outcome == Result(b"200", ((b"content-length", b"3"),), b"abc", ())
        await assert_pool_usable(request, server, 1)


@pytest.mark.parametrize("reused", [False, True], ids=["fresh", "reused"])
@pytest.mark.parametrize("how", ["close", "reset"])
async def test_a_server_that_closes_while_the_client_waits_for_100_continue(
    how: str, reused: bool
) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if reused:
            await read_request(reader)
            writer.write(GOOD)
        await reader.readuntil(b"\r\n\r\n")
        if how == "reset":
            reset(writer)

    started = []

    async def body() -> AsyncIterator[bytes]:
        started.append(True)
        yield b"abc"

    async with serve(scripted(cut)) as server, pool(**BOUNDS, continue_timeout=5) as request:
        if reused:
            assert await get(request, server.url()) == b"good"
        at, exc = error_of(await exchange(request, server.url(), b"PUT", headers=EXPECT, body=body))
        expected = lowhaio.HttpStaleConnectionError if reused else lowhaio.HttpConnectionClosedError
        assert (at, type(exc)) == ("head", expected), repr(exc)
        assert started == []
        await assert_pool_usable(request, server, 2)


# A response nobody asked for, sent to an idle connection -------------------------------------


@pytest.mark.parametrize(
    "unasked",
    [
        EVIL,
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-len",
        b"\r\n",
    ],
    ids=["response", "interim", "408", "partial-head", "crlf"],
)
@pytest.mark.parametrize("then_close", [False, True], ids=["kept-open", "then-closed"])
async def test_a_response_sent_unasked_to_an_idle_connection_never_reaches_a_caller(
    unasked: bytes, then_close: bool
) -> None:
    async def inject(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst")
        await writer.drain()
        await asyncio.sleep(0.02)  # the client is idle now
        writer.write(unasked)
        await writer.drain()
        if then_close:
            return
        await answer_good(reader, writer)  # were the connection reused, "evil" or junk first

    async with serve(scripted(inject)) as server, pool(**BOUNDS) as request:
        assert await get(request, server.url()) == b"first"
        await asyncio.sleep(0.06)
        await assert_pool_usable(request, server, 2)


async def test_responses_sent_unasked_on_many_idle_connections_reach_no_caller() -> None:
    # Several connections idle at once, each sent an unasked response: every later request
    # still gets its own server's answer.
    count = itertools.count()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if next(count) < 3:
            await read_request(reader)
            await asyncio.sleep(0.02)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst")
            await asyncio.sleep(0.05)
            writer.write(EVIL)
        await answer_good(reader, writer)

    async with serve(handler) as server, pool(**BOUNDS) as request:
        bodies = await asyncio.gather(*(get(request, server.url()) for _ in range(3)))
        assert bodies == [b"first"] * 3
        await asyncio.sleep(0.1)
        for _ in range(3):
            assert await get(request, server.url()) == b"good"  # type: ignore[union-attr]
        await assert_pool_usable(request, server, 4)
