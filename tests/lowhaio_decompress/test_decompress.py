"""What `decompressed` asks for, what the caller gets back (the body decoded, the headers saying
so), which responses it leaves as they came, and the body's life: url, history, trailers, and
its connection closed when it is left before its end."""

from __future__ import annotations

import asyncio
import gzip

import pytest
from coded import DATA, coded, encode, response
from conftest import Recorder, pool, read_request, recording, respond_with, serve

import lowhaio
from lowhaio import HttpConnectionClosedError, HttpDataError, ResponseBody, buffered
from lowhaio_decompress import (
    AVAILABLE_CODINGS,
    ORIGINAL_CONTENT_ENCODING,
    ORIGINAL_CONTENT_LENGTH,
    DecodedBody,
    HttpContentEncodingError,
    HttpDecompressionError,
    decompressed,
)

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def test_every_coding_is_available_with_the_extras() -> None:
    assert AVAILABLE_CODINGS == ("gzip", "deflate", "br", "zstd")


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "deflate", "deflate-raw", "br", "zstd"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_coded_body_is_read_decoded_in_pieces_of_at_most_chunk_bytes(
    coding: str, chunked: bool
) -> None:
    body = encode(coding, DATA)
    name = b"deflate" if coding == "deflate-raw" else coding.encode()
    answer = response(body, b"content-encoding: " + name, chunks=[100, 1000] if chunked else None)
    async with serve(respond_with(answer, OK)) as server, pool() as request:
        code, headers, decoded = await decompressed(request, chunk_bytes=1000)(b"GET", server.url())
        pieces = [piece async for piece in decoded]
        assert await buffered((await request(b"GET", server.url()))[2]) == b"ok"
    assert code == b"200"
    assert b"".join(pieces) == DATA
    assert max(map(len, pieces)) == 1000
    framing = (b"transfer-encoding", b"chunked")
    length = (ORIGINAL_CONTENT_LENGTH, b"%d" % len(body))
    fields = (
        (framing, (ORIGINAL_CONTENT_ENCODING, name))
        if chunked
        else (
            (ORIGINAL_CONTENT_ENCODING, name),
            length,
        )
    )
    assert headers == fields
    assert isinstance(decoded, DecodedBody)
    assert isinstance(decoded, ResponseBody)
    assert server.connections == 1  # read to its end: the connection went back to the pool


async def test_other_fields_stay_in_order_and_the_original_ones_come_last() -> None:
    answer = response(
        gzip.compress(b"abc"),
        b"content-type: text/plain",
        b"Content-Encoding: gzip",
        b"x-a: 1",
        b"lowhaio-original-content-length: 99",  # the server's: dropped, never taken as ours
    )
    async with serve(respond_with(answer)) as server, pool() as request:
        _, headers, body = await decompressed(request)(b"GET", server.url())
        assert await buffered(body) == b"abc"
    assert headers == (
        (b"content-type", b"text/plain"),
        (b"x-a", b"1"),
        (ORIGINAL_CONTENT_ENCODING, b"gzip"),
        (ORIGINAL_CONTENT_LENGTH, b"%d" % len(gzip.compress(b"abc"))),
    )


async def test_accept_encoding_offers_what_can_be_decoded_unless_the_caller_sent_one() -> None:
    heads: list[bytes] = []
    async with serve(recording(heads)) as server, pool() as request:
        for wrapped, headers in [
            (decompressed(request), ()),
            (decompressed(request, codings=("br", "gzip", "br")), ()),
            (decompressed(request), ((b"Accept-Encoding", b"identity"),)),
            (decompressed(request, skip=lambda method, url: url.endswith("/s3")), ()),
        ]:
            _, _, body = await wrapped(b"GET", server.url("/s3"), headers=headers)
            await buffered(body)
    fields = [[line for line in head.split(b"\r\n") if b"ncoding" in line] for head in heads]
    assert fields == [
        [b"accept-encoding: gzip, deflate, br, zstd"],
        [b"accept-encoding: br, gzip"],
        [b"Accept-Encoding: identity"],
        [],
    ]


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        # Nothing to undo.
        (b"GET", response(b"plain")),
        (b"GET", response(b"plain", b"content-encoding: identity")),
        (b"GET", response(b"plain", b"content-encoding: ,")),
        # A coding it does not know, anywhere in the list: the caller may know it.
        (b"GET", response(b"\x1f\x9d", b"content-encoding: compress")),
        (b"GET", response(gzip.compress(b"x"), b"content-encoding: x-custom, gzip")),
        # No content, or a part of one that cannot be decoded alone.
        (b"HEAD", b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 30\r\n\r\n"),
        (b"GET", b"HTTP/1.1 204 No Content\r\ncontent-encoding: gzip\r\n\r\n"),
        (b"GET", b"HTTP/1.1 304 Not Modified\r\ncontent-encoding: gzip\r\n\r\n"),
        (
            b"GET",
            response(
                gzip.compress(DATA)[10:20],
                b"content-encoding: gzip",
                b"content-range: bytes 10-19/*",
                status=b"206 Partial Content",
            ),
        ),
    ],
    ids=["plain", "identity", "empty-list", "unknown", "one-unknown", "HEAD", "204", "304", "206"],
)
async def test_a_response_it_cannot_or_need_not_decode_is_returned_as_it_came(
    method: bytes, answer: bytes
) -> None:
    async with serve(respond_with(answer, answer)) as server, pool() as request:
        code, headers, body = await request(method, server.url())
        expected = (code, headers, await buffered(body))
        code, headers, body = await decompressed(request)(method, server.url())
        assert not isinstance(body, DecodedBody)
        assert (code, headers, await buffered(body)) == expected


