"""A server that closes the connection right after each answer, without `connection: close`,
as many small servers do, and the next request sent at once: the design documents' usage
example as a user runs it. The server's FIN is in the client's kernel before the event loop
has run again, so only the check at reuse can see it; a request written on that connection
would fail as one the server may have processed (RFC 9112 9.3.1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from conftest import client_ssl_context, read_request, serve, server_ssl_context

from lowhaio import Pool, buffered, streamed

REQUESTS = 20


async def echo_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    _, body = await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    writer.close()


async def test_the_seed_example_runs_unchanged_against_a_server_that_closes() -> None:
    # The example of the design documents, word for word but for the URL and a type hint.
    async with serve(echo_then_close) as server:
        url = server.url("/post")
        request, close = Pool()

        async def request_body() -> AsyncIterator[bytes]:
            yield b"a"
            yield b"bc"

        code, headers, response_body = await request(
            b"POST",
            url,
            headers=(
                (b"content-length", b"3"),
                (b"content-type", b"text/plain"),
            ),
            body=request_body,
        )
        first = b"".join([chunk async for chunk in response_body])
        code2, _, response_body = await request(
            b"POST",
            url,
            headers=(
                (b"content-length", b"3"),
                (b"content-type", b"text/plain"),
            ),
            body=streamed(b"abc"),
        )
        second = await buffered(response_body)
        await close()
    assert (code, first, code2, second) == (b"200", b"abc", b"200", b"abc")
    assert headers == ((b"content-length", b"3"),)
    assert server.connections == 2


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("method", [b"GET", b"POST"])
async def test_each_request_at_once_after_the_server_closed_gets_its_answer(
    scheme: str, method: bytes
) -> None:
    ssl_context = server_ssl_context() if scheme == "https" else None
    body = b"abc" if method == b"POST" else b""
    headers = ((b"content-length", b"%d" % len(body)),) if body else ()
    async with serve(echo_then_close, ssl_context) as server:
        url = server.url(scheme=scheme, host="localhost" if ssl_context else "127.0.0.1")
        request, close = Pool(get_ssl_context=client_ssl_context)
        for _ in range(REQUESTS):
            code, _, response = await request(method, url, headers=headers, body=streamed(body))
            assert (code, await buffered(response)) == (b"200", body)
        await close()
    assert server.connections == REQUESTS  # none of them written on a closed connection
