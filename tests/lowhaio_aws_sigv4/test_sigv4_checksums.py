"""S3's flexible checksums: the `Checksum` building block against an oracle of its own, which
requests get one and where (a header, or the trailer of an aws-chunked body, byte for byte),
the trailer signature against AWS's published value, and `checksum_verified` on downloads."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from conftest import pool, respond_with, serve
from hypothesis import given, settings
from hypothesis import strategies as st
from sigv4_fakes import Recorder, Sent, crc, crc_header_value

import lowhaio
from lowhaio import streamed
from lowhaio_aws_sigv4 import (
    CHECKSUM_ALGORITHMS,
    Checksum,
    ChecksumAlgorithm,
    ChecksumError,
    ChecksumMismatchError,
    Payload,
    aws_chunked_length,
    checksum_verified,
    chunk_signature,
    response_checksum,
    signed,
    signing_key,
    static_credentials,
    trailer_signature,
)

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DATE = datetime(2013, 5, 24, tzinfo=UTC)
SCOPE = "20130524/us-east-1/s3/aws4_request"
AWS_URL = "https://examplebucket.s3.amazonaws.com/photos/photo1.jpg"
OTHER_URL = "https://s3.example.net/bucket/photo1.jpg"

# The CRC catalogue's check values: the CRC of b"123456789".
CHECK = {"crc32": 0xCBF43926, "crc32c": 0xE3069283, "crc64nvme": 0xAE8B14860A799888}


# The building block ---------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", CHECKSUM_ALGORITHMS)
def test_check_values(algorithm: ChecksumAlgorithm) -> None:
    checksum = Checksum(algorithm, b"123456789")
    assert checksum.value == CHECK[algorithm] == crc(algorithm, b"123456789")
    size = 8 if algorithm == "crc64nvme" else 4
    assert checksum.digest() == CHECK[algorithm].to_bytes(size, "big")
    assert checksum.header_value() == crc_header_value(algorithm, b"123456789")
    assert checksum.b64digest() == checksum.header_value().decode()
    assert checksum.header_name == b"x-amz-checksum-" + algorithm.encode()
    assert checksum.sdk_algorithm == algorithm.upper().encode()
    assert checksum.length == 9
    assert repr(checksum) == f"<Checksum {algorithm} {checksum.b64digest()} of 9 bytes>"


def test_values_that_aws_publishes() -> None:
    # aws-c-auth's trailing-header integration test sends b"a" with x-amz-checksum-crc32c:wdBDMA==
    assert Checksum("crc32c", b"a").header_value() == b"wdBDMA=="
    # An empty body: zero, in each width.
    assert [Checksum(a).b64digest() for a in CHECKSUM_ALGORITHMS] == [
        "AAAAAA==",
        "AAAAAA==",
        "AAAAAAAAAAA=",
    ]


@settings(derandomize=True, max_examples=60, deadline=None)
@given(
    algorithm=st.sampled_from(CHECKSUM_ALGORITHMS),
    data=st.binary(max_size=600),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=5),
)
def test_any_split_gives_the_oracles_crc(
    algorithm: ChecksumAlgorithm, data: bytes, cuts: list[int]
) -> None:
    """Fed in pieces of any size and kind (bytes, bytearray, memoryview), the CRC of the whole;
    and any two parts `combined` give it too."""
    bounds = [0, *sorted(min(cut, len(data)) for cut in cuts), len(data)]
    parts = [data[start:end] for start, end in itertools.pairwise(bounds)]
    checksum = Checksum(algorithm)
    for i, part in enumerate(parts):
        checksum.update((bytes, bytearray, memoryview)[i % 3](part))
    assert checksum.value == crc(algorithm, data)
    if algorithm == "crc32":
        assert checksum.value == zlib.crc32(data)  # the standard library's, too
    assert checksum.length == len(data)
    middle = bounds[len(bounds) // 2]
    first, then = Checksum(algorithm, data[:middle]), Checksum(algorithm, data[middle:])
    joined = first.combined(then)
    assert (joined.value, joined.length) == (checksum.value, len(data))


def test_copy_goes_on_apart() -> None:
    checksum = Checksum("crc32c", b"1234")
    copy = checksum.copy()
    copy.update(b"56789")
    assert (checksum.value, copy.value) == (crc("crc32c", b"1234"), CHECK["crc32c"])
    assert (checksum.length, copy.length) == (4, 9)


def test_another_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="one of crc32, crc32c, crc64nvme: 'md5'"):
        Checksum("md5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot combine crc32 with crc32c"):
        Checksum("crc32").combined(Checksum("crc32c"))
    with pytest.raises(ValueError, match="checksum algorithm must be one of"):
        signed(Recorder(), static_credentials(KEY_ID, SECRET), "s3", "r", checksum="CRC32")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="payload must be one of signed, unsigned, streaming"):
        signed(Recorder(), static_credentials(KEY_ID, SECRET), "s3", "r", payload="trailer")  # type: ignore[arg-type]


# The trailer's signature: AWS's published value ------------------------------------------


def test_trailer_signature_of_aws_published_test() -> None:
    """aws-c-auth's sigv4 trailing headers test: after the S3 documentation's chunked upload
    (its final, empty chunk signed b6c6ea8a...), the trailers first:1st, second:2nd, third:3rd
    are signed df5735bd..."""
    key = signing_key(SECRET, DATE, "us-east-1", "s3")
    final_chunk = "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
    trailers = [(b"first", b"1st"), (b"second", b"2nd"), (b"third", b"3rd")]
    expected = "df5735bd9f3295cd9386572292562fefc93ba94e80a0a1ddcbd652c4e0a75e6c"
    assert trailer_signature(key, DATE, SCOPE, final_chunk, trailers) == expected
    # Canonical: names in any case and order, values with spaces around, sign the same.
    shuffled = [(b"Third", b" 3rd "), (b"FIRST", b"1st"), (b"second", b"2nd\t")]
    assert trailer_signature(key, DATE, SCOPE, final_chunk, shuffled) == expected
    # Chained: from another previous signature, another signature.
    assert trailer_signature(key, DATE, SCOPE, "0" * 64, trailers) != expected


def test_chunk_signature_of_the_documentation() -> None:
    key = signing_key(SECRET, DATE, "us-east-1", "s3")
    seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    first = chunk_signature(key, DATE, SCOPE, seed, b"a" * 65536)
    assert first == "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"


# Which requests get a checksum, and where ----------------------------------------------


async def send(
    url: str = AWS_URL,
    *,
    method: bytes = b"PUT",
    data: bytes | None = b"hello",
    headers: tuple[tuple[bytes, bytes], ...] = (),
    service: str = "s3",
    **kwargs: object,
) -> Sent:
    recorder = Recorder()
    request = signed(
        recorder,
        static_credentials(KEY_ID, SECRET),
        service,
        "us-east-1",
        clock=lambda: DATE,
        **kwargs,  # type: ignore[arg-type]
    )
    if data is None:
        await request(method, url, headers=headers)
    else:
        sized = ((b"content-length", b"%d" % len(data)), *headers)
        await request(method, url, headers=sized, body=streamed(data))
    return recorder.last


def checksum_headers(sent: Sent) -> dict[bytes, bytes]:
    return {n: v for n, v in sent.headers if n.startswith((b"x-amz-checksum", b"x-amz-sdk"))}


@pytest.mark.parametrize(
    "url",
    [
        AWS_URL,
        "https://s3.eu-west-2.amazonaws.com/bucket/key",
        "https://bucket.s3.dualstack.us-east-1.amazonaws.com:443/key",
        "https://S3.AMAZONAWS.COM/bucket/key",
        "https://s3.cn-north-1.amazonaws.com.cn/bucket/key",
    ],
)
async def test_on_by_default_for_s3_on_aws_hosts(url: str) -> None:
    sent = await send(url)
    assert checksum_headers(sent) == {
        b"x-amz-checksum-crc32": Checksum("crc32", b"hello").header_value(),
        b"x-amz-sdk-checksum-algorithm": b"CRC32",
    }
    assert "x-amz-checksum-crc32" in sent.authorization()["SignedHeaders"].split(";")


@pytest.mark.parametrize(
    ("url", "service"),
    [
        (OTHER_URL, "s3"),
        ("http://127.0.0.1:9000/bucket/key", "s3"),
        ("https://amazonaws.com.example.net/bucket/key", "s3"),
        ("https://notamazonaws.com/bucket/key", "s3"),
        ("https://iam.amazonaws.com/", "iam"),
        ("https://abc.execute-api.eu-west-2.amazonaws.com/prod/x", "execute-api"),
    ],
)
async def test_off_by_default_elsewhere(url: str, service: str) -> None:
    """Many S3-compatible servers refuse the headers, and other services have no use for them."""
    assert checksum_headers(await send(url, service=service)) == {}


async def test_the_host_that_decides_is_the_one_signed() -> None:
    """A caller's host header (virtual-hosted style, to another address) names AWS."""
    headers = ((b"host", b"examplebucket.s3.amazonaws.com"),)
    sent = await send("http://127.0.0.1:9000/key", headers=headers)
    assert b"x-amz-checksum-crc32" in checksum_headers(sent)