async def test_a_coding_offered_by_the_caller_only_is_decoded_only_if_offered() -> None:
    answer = coded("br")
    async with serve(respond_with(answer, answer)) as server, pool() as request:
        only_gzip = decompressed(request, codings=("gzip",))
        _, headers, body = await only_gzip(b"GET", server.url())
        assert (b"content-encoding", b"br") in headers
        assert not isinstance(body, DecodedBody)
        await buffered(body)
        _, _, body = await decompressed(request)(b"GET", server.url())
        assert await buffered(body) == DATA


async def test_a_skipped_request_is_returned_as_it_came() -> None:
    stored = response(gzip.compress(b"object"), b"content-encoding: gzip")
    async with serve(respond_with(stored)) as server, pool() as request:
        wrapped = decompressed(request, skip=lambda method, url: method == b"GET")
        _, headers, body = await wrapped(b"GET", server.url())
        assert (b"content-encoding", b"gzip") in headers
        assert await buffered(body) == gzip.compress(b"object")


@pytest.mark.parametrize(
    ("codings", "field"),
    [
        (["gzip", "gzip"], b"content-encoding: gzip, gzip"),
        (["gzip", "br"], b"content-encoding: GZIP,br"),
        (["zstd", "deflate"], b"content-encoding: zstd\r\ncontent-encoding: deflate"),
        (["br", "identity", "zstd"], b"content-encoding: br, identity, ,zstd"),
    ],
)
async def test_codings_applied_one_over_another_are_undone_last_first(
    codings: list[str], field: bytes
) -> None:
    body = DATA
    for coding in codings:
        if coding != "identity":
            body = encode(coding, body)
    async with serve(respond_with(response(body, field))) as server, pool() as request:
        _, headers, decoded = await decompressed(request, chunk_bytes=4096)(b"GET", server.url())
        assert await buffered(decoded) == DATA
    assert headers[0][0] == ORIGINAL_CONTENT_ENCODING


async def test_a_body_coded_more_times_than_max_codings_is_refused_at_its_first_read() -> None:
    body = gzip.compress(gzip.compress(gzip.compress(DATA)))
    answer = response(body, b"content-encoding: gzip, gzip, gzip", chunks=[10])
    async with serve(respond_with(answer, answer)) as server, pool() as request:
        _, _, decoded = await decompressed(request)(b"GET", server.url())
        with pytest.raises(HttpContentEncodingError, match=r"coded 3 times .* max_codings="):
            await buffered(decoded)
        _, _, decoded = await decompressed(request, max_codings=3)(b"GET", server.url())
        assert await buffered(decoded) == DATA
    assert server.connections == 2  # the refused one's connection was closed


async def test_gzip_members_and_zstd_frames_one_after_another_are_one_body() -> None:
    members = gzip.compress(b"first ") + gzip.compress(b"") + gzip.compress(b"second")
    skippable = (0x184D2A50).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"pad"
    frames = encode("zstd", b"first ") + skippable + encode("zstd", b"second")
    answers = [
        response(members, b"content-encoding: gzip", chunks=[len(gzip.compress(b"first ")) + 3]),
        response(frames, b"content-encoding: zstd"),
    ]
    async with serve(respond_with(*answers)) as server, pool() as request:
        for _ in answers:
            _, _, body = await decompressed(request, chunk_bytes=3)(b"GET", server.url())
            assert await buffered(body) == b"first second"


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_empty_body_that_names_a_coding_is_empty(coding: str, chunked: bool) -> None:
    # Not a stream of that coding, but what servers send for an empty resource.
    answer = response(b"", b"content-encoding: " + coding.encode(), chunks=[] if chunked else None)
    async with serve(respond_with(answer)) as server, pool() as request:
        _, _, body = await decompressed(request)(b"GET", server.url())
        assert await buffered(body) == b""


async def test_the_body_shows_the_url_history_and_trailers_of_the_one_it_decodes() -> None:
    coded_body = gzip.compress(DATA)
    answer = (
        b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n"
        b"%x\r\n%b\r\n0\r\nx-checksum: 42\r\n\r\n" % (len(coded_body), coded_body)
    )
    async with serve(respond_with(answer)) as server, pool() as request:
        _, _, body = await decompressed(request)(b"GET", server.url("/a?secret=1"))
        assert isinstance(body, DecodedBody)
        assert (body.url, body.history) == (server.url("/a?secret=1"), ())
        body.url, body.history = server.url("/b"), ((b"302", server.url("/a")),)
        assert (body.wrapped.url, body.wrapped.history) == (body.url, body.history)
        assert await buffered(body) == DATA
        assert body.trailers == ((b"x-checksum", b"42"),)


