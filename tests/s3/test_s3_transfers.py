"""lowhaio_s3 against real servers: SeaweedFS (`weed mini`) and moto (authentication on), each
started once for this module.

What they were found to accept, and the tests rely on: multipart uploads with a CRC32 checksum
per part (`x-amz-checksum-crc32`, `x-amz-checksum-algorithm: CRC32` on CreateMultipartUpload,
`ChecksumCRC32` in CompleteMultipartUpload); `If-Match` on ranged GETs (412 once the object
changed); ListParts answering 404 NoSuchUpload once an upload is aborted. SeaweedFS checks
each checksum (400 BadDigest for a wrong one), gives a PutObject's full checksum back to a HEAD
with `x-amz-checksum-mode: ENABLED`, and a multipart object's as composite (`...-N`). moto
checks none, and its HEAD gives a multipart object's composite checksum without its `-N` and
without `x-amz-checksum-type` (its GET adds the `-N`): the download tells it from a full one by
the object's multipart ETag, and does not verify it.
"""

from __future__ import annotations

import asyncio
import hashlib
import pathlib
import random
import tracemalloc
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import pytest
import servers
from s3_support import MIB, REGION, pool, unique_bucket
from test_s3_moto import create_user

import lowhaio
from lowhaio import BodyFactory, HttpConnectionError, Params, Request, RequestHeaders, Response
from lowhaio_aws_sigv4 import Credentials, signed, static_credentials
from lowhaio_s3 import (
    CRC32,
    ChecksumSpec,
    Crc32,
    Retries,
    S3ObjectChangedError,
    S3ResponseError,
    download,
    download_file,
    list_uploads,
    open_download,
    upload,
    upload_file,
)

SEAWEED_CREDENTIALS = Credentials("LOWHAIOTRANSFERKEY01", "lowhaio/transfer+secret")
SIZE = 64 * MIB + 12345  # the 1 GiB, scaled down: 13 parts of 5 MiB
PART = 5 * MIB
CONCURRENCY = 4
PIECE = 100_003  # what the generator yields at a time: never aligned with a part

_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


@dataclass
class Server:
    name: str
    url: str  # http://127.0.0.1:PORT
    credentials: Credentials

    def s3(self, request: Request) -> Request:
        return signed(
            request, static_credentials(*self.credentials), "s3", REGION, payload="unsigned"
        )

    async def bucket(self, request: Request) -> str:
        url = f"{self.url}/{unique_bucket()}"
        code, _, body = await self.s3(request)(b"PUT", url)
        assert code == b"200", await lowhaio.buffered(body)
        await lowhaio.buffered(body)
        return url


@pytest.fixture(scope="module")
def seaweedfs() -> Iterator[Server]:
    credentials = SEAWEED_CREDENTIALS
    with servers.seaweedfs(credentials.access_key_id, credentials.secret_access_key) as server:
        yield Server("seaweedfs", server.url, credentials)


@pytest.fixture(scope="module")
def moto() -> Iterator[Server]:
    with servers.moto_server() as server:
        server.allow_unauthenticated(float("inf"))
        try:
            _, user = asyncio.run(create_user(server.url))
        finally:
            server.allow_unauthenticated(0)  # from here on, every request is checked
        yield Server("moto", server.url, user)


@pytest.fixture(params=["seaweedfs", "moto"])
def server(request: pytest.FixtureRequest) -> Server:
    found: Server = request.getfixturevalue(request.param)
    return found


