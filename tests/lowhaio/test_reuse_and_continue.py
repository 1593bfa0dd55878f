"""Stale pooled connections and `Expect: 100-continue`, against scripted servers."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator

import pytest
from conftest import read_request, serve

import lowhaio
from lowhaio import Pool, buffered, streamed

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class KeepOpen:
    """A server that answers one request, then leaves the connection to the test."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.readers: list[asyncio.StreamReader] = []
        self.done = asyncio.Event()

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        self.writers.append(writer)
        self.readers.append(reader)
        await self.done.wait()


async def test_an_idle_connection_the_server_closed_is_detected_before_reuse() -> None:
    script = KeepOpen()
    async with serve(script) as server:
        request, close = Pool()
        _, _, body = await request(b"GET", server.url())
        assert await buffered(body) == b"ok"
        # The server's FIN is in the client's kernel before the loop has seen it: the request
        # below runs up to its connect without yielding, so only the poll at reuse can notice.
        raw = script.writers[0].get_extra_info("socket")
        with socket.socket(fileno=os.dup(raw.fileno())) as sock:
            sock.shutdown(socket.SHUT_WR)
        _, _, body = await request(b"GET", server.url())
        assert await buffered(body) == b"ok"
        script.done.set()
        await close()
    assert server.connections == 2


async def test_bytes_on_an_idle_connection_mean_it_is_not_reused() -> None:
    script = KeepOpen()
    async with serve(script) as server:
        request, close = Pool()
        _, _, body = await request(b"GET", server.url())
        assert await buffered(body) == b"ok"
        # As above, the bytes are in the kernel before the loop has seen them.
        raw = script.writers[0].get_extra_info("socket")
        with socket.socket(fileno=os.dup(raw.fileno())) as sock:
            sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nsplit")  # unasked for
        _, _, body = await request(b"GET", server.url())
        assert await buffered(body) == b"ok"  # not the injected response
        script.done.set()
        await close()
    assert server.connections == 2


@pytest.mark.parametrize(
    ("method", "headers", "body"),
    [
        (b"GET", (), lowhaio.empty_body),
        (b"POST", ((b"content-length", b"3"),), streamed(b"abc")),
    ],
)
async def test_a_reused_connection_closed_after_the_whole_request_may_have_processed_it(
    method: bytes, headers: tuple[tuple[bytes, bytes], ...], body: lowhaio.BodyFactory
) -> None:
    # The server had the whole request before it went away without a word: it may have
    # processed it, so this is not a stale connection (safe to retry) but a data error
    # (retried only if idempotent), RFC 9112 9.3.1.
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        await read_request(reader)  # the next request arrives whole; the server goes away
        writer.transport.abort()

    async with serve(handler) as server:
        request, close = Pool()
        _, _, response = await request(b"GET", server.url())
        assert await buffered(response) == b"ok"
        with pytest.raises(lowhaio.HttpConnectionClosedError) as info:
            await request(method, server.url(), headers=headers, body=body)
        await close()
    assert not isinstance(info.value, lowhaio.HttpConnectionError)


async def test_a_reused_connection_closed_before_the_whole_request_is_safe_to_retry() -> None:
    # The server went away with the request's body still coming: it cannot have processed it.
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        await reader.readuntil(b"\r\n\r\n")  # only the head of the next request
        writer.transport.abort()

    async def slow_body() -> AsyncIterator[bytes]:
        for _ in range(100):  # 10 s at most: the reset arrives long before
            yield b"x" * 1024
            await asyncio.sleep(0.1)

    async with serve(handler) as server:
        request, close = Pool()
        _, _, response = await request(b"GET", server.url())
        assert await buffered(response) == b"ok"
        with pytest.raises(lowhaio.HttpStaleConnectionError) as info:
            await request(
                b"POST", server.url(), headers=((b"content-length", b"102400"),), body=slow_body
            )
        await close()
    assert isinstance(info.value, lowhaio.HttpConnectionError)
    assert "not processed" in str(info.value)


