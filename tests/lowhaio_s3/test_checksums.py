"""Checksums: CRC32 per part (and for a PutObject), named on CreateMultipartUpload and listed in
CompleteMultipartUpload; on by default on AWS's hosts only; any algorithm through a
ChecksumSpec; a download verified against a full-object checksum, and told why not otherwise."""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET

import pytest
from conftest import pool
from s3_fake import FakeS3, crc32_b64, fake_s3
from s3_helpers import AWS_BUCKET, PART, data_of, no_wait, pieces, rerouted

from lowhaio_s3 import (
    CRC32,
    ChecksumSpec,
    Crc32,
    S3ChecksumError,
    S3ChecksumMismatchError,
    S3ResponseError,
    download,
    on_aws,
    upload,
)


class Sha256:
    """S3's x-amz-checksum-sha256, as a test's own ChecksumSpec."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)

    def b64digest(self) -> str:
        return base64.b64encode(self._hash.digest()).decode()


SHA256 = ChecksumSpec("sha256", Sha256)


def test_crc32() -> None:
    running = Crc32()
    running.update(b"1234")
    running.update(memoryview(b"56789"))
    assert running.digest() == bytes.fromhex("cbf43926")  # CRC-32/ISO-HDLC's check value
    assert running.b64digest() == "y/Q5Jg=="
    assert Crc32().b64digest() == "AAAAAA=="
    assert (CRC32.name, CRC32.header, CRC32.s3_name) == ("crc32", b"x-amz-checksum-crc32", "CRC32")
    assert (SHA256.header, SHA256.s3_name) == (b"x-amz-checksum-sha256", "SHA256")


@pytest.mark.parametrize(
    ("url", "aws"),
    [
        ("https://bucket.s3.eu-west-2.amazonaws.com", True),
        ("https://s3.amazonaws.com/bucket", True),
        ("https://bucket.s3.cn-north-1.amazonaws.com.cn", True),
        ("https://BUCKET.S3.AMAZONAWS.COM.", True),
        ("https://bucket.r2.cloudflarestorage.com", False),
        ("https://amazonaws.com.evil.example", False),
        ("http://127.0.0.1:9000/bucket", False),
    ],
)
def test_aws_hosts(url: str, aws: bool) -> None:
    assert on_aws(url) is aws


async def test_a_put_carries_its_crc32() -> None:
    data = data_of(1000)
    async with fake_s3() as s3, pool() as request:
        uploaded = await upload(request, s3.url(), "key", pieces(data), checksum=CRC32)
        (put,) = s3.requests
        assert put.header("x-amz-checksum-crc32") == crc32_b64(data)  # the fake checks it too
        assert put.header("x-amz-sdk-checksum-algorithm") == "CRC32"
        assert uploaded.checksum == crc32_b64(data)


async def test_parts_carry_their_crc32_and_complete_lists_them() -> None:
    data = data_of(2 * PART + 5)
    async with fake_s3() as s3, pool() as request:
        uploaded = await upload(
            request, s3.url(), "key", pieces(data), part_size=PART, checksum=CRC32
        )
        (create,) = s3.of("CreateMultipartUpload")
        assert create.header("x-amz-checksum-algorithm") == "CRC32"
        parts = {r.query["partNumber"]: r for r in s3.of("UploadPart")}
        for number, part in parts.items():
            assert part.header("x-amz-checksum-crc32") == crc32_b64(part.body), number
            assert part.header("x-amz-sdk-checksum-algorithm") == "CRC32"
        (complete,) = s3.of("CompleteMultipartUpload")
        listed = [
            (p.findtext("{*}PartNumber"), p.findtext("{*}ChecksumCRC32"))
            for p in ET.fromstring(complete.body).iterfind("{*}Part")
        ]
        assert listed == [(n, crc32_b64(parts[n].body)) for n in ("1", "2", "3")]
        assert uploaded.checksum == s3.objects[("bucket", "key")].checksums["crc32"]
        assert uploaded.checksum is not None
        assert uploaded.checksum.endswith("-3")  # composite: of the parts' checksums


@pytest.mark.parametrize(
    ("bucket", "checksum", "expected"),
    [
        (AWS_BUCKET, "auto", "crc32"),  # on AWS's hosts by default
        (AWS_BUCKET, None, None),
        ("fake", "auto", None),  # elsewhere, only when asked
        ("fake", CRC32, "crc32"),
        ("fake", SHA256, "sha256"),
    ],
)
async def test_which_checksum_is_sent(bucket: str, checksum: object, expected: str | None) -> None:
    data = data_of(PART + 1)
    async with fake_s3() as s3, pool() as request:
        to = rerouted(request, s3.url())
        bucket_url = AWS_BUCKET if bucket == AWS_BUCKET else s3.url()
        await upload(
            to if bucket == AWS_BUCKET else request,
            bucket_url,
            "key",
            pieces(data),
            part_size=PART,
            checksum=checksum,  # type: ignore[arg-type]
        )
        for sent in s3.requests:
            named = sorted(n for n in sent.headers if n.startswith("x-amz-checksum-"))
            if expected is None:
                assert named == [], sent.operation
            elif sent.operation == "UploadPart":
                assert named == [f"x-amz-checksum-{expected}"]
            elif sent.operation == "CreateMultipartUpload":
                assert sent.header("x-amz-checksum-algorithm") == expected.upper()
        if expected is not None:
            element = f"{{*}}Checksum{expected.upper()}"
            (complete,) = s3.of("CompleteMultipartUpload")
            assert len(ET.fromstring(complete.body).findall(f"{{*}}Part/{element}")) == 2


async def test_a_checksum_that_does_not_match_is_refused_and_not_retried() -> None:
    class Wrong(Crc32):
        def b64digest(self) -> str:
            return "AAAAAA=="

    async with fake_s3() as s3, pool() as request:
        with pytest.raises(S3ResponseError) as raised:
            await upload(
                request,
                s3.url(),
                "key",
                pieces(b"data"),
                checksum=ChecksumSpec("crc32", Wrong),
                retries=no_wait(),
            )
        assert (raised.value.status, raised.value.code) == (400, "BadDigest")
        assert len(s3.requests) == 1


@pytest.mark.parametrize("name", ["CRC32", "crc-32", ""])
async def test_a_checksum_name_must_be_a_header_and_element_name(name: str) -> None:
    async with pool() as request:
        with pytest.raises(ValueError, match="lowercase alphanumeric name"):
            await upload(
                request,
                "http://127.0.0.1:1/b",
                "k",
                pieces(b"x"),
                checksum=ChecksumSpec(name, Crc32),
            )


# Verifying a download ---------------------------------------------------------------------------


async def read(request, s3: FakeS3, **settings):  # type: ignore[no-untyped-def]
    got = bytearray()
    settings.setdefault("range_size", 1000)
    result = await download(request, s3.url(), "key", got.extend, **settings)
    return bytes(got), result


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 5001])
async def test_a_full_object_checksum_is_verified(size: int) -> None:
    data = data_of(size)
    async with fake_s3() as s3, pool() as request:
        await upload(request, s3.url(), "key", pieces(data), checksum=CRC32)
        got, result = await read(request, s3, verify_checksum=True)
        assert got == data
        assert (result.verified, result.unverified) == ("crc32", None)
        head, *gets = [r for r in s3.requests if r.operation != "PutObject"]
        assert head.operation == "HeadObject"  # a range's answer names no full checksum
        assert head.header("x-amz-checksum-mode") == "ENABLED"
        first = [] if size == 0 else [f"bytes=0-{min(size, 1000) - 1}"]
        assert [r.header("range") for r in gets][:1] == first
        assert all(r.header("if-match") == result.etag for r in gets)


async def test_a_mismatch_is_raised_after_the_bytes() -> None:
    data = data_of(3000)
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data, crc32="AAAAAA==")
        s3.objects[("bucket", "key")].checksum_type = "FULL_OBJECT"
        got = bytearray()
        with pytest.raises(S3ChecksumMismatchError) as raised:
            await download(
                request, s3.url(), "key", got.extend, range_size=1000, verify_checksum="required"
            )
        assert got == data  # every byte was given to the sink, then the error
        failure = raised.value
        assert (failure.algorithm, failure.expected, failure.actual) == (
            "crc32",
            "AAAAAA==",
            crc32_b64(data),
        )
        assert str(failure) == (
            f"GetObject of bucket 'bucket' key 'key': the bytes read give the crc32 checksum"
            f" {crc32_b64(data)}, the object's is AAAAAA=="
        )


async def test_a_composite_checksum_cannot_be_verified_from_the_bytes() -> None:
    data = data_of(PART + 1)
    async with fake_s3() as s3, pool() as request:
        uploaded = await upload(
            request, s3.url(), "key", pieces(data), part_size=PART, checksum=CRC32
        )
        got, result = await read(request, s3, verify_checksum=True)
        assert got == data
        assert result.verified is None
        assert result.unverified == (
            f"its CRC32 checksum, {uploaded.checksum}, is composite: a checksum of its parts'"
            " checksums (a multipart upload's), which the bytes alone cannot give"
        )
        with pytest.raises(
            S3ChecksumError, match="cannot be verified: its CRC32 checksum"
        ) as raised:
            await read(request, s3, verify_checksum="required")
        assert raised.value.operation == "HeadObject"
        assert s3.requests[-1].operation == "HeadObject"  # refused before any range


async def test_an_untyped_checksum_of_a_multipart_object_is_not_taken_for_a_full_one() -> None:
    # As moto's HEAD answers: the composite value without its "-N", and no type.
    data = data_of(PART + 1)
    async with fake_s3() as s3, pool() as request:
        await upload(request, s3.url(), "key", pieces(data), part_size=PART, checksum=CRC32)
        stored = s3.objects[("bucket", "key")]
        stored.checksums["crc32"] = stored.checksums["crc32"].partition("-")[0]
        s3.head_checksum_type = False
        _, result = await read(request, s3, verify_checksum=True)
        assert result.verified is None
        assert result.unverified is not None
        assert result.unverified.startswith("it was uploaded in parts (its ETag ends in -N)")


@pytest.mark.parametrize(
    ("checksums", "stored", "verified", "unverified"),
    [
        ((CRC32,), (), None, "the object has no checksum"),
        ((CRC32,), ("crc64nvme",), None, "its checksum is of crc64nvme, for which"),
        ((SHA256, CRC32), ("crc32", "sha256"), "sha256", None),  # the first given
        ((CRC32, SHA256), ("crc32", "sha256"), "crc32", None),
        ((SHA256,), ("crc32",), None, "its checksum is of crc32, for which"),
    ],
)
async def test_which_checksum_is_verified(
    checksums: tuple[ChecksumSpec, ...],
    stored: tuple[str, ...],
    verified: str | None,
    unverified: str | None,
) -> None:
    data = b"hello"
    sha256 = Sha256()
    sha256.update(data)
    values = {"crc32": crc32_b64(data), "sha256": sha256.b64digest(), "crc64nvme": "AAAAAAAAAAA="}
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data, **{name: values[name] for name in stored})
        s3.objects[("bucket", "key")].checksum_type = "FULL_OBJECT"
        got, result = await read(request, s3, verify_checksum=True, checksums=checksums)
        assert got == data
        assert result.verified == verified
        if unverified is None:
            assert result.unverified is None
        else:
            assert result.unverified is not None
            assert result.unverified.startswith(unverified)


@pytest.mark.parametrize(("verify", "head"), [("auto", True), (False, False), (True, True)])
async def test_verification_is_on_by_default_on_aws_hosts(verify: object, head: bool) -> None:
    async with fake_s3() as s3, pool() as request:
        s3.put("key", b"abc", crc32=crc32_b64(b"abc"))
        got = bytearray()
        result = await download(
            rerouted(request, s3.url()),
            AWS_BUCKET,
            "key",
            got.extend,
            verify_checksum=verify,  # type: ignore[arg-type]
        )
        assert bool(s3.of("HeadObject")) is head
        assert result.verified == ("crc32" if head else None)
        assert got == b"abc"


async def test_verification_is_off_by_default_elsewhere() -> None:
    async with fake_s3() as s3, pool() as request:
        s3.put("key", b"abc", crc32="wrong")
        got, result = await read(request, s3)
        assert (got, result.verified, result.unverified) == (b"abc", None, None)
        assert s3.of("HeadObject") == []