@pytest.mark.parametrize(
    ("method", "url", "data"),
    [
        (b"GET", AWS_URL, None),  # no body
        (b"PUT", AWS_URL + "?x-id=CopyObject", None),  # a copy: no body
        (b"POST", AWS_URL + "?uploads", None),  # CreateMultipartUpload
        # CompleteMultipartUpload: its x-amz-checksum-* name the whole object's checksum
        (b"POST", AWS_URL + "?uploadId=2~abc", b"<CompleteMultipartUpload/>"),
    ],
)
async def test_none_for_requests_without_a_body_or_completing_an_upload(
    method: bytes, url: str, data: bytes | None
) -> None:
    for checksum in ("auto", "crc32c"):
        assert checksum_headers(await send(url, method=method, data=data, checksum=checksum)) == {}


async def test_a_body_posted_elsewhere_gets_one() -> None:
    # DeleteObjects (POST ?delete) needs one; an uploadId value alone is no CompleteMultipartUpload
    for url in (AWS_URL + "?delete", AWS_URL + "?x=uploadId"):
        sent = await send(url, method=b"POST", checksum="crc32c")
        assert b"x-amz-checksum-crc32c" in checksum_headers(sent)


async def test_the_callers_own_checksum_is_sent_instead() -> None:
    """The S3 package computes a part's checksum as it reads it, say: it is signed and sent
    once, and none is computed."""
    own = (
        (b"X-Amz-Checksum-CRC64NVME", b"given=="),
        (b"x-amz-sdk-checksum-algorithm", b"CRC64NVME"),
    )
    for payload in ("signed", "unsigned", "streaming"):
        sent = await send(headers=own, payload=payload, checksum="crc32")
        named = [(n, v) for n, v in sent.headers if n.lower().startswith((b"x-amz-c", b"x-amz-s"))]
        assert named[:2] == [*own]  # once each, the caller's
        assert b"x-amz-trailer" not in sent.names()
        assert sent.header(b"x-amz-content-sha256") in (
            hashlib.sha256(b"hello").hexdigest().encode(),
            b"UNSIGNED-PAYLOAD",
            b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        )


