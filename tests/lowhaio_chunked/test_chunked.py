"""chunked() over a real connection: the exact bytes a server receives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from conftest import read_request, serve

import lowhaio
from lowhaio_chunked import HEADER, chunked

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def _sent(body: lowhaio.BodyFactory, *args: object, **kwargs: object) -> bytes:
    """What a server receives as the body of a chunked PUT."""
    received = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            _, raw = await read_request(reader)
            received.append(raw)
            writer.write(OK)

    async with serve(handler) as server:
        request, close = lowhaio.Pool()
        try:
            _, _, response = await request(
                b"PUT",
                server.url(),
                headers=(HEADER,),
                body=body,
                body_args=args,
                body_kwargs=kwargs,
            )
            assert await lowhaio.buffered(response) == b"ok"
        finally:
            await close()
    return received[0]


async def test_each_chunk_becomes_one_chunk_and_empty_ones_are_skipped() -> None:
    buffer = bytearray(b"0123456789")

    async def body(prefix: bytes, *, repeat: int) -> AsyncIterator[bytes | bytearray | memoryview]:
        yield prefix * repeat
        yield b""
        yield bytearray(b"x" * 17)
        yield memoryview(buffer)[2:5]
        yield memoryview(b"\x01\x00\x02\x00").cast("H")  # 4 bytes, 2 items

    sent = await _sent(chunked(body), b"ab", repeat=2)
    assert (
        sent
        == b"4\r\nabab\r\n11\r\n"
        + b"x" * 17
        + b"\r\n3\r\n234\r\n4\r\n\x01\x00\x02\x00\r\n0\r\n\r\n"
    )


async def test_an_empty_body_is_just_the_last_chunk() -> None:
    assert await _sent(chunked(lowhaio.empty_body)) == b"0\r\n\r\n"


async def test_trailers_given_or_computed_after_the_body() -> None:
    seen = []

    async def body() -> AsyncIterator[bytes]:
        for chunk in (b"abc", b"de"):
            seen.append(chunk)
            yield chunk

    static = await _sent(chunked(body, trailers=((b"x-a", b"1"), (b"X-B", b""))))
    assert static.endswith(b"0\r\nx-a: 1\r\nX-B: \r\n\r\n")
    computed = await _sent(chunked(body, trailers=lambda: ((b"x-count", b"%d" % len(seen)),)))
    assert computed.endswith(b"0\r\nx-count: 4\r\n\r\n")  # after all four chunks were read


@pytest.mark.parametrize(
    "trailer", [(b"x\r\ny", b"1"), (b"x", b"1\r\nInjected: 1"), (b"x", b"\x00"), (b"", b"1")]
)
async def test_invalid_trailers_are_refused(trailer: tuple[bytes, bytes]) -> None:
    with pytest.raises(lowhaio.HttpInvalidRequestError, match="trailer"):
        await _sent(chunked(lowhaio.streamed(b"abc"), trailers=(trailer,)))


async def test_the_encoded_factory_can_be_replayed() -> None:
    body = chunked(lowhaio.streamed(b"abc"))
    assert await _sent(body) == await _sent(body) == b"3\r\nabc\r\n0\r\n\r\n"