async def test_a_fresh_connection_closed_before_any_response_is_a_data_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.transport.abort()

    async with serve(handler) as server:
        request, close = Pool()
        with pytest.raises(lowhaio.HttpConnectionClosedError) as info:
            await request(b"POST", server.url(), headers=((b"content-length", b"0"),))
        await close()
    assert not isinstance(info.value, lowhaio.HttpConnectionError)


async def test_a_reused_connection_cut_after_part_of_the_response_is_a_data_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-")
        await writer.drain()
        writer.transport.abort()

    async with serve(handler) as server:
        request, close = Pool()
        _, _, response = await request(b"GET", server.url())
        assert await buffered(response) == b"ok"
        with pytest.raises(lowhaio.HttpConnectionClosedError):
            await request(b"GET", server.url())
        await close()


# Expect: 100-continue ------------------------------------------------------------------------

EXPECT = ((b"content-length", b"3"), (b"Expect", b"100-Continue"))


async def _body_received(reader: asyncio.StreamReader, within: float) -> bytes:
    try:
        async with asyncio.timeout(within):
            return await reader.read(3)
    except TimeoutError:
        return b""


@pytest.mark.parametrize("interim", [b"", b"HTTP/1.1 103 Early Hints\r\n\r\n"])
async def test_continue_then_the_body(interim: bytes) -> None:
    received = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"Expect: 100-Continue" in head
        assert await _body_received(reader, 0.1) == b""  # held back until 100
        writer.write(interim + b"HTTP/1.1 100 Continue\r\n\r\n")
        received.append(await reader.readexactly(3))
        writer.write(OK)
        await reader.read()

    async with serve(handler) as server:
        request, close = Pool(continue_timeout=5)
        code, _, body = await request(b"PUT", server.url(), headers=EXPECT, body=streamed(b"abc"))
        assert (code, await buffered(body)) == (b"200", b"ok")
        await close()
    assert received == [b"abc"]


async def test_a_final_response_instead_of_continue_withholds_the_body() -> None:
    received = []
    started = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if b"Expect" not in head:
            writer.write(OK)
            await reader.read()
            return
        writer.write(b"HTTP/1.1 417 Expectation Failed\r\ncontent-length: 4\r\n\r\nnope")
        received.append(await _body_received(reader, 0.2))

    async def body() -> AsyncIterator[bytes]:
        started.append(True)
        yield b"abc"

    async with serve(handler) as server:
        request, close = Pool(continue_timeout=5)
        code, _, response = await request(b"PUT", server.url(), headers=EXPECT, body=body)
        assert (code, await buffered(response)) == (b"417", b"nope")
        _, _, response = await request(b"GET", server.url())
        assert await buffered(response) == b"ok"
        await close()
    assert received == [b""]  # the body never went (the connection closed instead)
    assert started == []  # the caller's body was not even asked for
    assert server.connections == 2  # not reused: the server could not frame what follows


async def test_a_server_that_ignores_expect_gets_the_body_after_the_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, body = await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n" + body)
        await reader.read()

    async with serve(handler) as server:
        request, close = Pool(continue_timeout=0.1)
        _, _, response = await request(b"PUT", server.url(), headers=EXPECT, body=streamed(b"abc"))
        assert await buffered(response) == b"abc"
        await close()


async def test_endless_interim_responses_while_waiting_for_continue() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 102 Processing\r\n\r\n" * 17)
        await reader.read()

    async with serve(handler) as server:
        request, close = Pool(continue_timeout=5)
        with pytest.raises(lowhaio.HttpProtocolError, match="interim"):
            await request(b"PUT", server.url(), headers=EXPECT, body=streamed(b"abc"))
        await close()


async def test_a_shorter_wait_on_a_reused_connection_keeps_its_own_deadline() -> None:
    # The first exchange leaves the connection's read timer set for read_timeout (30 s); the
    # 100-continue wait on the reused connection must still end after continue_timeout.
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        _, body = await read_request(reader)  # no 100: the body comes after the timeout
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n" + body)
        await reader.read()

    async with serve(handler) as server:
        request, close = Pool(read_timeout=30, continue_timeout=0.1)
        _, _, response = await request(b"GET", server.url())
        assert await buffered(response) == b"ok"
        loop = asyncio.get_running_loop()
        started = loop.time()
        _, _, response = await request(b"PUT", server.url(), headers=EXPECT, body=streamed(b"abc"))
        assert await buffered(response) == b"abc"
        assert loop.time() - started < 5
        await close()
    assert server.connections == 1