async def test_checksum_options_are_not_a_checksum() -> None:
    """x-amz-checksum-mode, -algorithm and -type are passed on, and one is computed still."""
    options = (
        (b"x-amz-checksum-algorithm", b"CRC32"),
        (b"x-amz-checksum-type", b"FULL_OBJECT"),
        (b"x-amz-checksum-mode", b"ENABLED"),
    )
    sent = await send(headers=options)
    assert checksum_headers(sent) == {
        **dict(options),
        b"x-amz-checksum-crc32": Checksum("crc32", b"hello").header_value(),
        b"x-amz-sdk-checksum-algorithm": b"CRC32",
    }


async def test_the_callers_sdk_algorithm_beside_a_computed_checksum_is_refused() -> None:
    with pytest.raises(lowhaio.HttpInvalidRequestError, match="x-amz-sdk-checksum-algorithm"):
        await send(headers=((b"X-Amz-Sdk-Checksum-Algorithm", b"CRC32"),))
    # Without a checksum computed, it is the caller's.
    sent = await send(headers=((b"x-amz-sdk-checksum-algorithm", b"CRC32"),), checksum=None)
    assert checksum_headers(sent) == {b"x-amz-sdk-checksum-algorithm": b"CRC32"}


# The wire bytes of each mode ---------------------------------------------------------------


