"""upload_file() and download_file(): a part read from the file at its offset each time it is
sent, a range written at its offset as it comes; a download lands whole or not at all."""

from __future__ import annotations

import asyncio
import os
import pathlib

import pytest
from conftest import pool
from s3_fake import Answer, Request, crc32_b64, fake_s3
from s3_helpers import PART, SERVER_ERROR, always, data_of, no_wait, once

from lowhaio_s3 import (
    CRC32,
    S3BodyLengthError,
    S3ChecksumMismatchError,
    S3ObjectChangedError,
    download_file,
    upload_file,
)

RANGE = 1000


@pytest.mark.parametrize("size", [0, 1, PART, PART + 1, 3 * PART + 7])
async def test_upload_file(tmp_path: pathlib.Path, size: int) -> None:
    data = data_of(size, seed=size)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    async with fake_s3() as s3, pool() as request:
        uploaded = await upload_file(
            request, s3.url(), "key", path, part_size=PART, concurrency=2, checksum=CRC32
        )
        assert s3.objects[("bucket", "key")].data == data
        assert uploaded.size == size
        if size <= PART:
            (put,) = s3.requests
            assert put.header("x-amz-checksum-crc32") == crc32_b64(data)
            assert uploaded.parts == 0
        else:
            parts = s3.of("UploadPart")
            assert uploaded.parts == len(parts) == -(-size // PART)
            assert all(r.header("x-amz-checksum-crc32") == crc32_b64(r.body) for r in parts)
            assert s3.uploads == {}


async def test_a_part_sent_again_is_read_again(tmp_path: pathlib.Path) -> None:
    data = data_of(2 * PART + 1)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    async with fake_s3() as s3, pool() as request:
        s3.faults.append(once("UploadPart", SERVER_ERROR, number=2))
        await upload_file(request, s3.url(), "key", str(path), part_size=PART, retries=no_wait())
        assert s3.objects[("bucket", "key")].data == data
        assert len(s3.of("UploadPart")) == 4


async def test_a_file_shortened_during_the_upload(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(data_of(3 * PART))
    async with fake_s3() as s3, pool() as request:

        async def shortened(request: Request) -> None:
            if request.operation == "UploadPart" and request.number == 1:
                os.truncate(path, PART + 10)

        s3.faults.append(shortened)
        with pytest.raises(S3BodyLengthError, match=r"the file ended at \d+ bytes"):
            await upload_file(
                request, s3.url(), "key", path, part_size=PART, concurrency=1, checksum=CRC32
            )
        assert s3.uploads == {}
        assert s3.objects == {}


async def test_settings_and_missing_files(tmp_path: pathlib.Path) -> None:
    async with pool() as request:
        with pytest.raises(FileNotFoundError):
            await upload_file(request, "http://127.0.0.1:1/b", "k", tmp_path / "missing")
        (tmp_path / "data.bin").write_bytes(b"x")
        with pytest.raises(ValueError, match="threshold must be from 0 to the part size"):
            await upload_file(
                request, "http://127.0.0.1:1/b", "k", tmp_path / "data.bin", threshold=9 << 20
            )


def leftovers(directory: pathlib.Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


@pytest.mark.parametrize("size", [0, 1, RANGE, RANGE + 1, 10 * RANGE + 7])
async def test_download_file(tmp_path: pathlib.Path, size: int) -> None:
    data = data_of(size, seed=size)
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data)
        target = tmp_path / "out.bin"
        result = await download_file(
            request, s3.url(), "key", target, range_size=RANGE, concurrency=3
        )
        assert target.read_bytes() == data
        assert (result.size, result.ranges) == (size, -(-size // RANGE))
        assert leftovers(tmp_path) == ["out.bin"]


async def test_download_file_verified(tmp_path: pathlib.Path) -> None:
    data = data_of(5 * RANGE + 3)
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data, crc32=crc32_b64(data))
        target = tmp_path / "out.bin"
        result = await download_file(
            request, s3.url(), "key", str(target), range_size=RANGE, verify_checksum=True
        )
        assert (result.verified, target.read_bytes()) == ("crc32", data)
        assert s3.requests[0].operation == "HeadObject"


async def test_a_download_that_fails_leaves_the_target_as_it_was(tmp_path: pathlib.Path) -> None:
    data = data_of(10 * RANGE)
    target = tmp_path / "out.bin"
    target.write_bytes(b"before")
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data, crc32="AAAAAA==")
        with pytest.raises(S3ChecksumMismatchError):
            await download_file(
                request, s3.url(), "key", target, range_size=RANGE, verify_checksum=True
            )
        assert target.read_bytes() == b"before"
        assert leftovers(tmp_path) == ["out.bin"]

        before = len(s3.of("GetObject"))

        def replaced(request: Request) -> None:
            if request.operation == "GetObject" and request.number == before + 3:
                s3.put("key", data_of(10 * RANGE, seed=1))

        s3.faults.append(replaced)
        with pytest.raises(S3ObjectChangedError):
            await download_file(request, s3.url(), "key", target, range_size=RANGE)
        assert target.read_bytes() == b"before"
        assert leftovers(tmp_path) == ["out.bin"]


async def test_a_cancelled_download_leaves_no_file(tmp_path: pathlib.Path) -> None:
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data_of(10 * RANGE))

        async def forever(request: Request) -> None:
            if request.operation == "GetObject" and request.number > 1:
                await asyncio.sleep(60)

        s3.faults.append(forever)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await download_file(
                    request, s3.url(), "key", tmp_path / "out.bin", range_size=RANGE
                )
        assert leftovers(tmp_path) == []


async def test_a_server_that_ignores_range_is_written_as_it_comes(tmp_path: pathlib.Path) -> None:
    data = data_of(5 * RANGE)
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data)
        s3.ignore_range = True
        target = tmp_path / "out.bin"
        result = await download_file(request, s3.url(), "key", target, range_size=RANGE)
        assert (target.read_bytes(), result.ranges) == (data, 1)
        s3.faults.append(always("GetObject", Answer(200, [(b"etag", b'"e"')], b"x" * 10, cut_at=5)))
        with pytest.raises(Exception, match="closed"):
            await download_file(request, s3.url(), "key", target, range_size=RANGE)
        assert target.read_bytes() == data
        assert leftovers(tmp_path) == ["out.bin"]
