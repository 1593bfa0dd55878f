"""What `decompressed` must never do: decode differently as the bytes are split, end silently on
a body that is not what its content-encoding says (cut short, corrupt, followed by other data),
or decode past its limits."""

from __future__ import annotations

import asyncio
import gzip
import types
import zlib

import pytest
from coded import CODINGS, DATA, SMALL, answering, coded, encode, named, response, zstd
from conftest import Handler, Recorder, pool, read_request, respond_with, serve
from lowhaio_decompress._codings import decoders

from lowhaio import (
    HttpBodyTooLong,
    HttpConnectionClosedError,
    HttpDataError,
    buffered,
    read_json,
)
from lowhaio_decompress import (
    CHUNK_BYTES,
    HttpContentEncodingError,
    HttpDecodedTooLong,
    HttpDecompressionError,
    HttpDecompressionRatioError,
    decompressed,
)


@pytest.mark.parametrize("coding", CODINGS)
async def test_every_split_of_the_coded_bytes_decodes_the_same(coding: str) -> None:
    body = encode(coding, SMALL)
    # Every byte apart (so every split at once), then each split in two.
    splits = [[body[at : at + 1] for at in range(len(body))]]
    splits += [[body[:cut], body[cut:]] for cut in range(1, len(body))]
    for pieces in splits:
        request = answering(coding, *pieces)
        _, _, decoded = await decompressed(request, chunk_bytes=64)(b"GET", "http://x/")
        decoded_pieces = [piece async for piece in decoded]
        assert b"".join(decoded_pieces) == SMALL
        assert max(map(len, decoded_pieces)) <= 64
        assert decoded.wrapped.read == len(pieces)


@pytest.mark.parametrize("coding", CODINGS)
async def test_a_server_writing_a_byte_at_a_time_is_decoded_the_same(coding: str) -> None:
    body = encode(coding, SMALL)

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        head = b"HTTP/1.1 200 OK\r\ncontent-encoding: %b\r\ncontent-length: %d\r\n\r\n"
        writer.write(head % (named(coding), len(body)))
        for at in range(len(body)):
            writer.write(body[at : at + 1])
            for _ in range(3):  # a few turns of the loop: the client reads it before the next
                await asyncio.sleep(0)
        await reader.read()

    async with serve(trickle) as server, pool() as request:
        _, _, decoded = await decompressed(request, chunk_bytes=64)(b"GET", server.url())
        assert await buffered(decoded) == SMALL


@pytest.mark.parametrize("coding", CODINGS)
async def test_a_body_cut_short_anywhere_is_an_error_never_a_shorter_body(coding: str) -> None:
    body = encode(coding, SMALL)
    field = b"content-encoding: " + named(coding)
    answers = [response(body[:cut], field) for cut in range(1, len(body))]
    async with serve(respond_with(*answers)) as server, pool() as request:
        wrapped = decompressed(request, chunk_bytes=64)
        for _ in answers:
            _, _, decoded = await wrapped(b"GET", server.url())
            with pytest.raises(HttpContentEncodingError, match=r"cut short|not valid"):
                await buffered(decoded)


def _zstd_with_checksum(data: bytes) -> bytes:
    return bytes(zstd.compress(data, options={zstd.CompressionParameter.checksum_flag: 1}))


def _flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x55]) + data[at + 1 :]


@pytest.mark.parametrize(
    ("coding", "body", "error"),
    [
        ("gzip", b"not gzip at all", "not valid gzip: .*incorrect header check"),
        ("gzip", _flipped(gzip.compress(SMALL), -6), "not valid gzip: .*incorrect data check"),
        ("gzip", _flipped(gzip.compress(SMALL), -2), "not valid gzip: .*incorrect length check"),
        ("deflate", _flipped(zlib.compress(SMALL), 30), "not valid deflate"),
        ("deflate", b"\xff\xff\xff", "not valid deflate"),
        ("br", b"not br at all", "not valid br"),
        ("zstd", b"not zstd at all", "not valid zstd: .*Unknown frame descriptor"),
        ("zstd", _flipped(_zstd_with_checksum(SMALL), -2), "not valid zstd: .*checksum"),
    ],
    ids=[
        "gzip-header",
        "gzip-crc",
        "gzip-size",
        "deflate-data",
        "deflate-block",
        "br",
        "zstd-magic",
        "zstd-checksum",
    ],
)
async def test_a_corrupt_body_is_an_error(coding: str, body: bytes, error: str) -> None:
    answer = response(body, b"content-encoding: " + coding.encode(), chunks=[2])
    async with serve(respond_with(answer)) as server, pool() as request:
        _, _, decoded = await decompressed(request)(b"GET", server.url())
        with pytest.raises(HttpContentEncodingError, match=error) as raised:
            await buffered(decoded)
        assert isinstance(raised.value.__cause__, Exception)  # the decoder's own error


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("together", [True, False], ids=["same-chunk", "next-chunk"])
async def test_data_after_the_end_of_a_coded_body_is_an_error(coding: str, together: bool) -> None:
    # After a gzip member, what follows must be another member, and after a zstd frame another
    # frame: these bytes are neither (two NULs, which some servers pad with, included).
    body = encode(coding, SMALL)
    for trailing in (b"garbage", b"\x00\x00"):
        pieces = [body + trailing] if together else [body, trailing]
        _, _, decoded = await decompressed(answering(coding, *pieces))(b"GET", "http://x/")
        with pytest.raises(HttpContentEncodingError, match=r"after its end|not valid") as raised:
            await buffered(decoded)
        if not together or coding != "br":  # brotli says only that it failed
            assert "goes on after its end" in str(raised.value)
        assert decoded.wrapped.closed


