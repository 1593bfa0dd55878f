"""upload() against the fake S3: one PutObject or parts, the threshold and its boundaries, what
each request carries, concurrency, the caller's body read once and in order, lengths refused."""

from __future__ import annotations

import array
import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import pytest
from conftest import pool
from s3_fake import FakeS3, Request, fake_s3
from s3_helpers import MIB, PART, data_of, no_wait, pieces

from lowhaio_s3 import S3BodyLengthError, Uploaded, upload


def stored(s3: FakeS3, key: str = "key") -> bytes:
    return s3.objects[("bucket", key)].data


def operations(s3: FakeS3) -> list[str]:
    return [request.operation for request in s3.requests]


async def test_a_small_object_goes_in_one_put() -> None:
    data = data_of(1000)
    async with fake_s3() as s3, pool() as request:
        headers = ((b"content-type", b"text/plain"), (b"x-amz-meta-colour", b"blue"))
        uploaded = await upload(request, s3.url(), "key", pieces(data), headers=headers)
        assert operations(s3) == ["PutObject"]
        (put,) = s3.requests
        assert put.header("content-length") == "1000"
        assert put.header("content-type") == "text/plain"
        assert put.header("x-amz-meta-colour") == "blue"
        assert not any(name.startswith("x-amz-checksum") for name in put.headers)  # not AWS
        assert stored(s3) == data
        assert uploaded == Uploaded(s3.objects[("bucket", "key")].etag, 1000, 0, None, None, None)


@pytest.mark.parametrize("known", [True, False], ids=["size", "unknown-size"])
@pytest.mark.parametrize(
    ("size", "threshold", "expected_parts"),
    [
        (0, None, 0),  # a zero-byte object: one empty PutObject
        (1, None, 0),
        (PART, None, 0),  # exactly the threshold (the part size): still one PutObject
        (PART + 1, None, [PART, 1]),  # one byte more: two parts, the last of one byte
        (2 * PART, None, [PART, PART]),
        (2 * PART + 1, None, [PART, PART, 1]),
        (100, 100, 0),  # a threshold of its own
        (101, 100, [101]),  # above it, below a part: one part
        (0, 0, 0),
        (1, 0, [1]),
    ],
)
async def test_threshold(
    size: int, threshold: int | None, expected_parts: int | list[int], known: bool
) -> None:
    data = data_of(size, seed=size)
    async with fake_s3() as s3, pool() as request:
        uploaded = await upload(
            request,
            s3.url(),
            "key",
            pieces(data, 64 * 1024 + 1),
            size=size if known else None,
            part_size=PART,
            threshold=threshold,
            retries=no_wait(),
        )
        assert stored(s3) == data
        assert uploaded.size == size
        if expected_parts == 0:
            assert operations(s3) == ["PutObject"]
            assert (uploaded.parts, uploaded.upload_id) == (0, None)
            assert s3.requests[0].header("content-length") == str(size)
        else:
            assert isinstance(expected_parts, list)
            sent = [len(r.body) for r in s3.of("UploadPart")]
            assert sent == expected_parts
            numbers = [r.query["partNumber"] for r in s3.of("UploadPart")]
            assert sorted(numbers, key=int) == [str(n) for n in range(1, len(sent) + 1)]
            assert uploaded.parts == len(sent)
            assert uploaded.upload_id == "upload-1+/="  # as the fake named it
            assert uploaded.etag.endswith(f'-{len(sent)}"')
            assert s3.uploads == {}


async def test_parts_are_listed_in_order_to_complete() -> None:
    data = data_of(3 * PART + 12345)
    async with fake_s3() as s3, pool() as request:
        uploaded = await upload(request, s3.url(), "key", pieces(data), part_size=PART)
        assert uploaded.parts == 4
        assert operations(s3)[0] == "CreateMultipartUpload"
        assert operations(s3)[-1] == "CompleteMultipartUpload"
        (complete,) = s3.of("CompleteMultipartUpload")
        root = ET.fromstring(complete.body)
        assert root.tag == "{http://s3.amazonaws.com/doc/2006-03-01/}CompleteMultipartUpload"
        listed = [
            (part.findtext("{*}PartNumber"), part.findtext("{*}ETag"))
            for part in root.iterfind("{*}Part")
        ]
        etags = {r.query["partNumber"]: r for r in s3.of("UploadPart")}
        assert [number for number, _ in listed] == ["1", "2", "3", "4"]
        assert all(etag and etag.startswith('"') for _, etag in listed)
        assert len(etags) == 4
        assert complete.query["uploadId"] == uploaded.upload_id
        assert all(r.query["uploadId"] == uploaded.upload_id for r in s3.of("UploadPart"))
        assert stored(s3) == data


