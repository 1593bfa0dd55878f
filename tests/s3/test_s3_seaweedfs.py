"""lowhaio_aws_sigv4 against SeaweedFS (`weed mini`), started once for the test session.

SeaweedFS checks the request signature (header or query string), the expiry of presigned URLs,
and the signature of every chunk of an aws-chunked (payload="streaming") body, chained from the
request's: it refuses a body with one wrong chunk signature and stores nothing (4.48 answers 500
InternalError, not AWS's 403 SignatureDoesNotMatch; its log says "chunk signature does not
match"). It does not check a signed payload's x-amz-content-sha256 against the body it receives,
so these tests do not rely on that.

Checksums: SeaweedFS 4.48 takes CRC32, CRC32C and CRC64NVME in a header (a wrong one: 400
BadDigest) and in the trailer of both trailer payloads, STREAMING-UNSIGNED-PAYLOAD-TRAILER and
STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER (a wrong one: 400 InvalidDigest), and gives the
checksum back on a GET with x-amz-checksum-mode: ENABLED. It does not check the trailer's
signature (x-amz-trailer-signature): the tests of tests/lowhaio_aws_sigv4 do, against AWS's
published value and a verifying server.

The sigv4 README's examples run here too, as programs, against this server (`test_readme_example`).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import pathlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
import servers
from readme_examples import Example, examples, run
from s3_support import (
    KIB,
    MIB,
    REGION,
    adding_headers,
    amz_checksums,
    checksum_mode,
    content_length,
    error_code,
    flip_hex_digit,
    in_pieces,
    pool,
    random_bytes,
    read,
    replacing_in_body,
    tampering_chunk_signature,
    unique_bucket,
)

import lowhaio
from lowhaio import Request
from lowhaio_aws_sigv4 import (
    CHECKSUM_ALGORITHMS,
    Checksum,
    ChecksumAlgorithm,
    Credentials,
    Payload,
    checksum_verified,
    presigned_url,
    signed,
    static_credentials,
)

CREDENTIALS = Credentials("LOWHAIOTESTACCESSKEY", "lowhaio/test+secret/key")


@pytest.fixture(scope="session")
def seaweed() -> Iterator[servers.SeaweedFS]:
    with servers.seaweedfs(CREDENTIALS.access_key_id, CREDENTIALS.secret_access_key) as server:
        yield server


def s3(
    request: Request,
    payload: Payload = "signed",
    credentials: Credentials = CREDENTIALS,
    checksum: ChecksumAlgorithm | None = None,
) -> Request:
    return signed(
        request,
        static_credentials(*credentials),
        "s3",
        REGION,
        payload=payload,
        checksum=checksum,
    )


async def create_bucket(request: Request, seaweed: servers.SeaweedFS) -> str:
    bucket = unique_bucket()
    code, body = await read(await s3(request)(b"PUT", f"{seaweed.url}/{bucket}"))
    assert code == 200, body
    return bucket


async def logged_since(seaweed: servers.SeaweedFS, offset: int, text: str) -> bool:
    """Whether the server logs `text` after `offset` within a few seconds (it writes its log as
    it goes, but not necessarily before it responds)."""
    for _ in range(100):
        if text in seaweed.process.log_since(offset):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_unauthenticated_and_wrong_credentials_are_rejected(
    seaweed: servers.SeaweedFS,
) -> None:
    async with pool() as request:
        code, body = await read(await request(b"GET", f"{seaweed.url}/"))
        assert (code, error_code(body)) == (403, "AccessDenied"), body

        wrong_secret = CREDENTIALS._replace(secret_access_key=CREDENTIALS.secret_access_key + "x")
        code, body = await read(
            await s3(request, credentials=wrong_secret)(b"GET", f"{seaweed.url}/")
        )
        assert (code, error_code(body)) == (403, "SignatureDoesNotMatch"), body

        unknown = CREDENTIALS._replace(access_key_id="LOWHAIOUNKNOWNKEY000")
        code, body = await read(await s3(request, credentials=unknown)(b"GET", f"{seaweed.url}/"))
        assert (code, error_code(body)) == (403, "InvalidAccessKeyId"), body

        code, body = await read(await s3(request)(b"GET", f"{seaweed.url}/"))  # ListBuckets
        assert code == 200, body


@pytest.mark.parametrize(
    ("payload", "size"),
    [
        ("signed", 5),
        ("signed", MIB + 3),
        ("unsigned", 5),
        ("unsigned", MIB + 3),
        ("signed", 0),
        ("unsigned", 0),
        ("streaming", 0),
        ("streaming", 5),
        ("streaming", 64 * KIB),  # exactly one full chunk, then the final empty one
        ("streaming", 6 * MIB + 7),  # more than the filer's 4 MiB chunks
    ],
)
async def test_put_then_get(seaweed: servers.SeaweedFS, payload: Payload, size: int) -> None:
    data = random_bytes(size, seed=size)
    async with pool() as request:
        bucket = await create_bucket(request, seaweed)
        url = f"{seaweed.url}/{bucket}/object-{payload}"

        in_mode = s3(
            request, payload
        )  # for the GET too: without a body, streaming signs it as empty
        code, body = await read(
            await in_mode(b"PUT", url, headers=content_length(data), body=in_pieces(data))
        )
        assert code == 200, body

        code, body = await read(await in_mode(b"GET", url))
        assert code == 200
        assert len(body) == size
        assert body == data


@pytest.mark.parametrize("index", [0, 7, -1], ids=["first", "middle", "final-empty"])
async def test_tampered_chunk_signature_is_rejected(seaweed: servers.SeaweedFS, index: int) -> None:
    data = random_bytes(MIB + 5)  # 16 chunks of 64 KiB, one of 5 bytes, then the final empty one
    async with pool() as request:
        bucket = await create_bucket(request, seaweed)
        url = f"{seaweed.url}/{bucket}/tampered"
        put = s3(tampering_chunk_signature(request, index), "streaming")

        log_offset = seaweed.process.log_size()
        code, body = await read(
            await put(b"PUT", url, headers=content_length(data), body=in_pieces(data))
        )
        assert not 200 <= code < 300, body
        if code == 500:  # SeaweedFS 4.48: InternalError, the reason only in its log
            assert error_code(body) == "InternalError", body
            assert await logged_since(seaweed, log_offset, "chunk signature does not match")
        else:  # what AWS answers
            assert (code, error_code(body)) == (403, "SignatureDoesNotMatch"), body

        code, body = await read(await s3(request)(b"GET", url))
        assert (code, error_code(body)) == (404, "NoSuchKey"), body


async def test_chunk_tampering_wrapper_alone_changes_nothing(seaweed: servers.SeaweedFS) -> None:
    """The control for the test above: the same wrapper, tampering with nothing."""
    data = random_bytes(MIB + 5)
    async with pool() as request:
        bucket = await create_bucket(request, seaweed)
        url = f"{seaweed.url}/{bucket}/untouched"
        put = s3(tampering_chunk_signature(request, None), "streaming")
        code, body = await read(
            await put(b"PUT", url, headers=content_length(data), body=in_pieces(data))
        )
        assert code == 200, body
        code, body = await read(await s3(request)(b"GET", url))
        assert (code, body) == (200, data)


def spoil_signature(url: str) -> str:
    """`url` with one hex digit of its X-Amz-Signature changed."""
    at = url.index("X-Amz-Signature=") + len("X-Amz-Signature=")
    return url[:at] + flip_hex_digit(url[at]) + url[at + 1 :]


async def test_presigned_get(seaweed: servers.SeaweedFS) -> None:
    data = random_bytes(100 * KIB + 1)
    async with pool() as request:
        bucket = await create_bucket(request, seaweed)
        url = f"{seaweed.url}/{bucket}/{quote('dir/presigned object+é', safe='/')}"
        code, body = await read(
            await s3(request)(b"PUT", url, headers=content_length(data), body=in_pieces(data))
        )
        assert code == 200, body

        presigned = presigned_url(CREDENTIALS, b"GET", url, "s3", REGION, expires=60)
        code, body = await read(await request(b"GET", presigned))
        assert (code, body) == (200, data)

        code, body = await read(await request(b"GET", spoil_signature(presigned)))
        assert (code, error_code(body)) == (403, "SignatureDoesNotMatch"), body

        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        expired = presigned_url(
            CREDENTIALS, b"GET", url, "s3", REGION, expires=60, clock=lambda: an_hour_ago
        )
        code, body = await read(await request(b"GET", expired))
        assert (code, error_code(body)) == (403, "AccessDenied"), body
        assert b"expired" in body


async def test_presigned_put(seaweed: servers.SeaweedFS) -> None:
    data = random_bytes(1000)
    async with pool() as request:
        bucket = await create_bucket(request, seaweed)
        url = f"{seaweed.url}/{bucket}/uploaded"
        presigned = presigned_url(CREDENTIALS, b"PUT", url, "s3", REGION, expires=60)

        code, body = await read(
            await request(
                b"PUT",
                spoil_signature(presigned),
                headers=content_length(data),
                body=in_pieces(data),
            )
        )
        assert (code, error_code(body)) == (403, "SignatureDoesNotMatch"), body

        code, body = await read(
            await request(b"PUT", presigned, headers=content_length(data), body=in_pieces(data))
        )
        assert code == 200, body
        code, body = await read(await s3(request)(b"GET", url))
        assert (code, body) == (200, data)


async def test_odd_key_and_query_are_signed_as_sent(seaweed: servers.SeaweedFS) -> None:
    key = "dir/a b+c~d%e(é)&=?*.txt"
    data = b"odd"
    async with pool() as request:
        bucket = await create_bucket(request, seaweed)
        url = f"{seaweed.url}/{bucket}/{quote(key, safe='/')}"
        code, body = await read(
            await s3(request)(b"PUT", url, headers=content_length(data), body=in_pieces(data))
        )
        assert code == 200, body
        code, body = await read(await s3(request)(b"GET", url))
        assert (code, body) == (200, data)

        listing = (("list-type", "2"), ("prefix", "dir/a b+"), ("max-keys", "10"))
        code, body = await read(await s3(request)(b"GET", f"{seaweed.url}/{bucket}", listing))
        assert code == 200, body
        assert ET.fromstring(body).findtext(".//{*}Contents/{*}Key") == key


# Checksums ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, MIB + 3], ids=["empty", "1MiB+3"])
@pytest.mark.parametrize("algorithm", CHECKSUM_ALGORITHMS)
@pytest.mark.parametrize("payload", ["signed", "unsigned", "streaming"])
async def test_checksum_in_each_payload_mode(
    seaweed: servers.SeaweedFS, payload: Payload, algorithm: ChecksumAlgorithm, size: int
) -> None:
    """A header with "signed"; the trailer of STREAMING-UNSIGNED-PAYLOAD-TRAILER with
    "unsigned", and of STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER with "streaming". The server
    checks it, keeps it, and gives it back with the object, which `checksum_verified` checks."""
    data = random_bytes(size, seed=size + 1)
    expected = Checksum(algorithm, data)
    async with pool() as request:
        bucket = await create_bucket(request, seaweed)
        url = f"{seaweed.url}/{bucket}/with-{algorithm}"
        put = s3(request, payload, checksum=algorithm)
        response = await put(b"PUT", url, headers=content_length(data), body=in_pieces(data))
        code, body = await read(response)
        assert code == 200, body
        assert amz_checksums(response[1]) == {expected.header_name: expected.header_value()}

        code, headers, body = await s3(request)(b"GET", url, headers=checksum_mode())
        assert code == b"200"
        assert amz_checksums(headers)[expected.header_name] == expected.header_value()
        assert await lowhaio.buffered(checksum_verified(headers, body)) == data


@pytest.mark.parametrize(
    ("payload", "spoiled", "answer"),
    [
        ("signed", "header", "BadDigest"),
        ("unsigned", "trailer", "InvalidDigest"),
        ("streaming", "trailer", "InvalidDigest"),
        ("unsigned", "data", "InvalidDigest"),  # unsigned chunks: the checksum catches it
    ],
)
async def test_a_wrong_checksum_is_rejected(
    seaweed: servers.SeaweedFS, payload: Payload, spoiled: str, answer: str
) -> None:
    data = random_bytes(MIB + 5)
    right = Checksum("crc32c", data)
    wrong = Checksum("crc32c", data + b"x")
    async with pool() as request:
        bucket = await create_bucket(request, seaweed)
        url = f"{seaweed.url}/{bucket}/spoiled"
        headers = content_length(data)
        if spoiled == "header":
            put = s3(request, payload)
            headers += ((right.header_name, wrong.header_value()),)
        elif spoiled == "trailer":
            old, new = right.header_value(), wrong.header_value()
            put = s3(replacing_in_body(request, b":" + old, b":" + new), payload, checksum="crc32c")
        else:
            changed = bytes([data[1000] ^ 1])
            old, new = data[990:1001], data[990:1000] + changed
            put = s3(replacing_in_body(request, old, new), payload, checksum="crc32c")
        code, body = await read(await put(b"PUT", url, headers=headers, body=in_pieces(data)))
        assert (code, error_code(body)) == (400, answer), body

        code, body = await read(await s3(request)(b"GET", url))
        assert (code, error_code(body)) == (404, "NoSuchKey"), body


async def test_seaweedfs_does_not_check_the_trailer_signature(seaweed: servers.SeaweedFS) -> None:
    """What SeaweedFS 4.48 lets through, and why the trailer's signature is proven elsewhere
    (tests/lowhaio_aws_sigv4): one hex digit of x-amz-trailer-signature changed, the object is
    stored all the same (AWS would answer 403 SignatureDoesNotMatch)."""
    data = random_bytes(100 * KIB)
    async with pool() as request:
        bucket = await create_bucket(request, seaweed)
        url = f"{seaweed.url}/{bucket}/trailer-signature"
        put = s3(request, "streaming", checksum="crc32")
        code, body = await read(
            await put(b"PUT", url, headers=content_length(data), body=in_pieces(data))
        )
        assert code == 200, body

        # The same request, with its trailer signature spoiled on the way.
        async def spoiling(method: bytes, url: str, *args: object) -> lowhaio.Response:
            params, headers, body = args[:3]
            encoded = b"".join([bytes(c) async for c in body()])  # type: ignore[operator]
            at = encoded.index(b"x-amz-trailer-signature:") + 24
            digit = flip_hex_digit(encoded[at : at + 1].decode()).encode()
            spoiled = encoded[:at] + digit + encoded[at + 1 :]
            return await request(method, url, params, headers, in_pieces(spoiled))  # type: ignore[arg-type]

        put = s3(spoiling, "streaming", checksum="crc32")
        code, body = await read(
            await put(b"PUT", url, headers=content_length(data), body=in_pieces(data))
        )
        assert code == 200, body


# A caller's headers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "answer"),
    [
        ((b"x-amz-date", b"20200101T000000Z"), (403, "RequestTimeTooSkewed")),
        ((b"x-amz-security-token", b"token"), (403, "InvalidAccessKeyId")),
        ((b"authorization", b"AWS4-HMAC-SHA256 Credential=x"), (400, "MissingFields")),
    ],
)
async def test_a_header_only_the_signer_sends_is_refused_before_it_fails(
    seaweed: servers.SeaweedFS, header: tuple[bytes, bytes], answer: tuple[int, str]
) -> None:
    """Sent beside the signer's own, the server refuses the request: the signer refuses it
    first, naming it, and sends nothing."""
    async with pool() as request:
        code, body = await read(
            await s3(adding_headers(request, header))(b"GET", f"{seaweed.url}/")
        )
        assert (code, error_code(body)) == answer, body
        with pytest.raises(lowhaio.HttpInvalidRequestError, match=header[0].decode()):
            await s3(request)(b"GET", f"{seaweed.url}/", headers=(header,))


@pytest.mark.parametrize("payload", ["signed", "streaming"])
async def test_the_callers_payload_hash(seaweed: servers.SeaweedFS, payload: Payload) -> None:
    """A caller's x-amz-content-sha256 (the body's SHA-256 computed beforehand, or
    UNSIGNED-PAYLOAD) chooses that request's payload, whatever the wrapper's mode."""
    data = random_bytes(200 * KIB)
    sha256 = hashlib.sha256(data).hexdigest().encode()
    async with pool() as request:
        bucket = await create_bucket(request, seaweed)
        for value in (sha256, b"UNSIGNED-PAYLOAD"):
            url = f"{seaweed.url}/{bucket}/{value[:8].decode()}"
            headers = ((b"x-amz-content-sha256", value), *content_length(data))
            put = s3(request, payload)
            code, body = await read(await put(b"PUT", url, headers=headers, body=in_pieces(data)))
            assert code == 200, body
            code, body = await read(await s3(request)(b"GET", url))
            assert (code, body) == (200, data)


@pytest.mark.parametrize("checksum", [None, "crc32"])
async def test_the_callers_content_encoding_follows_aws_chunked(
    seaweed: servers.SeaweedFS, checksum: ChecksumAlgorithm | None
) -> None:
    data = gzip.compress(random_bytes(50 * KIB))
    async with pool() as request:
        bucket = await create_bucket(request, seaweed)
        url = f"{seaweed.url}/{bucket}/compressed"
        headers = ((b"content-encoding", b"gzip"), *content_length(data))
        put = s3(request, "streaming", checksum=checksum)
        code, body = await read(await put(b"PUT", url, headers=headers, body=in_pieces(data)))
        assert code == 200, body
        code, headers, body = await s3(request)(b"GET", url)
        assert (code, await lowhaio.buffered(body)) == (b"200", data)
    encoding = [value for name, value in headers if name == b"content-encoding"]
    # S3 takes aws-chunked off and stores the rest ("gzip", as moto does); SeaweedFS 4.48 stores
    # the header as it came.
    assert encoding in ([b"gzip"], [b"aws-chunked,gzip"])


# The README's examples ------------------------------------------------------------------------

# Those that name an S3 endpoint; tests/compose runs the others.
S3_EXAMPLES = [example for example in examples() if example.uses_s3]
README_BUCKET = "https://my-bucket.s3.eu-west-2.amazonaws.com"


@pytest.mark.parametrize("example", S3_EXAMPLES, ids=[example.name for example in S3_EXAMPLES])
async def test_readme_example(
    example: Example, seaweed: servers.SeaweedFS, tmp_path: pathlib.Path
) -> None:
    """Run as a user would run it (see `readme_examples`): in a directory with a `big.bin` to
    upload, the credentials in the environment, and the README's bucket a fresh bucket here."""
    async with pool() as request:
        bucket = await create_bucket(request, seaweed)
    (tmp_path / "big.bin").write_bytes(random_bytes(3 * MIB + 12345))
    environment = {
        "AWS_ACCESS_KEY_ID": CREDENTIALS.access_key_id,
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS.secret_access_key,
    }
    await run(example, {README_BUCKET: f"{seaweed.url}/{bucket}"}, tmp_path, environment)


def test_the_sigv4_readme_has_examples_run_here() -> None:
    readmes = {example.path.parent.name for example in S3_EXAMPLES}
    assert readmes == {"lowhaio_aws_sigv4", "lowhaio_s3"}
    assert all(README_BUCKET in example.code for example in S3_EXAMPLES)