class Generated:
    """`size` bytes made as they are read (so that the test holds none of them), and their
    SHA-256."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size, self.seed = size, seed
        self.sha256 = ""

    async def __call__(self) -> AsyncIterator[bytes]:
        rng = random.Random(self.seed)
        digest = hashlib.sha256()
        left = self.size
        while left:
            piece = rng.randbytes(min(PIECE, left))
            digest.update(piece)
            left -= len(piece)
            yield piece
        self.sha256 = digest.hexdigest()


def failing_once(request: Request, part: int) -> tuple[Request, list[int]]:
    """`request`, whose `part`-th UploadPart (in the order sent) fails once with a connection
    error, before a byte is sent; and the part numbers it failed."""
    seen = 0
    failed: list[int] = []

    async def flaky(
        method: bytes,
        url: str,
        params: Params = (),
        headers: RequestHeaders = (),
        body: BodyFactory = lowhaio.empty_body,
        body_args: tuple[Any, ...] = (),
        body_kwargs: Mapping[str, Any] = _NO_KWARGS,
    ) -> Response:
        nonlocal seen
        params = tuple(params)
        if method == b"PUT" and any(name == "partNumber" for name, _ in params):
            seen += 1
            if seen == part:
                failed.append(int(dict(params)["partNumber"]))  # type: ignore[arg-type]
                raise HttpConnectionError("refused on purpose, once")
        return await request(method, url, params, headers, body, body_args, body_kwargs)

    return flaky, failed


class Sink:
    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0

    async def __call__(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.size += len(chunk)


async def test_a_large_object_in_parallel_parts_and_back_by_ranges(server: Server) -> None:
    retried: list[str] = []
    retries = Retries(on_retry=lambda operation, *_: retried.append(operation))
    body = Generated(SIZE)
    async with pool() as request:
        bucket = await server.bucket(request)
        flaky, failed = failing_once(server.s3(request), part=3)
        tracemalloc.start()
        try:
            uploaded = await upload(
                flaky,
                bucket,
                "dir/large object.bin",
                body,
                part_size=PART,
                concurrency=CONCURRENCY,
                checksum=CRC32,
                retries=retries,
            )
            _, upload_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            sink = Sink()
            downloaded = await download(
                server.s3(request),
                bucket,
                "dir/large object.bin",
                sink,
                range_size=PART,
                concurrency=CONCURRENCY,
                verify_checksum=True,
            )
            _, download_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (uploaded.size, uploaded.parts) == (SIZE, 13)
        assert failed == [3]
        assert retried == ["UploadPart 3"]  # that part alone, once more
        assert (sink.size, sink.digest.hexdigest()) == (SIZE, body.sha256)
        assert (downloaded.size, downloaded.etag, downloaded.ranges) == (SIZE, uploaded.etag, 13)
        assert uploaded.etag.endswith('-13"')
        # A multipart object's CRC32 is composite: not verifiable from the bytes alone.
        assert downloaded.verified is None
        assert downloaded.unverified is not None
        if server.name == "seaweedfs":
            assert uploaded.checksum is not None
            assert uploaded.checksum.endswith("-13")
            assert "is composite" in downloaded.unverified
        else:
            assert "uploaded in parts" in downloaded.unverified
        # The memory held: (concurrency + 1) x part_size up, concurrency x range_size down,
        # and a little more (lowhaio's read buffers, the generator's piece, the chunks).
        # Measured: 26.5 MiB of a 29 MiB bound up, 16 to 21 MiB of a 24 MiB bound down.
        assert upload_peak < (CONCURRENCY + 1) * PART + 4 * MIB, upload_peak
        assert download_peak < CONCURRENCY * PART + 4 * MIB, download_peak
        assert await list_uploads(server.s3(request), bucket) == []


async def test_a_large_file_streamed_in_parts_and_back_into_a_file(
    server: Server, tmp_path: pathlib.Path
) -> None:
    """upload_file and download_file: no part, no range in memory, only pieces of them."""
    source, target = tmp_path / "source.bin", tmp_path / "target.bin"
    body = Generated(SIZE, seed=3)
    with source.open("wb") as file:
        async for piece in body():
            file.write(piece)
    retried: list[str] = []
    retries = Retries(on_retry=lambda operation, *_: retried.append(operation))
    async with pool() as request:
        bucket = await server.bucket(request)
        flaky, failed = failing_once(server.s3(request), part=5)
        tracemalloc.start()
        try:
            uploaded = await upload_file(
                flaky,
                bucket,
                "file.bin",
                source,
                part_size=PART,
                concurrency=CONCURRENCY,
                checksum=CRC32,
                retries=retries,
            )
            _, upload_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            downloaded = await download_file(
                server.s3(request),
                bucket,
                "file.bin",
                target,
                range_size=PART,
                concurrency=CONCURRENCY,
            )
            _, download_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (uploaded.size, uploaded.parts, failed, retried) == (SIZE, 13, [5], ["UploadPart 5"])
        assert (downloaded.size, downloaded.etag) == (SIZE, uploaded.etag)
        assert hashlib.sha256(target.read_bytes()).hexdigest() == body.sha256
        # Not one part (5 MiB) per part in flight: a connection's read buffer (256 KiB) and
        # a few pieces of 128 KiB, for each of the four (measured: 1.5 to 2.1 MiB).
        assert upload_peak < 3 * MIB, upload_peak
        assert download_peak < 3 * MIB, download_peak
        assert await list_uploads(server.s3(request), bucket) == []


@pytest.mark.parametrize("size", [0, 1, PART - 1, PART, PART + 1], ids=lambda s: f"{s}B")
async def test_small_and_boundary_sizes(server: Server, size: int) -> None:
    body = Generated(size, seed=size)
    async with pool() as request:
        bucket = await server.bucket(request)
        s3 = server.s3(request)
        uploaded = await upload(s3, bucket, "key", body, size=size, part_size=PART, checksum=CRC32)
        assert uploaded.parts == (0 if size <= PART else 2)  # the threshold is the part size
        sink = Sink()
        downloaded = await download(s3, bucket, "key", sink, range_size=MIB, verify_checksum=True)
        assert (sink.size, sink.digest.hexdigest()) == (size, body.sha256)
        assert downloaded.ranges == -(-size // MIB)
        if uploaded.parts == 0:  # a PutObject's checksum is the whole object's
            assert (downloaded.verified, downloaded.unverified) == ("crc32", None)


async def test_a_cancelled_upload_leaves_no_parts(server: Server) -> None:
    async with pool() as request:
        bucket = await server.bucket(request)
        s3 = server.s3(request)
        parts_done = asyncio.Event()
        answered = 0

        async def counting(
            method: bytes,
            url: str,
            params: Params = (),
            headers: RequestHeaders = (),
            body: BodyFactory = lowhaio.empty_body,
            body_args: tuple[Any, ...] = (),
            body_kwargs: Mapping[str, Any] = _NO_KWARGS,
        ) -> Response:
            nonlocal answered
            response = await s3(method, url, params, headers, body, body_args, body_kwargs)
            if method == b"PUT" and params:
                answered += 1
                if answered == 4:
                    parts_done.set()
            return response

        task = asyncio.ensure_future(
            upload(counting, bucket, "cancelled", Generated(SIZE), part_size=PART, concurrency=3)
        )
        await asyncio.wait_for(parts_done.wait(), 30)
        task.cancel()  # midway: parts stored, others in flight
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await list_uploads(s3, bucket) == []  # ListMultipartUploads is empty
        code, _, body = await s3(b"GET", f"{bucket}/cancelled")
        await lowhaio.buffered(body)
        assert code == b"404"


async def test_an_object_replaced_during_a_download_is_refused(server: Server) -> None:
    async with pool() as request:
        bucket = await server.bucket(request)
        s3 = server.s3(request)
        await upload(s3, bucket, "changing", Generated(3 * MIB, seed=1))
        read = 0

        async def read_while_it_is_replaced() -> None:
            nonlocal read
            async with open_download(
                s3, bucket, "changing", range_size=MIB, concurrency=1
            ) as chunks:
                async for chunk in chunks:
                    read += len(chunk)
                    if read == MIB:  # the first range read: the object is replaced
                        await upload(s3, bucket, "changing", Generated(3 * MIB, seed=2))

        with pytest.raises(S3ObjectChangedError) as raised:
            await read_while_it_is_replaced()
        assert (raised.value.status, raised.value.code) == (412, "PreconditionFailed")
        assert read == MIB


async def test_seaweedfs_checks_each_checksum(seaweedfs: Server) -> None:
    class Wrong(Crc32):
        def b64digest(self) -> str:
            return "AAAAAA=="

    async with pool() as request:
        bucket = await seaweedfs.bucket(request)
        s3 = seaweedfs.s3(request)
        with pytest.raises(S3ResponseError) as raised:
            await upload(
                s3,
                bucket,
                "wrong",
                Generated(PART + 1),
                part_size=PART,
                checksum=ChecksumSpec("crc32", Wrong),
            )
        assert (raised.value.status, raised.value.code) == (400, "BadDigest")
        assert raised.value.operation.startswith("UploadPart ")
        assert await list_uploads(s3, bucket) == []  # aborted
