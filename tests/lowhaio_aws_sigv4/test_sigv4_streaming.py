"""payload="streaming": S3's aws-chunked encoding (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), against
the documented example, byte for byte."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sigv4_fakes import Recorder, Sent

import lowhaio
from lowhaio import streamed
from lowhaio_aws_sigv4 import (
    CHUNK_BYTES,
    aws_chunked_length,
    canonical_request,
    signed,
    static_credentials,
)

# S3 API Reference, "Signature Calculations for the Authorization Header: Transferring Payload
# in Multiple Chunks (Chunked Upload) (AWS Signature Version 4)": its example request and the
# values it publishes (the seed's canonical request hash is the last line of its string to sign).
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DATE = datetime(2013, 5, 24, tzinfo=UTC)  # 20130524T000000Z
URL = "https://s3.amazonaws.com/examplebucket/chunkObject.txt"
DECODED_LENGTH = 66560  # of b"a"
CONTENT_LENGTH = 66824
SIGNED_HEADERS = (
    "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
    "x-amz-decoded-content-length;x-amz-storage-class"
)
SEED_CREQ_SHA256 = "cee3fed04b70f867d036f722359b0b1f2f0e5dc0efadbc082b76c4c60e316455"
SEED_SIGNATURE = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
CHUNK_SIGNATURES = (
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",  # 65536 bytes
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",  # 1024 bytes
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",  # the final 0
)
EXPECTED_BODY = (
    b"10000;chunk-signature=" + CHUNK_SIGNATURES[0].encode() + b"\r\n" + b"a" * 65536 + b"\r\n"
    b"400;chunk-signature=" + CHUNK_SIGNATURES[1].encode() + b"\r\n" + b"a" * 1024 + b"\r\n"
    b"0;chunk-signature=" + CHUNK_SIGNATURES[2].encode() + b"\r\n\r\n"
)


def pieces(*sizes: int, kinds: Sequence[type] = (bytes,)) -> lowhaio.BodyFactory:
    """A body factory of b"a" yielded in pieces of `sizes`, as bytes, bytearray or memoryview
    in turn."""

    async def body() -> AsyncIterator[bytes | bytearray | memoryview]:
        for i, size in enumerate(sizes):
            kind = kinds[i % len(kinds)]
            yield kind(b"a" * size)

    return body


async def send(
    body: lowhaio.BodyFactory,
    length: int,
    chunk_bytes: int = CHUNK_BYTES,
    region: str = "us-east-1",
) -> Sent:
    recorder = Recorder()
    request = signed(
        recorder,
        static_credentials(KEY_ID, SECRET),
        "s3",
        region,
        payload="streaming",
        checksum=None,  # the documented example has no trailer
        chunk_bytes=chunk_bytes,
        clock=lambda: DATE,
    )
    headers = [(b"x-amz-storage-class", b"REDUCED_REDUNDANCY"), (b"Content-Length", b"%d" % length)]
    await request(b"PUT", URL, headers=headers, body=body)
    return recorder.last


async def test_the_documented_example_byte_for_byte() -> None:
    sent = await send(pieces(DECODED_LENGTH), DECODED_LENGTH)

    assert sent.headers[:-1] == (
        (b"x-amz-storage-class", b"REDUCED_REDUNDANCY"),
        (b"x-amz-date", b"20130524T000000Z"),
        (b"content-encoding", b"aws-chunked"),
        (b"content-length", b"%d" % CONTENT_LENGTH),  # replaces the caller's
        (b"x-amz-decoded-content-length", b"%d" % DECODED_LENGTH),
        (b"x-amz-content-sha256", b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
    )
    assert sent.authorization() == {
        "algorithm": "AWS4-HMAC-SHA256",
        "Credential": f"{KEY_ID}/20130524/us-east-1/s3/aws4_request",
        "SignedHeaders": SIGNED_HEADERS,
        "Signature": SEED_SIGNATURE,
    }
    creq = canonical_request(
        b"PUT",
        b"/examplebucket/chunkObject.txt",
        (*sent.headers[:-1], (b"host", b"s3.amazonaws.com")),
        b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    )
    assert hashlib.sha256(creq).hexdigest() == SEED_CREQ_SHA256
    assert len(sent.body) == CONTENT_LENGTH
    assert sent.body == EXPECTED_BODY


@pytest.mark.parametrize(
    ("sizes", "kinds"),
    [
        ((1, 0, DECODED_LENGTH - 1), (bytes,)),
        ((0, 65535, 1, 0, 1024, 0), (bytes, bytearray)),
        ((65536, 1024), (memoryview,)),
        ((1000,) * 66 + (560,), (bytes, bytearray, memoryview)),
        ((1,) * 10 + (DECODED_LENGTH - 10,), (memoryview, bytes)),
    ],
)
async def test_how_the_body_is_split_does_not_change_the_wire_bytes(
    sizes: tuple[int, ...], kinds: tuple[type, ...]
) -> None:
    assert sum(sizes) == DECODED_LENGTH
    sent = await send(pieces(*sizes, kinds=kinds), DECODED_LENGTH)
    assert sent.authorization()["Signature"] == SEED_SIGNATURE
    assert sent.body == EXPECTED_BODY


async def test_pieces_larger_than_a_chunk_are_cut_the_same() -> None:
    length = 140001
    whole = await send(pieces(length), length)
    split = await send(pieces(1, 70000, 0, 70000, 0), length)
    assert split.body == whole.body
    assert split.header(b"authorization") == whole.header(b"authorization")
    # 64 KiB, 64 KiB, then the 8929 bytes left (hex 22e1), then the final empty chunk.
    sizes = [line.split(b";")[0] for line in whole.body.split(b"\r\n") if b";chunk-sig" in line]
    assert sizes == [b"10000", b"10000", b"22e1", b"0"]


async def test_an_empty_body_is_only_the_final_chunk() -> None:
    sent = await send(pieces(), 0)  # a factory that yields nothing
    assert sent.header(b"x-amz-decoded-content-length") == b"0"
    assert sent.body.startswith(b"0;chunk-signature=")
    assert sent.body.endswith(b"\r\n\r\n")
    assert len(sent.body) == int(sent.header(b"content-length")) == aws_chunked_length(0) == 86


async def test_no_body_factory_is_signed_as_an_empty_payload() -> None:
    """A request without a body (`empty_body`, the default: a GET, a DELETE) has nothing to
    stream: it is signed as the empty payload, and needs no content-length."""
    recorder = Recorder()
    request = signed(
        recorder,
        static_credentials(KEY_ID, SECRET),
        "s3",
        "us-east-1",
        payload="streaming",
        clock=lambda: DATE,
    )
    await request(b"GET", URL)
    assert recorder.last.names() == [b"x-amz-date", b"x-amz-content-sha256", b"authorization"]
    assert recorder.last.header(b"x-amz-content-sha256") == hashlib.sha256(b"").hexdigest().encode()
    assert recorder.last.body == b""


@pytest.mark.parametrize("chunk_bytes", [CHUNK_BYTES, 8192, 100_000, 65535])
@pytest.mark.parametrize("length", [0, 1, 65535, 65536, 65537, 200_000])
async def test_aws_chunked_length_is_the_encoded_length(length: int, chunk_bytes: int) -> None:
    sent = await send(pieces(length), length, chunk_bytes=chunk_bytes)
    assert len(sent.body) == aws_chunked_length(length, chunk_bytes)
    assert sent.header(b"content-length") == b"%d" % len(sent.body)
    data_chunks = -(-length // chunk_bytes)  # each full, but the last
    assert sent.body.count(b";chunk-signature=") == data_chunks + 1


@pytest.mark.parametrize("chunk_bytes", [0, 1, 8191])
def test_chunks_smaller_than_s3_accepts_are_refused(chunk_bytes: int) -> None:
    with pytest.raises(ValueError, match="at least 8192"):
        signed(
            Recorder(),
            static_credentials(KEY_ID, SECRET),
            "s3",
            "us-east-1",
            chunk_bytes=chunk_bytes,
        )


async def test_a_clock_in_another_zone_signs_the_same_instant() -> None:
    elsewhere = DATE.astimezone(timezone(timedelta(hours=-5)))
    recorder = Recorder()
    request = signed(
        recorder, static_credentials(KEY_ID, SECRET), "s3", "us-east-1", clock=lambda: elsewhere
    )
    await request(b"GET", URL)
    assert recorder.last.header(b"x-amz-date") == b"20130524T000000Z"


@pytest.mark.parametrize("payload", ["signed", "unsigned", "streaming"])
async def test_a_body_that_is_not_a_factory_is_refused_before_hashing(payload: str) -> None:
    recorder = Recorder()
    request = signed(
        recorder,
        static_credentials(KEY_ID, SECRET),
        "s3",
        "us-east-1",
        payload=payload,  # type: ignore[arg-type]
    )
    with pytest.raises(lowhaio.HttpInvalidRequestError, match=r"factory.*not bytes"):
        await request(b"PUT", URL, headers=[(b"content-length", b"3")], body=b"abc")  # type: ignore[arg-type]
    assert recorder.calls == []


def test_aws_chunked_length_default_chunk_size() -> None:
    assert CHUNK_BYTES == 65536
    assert aws_chunked_length(DECODED_LENGTH) == CONTENT_LENGTH


async def test_the_encoded_body_factory_can_be_replayed() -> None:
    """A wrapper under the signer (a retry of the same signed request) may call the body
    factory again: it starts over from the seed signature and gives the same bytes."""
    factories = []

    async def keep(
        method: bytes,
        url: str,
        params: lowhaio.Params = (),
        headers: lowhaio.RequestHeaders = (),
        body: lowhaio.BodyFactory = lowhaio.empty_body,
        *rest: object,
    ) -> lowhaio.Response:
        factories.append(body)
        return await Recorder()(method, url, params, headers, body)

    request = signed(
        keep,
        static_credentials(KEY_ID, SECRET),
        "s3",
        "us-east-1",
        payload="streaming",
        checksum=None,
        clock=lambda: DATE,
    )
    await request(
        b"PUT",
        URL,
        headers=[(b"x-amz-storage-class", b"REDUCED_REDUNDANCY"), (b"content-length", b"66560")],
        body=streamed(b"a" * DECODED_LENGTH),
    )
    (factory,) = factories
    for _ in range(2):
        assert b"".join([chunk async for chunk in factory()]) == EXPECTED_BODY


async def test_body_args_and_kwargs_reach_the_callers_factory() -> None:
    async def body(letter: bytes, *, count: int) -> AsyncIterator[bytes]:
        yield letter * count

    recorder = Recorder()
    request = signed(
        recorder,
        static_credentials(KEY_ID, SECRET),
        "s3",
        "us-east-1",
        payload="streaming",
        checksum=None,
        clock=lambda: DATE,
    )
    await request(
        b"PUT",
        URL,
        headers=[(b"x-amz-storage-class", b"REDUCED_REDUNDANCY"), (b"content-length", b"66560")],
        body=body,
        body_args=(b"a",),
        body_kwargs={"count": DECODED_LENGTH},
    )
    assert recorder.last.body == EXPECTED_BODY


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"x-amz-storage-class", b"REDUCED_REDUNDANCY")],
        [(b"content-length", b"")],
        [(b"content-length", b"12a")],
        [(b"content-length", b"-1")],
        [(b"content-length", b" 12")],
    ],
)
async def test_streaming_needs_a_valid_content_length(headers: list[tuple[bytes, bytes]]) -> None:
    recorder = Recorder()
    request = signed(
        recorder, static_credentials(KEY_ID, SECRET), "s3", "us-east-1", payload="streaming"
    )
    with pytest.raises(lowhaio.HttpInvalidRequestError, match="content-length") as raised:
        await request(b"PUT", URL, headers=headers, body=streamed(b"abc"))
    assert SECRET not in str(raised.value)
    assert recorder.calls == []