async def test_a_deflate_body_of_one_byte_is_cut_short() -> None:
    answer = response(b"x", b"content-encoding: deflate")
    async with serve(respond_with(answer)) as server, pool() as request:
        _, _, decoded = await decompressed(request)(b"GET", server.url())
        with pytest.raises(HttpContentEncodingError, match="deflate body ends before its end"):
            await buffered(decoded)


def withholding(answer: bytes, kept: int) -> Handler:
    """A handler that sends `answer` but its last `kept` bytes, and waits."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer[:-kept])
        await reader.read()

    return handler


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
async def test_past_max_bytes_reading_stops_with_a_typed_error_that_says_how_to_raise_it(
    coding: str,
) -> None:
    recorder = Recorder()
    answer = coded(coding, DATA * 4)  # zstd hands out nothing of a block (128 KB) until whole
    async with (
        serve(withholding(answer, 10)) as server,
        pool(plugins=(recorder,)) as request,
    ):
        wrapped = decompressed(request, max_bytes=10_000, chunk_bytes=4096)
        _, _, failed = await wrapped(b"GET", server.url())
        with pytest.raises(HttpDecodedTooLong, match=r"more than \d+ bytes .*max_bytes=") as raised:
            await buffered(failed)
        # The body was closed, and its connection with it, before the server's last bytes.
        assert recorder.select("connection_closed", reason="body abandoned")
        with pytest.raises(HttpConnectionClosedError, match="closed before its end"):
            await buffered(failed)
    assert isinstance(raised.value, HttpBodyTooLong)
    assert isinstance(raised.value, HttpDecompressionError)
    assert isinstance(raised.value, HttpDataError)


async def test_past_the_ratio_reading_stops_but_a_small_body_has_an_allowance() -> None:
    zeros = bytes(200_000)  # gzip makes it 200 bytes: a ratio of 1,000
    answer = response(gzip.compress(zeros), b"content-encoding: gzip", chunks=[100])
    async with serve(respond_with(answer, answer, answer)) as server, pool() as request:
        # Within the allowance (1 MiB by default), any ratio.
        _, _, decoded = await decompressed(request)(b"GET", server.url())
        assert await buffered(decoded) == zeros
        # Past it, at most max_ratio times the bytes received.
        strict = decompressed(request, ratio_allowance=10_000, chunk_bytes=1000)
        _, _, decoded = await strict(b"GET", server.url())
        with pytest.raises(HttpDecompressionRatioError, match=r"more than 100 times") as raised:
            await buffered(decoded)
        assert "max_ratio=" in str(raised.value)
        _, _, decoded = await decompressed(request, ratio_allowance=0, max_ratio=None)(
            b"GET", server.url()
        )
        assert await buffered(decoded) == zeros


async def test_limits_count_each_coding_of_a_stack() -> None:
    # gzip over gzip of zeros: the first decoder's output is small, the second's is not.
    zeros = bytes(300_000)
    answer = response(gzip.compress(gzip.compress(zeros)), b"content-encoding: gzip, gzip")
    async with serve(respond_with(answer)) as server, pool() as request:
        _, _, decoded = await decompressed(request, ratio_allowance=0)(b"GET", server.url())
        with pytest.raises(HttpDecompressionRatioError, match="the gzip body decodes to more"):
            await buffered(decoded)


async def test_read_json_past_its_bound_drops_the_rest_as_it_came() -> None:
    document = b"[" + b"0," * 200_000 + b"0]"
    answer = coded("gzip", document, chunks=[100])
    async with serve(respond_with(answer, answer)) as server, pool() as request:
        _, _, decoded = await decompressed(request)(b"GET", server.url())
        with pytest.raises(HttpBodyTooLong):
            await read_json(decoded, max_bytes=100_000)
        # The rest (under 64 KiB as it came, though 300 KB decoded) was read undecoded, and
        # the connection is reused.
        _, _, decoded = await decompressed(request)(b"GET", server.url())
        reading = aiter(decoded)
        assert aiter(reading) is reading
        assert len(await anext(reading)) == CHUNK_BYTES
        await reading.aclose()
    assert server.connections == 1


def test_br_and_zstd_are_offered_only_with_modules_that_can_bound_their_output() -> None:
    old_brotli = types.SimpleNamespace(Decompressor=type("Decompressor", (), {}))
    found = {
        "nothing": {},
        "old brotli": {"brotli": old_brotli},
        "python 3.14": {"compression.zstd": zstd},
    }
    assert [list(decoders(modules.get)) for modules in found.values()] == [  # type: ignore[arg-type]
        ["gzip", "deflate"],
        ["gzip", "deflate"],
        ["gzip", "deflate", "zstd"],
    ]