async def test_unsigned_with_a_checksum_is_the_unsigned_trailer_byte_for_byte() -> None:
    data = b"a" * 70000
    sent = await send(data=data, payload="unsigned", checksum="crc64nvme")
    value = crc_header_value("crc64nvme", data)
    assert sent.body == (
        b"10000\r\n" + b"a" * 65536 + b"\r\n"
        b"1170\r\n" + b"a" * 4464 + b"\r\n"
        b"0\r\n"
        b"x-amz-checksum-crc64nvme:" + value + b"\r\n"
        b"\r\n"
    )
    assert sent.headers[:-1] == (
        (b"x-amz-date", b"20130524T000000Z"),
        (b"content-encoding", b"aws-chunked"),
        (b"content-length", b"%d" % len(sent.body)),
        (b"x-amz-decoded-content-length", b"70000"),
        (b"x-amz-sdk-checksum-algorithm", b"CRC64NVME"),
        (b"x-amz-trailer", b"x-amz-checksum-crc64nvme"),
        (b"x-amz-content-sha256", b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
    )
    assert len(sent.body) == aws_chunked_length(70000, signed=False, checksum="crc64nvme")


async def test_streaming_with_a_checksum_signs_chunks_and_trailer() -> None:
    """The documented chunked upload's body with a crc32c trailer: chunks chained from the
    request's signature, the trailer's signature from the final chunk's, recomputed here."""
    data = b"a" * 66560
    sent = await send(
        "https://s3.amazonaws.com/examplebucket/chunkObject.txt",
        data=data,
        payload="streaming",
        checksum="crc32c",
        headers=((b"x-amz-storage-class", b"REDUCED_REDUNDANCY"),),
    )
    assert sent.header(b"x-amz-content-sha256") == b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    assert sent.authorization()["SignedHeaders"] == (
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        "x-amz-decoded-content-length;x-amz-sdk-checksum-algorithm;x-amz-storage-class;"
        "x-amz-trailer"
    )
    key = hmac.new(b"AWS4" + SECRET.encode(), b"20130524", hashlib.sha256).digest()
    for part in (b"us-east-1", b"s3", b"aws4_request"):
        key = hmac.new(key, part, hashlib.sha256).digest()

    def sign(kind: str, previous: str, digest: str) -> str:
        lines = [f"AWS4-HMAC-SHA256-{kind}", "20130524T000000Z", SCOPE, previous]
        if kind == "PAYLOAD":
            lines.append(hashlib.sha256(b"").hexdigest())
        lines.append(digest)
        return hmac.new(key, "\n".join(lines).encode(), hashlib.sha256).hexdigest()

    previous, expected = sent.authorization()["Signature"], b""
    for size in (65536, 1024, 0):
        previous = sign("PAYLOAD", previous, hashlib.sha256(b"a" * size).hexdigest())
        expected += b"%x;chunk-signature=%s\r\n" % (size, previous.encode())
        expected += b"a" * size + b"\r\n" if size else b""
    trailer = b"x-amz-checksum-crc32c:" + crc_header_value("crc32c", data)
    trailer_sig = sign("TRAILER", previous, hashlib.sha256(trailer + b"\n").hexdigest())
    expected += trailer + b"\r\nx-amz-trailer-signature:" + trailer_sig.encode() + b"\r\n\r\n"
    assert sent.body == expected
    assert sent.header(b"content-length") == b"%d" % len(expected)
    assert len(expected) == aws_chunked_length(66560, checksum="crc32c")


@pytest.mark.parametrize("length", [0, 1, 8191, 65536, 65537, 200_000])
@pytest.mark.parametrize("algorithm", [None, *CHECKSUM_ALGORITHMS])
@pytest.mark.parametrize("payload", ["unsigned", "streaming"])
async def test_aws_chunked_length_is_the_encoded_length(
    length: int, algorithm: ChecksumAlgorithm | None, payload: Payload
) -> None:
    if payload == "unsigned" and algorithm is None:
        return  # UNSIGNED-PAYLOAD: not aws-chunked
    sent = await send(data=b"a" * length, payload=payload, checksum=algorithm, chunk_bytes=8192)
    expected = aws_chunked_length(length, 8192, signed=payload == "streaming", checksum=algorithm)
    assert len(sent.body) == expected
    assert sent.header(b"content-length") == b"%d" % expected


async def test_a_trailer_needs_a_content_length() -> None:
    recorder = Recorder()
    request = signed(
        recorder, static_credentials(KEY_ID, SECRET), "s3", "us-east-1", payload="unsigned"
    )
    with pytest.raises(lowhaio.HttpInvalidRequestError, match="needs the body's content-length"):
        await request(b"PUT", AWS_URL, body=streamed(b"abc"))
    assert recorder.calls == []
    # Without a checksum, an unsigned payload is sent as it comes, framed by the core.
    await signed(
        recorder,
        static_credentials(KEY_ID, SECRET),
        "s3",
        "us-east-1",
        payload="unsigned",
        checksum=None,
    )(b"PUT", AWS_URL, body=streamed(b"abc"))
    assert recorder.last.body == b"abc"


@pytest.mark.parametrize(("payload", "reads"), [("signed", 2), ("unsigned", 1), ("streaming", 1)])
async def test_a_checksum_costs_no_other_read_of_the_body(payload: Payload, reads: int) -> None:
    calls = []

    async def body() -> AsyncIterator[bytes]:
        calls.append(1)
        yield b"data"

    recorder = Recorder()
    request = signed(
        recorder,
        static_credentials(KEY_ID, SECRET),
        "s3",
        "us-east-1",
        payload=payload,
        checksum="crc32",
    )
    await request(b"PUT", AWS_URL, headers=[(b"content-length", b"4")], body=body)
    assert len(calls) == reads


async def test_a_replayed_trailer_body_is_the_same() -> None:
    """A wrapper under the signer that sends the body again gets the same bytes: the checksum
    starts over with each read."""
    factories = []

    async def keep(method: bytes, url: str, *args: object) -> lowhaio.Response:
        factories.append(args[2])
        return await Recorder()(method, url)

    request = signed(keep, static_credentials(KEY_ID, SECRET), "s3", "r", payload="unsigned")
    await request(b"PUT", AWS_URL, headers=[(b"content-length", b"5")], body=streamed(b"hello"))
    (factory,) = factories
    reads = [b"".join([chunk async for chunk in factory()]) for _ in range(2)]  # type: ignore[operator]
    assert reads[0] == reads[1]
    assert reads[0].endswith(
        b"x-amz-checksum-crc32:" + crc_header_value("crc32", b"hello") + b"\r\n\r\n"
    )


# Verifying a download ----------------------------------------------------------------------


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(body: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in body])