async def slow_parts(request: Request) -> None:
    if request.operation == "UploadPart":
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_parts_in_flight_are_bounded(concurrency: int) -> None:
    data = data_of(7 * PART)
    async with fake_s3() as s3, pool() as request:
        s3.faults.append(slow_parts)
        uploaded = await upload(
            request, s3.url(), "key", pieces(data), part_size=PART, concurrency=concurrency
        )
        assert uploaded.parts == 7
        assert s3.peak["UploadPart"] == concurrency
        assert s3.server is not None
        assert s3.server.connections <= concurrency + 1  # the parts', and CreateMultipartUpload's
        assert stored(s3) == data


async def test_a_body_that_reuses_its_buffer_is_copied_before_it_is_asked_for_more() -> None:
    data = data_of(2 * PART + 3 * 65536 + 5)
    calls = []

    async def refilled(piece: int) -> AsyncIterator[bytearray]:
        calls.append(piece)
        buffer = bytearray(piece)
        for start in range(0, len(data), piece):
            chunk = data[start : start + piece]
            buffer[: len(chunk)] = chunk
            yield buffer if len(chunk) == piece else buffer[: len(chunk)]
            buffer[:] = b"\xff" * piece  # the caller's buffer changes once it is asked again

    async with fake_s3() as s3, pool() as request:
        await upload(request, s3.url(), "key", refilled, (3 * 1024 * 1024 + 7,), part_size=PART)
        assert stored(s3) == data
        assert calls == [3 * 1024 * 1024 + 7]  # the factory is called once


async def test_chunks_of_any_buffer_type_and_empty_ones() -> None:
    words = array.array("I", range(3 * 1024 * 1024))  # 12 MiB of 4-byte items

    async def body(*, words: array.array[int]) -> AsyncIterator[object]:
        yield b""
        yield memoryview(words)
        yield bytearray(b"tail")

    async with fake_s3() as s3, pool() as request:
        uploaded = await upload(
            request, s3.url(), "key", body, body_kwargs={"words": words}, part_size=PART
        )
        assert stored(s3) == words.tobytes() + b"tail"
        assert uploaded.size == len(words) * 4 + 4
        assert uploaded.parts == 3


async def test_the_caller_body_is_closed_when_the_upload_ends() -> None:
    closed = []

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b"x" * 100
            yield b"y" * 100
        finally:
            closed.append(True)

    async with fake_s3() as s3, pool() as request:
        with pytest.raises(S3BodyLengthError):
            await upload(request, s3.url(), "key", body, size=150)
        assert closed == [True]
        assert s3.requests == []


@pytest.mark.parametrize(
    ("size", "max_size", "length", "message"),
    [
        (150, None, 200, "longer than its size, 150 bytes"),
        (250, None, 200, "ended after 200 bytes, short of its size, 250"),
        (0, None, 1, "longer than its size, 0 bytes"),
        (2 * PART + 1, None, 2 * PART + 2, "longer than its size"),  # found in the parts
        (2 * PART + 1, None, 2 * PART, "ended after 10485760 bytes, short of its size"),
        (None, 2 * PART, 2 * PART + 1, "longer than max_size, 10485760 bytes"),
        (None, 150, 151, "longer than max_size, 150 bytes"),
    ],
)
async def test_a_body_of_the_wrong_length_is_refused(
    size: int | None, max_size: int | None, length: int, message: str
) -> None:
    data = data_of(length)
    async with fake_s3() as s3, pool() as request:
        with pytest.raises(S3BodyLengthError, match=message) as raised:
            await upload(
                request,
                s3.url(),
                "dir/key",
                pieces(data),
                size=size,
                max_size=max_size,
                part_size=PART,
                retries=no_wait(),
            )
        assert (raised.value.bucket, raised.value.key) == ("bucket", "dir/key")
        assert isinstance(raised.value, ValueError)  # an HttpInvalidRequestError
        assert "PutObject" not in operations(s3)
        assert "CompleteMultipartUpload" not in operations(s3)
        assert s3.uploads == {}  # a multipart upload begun is aborted
        assert s3.objects == {}