async def test_an_idle_connection_outlives_its_read_timer() -> None:
    async with serve(KeepOpenForever()) as server:
        request, close = Pool(read_timeout=0.05)
        for _ in range(2):
            _, _, response = await request(b"GET", server.url())
            assert await buffered(response) == b"ok"
            await asyncio.sleep(0.1)  # idle past the read timeout: no error, still reusable
        await close()
    assert server.connections == 1


class KeepOpenForever:
    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(OK)


# A response while the body is still being sent (RFC 9112 9.5) --------------------------------

MIB = bytes(1024 * 1024)
UPLOAD = ((b"content-length", b"%d" % (len(MIB) * 32)),)  # more than both kernels buffer


def upload(counter: list[int]) -> lowhaio.BodyFactory:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(32):
            counter.append(1)
            yield MIB

    return body


@pytest.mark.parametrize(
    ("interim", "connection", "then"),
    [
        # Says it closes, then neither reads nor closes: without watching, the upload would
        # only stop at write_timeout.
        (b"", b"close", "wait"),
        (b"HTTP/1.1 100 Continue\r\n\r\n", b"close", "wait"),  # an interim 100 is skipped
        # Says nothing of closing, then closes with the body unread: a reset.
        (b"", b"keep-alive", "reset"),
    ],
    ids=["close", "100-then-close", "reset"],
)
async def test_an_answer_while_the_server_reads_no_more_of_the_body_stops_the_upload(
    interim: bytes, connection: bytes, then: str
) -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(interim)
        await asyncio.sleep(0.05)
        writer.write(
            b"HTTP/1.1 413 Too Large\r\nconnection: %s\r\ncontent-length: 2\r\n\r\nno" % connection
        )
        await asyncio.sleep(30 if then == "wait" else 0.05)
        writer.transport.abort()

    chunks: list[int] = []
    async with serve(refuse) as server:
        request, close = Pool(write_timeout=10)
        loop = asyncio.get_running_loop()
        started = loop.time()
        code, _, body = await request(b"PUT", server.url(), headers=UPLOAD, body=upload(chunks))
        assert (code, await buffered(body)) == (b"413", b"no")
        assert loop.time() - started < 5
        assert len(chunks) < 32
        await close()


async def test_an_interim_answer_while_sending_does_not_stop_the_upload() -> None:
    received = []

    async def slow_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n")
        while len(received) < 32:
            received.append(await reader.readexactly(len(MIB)))
        writer.write(OK)
        await reader.read()

    chunks: list[int] = []
    async with serve(slow_reader) as server:
        request, close = Pool()
        code, _, body = await request(b"PUT", server.url(), headers=UPLOAD, body=upload(chunks))
        assert (code, await buffered(body)) == (b"200", b"ok")
        assert len(chunks) == 32
        assert b"".join(received) == MIB * 32
        await close()


@pytest.mark.parametrize("after_continue", [0, 8])
async def test_interim_responses_are_counted_across_the_request(after_continue: int) -> None:
    # The 16 interim responses allowed before the final one are counted wherever they come:
    # while waiting for 100 Continue, and unasked while the body is sent or after it.
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 102 Processing\r\n\r\n" * after_continue)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await reader.readexactly(len(MIB))
        writer.write(b"HTTP/1.1 103 Early Hints\r\n\r\n" * (16 - after_continue))
        await reader.read()

    chunks: list[int] = []
    async with serve(handler) as server:
        request, close = Pool(continue_timeout=5)
        headers = (*UPLOAD, (b"expect", b"100-continue"))
        with pytest.raises(lowhaio.HttpProtocolError, match="more than 16 interim"):
            await request(b"PUT", server.url(), headers=headers, body=upload(chunks))
        assert chunks  # the body was being sent
        await close()