@pytest.mark.parametrize("algorithm", CHECKSUM_ALGORITHMS)
async def test_a_matching_body_is_passed_through(algorithm: ChecksumAlgorithm) -> None:
    headers = (
        (
            b"X-Amz-Checksum-" + algorithm.upper().encode(),
            crc_header_value(algorithm, b"hello world"),
        ),
    )
    assert response_checksum(headers) == (algorithm, crc_header_value(algorithm, b"hello world"))
    body = checksum_verified(headers, chunks(b"hello", b" ", b"world"))
    assert [chunk async for chunk in body] == [b"hello", b" ", b"world"]


async def test_a_body_that_does_not_match_raises_at_its_end() -> None:
    headers = ((b"x-amz-checksum-crc32c", crc_header_value("crc32c", b"hello world")),)
    body = checksum_verified(headers, chunks(b"hello", b" ", b"w0rld"))
    seen = []

    async def read() -> None:
        async for chunk in body:
            seen.append(chunk)

    with pytest.raises(ChecksumMismatchError) as raised:
        await read()
    assert seen == [b"hello", b" ", b"w0rld"]  # every chunk, then the error
    error = raised.value
    assert (error.algorithm, error.expected) == (
        "crc32c",
        crc_header_value("crc32c", b"hello world"),
    )
    assert error.actual == crc_header_value("crc32c", b"hello w0rld")
    assert str(error) == (
        "the body read does not match its x-amz-checksum-crc32c: the response says "
        f"{error.expected.decode()}, the bytes give {error.actual.decode()}"
    )
    assert isinstance(error, ChecksumError)


