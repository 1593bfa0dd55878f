"""The request path over real sockets: the seed API, what is sent, how responses are framed,
TLS, timeouts and errors. Scripted servers on 127.0.0.1 write the exact bytes of each case."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import os
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import (
    Server,
    client_ssl_context,
    read_request,
    respond_with,
    serve,
    server_ssl_context,
)

import lowhaio
from lowhaio import Pool, buffered, streamed

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def test_seed_example_posts_a_streamed_body_and_reads_the_response() -> None:
    received = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, body = await read_request(reader)
        received.append((head, body))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nechoed:")
        await reader.read()

    async with serve(handler) as server:
        request, close = Pool()

        async def request_body() -> AsyncIterator[bytes]:
            yield b"a"
            yield b"bc"

        code, headers, response_body = await request(
            b"POST",
            server.url("/post"),
            headers=((b"content-length", b"3"), (b"content-type", b"text/plain")),
            body=request_body,
        )
        chunks = [chunk async for chunk in response_body]
        await close()

    assert code == b"200"
    assert headers == ((b"content-length", b"7"),)
    assert b"".join(chunks) == b"echoed:"
    assert received == [
        (
            b"POST /post HTTP/1.1\r\nhost: 127.0.0.1:%d\r\ncontent-length: 3\r\n"
            b"content-type: text/plain\r\n\r\n" % server.port,
            b"abc",
        )
    ]


async def test_streamed_and_buffered_helpers() -> None:
    seen = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            _, body = await read_request(reader)
            seen.append(body)
            writer.write(OK)

    async with serve(handler) as server:
        request, close = Pool()
        body = streamed(b"abc")
        for _ in range(2):  # a factory can be replayed
            _, _, response = await request(
                b"POST", server.url(), headers=((b"content-length", b"3"),), body=body
            )
            assert await buffered(response) == b"ok"
        await close()
    assert seen == [b"abc", b"abc"]


async def test_request_target_host_and_params_as_sent() -> None:
    heads = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, _ = await read_request(reader)
            heads.append(head.split(b"\r\n")[:2])
            writer.write(OK)

    async with serve(handler) as server:
        request, close = Pool()
        for url, params in [
            (server.url("/a%2Fb/c d?x=1#frag"), (("q", "a b&c"), (b"k", b"\xe2\x9c\x93"))),
            (server.url(""), ()),
            (f"http://localhost:{server.port}/ü", (("empty", ""),)),
        ]:
            _, _, body = await request(b"GET", url, params=params)
            await buffered(body)
        await close()

    assert heads == [
        [
            b"GET /a%2Fb/c%20d?x=1&q=a%20b%26c&k=%E2%9C%93 HTTP/1.1",
            b"host: 127.0.0.1:%d" % server.port,
        ],
        [b"GET / HTTP/1.1", b"host: 127.0.0.1:%d" % server.port],
        [b"GET /%C3%BC?empty= HTTP/1.1", b"host: localhost:%d" % server.port],
    ]


async def test_caller_host_header_replaces_ours_and_headers_keep_their_order() -> None:
    heads = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        heads.append(head)
        writer.write(OK)
        await reader.read()

    async with serve(handler) as server:
        request, close = Pool()
        _, _, body = await request(
            b"GET", server.url(), headers=((b"X-B", b"2"), (b"Host", b"example"), (b"x-a", b""))
        )
        await buffered(body)
        await close()
    assert heads == [b"GET / HTTP/1.1\r\nX-B: 2\r\nHost: example\r\nx-a: \r\n\r\n"]


@pytest.mark.parametrize(
    ("method", "url", "headers", "part"),
    [
        (b"GET\r\n", "http://127.0.0.1:{port}/", (), "method"),
        (b"GET", "http://127.0.0.1:{port}/\r\nx: y", (), "control character"),
        (b"GET", "http://127.0.0.1:{port}/a\x00", (), "control character"),
        (b"GET", "http://127.0.0.1:{port}/", ((b"x\r\ny", b"1"),), "header"),
        (b"GET", "http://127.0.0.1:{port}/", ((b"x", b"1\r\ny: 2"),), "header"),
        (b"GET", "http://127.0.0.1:{port}/", ((b"x", b"\x00"),), "header"),
        (b"GET", "ftp://127.0.0.1:{port}/", (), "scheme"),
    ],
)
async def test_invalid_requests_are_refused_before_connecting(
    method: bytes, url: str, headers: tuple[tuple[bytes, bytes], ...], part: str
) -> None:
    async with serve(respond_with(OK)) as server:
        request, close = Pool()
        with pytest.raises(lowhaio.HttpInvalidRequestError, match=part) as info:
            await request(method, url.format(port=server.port), headers=headers)
        await close()
    assert isinstance(info.value, ValueError)
    assert not isinstance(info.value, lowhaio.HttpConnectionError)
    assert server.connections == 0


async def _chunks_received(
    *chunks: object, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> tuple[bytes, bytes]:
    received = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await read_request(reader))
        writer.write(OK)
        await reader.read()

    async def body() -> AsyncIterator[object]:
        for chunk in chunks:
            yield chunk

    async with serve(handler) as server:
        request, close = Pool()
        try:
            _, _, response = await request(
                b"PUT",
                server.url(),
                headers=headers,
                body=body,  # type: ignore[arg-type]
            )
            await buffered(response)
        finally:
            await close()
    return received[0]


async def test_bytes_like_chunks_are_sent_and_empty_chunks_skipped() -> None:
    buffer = bytearray(b"0123456789")
    _, body = await _chunks_received(
        b"ab",
        b"",
        bytearray(b"cd"),
        memoryview(buffer)[2:5],
        memoryview(b""),
        memoryview(b"\x01\x00\x02\x00").cast("H"),
        headers=((b"content-length", b"11"),),
    )
    assert body == b"abcd234\x01\x00\x02\x00"


async def test_transfer_encoding_body_is_passed_through_as_the_caller_encodes_it() -> None:
    _, body = await _chunks_received(
        b"3\r\nabc\r\n", b"0\r\n\r\n", headers=((b"transfer-encoding", b"chunked"),)
    )
    assert body == b"3\r\nabc\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    ("chunks", "headers", "message"),
    [
        ((b"abcd",), ((b"content-length", b"3"),), "longer than its content-length"),
        ((b"ab",), ((b"content-length", b"3"),), "1 bytes shorter"),
        ((b"ab",), (), "without content-length or transfer-encoding"),
        ((), ((b"content-length", b"3"),), "3 bytes shorter"),
        (("text",), ((b"content-length", b"4"),), "bytes-like, not str"),
    ],
)
async def test_bodies_that_do_not_match_their_framing_are_refused(
    chunks: tuple[object, ...], headers: tuple[tuple[bytes, bytes], ...], message: str
) -> None:
    with pytest.raises(lowhaio.HttpInvalidRequestError, match=message):
        await _chunks_received(*chunks, headers=headers)


async def test_body_factory_gets_its_arguments_and_its_errors_propagate_unchanged() -> None:
    closed = []

    async def body(prefix: bytes, *, fail: bool) -> AsyncIterator[bytes]:
        try:
            yield prefix
            if fail:
                raise FileNotFoundError("the caller's own error")
            yield b"!"
        finally:
            closed.append(True)

    async with serve(respond_with(OK, OK)) as server:
        request, close = Pool()
        _, _, response = await request(
            b"PUT",
            server.url(),
            headers=((b"content-length", b"3"),),
            body=body,
            body_args=(b"ab",),
            body_kwargs={"fail": False},
        )
        assert await buffered(response) == b"ok"
        with pytest.raises(FileNotFoundError, match="the caller's own error"):
            await request(
                b"PUT",
                server.url(),
                headers=((b"content-length", b"3"),),
                body=body,
                body_args=(b"ab",),
                body_kwargs={"fail": True},
            )
        _, _, response = await request(b"GET", server.url())
        assert await buffered(response) == b"ok"
        await close()
    assert closed == [True, True]
    assert server.connections == 2  # the failed request's connection was not reused


async def test_network_error_while_sending_closes_the_callers_body() -> None:
    closed = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.transport.abort()

    async def body() -> AsyncIterator[bytes]:
        try:
            while True:
                yield bytes(65536)
        finally:
            closed.append(True)

    async with serve(handler) as server:
        request, close = Pool()
        with pytest.raises(lowhaio.HttpDataError) as info:
            await request(
                b"PUT", server.url(), headers=((b"content-length", b"%d" % 2**40),), body=body
            )
        await close()
    assert closed == [True]
    assert isinstance(info.value.__cause__, OSError)


# Responses -----------------------------------------------------------------------------------


async def _exchange(*responses: bytes, method: bytes = b"GET") -> list[tuple[bytes, object]]:
    """Send one request per response over one pool; return (code, body or error) for each."""
    results: list[tuple[bytes, object]] = []
    async with serve(respond_with(*responses, close=True)) as server:
        request, close = Pool(read_timeout=2)
        for _ in responses:
            try:
                code, _, body = await request(method, server.url())
                results.append((code, await buffered(body)))
            except lowhaio.HttpError as exc:
                results.append((b"error", exc))
        await close()
    return results


@pytest.mark.parametrize(
    ("response", "method", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc", b"GET", b"abc"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", b"GET", b""),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n", b"HEAD", b""),
        (b"HTTP/1.1 200 No Content\r\n\r\n", b"OPTIONS", b""),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", b"HEAD", b""),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nx",
            b"GET",
            b"x",
        ),
        (
            b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n"
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"2;ext=1\r\nab\r\n1\r\nc\r\n0\r\nx-trailer: t\r\n\r\n",
            b"GET",
            b"abc",
        ),
        (b"HTTP/1.0 200 OK\r\n\r\nuntil close", b"GET", b"until close"),
    ],
)
async def test_response_framing(response: bytes, method: bytes, expected: bytes) -> None:
    assert await _exchange(response, method=method) == [(b"200", expected)]


@pytest.mark.parametrize("code", [b"204", b"304"])
async def test_no_body_statuses(code: bytes) -> None:
    response = b"HTTP/1.1 %s X\r\ncontent-length: 5\r\n\r\n" % code
    assert await _exchange(response, response) == [(code, b""), (code, b"")]


@pytest.mark.parametrize(
    ("response", "error", "message"),
    [
        (b"", lowhaio.HttpConnectionClosedError, "before the response head"),
        (b"HTTP/1.1 200 OK\r\ncontent-", lowhaio.HttpConnectionClosedError, "25 bytes of it"),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab",
            lowhaio.HttpConnectionClosedError,
            "3 bytes",
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab",
            lowhaio.HttpConnectionClosedError,
            "inside the chunked body",
        ),
        (b"HTTP/2 200 OK\r\n\r\n", lowhaio.HttpProtocolError, "status line"),
        (b"HTTP/1.1 200 OK\rX: y\r\n\r\n", lowhaio.HttpProtocolError, "status line"),
        (b"HTTP/1.1 101 Switching\r\n\r\n", lowhaio.HttpProtocolError, "101"),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
            lowhaio.HttpProtocolError,
            "differ",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n",
            lowhaio.HttpProtocolError,
            "both",
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            lowhaio.HttpProtocolError,
            "chunk-size",
        ),
    ],
)
async def test_malformed_or_truncated_responses_raise_typed_errors(
    response: bytes, error: type[Exception], message: str
) -> None:
    [(code, exc)] = await _exchange(response)
    assert code == b"error"
    assert isinstance(exc, error)
    assert isinstance(exc, lowhaio.HttpDataError)
    assert message in str(exc)


async def test_head_limits_are_enforced() -> None:
    many = b"HTTP/1.1 200 OK\r\n" + b"x: y\r\n" * 5 + b"\r\n"
    long = b"HTTP/1.1 200 OK\r\nx: " + b"y" * 2000 + b"\r\n\r\n"
    for response, error in [(many, lowhaio.HttpTooManyHeaders), (long, lowhaio.HttpHeaderTooLong)]:
        async with serve(respond_with(response)) as server:
            request, close = Pool(max_headers=4, max_head_bytes=1024)
            with pytest.raises(error):
                await request(b"GET", server.url())
            await close()


async def test_a_head_with_hundreds_of_fields_is_read_by_default() -> None:
    # 150 custom fields and the framing one: real servers send that many (the head's byte
    # limit bounds memory), so the default count does not refuse them.
    fields = [(b"x-custom-%d" % i, b"v%d" % i) for i in range(150)]
    head = b"".join(b"%s: %s\r\n" % field for field in fields)
    async with serve(
        respond_with(b"HTTP/1.1 200 OK\r\n" + head + b"content-length: 2\r\n\r\nok")
    ) as server:
        request, close = Pool()
        code, headers, body = await request(b"GET", server.url())
        assert (code, headers, await buffered(body)) == (
            b"200",
            (*fields, (b"content-length", b"2")),
            b"ok",
        )
        await close()


async def test_trailers_are_bounded_in_bytes_as_a_head_is() -> None:
    # 20 trailer lines of 4 KiB: each within max_line_bytes, their count within max_headers,
    # 80 KiB in all, past the 64 KiB a head may take.
    line = b"x-t: " + b"t" * 4000 + b"\r\n"
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
    async with serve(respond_with(chunked + line * 20 + b"\r\n")) as server:
        request, close = Pool()
        _, _, body = await request(b"GET", server.url())
        with pytest.raises(lowhaio.HttpHeaderTooLong, match="trailers are longer than 65536"):
            await buffered(body)
        await close()
    async with serve(respond_with(chunked + line * 15 + b"\r\n")) as server:
        request, close = Pool()
        _, _, body = await request(b"GET", server.url())
        assert await buffered(body) == b"a"
        assert len(body.trailers) == 15
        await close()


async def test_trailers_are_exposed_after_a_chunked_body() -> None:
    async with serve(
        respond_with(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"1\r\na\r\n0\r\nX-Checksum: 123\r\n\r\n",
            OK,
        )
    ) as server:
        request, close = Pool()
        _, _, body = await request(b"GET", server.url())
        assert body.trailers == ()
        assert await buffered(body) == b"a"
        assert body.trailers == ((b"x-checksum", b"123"),)
        _, _, body = await request(b"GET", server.url())
        assert await buffered(body) == b"ok"
        assert body.trailers == ()
        await close()
    assert server.connections == 1


async def test_close_delimited_body_cut_by_a_reset_is_an_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()

    async with serve(handler) as server:
        request, close = Pool()
        _, _, body = await request(b"GET", server.url())
        with pytest.raises(lowhaio.HttpConnectionClosedError):
            async for _ in body:
                pass
        await close()


async def test_large_download_streams_in_bounded_chunks_with_backpressure() -> None:
    total = 32 * 1024 * 1024
    sent = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % total)
        block = bytes(range(256)) * 4096
        for _ in range(total // len(block)):
            writer.write(block)
            await writer.drain()
            sent.append(len(block))
        await reader.read()

    async with serve(handler) as server:
        request, close = Pool(read_buffer_bytes=64 * 1024)
        _, _, body = await request(b"GET", server.url())
        await asyncio.sleep(0.3)
        # The client reads nothing while paused: the server is held back by TCP flow control.
        assert sum(sent) < total // 2
        size = 0
        digest = hashlib.sha256()
        async for chunk in body:
            assert len(chunk) <= 64 * 1024
            digest.update(chunk)
            size += len(chunk)
        await close()
    assert size == total
    assert digest.digest() == hashlib.sha256(bytes(range(256)) * (total // 256)).digest()


async def test_small_body_pieces_are_not_held_back_by_nagles_algorithm() -> None:
    # With Nagle's algorithm on, the body's second small write waits for the server's delayed
    # ACK of the first: about 40 ms per request on Linux, instead of well under 1 ms.
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")

    async def body() -> AsyncIterator[bytes]:
        yield b"a" * 10
        yield b"b" * 10

    async with serve(handler) as server:
        request, close = Pool()
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(10):
            code, _, response_body = await request(
                b"POST", server.url(), headers=((b"content-length", b"20"),), body=body
            )
            assert (code, await buffered(response_body)) == (b"204", b"")
        assert loop.time() - started < 0.3  # 10 x 40 ms with Nagle
        assert server.connections == 1
        await close()


async def test_large_upload_pulls_the_body_only_as_fast_as_the_server_reads() -> None:
    pulled = []
    gate = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await gate.wait()
        remaining = 64 * 1024 * 1024
        while remaining:
            remaining -= len(await reader.read(remaining))
        writer.write(OK)
        await reader.read()

    chunk = memoryview(bytearray(1024 * 1024))

    async def body() -> AsyncIterator[memoryview]:
        for _ in range(64):
            pulled.append(1)
            yield chunk

    async with serve(handler) as server:
        request, close = Pool()
        task = asyncio.create_task(
            request(b"PUT", server.url(), headers=((b"content-length", b"%d" % 2**26),), body=body)
        )
        await asyncio.sleep(0.3)
        assert len(pulled) < 48  # held back by the kernel's buffers, not read into memory
        gate.set()
        _, _, response = await task
        assert await buffered(response) == b"ok"
        await close()
    assert len(pulled) == 64


# TLS ---------------------------------------------------------------------------------------------


async def test_https_with_verification_sni_and_alpn() -> None:
    seen = []
    server_context = server_ssl_context()
    server_context.set_alpn_protocols(["h2", "http/1.1"])
    server_context.sni_callback = lambda sock, name, ctx: seen.append(name)  # type: ignore[assignment,misc,return-value]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("ssl_object").selected_alpn_protocol())
        await respond_with(OK, OK)(reader, writer)

    calls = []

    def get_ssl_context() -> ssl.SSLContext:
        calls.append(1)
        return client_ssl_context()

    async with serve(handler, ssl_context=server_context) as server:
        request, close = Pool(get_ssl_context=get_ssl_context)
        for _ in range(2):
            code, _, body = await request(b"GET", server.url(scheme="https", host="localhost"))
            assert (code, await buffered(body)) == (b"200", b"ok")
        await close()
    assert seen == ["localhost", "http/1.1"]
    assert calls == [1]


async def test_https_to_an_ip_literal_verifies_the_ip() -> None:
    async with serve(respond_with(OK), ssl_context=server_ssl_context()) as server:
        request, close = Pool(get_ssl_context=client_ssl_context)
        _, _, body = await request(b"GET", server.url(scheme="https"))
        assert await buffered(body) == b"ok"
        await close()


async def test_https_refuses_an_unverified_certificate() -> None:
    async with serve(respond_with(OK), ssl_context=server_ssl_context()) as server:
        request, close = Pool()  # the system's CAs do not know the test CA
        with pytest.raises(lowhaio.HttpTlsError) as info:
            await request(b"GET", server.url(scheme="https", host="localhost"))
        await close()
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)


async def test_https_refuses_a_server_that_picks_another_protocol() -> None:
    server_context = server_ssl_context()
    server_context.set_alpn_protocols(["h2"])

    def client_context() -> ssl.SSLContext:
        context = client_ssl_context()
        context.set_alpn_protocols(["h2", "http/1.1"])
        return context

    async with serve(respond_with(OK), ssl_context=server_context) as server:
        request, close = Pool(get_ssl_context=client_context)
        with pytest.raises(lowhaio.HttpTlsError, match="'h2'"):
            await request(b"GET", server.url(scheme="https", host="localhost"))
        await close()


@pytest.mark.parametrize(
    ("head", "error"),
    [
        (b"", lowhaio.HttpConnectionClosedError),  # reading the head
        (b"HTTP/1.1 200 OK\r\n\r\n", lowhaio.HttpDataError),  # reading a close-delimited body
    ],
)
async def test_tls_garbage_from_the_server_is_a_data_error_caused_by_tls(
    head: bytes, error: type[Exception]
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(head)
        await writer.drain()
        await asyncio.sleep(0.05)
        raw = writer.get_extra_info("socket")
        with socket.socket(fileno=os.dup(raw.fileno())) as sock:
            sock.sendall(b"\x17\x03\x03\x00\x20" + bytes(32))  # a record no key made
        await reader.read()

    async with serve(handler, ssl_context=server_ssl_context()) as server:
        request, close = Pool(get_ssl_context=client_ssl_context)

        async def get() -> bytes:
            _, _, body = await request(b"GET", server.url(scheme="https"))
            return await buffered(body)

        with pytest.raises(error) as info:
            await get()
        await close()
    assert isinstance(info.value, lowhaio.HttpDataError)
    assert isinstance(info.value.__cause__, ssl.SSLError)


async def test_https_download_over_tls() -> None:
    payload = bytes(range(256)) * 40000

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(payload) + payload)
        await reader.read()

    async with serve(handler, ssl_context=server_ssl_context()) as server:
        request, close = Pool(get_ssl_context=client_ssl_context)
        _, _, body = await request(b"GET", server.url(scheme="https"))
        assert await buffered(body) == payload
        await close()


@pytest.mark.parametrize(
    ("chunks", "size"), [(5, 1000), (64, 65536), (3, 4 * 1024 * 1024)], ids=["small", "64k", "4m"]
)
async def test_a_streamed_upload_over_tls_goes_whole(chunks: int, size: int) -> None:
    # Each chunk waits until the TLS layer has handed the one before to the kernel: a pause
    # that no later write or read would undo would stall the upload until write_timeout.
    async def echo_digest(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            _, body = await read_request(reader)
            digest = hashlib.sha256(body).hexdigest().encode()
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 64\r\n\r\n" + digest)

    async def body() -> AsyncIterator[bytes]:
        for index in range(chunks):
            yield bytes([index % 256]) * size

    expected = hashlib.sha256(b"".join([bytes([i % 256]) * size for i in range(chunks)]))
    async with serve(echo_digest, ssl_context=server_ssl_context()) as server:
        request, close = Pool(get_ssl_context=client_ssl_context, write_timeout=5)
        for _ in range(2):  # on a new connection, then on a reused one
            code, _, answer = await request(
                b"PUT",
                server.url("/up", "https", "localhost"),
                headers=((b"content-length", b"%d" % (chunks * size)),),
                body=body,
            )
            assert (code, await buffered(answer)) == (b"200", expected.hexdigest().encode())
        await close()


# Connecting, timeouts and errors -----------------------------------------------------------------


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_refused_connection_is_a_connection_error() -> None:
    request, close = Pool()
    with pytest.raises(lowhaio.HttpConnectionError) as info:
        await request(b"GET", f"http://127.0.0.1:{_unused_port()}/")
    await close()
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


async def test_connect_timeout_covers_the_tls_handshake() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with serve(silent) as server:
        request, close = Pool(connect_timeout=0.2, get_ssl_context=client_ssl_context)
        with pytest.raises(lowhaio.HttpConnectTimeoutError) as info:
            await request(b"GET", server.url(scheme="https"))
        await close()
    assert isinstance(info.value, lowhaio.HttpConnectionError)
    assert isinstance(info.value, lowhaio.HttpTimeoutError)


async def test_read_timeout_is_an_idle_timeout_that_resets_on_progress() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        for byte in OK:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.02)
        await read_request(reader)
        await reader.read()  # and never answer

    async with serve(trickle) as server:
        request, close = Pool(read_timeout=0.15)
        _, _, body = await request(b"GET", server.url())  # ~0.8 s in all, 0.02 s per byte
        assert await buffered(body) == b"ok"
        with pytest.raises(lowhaio.HttpDataTimeoutError, match="reading") as info:
            await request(b"GET", server.url())
        await close()
    assert isinstance(info.value, lowhaio.HttpTimeoutError)


async def test_write_timeout_when_the_server_stops_reading() -> None:
    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    async def body() -> AsyncIterator[bytes]:
        chunk = bytes(1024 * 1024)
        while True:
            yield chunk

    async with serve(stalls) as server:
        request, close = Pool(write_timeout=0.2)
        with pytest.raises(lowhaio.HttpDataTimeoutError, match="writing"):
            await request(
                b"PUT", server.url(), headers=((b"content-length", b"%d" % 2**40),), body=body
            )
        await close()


async def test_cancellation_propagates_and_leaves_the_count_alone() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()

    async with serve(silent) as server:
        request, close = Pool()
        task = asyncio.create_task(request(b"GET", server.url()))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelling() == 1  # only the one cancel() above

        current = asyncio.current_task()
        assert current is not None
        before = current.cancelling()
        async with serve(respond_with(OK)) as other:
            _, _, body = await request(b"GET", other.url())
            await buffered(body)
        assert current.cancelling() == before
        await close()


async def test_debug_log_names_requests_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="lowhaio")
    async with serve(respond_with(OK)) as server:
        request, close = Pool()
        _, _, body = await request(
            b"GET",
            server.url("/path?X-Amz-Signature=secret-sig"),
            headers=((b"authorization", b"secret-token"),),
        )
        await buffered(body)
        await close()
    text = caplog.text
    assert f"request 1: GET http://127.0.0.1:{server.port}/path head sent" in text
    assert "request 1: response 200" in text
    assert "secret" not in text


async def test_garbage_collected_body_closes_its_connection() -> None:
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc")
        await reader.read()
        closed.set()

    async with serve(handler) as server:
        request, close = Pool()
        _, _, body = await request(b"GET", server.url())
        del body
        gc.collect()
        await asyncio.wait_for(closed.wait(), 1)
        await close()


def test_server_helper_builds_urls() -> None:
    server = Server(respond_with())
    server.port = 8080
    assert server.url("/x", scheme="https", host="localhost") == "https://localhost:8080/x"


async def test_small_read_buffer_compacts_and_grows_without_losing_bytes() -> None:
    chunks = [bytes([i]) * (300 + 37 * i) for i in range(40)]
    chunked = b"".join(b"%x;e=%d\r\n%s\r\n" % (len(c), i, c) for i, c in enumerate(chunks))
    big_head = (
        b"HTTP/1.1 200 OK\r\n" + b"x-filler: %s\r\n" % (b"f" * 3000) + b"content-length: 2\r\n"
    )

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        # Written at once, so the client's reads fill its buffer and the framing lands across
        # buffer boundaries.
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n%s0\r\n\r\n" % chunked)
        await read_request(reader)
        writer.write(big_head + b"\r\nok")
        await reader.read()

    async with serve(handler) as server:
        request, close = Pool(read_buffer_bytes=1024)
        _, _, body = await request(b"GET", server.url())
        assert await buffered(body) == b"".join(chunks)
        _, headers, body = await request(b"GET", server.url())  # a head 3 times the buffer
        assert headers[0] == (b"x-filler", b"f" * 3000)
        assert await buffered(body) == b"ok"
        await close()
    assert server.connections == 1


async def test_a_response_that_arrives_while_the_body_is_still_being_produced() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)  # before the request body: allowed (RFC 9112 9.5)
        await reader.readexactly(4)
        await reader.read()

    async def body() -> AsyncIterator[bytes]:
        yield b"ab"
        await asyncio.sleep(0.1)
        yield b"cd"

    async with serve(handler) as server:
        request, close = Pool()
        code, _, response = await request(
            b"PUT", server.url(), headers=((b"content-length", b"4"),), body=body
        )
        assert (code, await buffered(response)) == (b"200", b"ok")
        await close()


async def test_declared_length_without_a_body_factory_is_refused() -> None:
    async with serve(respond_with(OK)) as server:
        request, close = Pool()
        with pytest.raises(lowhaio.HttpInvalidRequestError, match="3 bytes shorter"):
            await request(b"POST", server.url(), headers=((b"content-length", b"3"),))
        await close()


async def test_chunked_body_delivered_as_it_arrives_then_released() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n"
        )
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")
        await read_request(reader)
        writer.write(OK)
        await reader.read()

    async with serve(handler) as server:
        request, close = Pool()
        _, _, body = await request(b"GET", server.url())
        assert [chunk async for chunk in body] == [b"abcde"]  # joined: both were buffered
        _, _, body = await request(b"GET", server.url())
        assert await buffered(body) == b"ok"
        await close()
    assert server.connections == 1


async def test_a_body_that_is_not_a_factory_is_refused_before_connecting() -> None:
    async def factory() -> AsyncIterator[bytes]:
        yield b"abc"

    def not_async() -> list[bytes]:
        return [b"abc"]

    async with serve(respond_with(OK)) as server:
        request, close = Pool()
        for body, message in [
            (b"abc", "factory returning an async iterable, not bytes"),
            (factory(), "not async_generator"),
            (not_async, "must return an async iterable, not list"),
        ]:
            with pytest.raises(lowhaio.HttpInvalidRequestError, match=message):
                await request(
                    b"PUT",
                    server.url(),
                    headers=((b"content-length", b"3"),),
                    body=body,  # type: ignore[arg-type]
                )
        await close()
    assert server.connections == 0


@pytest.mark.parametrize(("interim", "ok"), [(16, True), (17, False)])
async def test_interim_responses_are_skipped_up_to_a_limit(interim: int, ok: bool) -> None:
    early_hints = b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>\r\n\r\n" * interim
    [(code, result)] = await _exchange(early_hints + OK)
    if ok:
        assert (code, result) == (b"200", b"ok")
    else:
        assert isinstance(result, lowhaio.HttpProtocolError)
        assert "more than 16 interim" in str(result)


async def test_close_during_connect_closes_the_new_connection() -> None:
    handshakes = asyncio.Event()
    server_context = server_ssl_context()

    def slow_sni(sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        handshakes.set()

    server_context.sni_callback = slow_sni  # type: ignore[assignment]
    async with serve(respond_with(OK), ssl_context=server_context) as server:
        request, close = Pool(get_ssl_context=client_ssl_context)
        task = asyncio.create_task(request(b"GET", server.url(scheme="https", host="localhost")))
        await handshakes.wait()  # the TLS handshake is under way: the slot is reserved
        await close()
        with pytest.raises(lowhaio.HttpPoolClosedError):
            await task


async def test_a_body_iterator_without_aclose() -> None:
    class Chunks:
        def __init__(self) -> None:
            self.chunks = [b"a", b"bc"]

        def __aiter__(self) -> Chunks:
            return self

        async def __anext__(self) -> bytes:
            if not self.chunks:
                raise StopAsyncIteration
            return self.chunks.pop(0)

    _, body = await _chunks_received(*Chunks().chunks, headers=((b"content-length", b"3"),))
    assert body == b"abc"
    received = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await read_request(reader))
        writer.write(OK)
        await reader.read()

    async with serve(handler) as server:
        request, close = Pool()
        _, _, response = await request(
            b"PUT", server.url(), headers=((b"content-length", b"3"),), body=Chunks
        )
        assert await buffered(response) == b"ok"
        await close()
    assert received[0][1] == b"abc"


@pytest.mark.parametrize(
    ("body", "limit", "reused"),
    [
        (b"x" * 100, 100, True),  # read to its end: the connection goes back to the pool
        (b"x" * 300_000, 100, False),  # past the limit, and unfinished: closed instead
        (b"", 0, True),
    ],
)
async def test_discard_drains_a_small_body_and_closes_a_large_one(
    body: bytes, limit: int, reused: bool
) -> None:
    response = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    response += b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:60], body[60:]) if c)
    response += b"0\r\n\r\n"
    async with serve(respond_with(response, OK)) as server:
        request, close = Pool()
        _, _, first = await request(b"GET", server.url())
        await lowhaio.discard(first, limit)
        _, _, second = await request(b"GET", server.url())
        assert await buffered(second) == (b"ok" if reused else body[:60] + body[60:])
        await close()
    assert server.connections == (1 if reused else 2)


async def test_discard_of_an_iterable_without_aclose() -> None:
    class Chunks:
        def __init__(self) -> None:
            self.left = [b"abc", b"def"]

        def __aiter__(self) -> Chunks:
            return self

        async def __anext__(self) -> bytes:
            if not self.left:
                raise StopAsyncIteration
            return self.left.pop(0)

    chunks = Chunks()
    await lowhaio.discard(chunks, 2)
    assert chunks.left == [b"def"]  # stopped at the limit, with nothing to close


async def test_discard_reads_the_body_a_body_wraps_not_what_it_makes_of_it() -> None:
    class Chunks:
        def __init__(self, chunks: list[bytes]) -> None:
            self.left = chunks

        def __aiter__(self) -> Chunks:
            return self

        async def __anext__(self) -> bytes:
            if not self.left:
                raise StopAsyncIteration
            return self.left.pop(0)

    class Doubled:  # made from `wrapped`: each chunk it reads yields twice as many bytes
        def __init__(self, wrapped: Chunks) -> None:
            self.wrapped = wrapped
            self.made = 0

        def __aiter__(self) -> Doubled:
            return self

        async def __anext__(self) -> bytes:
            chunk = await anext(self.wrapped)
            self.made += 1
            return chunk * 2

    inner = Chunks([b"ab", b"cd"])
    outer = Doubled(Doubled(inner))  # wrapped twice: the innermost is read
    await lowhaio.discard(outer, 4)  # 4 bytes as received (16 once made)
    assert (inner.left, outer.made, outer.wrapped.made) == ([], 0, 0)


def test_target_of_is_what_request_sends() -> None:
    host, target = lowhaio.target_of("http://Example.COM:8080/a b/%2F?x=1#f", (("k", "v w"),))
    assert (host, target) == (b"example.com:8080", b"/a%20b/%2F?x=1&k=v%20w")
    assert lowhaio.target_of("https://[::1]/") == (b"[::1]", b"/")


async def test_a_head_trickled_a_byte_at_a_time_is_bounded_as_a_whole() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nx-slow: ")
        while True:  # progress every 20 ms: the idle read timeout never fires
            writer.write(b"z")
            await asyncio.sleep(0.02)

    async with serve(trickle) as server:
        request, close = Pool(read_timeout=0.2, head_timeout=0.3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(lowhaio.HttpDataTimeoutError, match=r"not complete within 0\.3 s"):
            await request(b"GET", server.url())
        assert loop.time() - started < 1.5
        await close()


@pytest.mark.parametrize(
    ("before", "trickled"),
    [
        (b"", b"1"),  # a chunk-size line that never ends: leading zeros are valid hex
        (b"5\r\nhello\r\n", b"0"),  # ... after a chunk of payload
        (b"5\r\nhello\r\n0\r\n", b"x-trailer: 1\r\n"),  # trailer lines that never end
    ],
)
async def test_chunked_framing_trickled_a_byte_at_a_time_is_bounded_as_a_whole(
    before: bytes, trickled: bytes
) -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + before)
        while True:  # progress every 20 ms: the idle read timeout never fires
            for byte in trickled:
                writer.write(bytes([byte]))
                await asyncio.sleep(0.02)

    async with serve(trickle) as server:
        request, close = Pool(read_timeout=0.2, head_timeout=0.3)
        loop = asyncio.get_running_loop()
        _, _, body = await request(b"GET", server.url())
        started = loop.time()
        received = []

        async def read_all() -> None:
            async for chunk in body:
                received.append(chunk)

        with pytest.raises(lowhaio.HttpDataTimeoutError, match=r"trailers were not complete"):
            await read_all()
        assert loop.time() - started < 1.5
        assert b"".join(received) == before[3:8]
        await close()


async def test_chunked_payload_that_keeps_coming_slowly_is_not_bounded_by_head_timeout() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(8):  # 0.4 s in all, longer than head_timeout, never idle for 0.2 s
            await asyncio.sleep(0.05)
            writer.write(b"1\r\nx\r\n")
        writer.write(b"0\r\n\r\n")
        await reader.read()

    async with serve(slow) as server:
        request, close = Pool(read_timeout=0.2, head_timeout=0.15)
        _, _, body = await request(b"GET", server.url())
        assert await buffered(body) == b"x" * 8
        await close()


async def test_a_body_says_which_url_it_answers() -> None:
    async with serve(respond_with(OK, OK)) as server:
        request, close = Pool()
        for url in (server.url("/a?b=c"), server.url("/d#e")):
            _, _, body = await request(b"GET", url)
            assert (body.url, body.history) == (url, ())  # as given; no redirect followed
            assert await buffered(body) == b"ok"
        await close()


@pytest.mark.parametrize(
    ("method", "headers", "body", "sent"),
    [
        # RFC 9110 8.6: a POST, PUT or PATCH without a body says so (nginx answers 411 else).
        (b"POST", (), lowhaio.empty_body, b"content-length: 0\r\n"),
        (b"PUT", (), lowhaio.empty_body, b"content-length: 0\r\n"),
        (b"PATCH", (), lowhaio.empty_body, b"content-length: 0\r\n"),
        (
            b"POST",
            ((b"connection", b"close"),),
            lowhaio.empty_body,
            b"connection: close\r\ncontent-length: 0\r\n",
        ),
        # ... but not twice, nor for methods without a meaning for content, nor with a body.
        (b"POST", ((b"content-length", b"0"),), lowhaio.empty_body, b"content-length: 0\r\n"),
        (b"POST", ((b"content-length", b"2"),), streamed(b"ab"), b"content-length: 2\r\n"),
        (b"GET", (), lowhaio.empty_body, b""),
        (b"DELETE", (), lowhaio.empty_body, b""),
        (b"OPTIONS", (), lowhaio.empty_body, b""),
    ],
)
async def test_a_method_with_content_and_no_body_sends_content_length_zero(
    method: bytes, headers: Any, body: lowhaio.BodyFactory, sent: bytes
) -> None:
    heads = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        heads.append(head)
        writer.write(OK)
        await reader.read()

    async with serve(handler) as server:
        request, close = Pool()
        code, _, response = await request(method, server.url(), headers=headers, body=body)
        assert (code, await buffered(response)) == (b"200", b"ok")
        await close()
    host = b"host: 127.0.0.1:%d\r\n" % server.port
    assert heads == [method + b" / HTTP/1.1\r\n" + host + sent + b"\r\n"]


async def _get_all(request: lowhaio.Request, url: str) -> bytes:
    _, _, body = await request(b"GET", url)
    return await buffered(body)


async def _fails_with(
    handler: Any, url: str = "/p?secret=s#frag", host: str = "127.0.0.1"
) -> tuple[lowhaio.HttpError, int]:
    async with serve(handler, host=host) as server:
        request, close = Pool(read_timeout=0.2)
        try:
            with pytest.raises(lowhaio.HttpError) as raised:
                await _get_all(request, server.url(url, host=f"[{host}]" if ":" in host else host))
        finally:
            await close()
    return raised.value, server.port


async def _stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    await reader.read()


async def _close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)


async def _cut_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab")


@pytest.mark.parametrize(
    ("handler", "error", "message"),
    [
        (_stall, lowhaio.HttpDataTimeoutError, "no progress reading for 0.2 s"),
        (_close_at_once, lowhaio.HttpConnectionClosedError, "before the response head"),
        (_cut_body, lowhaio.HttpConnectionClosedError, "3 bytes of the body unread"),
    ],
)
async def test_errors_say_where_the_request_went_and_keep_its_secrets(
    handler: Any, error: type[Exception], message: str
) -> None:
    raised, port = await _fails_with(handler)
    assert type(raised) is error
    assert str(raised).startswith(f"http://127.0.0.1:{port}: ")
    assert message in str(raised)
    assert (raised.method, raised.url) == (b"GET", f"http://127.0.0.1:{port}/p")
    assert "secret" not in str(raised)
    assert "frag" not in str(raised)


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
async def test_an_ipv6_origin_is_named_in_brackets() -> None:
    raised, port = await _fails_with(_close_at_once, host="::1")
    assert str(raised).startswith(f"http://[::1]:{port}: ")
    assert raised.url == f"http://[::1]:{port}/p"


async def test_an_invalid_request_says_nothing_of_where_it_would_have_gone() -> None:
    request, close = Pool()
    with pytest.raises(lowhaio.HttpInvalidRequestError) as raised:
        await request(b"GET", "ftp://host/p?secret=s")
    await close()
    assert (raised.value.method, raised.value.url) == (None, None)