async def test_read_with_anext_as_well_as_async_for() -> None:
    async with serve(respond_with(coded("gzip"))) as server, pool() as request:
        _, _, body = await decompressed(request, chunk_bytes=DATA.index(b"\n") + 1)(
            b"GET", server.url()
        )
        first = await anext(body)
        assert first == DATA[: len(first)]
        assert first + await buffered(body) == DATA
        with pytest.raises(StopAsyncIteration):  # read to its end: an end, again
            await anext(body)


async def test_read_again_after_its_end_is_still_its_end() -> None:
    async with serve(respond_with(coded("br"))) as server, pool() as request:
        _, _, body = await decompressed(request)(b"GET", server.url())
        assert await buffered(body) == DATA
        assert await buffered(body) == b""
        await body.aclose()  # nothing to close
        assert await buffered(body) == b""


async def leave(body: lowhaio.ResponseBody, how: str) -> None:
    if how == "break":
        async for _ in body:
            break
    elif how == "aclose":
        await anext(body)
        await body.aclose()
    elif how == "async with":
        async with body:
            await anext(body)
    else:
        async with body:
            pass  # never read: nothing was decoded


@pytest.mark.parametrize("how", ["break", "aclose", "async with", "unread"])
async def test_a_body_left_before_its_end_closes_its_connection(how: str) -> None:
    recorder = Recorder()
    big = coded("gzip", DATA * 20, chunks=[1000])  # chunked: not read whole with its head
    async with (
        serve(respond_with(big)) as server,
        pool(plugins=(recorder,)) as request,
    ):
        _, _, body = await decompressed(request, chunk_bytes=10)(b"GET", server.url())
        await leave(body, how)
        assert recorder.count("connection_closed") == 1
        with pytest.raises(HttpConnectionClosedError, match="closed before its end"):
            await buffered(body)
        _, _, again = await decompressed(request)(b"GET", server.url())  # on a new connection
        assert await buffered(again) == DATA * 20
    assert server.connections == 2


async def test_an_error_of_the_body_it_decodes_passes_through_and_it_stays_failed() -> None:
    coded_body = gzip.compress(DATA)
    cut = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n%b" % (
        len(coded_body),
        coded_body[:100],
    )
    async with serve(respond_with(cut, close=True)) as server, pool() as request:
        _, _, body = await decompressed(request)(b"GET", server.url())
        with pytest.raises(HttpConnectionClosedError) as raised:
            await buffered(body)
        assert not isinstance(raised.value, HttpDecompressionError)
        with pytest.raises(HttpConnectionClosedError, match="closed before its end"):
            await buffered(body)


async def test_a_cancelled_read_leaves_the_body_failed() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 99\r\n\r\n")
        await reader.read()

    async with serve(slow) as server, pool() as request:
        _, _, body = await decompressed(request)(b"GET", server.url())
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await anext(body)
        with pytest.raises(HttpConnectionClosedError, match="closed before its end"):
            await anext(body)


async def test_errors_say_where_the_request_went_as_lowhaio_errors_do() -> None:
    answer = response(b"not gzip", b"content-encoding: gzip")
    async with serve(respond_with(answer)) as server, pool() as request:
        _, _, body = await decompressed(request)(b"GET", server.url("/path?token=secret"))
        with pytest.raises(HttpContentEncodingError) as raised:
            await buffered(body)
    error = raised.value
    assert isinstance(error, HttpDataError)
    assert (error.method, error.url) == (b"GET", server.url("/path"))
    assert str(error).startswith(f"http://127.0.0.1:{server.port}: the body is not valid gzip")
    assert "secret" not in str(error)


async def test_wrapped_twice_the_outer_one_has_nothing_left_to_decode() -> None:
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        heads.append(head)
        writer.write(coded("zstd"))

    async with serve(handler) as server, pool() as request:
        twice = decompressed(decompressed(request, codings=("zstd",)))
        _, headers, body = await twice(b"GET", server.url())
        assert await buffered(body) == DATA
    assert heads[0].count(b"accept-encoding") == 1  # the outer one's, kept by the inner one
    assert headers[0] == (ORIGINAL_CONTENT_ENCODING, b"zstd")


def test_what_cannot_be_offered_is_refused_when_wrapping() -> None:
    async def request(*args: object) -> lowhaio.Response:
        raise AssertionError

    with pytest.raises(ValueError, match=r"cannot decode compress: .* lowhaio-decompress\[br\]"):
        decompressed(request, codings=("gzip", "compress"))
    with pytest.raises(TypeError, match=r"such as \('gzip',\)"):
        decompressed(request, codings="gzip")
    with pytest.raises(ValueError, match="at least 1"):
        decompressed(request, chunk_bytes=0)
    with pytest.raises(ValueError, match="at least 1"):
        decompressed(request, max_codings=0)