async def test_the_strongest_full_object_checksum_is_the_one_checked() -> None:
    data = b"some object"
    headers = (
        (b"x-amz-checksum-crc32", b"wrong=="),
        (b"x-amz-checksum-crc64nvme", b" " + crc_header_value("crc64nvme", data) + b" "),
        (b"x-amz-checksum-crc32c", b"wrong=="),
    )
    assert response_checksum(headers) == ("crc64nvme", crc_header_value("crc64nvme", data))
    assert await read_all(checksum_verified(headers, chunks(data))) == data


@pytest.mark.parametrize(
    "headers",
    [
        (),  # a GET without x-amz-checksum-mode: ENABLED, an object stored without one
        ((b"x-amz-checksum-crc32", b"3q2+7w==-3"),),  # a multipart object's composite checksum
        ((b"x-amz-checksum-crc64nvme", b"AAAAAAAAAAA="), (b"x-amz-checksum-type", b"composite")),
        ((b"x-amz-checksum-crc32", b"AAAAAA=="), (b"content-range", b"bytes 0-4/10")),  # a range
        ((b"x-amz-checksum-sha256", b"n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="),),
    ],
    ids=["none", "composite", "type-composite", "range", "sha256"],
)
async def test_nothing_to_verify(headers: lowhaio.Headers) -> None:
    """A composite checksum (a checksum of the parts' checksums) cannot be computed from the
    bytes alone: it is not verified, nor a range, nor an algorithm this package does not have."""
    assert response_checksum(headers) is None
    with pytest.raises(ChecksumError, match="no full-object") as raised:
        checksum_verified(headers, chunks(b"hello"))  # at once, before anything is read
    assert not isinstance(raised.value, ChecksumMismatchError)
    body = checksum_verified(headers, chunks(b"hello"), required=False)
    assert await read_all(body) == b"hello"


async def test_verifying_a_real_response() -> None:
    data = b"x" * 100_000
    good = crc_header_value("crc32", data)
    head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nx-amz-checksum-crc32: %s\r\n\r\n"
    responses = (head % (len(data), good) + data, head % (len(data), b"AAAAAA==") + data)
    async with serve(respond_with(*responses)) as server, pool() as request:
        _, headers, body = await request(b"GET", server.url("/bucket/key"))
        assert await read_all(checksum_verified(headers, body)) == data
        _, headers, body = await request(b"GET", server.url("/bucket/key"))
        with pytest.raises(ChecksumMismatchError):
            await read_all(checksum_verified(headers, body))
