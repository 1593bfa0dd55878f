"""The everyday helpers (`json_body`, `read_json`, `header_values`) against a real server on
127.0.0.1: the bytes it receives, what the caller reads back, and what happens to a connection
whose body was too long to read."""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import Handler, read_request, respond_with, serve

from lowhaio import (
    HttpBodyTooLong,
    HttpDataError,
    HttpInvalidRequestError,
    Pool,
    buffered,
    header_values,
    json_body,
    read_json,
)

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def echo(received: list[tuple[bytes, bytes]]) -> Handler:
    """A handler that answers each request with its own body and content-type, and notes what
    it received."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, body = await read_request(reader)
            received.append((head, body))
            writer.write(b"HTTP/1.1 200 OK\r\n")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-type:"):
                    writer.write(line + b"\r\n")
            writer.write(b"content-length: %d\r\n\r\n%b" % (len(body), body))

    return handler


async def test_a_json_round_trip() -> None:
    received: list[tuple[bytes, bytes]] = []
    value = {"a": 1, "b": [True, None], "é": "ü"}
    async with serve(echo(received)) as server:
        request, close = Pool()
        code, headers, body = await request(b"POST", server.url("/echo"), **json_body(value))
        assert int(code) == 200  # the status as an int: int() takes the code's ASCII digits
        assert header_values(headers, b"Content-Type") == (b"application/json",)
        assert await read_json(body) == value
        await close()
    sent = b'{"a":1,"b":[true,null],"\\u00e9":"\\u00fc"}'  # compact, and ASCII whatever the text
    assert received == [
        (
            b"POST /echo HTTP/1.1\r\nhost: 127.0.0.1:%d\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % (server.port, len(sent)),
            sent,
        )
    ]


async def test_json_body_takes_the_callers_headers_and_content_type() -> None:
    received: list[tuple[bytes, bytes]] = []
    token = (b"authorization", b"Bearer t")
    async with serve(echo(received)) as server:
        request, close = Pool()
        for headers in [(token,), [token, (b"Content-Type", b"application/merge-patch+json")]]:
            _, _, body = await request(b"PATCH", server.url(), **json_body([1], headers=headers))
            assert await read_json(body) == [1]
        await close()
    heads = [head.split(b"\r\n")[2:-2] for head, _ in received]
    assert heads == [
        [b"authorization: Bearer t", b"content-type: application/json", b"content-length: 3"],
        [
            b"authorization: Bearer t",
            b"Content-Type: application/merge-patch+json",  # the caller's, and no other
            b"content-length: 3",
        ],
    ]


@pytest.mark.parametrize("framing", [(b"content-length", b"3"), (b"transfer-encoding", b"chunked")])
async def test_json_body_refuses_the_callers_own_framing(framing: tuple[bytes, bytes]) -> None:
    """`json_body` frames the body itself: a content-length or transfer-encoding of the
    caller's as well is refused before a byte is sent."""
    received: list[tuple[bytes, bytes]] = []
    async with serve(echo(received)) as server:
        request, close = Pool()
        with pytest.raises(HttpInvalidRequestError):
            await request(b"POST", server.url(), **json_body([1], headers=(framing,)))
        await close()
    assert (received, server.connections) == ([], 0)


async def test_a_json_body_can_be_replayed() -> None:
    received: list[tuple[bytes, bytes]] = []
    async with serve(echo(received)) as server:
        request, close = Pool()
        arguments = json_body({"n": 1})
        for _ in range(2):  # what a retry or a redirect wrapper does with the factory
            _, _, body = await request(b"PUT", server.url(), **arguments)
            await buffered(body)
        await close()
    assert [body for _, body in received] == [b'{"n":1}'] * 2


@pytest.mark.parametrize(
    ("value", "error"),
    [(float("nan"), ValueError), ({"x": float("inf")}, ValueError), (object(), TypeError)],
)
def test_json_body_refuses_what_is_not_json_before_any_request(
    value: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        json_body(value)


async def test_read_json_reads_up_to_max_bytes_and_drops_a_longer_body() -> None:
    document = b'{"k":"%b"}' % (b"v" * 92)
    head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(document)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Each response in parts, a moment apart: the client waits for the rest.
        for parts in ([head, document], [head + document[:50], document[50:]], [OK]):
            await read_request(reader)
            for part in parts:
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(0.05)
        await reader.read()

    async with serve(handler) as server:
        request, close = Pool()
        _, _, body = await request(b"GET", server.url())
        assert await read_json(body, max_bytes=len(document)) == {"k": "v" * 92}
        _, _, body = await request(b"GET", server.url())
        with pytest.raises(HttpBodyTooLong, match="longer than 10 bytes") as raised:
            await read_json(body, max_bytes=10)
        assert isinstance(raised.value, HttpDataError)  # a response's error: retry if idempotent
        # The little that was left was read to its end, so the connection is reused.
        _, _, body = await request(b"GET", server.url())
        assert await buffered(body) == b"ok"
        await close()
    assert server.connections == 1


async def test_read_json_closes_the_connection_of_a_body_far_too_long() -> None:
    big = b"HTTP/1.1 200 OK\r\ncontent-length: 1048576\r\n\r\n" + b" " * 1048576
    connections = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await read_request(reader)
        writer.write(big if len(connections) == 1 else OK)
        await writer.drain()
        await reader.read()

    async with serve(handler) as server:
        request, close = Pool()
        _, _, body = await request(b"GET", server.url())
        with pytest.raises(HttpBodyTooLong):
            await read_json(body, max_bytes=10)
        _, _, body = await request(b"GET", server.url())
        assert await buffered(body) == b"ok"  # on a new connection: the first was closed
        await close()
    assert server.connections == 2


@pytest.mark.parametrize("document", [b"", b"nope", b'{"a": 1'])
async def test_read_json_raises_on_what_is_not_json(document: bytes) -> None:
    response = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (len(document), document)
    async with serve(respond_with(response)) as server:
        request, close = Pool()
        _, _, body = await request(b"GET", server.url())
        with pytest.raises(json.JSONDecodeError):
            await read_json(body)
        await close()


async def test_header_values_keeps_repeated_fields_in_order() -> None:
    response = (
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\ncontent-type: text/plain\r\n"
        b"set-cookie: b=2\r\ncontent-length: 2\r\n\r\nok"
    )
    async with serve(respond_with(response)) as server:
        request, close = Pool()
        _, headers, body = await request(b"GET", server.url())
        await buffered(body)
        await close()
    assert header_values(headers, b"SET-COOKIE") == (b"a=1", b"b=2")
    assert header_values(headers, b"content-type") == (b"text/plain",)
    assert header_values(headers, b"etag") == ()
    # Any pairs, a request's own headers too, whatever the case of their names.
    assert header_values([(b"X-Id", b"1"), (b"x-id", b"2")], b"x-ID") == (b"1", b"2")