async def test_a_stated_maximum_is_the_most_that_is_read() -> None:
    taken = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal taken
        while True:
            taken += MIB
            yield bytes(MIB)

    async with fake_s3() as s3, pool() as request:
        with pytest.raises(S3BodyLengthError, match="longer than max_size"):
            await upload(request, s3.url(), "key", endless, max_size=3 * PART, part_size=PART)
        assert taken == 3 * PART + MIB  # the chunk that went past it, and not one more
        assert len(s3.of("UploadPart")) <= 3
        assert s3.uploads == {}


async def test_a_larger_object_takes_larger_parts() -> None:
    # 10,000 parts of 5 MiB are 50,000 MiB: a stated maximum above it raises the part size,
    # which the first part shows (6 MiB), long before that much is read.
    async with fake_s3() as s3, pool() as request:
        uploaded = await upload(
            request,
            s3.url(),
            "key",
            pieces(data_of(6 * MIB + 1), 1 << 20),
            max_size=50_001 * MIB,
            part_size=PART,
        )
        assert [len(r.body) for r in s3.of("UploadPart")] == [6 * MIB, 1]
        assert uploaded.parts == 2


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"concurrency": 0}, "concurrency must be a positive int"),
        ({"concurrency": True}, "concurrency must be a positive int"),
        ({"abort_attempts": 0}, "abort_attempts must be at least 1"),
        ({"max_size": -1}, "max_size cannot be negative"),
        ({"threshold": 9 * MIB}, "threshold must be from 0 to the part size, 8388608"),
        ({"threshold": -1}, "threshold must be from 0"),
        ({"part_size": MIB}, "part_size must be from"),
        ({"size": 6 * 1024**4}, "at most 5 TiB"),
        ({"headers": ((b"Content-Length", b"3"),)}, "Content-Length.*set by lowhaio_s3"),
        ({"headers": ((b"x-amz-checksum-crc32", b"AAAAAA=="),)}, "set by lowhaio_s3"),
        ({"checksum": "crc32"}, "a checksum is a ChecksumSpec"),
    ],
)
async def test_settings_are_checked_before_anything_is_read(
    settings: dict[str, object], message: str
) -> None:
    read = []

    async def body() -> AsyncIterator[bytes]:
        read.append(True)
        yield b"x"

    async with fake_s3() as s3, pool() as request:
        with pytest.raises(ValueError, match=message):
            await upload(request, s3.url(), "key", body, **settings)  # type: ignore[arg-type]
        assert read == []
        assert s3.requests == []


@pytest.mark.parametrize(
    ("bucket_url", "key", "message"),
    [
        ("ftp://host/bucket", "key", "must be http:// or https://"),
        ("http:///bucket", "key", "must be http:// or https://"),
        ("https://user:secret@host/bucket", "key", "no userinfo, query or fragment"),
        ("https://host/bucket?x=1", "key", "no userinfo, query or fragment"),
        ("https://host/bucket#here", "key", "no userinfo, query or fragment"),
        ("https://host/bucket", "", "non-empty string"),
        ("https://host/bucket", "é" * 513, "at most 1024 bytes"),
    ],
)
async def test_bucket_and_key_are_checked(bucket_url: str, key: str, message: str) -> None:
    async with pool() as request:
        with pytest.raises(ValueError, match=message) as raised:
            await upload(request, bucket_url, key, pieces(b"x"))
        assert "secret" not in str(raised.value)


async def test_keys_are_sent_encoded_and_stored_as_given() -> None:
    key = "dir/a b+c~d%e(é)&=?*#.txt"
    async with fake_s3() as s3, pool() as request:
        await upload(request, s3.url() + "/", key, pieces(b"odd"))
        assert stored(s3, key) == b"odd"


class Chunks:
    """A body that is an async iterator of its own, without `aclose`."""

    def __init__(self, data: bytes) -> None:
        self.pieces = [data[i : i + 4096] for i in range(0, len(data), 4096)]

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> bytes:
        if not self.pieces:
            raise StopAsyncIteration
        return self.pieces.pop(0)


async def test_a_body_without_aclose() -> None:
    data = data_of(PART + 10)
    async with fake_s3() as s3, pool() as request:
        await upload(request, s3.url(), "key", Chunks, (data,), part_size=PART)
        assert stored(s3) == data
