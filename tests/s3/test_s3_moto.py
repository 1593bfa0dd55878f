"""lowhaio_aws_sigv4 against moto's server, with IAM authentication on.

moto checks a request's Authorization header by computing the signature again with botocore
from the request it received, with the secret of the IAM user (or assumed role) that owns the
access key; S3 takes the payload hash from x-amz-content-sha256 and decodes aws-chunked bodies
without checking chunk signatures (SeaweedFS's tests check those).

Checksums: moto 5.2.5 takes CRC32, CRC32C and CRC64NVME in a header and in the trailer of both
trailer payloads (STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER),
and gives them back on a GET with x-amz-checksum-mode: ENABLED; it checks none of them (SeaweedFS
does): a wrong trailer is stored and given back, which `checksum_verified` catches on download.

Bootstrap: the server starts with every action authenticated; the fixture lets the first
actions through unchecked (moto's /moto-api/reset-auth) to create an IAM user with an access
key and an allow-all policy, then closes that window. From then on every request is checked.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
import servers
from s3_support import (
    KIB,
    MIB,
    REGION,
    adding_headers,
    amz_checksums,
    checksum_mode,
    content_length,
    error_code,
    in_pieces,
    pool,
    query_api,
    random_bytes,
    read,
    replacing_in_body,
    unique_bucket,
)

import lowhaio
from lowhaio import Request
from lowhaio_aws_sigv4 import (
    CHECKSUM_ALGORITHMS,
    Checksum,
    ChecksumAlgorithm,
    ChecksumMismatchError,
    Credentials,
    Payload,
    checksum_verified,
    signed,
    static_credentials,
)

IAM_VERSION = "2010-05-08"
STS_VERSION = "2011-06-15"
ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)


@dataclass
class MotoAccount:
    url: str  # http://127.0.0.1:PORT/
    user_arn: str
    user: Credentials  # an IAM user's access key, allowed everything


def credentials_in(document: bytes) -> Credentials:
    """The access key (and session token, if any) in an IAM or STS response."""
    root = ET.fromstring(document)

    def text(name: str) -> str | None:
        element = root.find(f".//{{*}}{name}")
        return None if element is None else element.text

    access_key_id, secret = text("AccessKeyId"), text("SecretAccessKey")
    assert access_key_id, document
    assert secret, document
    return Credentials(access_key_id, secret, text("SessionToken"))


async def create_user(url: str) -> tuple[str, Credentials]:
    """An IAM user with an access key and an allow-all policy (while moto checks nothing, so
    any credentials sign these calls)."""
    async with pool() as request:
        iam = signed(request, static_credentials("AKIABOOTSTRAP", "unchecked"), "iam", REGION)
        code, body = await query_api(iam, url, "CreateUser", IAM_VERSION, UserName="lowhaio")
        assert code == 200, body
        arn = ET.fromstring(body).findtext(".//{*}Arn")
        assert arn, body
        code, body = await query_api(iam, url, "CreateAccessKey", IAM_VERSION, UserName="lowhaio")
        assert code == 200, body
        user = credentials_in(body)
        code, body = await query_api(
            iam,
            url,
            "PutUserPolicy",
            IAM_VERSION,
            UserName="lowhaio",
            PolicyName="all",
            PolicyDocument=ALLOW_ALL,
        )
        assert code == 200, body
        return arn, user


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoAccount]:
    with servers.moto_server() as server:
        server.allow_unauthenticated(float("inf"))
        try:
            arn, user = asyncio.run(create_user(server.url))
        finally:
            server.allow_unauthenticated(0)
        yield MotoAccount(server.url + "/", arn, user)


def s3(
    request: Request,
    credentials: Credentials,
    payload: Payload = "signed",
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


async def create_bucket(request: Request, moto: MotoAccount) -> str:
    bucket = unique_bucket()
    code, body = await read(await s3(request, moto.user)(b"PUT", moto.url + bucket))
    assert code == 200, body
    return bucket


async def test_every_request_is_authenticated(moto: MotoAccount) -> None:
    """The bootstrap window is closed: an unknown key is refused, the user's accepted. (An
    anonymous request gets a 500, not a 403: with authentication on, moto reads the
    Authorization header unconditionally, KeyError 'HTTP_AUTHORIZATION'; so do presigned URLs,
    which is why they are tested against SeaweedFS only.)"""
    async with pool() as request:
        unknown = Credentials("AKIAUNKNOWN000000000", moto.user.secret_access_key)
        code, body = await read(await s3(request, unknown)(b"GET", moto.url))
        assert (code, error_code(body)) == (403, "InvalidAccessKeyId"), body

        iam = signed(request, static_credentials(*moto.user), "iam", REGION)
        code, body = await query_api(iam, moto.url, "GetUser", IAM_VERSION)
        assert code == 200, body


@pytest.mark.parametrize("payload", ["signed", "unsigned", "streaming"])
@pytest.mark.parametrize("size", [0, 5, MIB + 3], ids=["empty", "5B", "1MiB+3"])
async def test_put_then_get(moto: MotoAccount, payload: Payload, size: int) -> None:
    data = random_bytes(size)
    async with pool() as request:
        bucket = await create_bucket(request, moto)
        url = f"{moto.url}{bucket}/object-{payload}"

        in_mode = s3(
            request, moto.user, payload
        )  # for the GET too: without a body, streaming signs it as empty
        code, body = await read(
            await in_mode(b"PUT", url, headers=content_length(data), body=in_pieces(data))
        )
        assert code == 200, body

        code, body = await read(await in_mode(b"GET", url))
        assert code == 200
        assert body == data


@pytest.mark.parametrize("service", ["s3", "iam"])
async def test_wrong_secret_is_rejected(moto: MotoAccount, service: str) -> None:
    wrong = static_credentials(moto.user.access_key_id, moto.user.secret_access_key + "x")
    async with pool() as request:
        if service == "s3":
            code, body = await read(await signed(request, wrong, "s3", REGION)(b"GET", moto.url))
        else:
            iam = signed(request, wrong, "iam", REGION)
            code, body = await query_api(iam, moto.url, "GetUser", IAM_VERSION)
    assert (code, error_code(body)) == (403, "SignatureDoesNotMatch"), body


async def test_odd_key_and_query_are_signed_as_sent(moto: MotoAccount) -> None:
    key = "dir/a b+c~d%e(é)&=?*.txt"
    data = b"odd"
    async with pool() as request:
        bucket = await create_bucket(request, moto)
        url = f"{moto.url}{bucket}/{quote(key, safe='/')}"
        code, body = await read(
            await s3(request, moto.user)(
                b"PUT", url, headers=content_length(data), body=in_pieces(data)
            )
        )
        assert code == 200, body
        code, body = await read(await s3(request, moto.user)(b"GET", url))
        assert (code, body) == (200, data)

        listing = (("list-type", "2"), ("prefix", "dir/a b+"), ("max-keys", "10"))
        code, body = await read(await s3(request, moto.user)(b"GET", moto.url + bucket, listing))
        assert code == 200, body
        assert ET.fromstring(body).findtext(".//{*}Contents/{*}Key") == key


async def test_assumed_role_session_token(moto: MotoAccount) -> None:
    """IAM and STS calls signed with the user's key, then S3 with the role's temporary
    credentials and their session token (x-amz-security-token, signed)."""
    role = f"role-{unique_bucket()}"
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": moto.user_arn},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    data = random_bytes(1000)
    async with pool() as request:
        iam = signed(request, static_credentials(*moto.user), "iam", REGION)
        code, body = await query_api(
            iam, moto.url, "CreateRole", IAM_VERSION, RoleName=role, AssumeRolePolicyDocument=trust
        )
        assert code == 200, body
        role_arn = ET.fromstring(body).findtext(".//{*}Arn")
        assert role_arn, body
        code, body = await query_api(
            iam,
            moto.url,
            "PutRolePolicy",
            IAM_VERSION,
            RoleName=role,
            PolicyName="all",
            PolicyDocument=ALLOW_ALL,
        )
        assert code == 200, body

        sts = signed(request, static_credentials(*moto.user), "sts", REGION)
        code, body = await query_api(
            sts, moto.url, "AssumeRole", STS_VERSION, RoleArn=role_arn, RoleSessionName="tests"
        )
        assert code == 200, body
        temporary = credentials_in(body)
        assert temporary.session_token

        bucket = await create_bucket(request, moto)
        url = f"{moto.url}{bucket}/with-token"
        for payload in ("signed", "streaming"):
            put = s3(request, temporary, payload)
            code, body = await read(
                await put(b"PUT", url, headers=content_length(data), body=in_pieces(data))
            )
            assert code == 200, body
            code, body = await read(await s3(request, temporary)(b"GET", url))
            assert (code, body) == (200, data)

        without_token = temporary._replace(session_token=None)
        code, body = await read(await s3(request, without_token)(b"GET", url))
        assert (code, error_code(body)) == (403, "InvalidAccessKeyId"), body

        other_token = temporary._replace(session_token="x" + temporary.session_token)
        code, body = await read(await s3(request, other_token)(b"GET", url))
        assert (code, error_code(body)) == (400, "InvalidToken"), body

        wrong_secret = temporary._replace(secret_access_key="x" + temporary.secret_access_key)
        code, body = await read(await s3(request, wrong_secret)(b"GET", url))
        assert (code, error_code(body)) == (403, "SignatureDoesNotMatch"), body


# Checksums ----------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", CHECKSUM_ALGORITHMS)
@pytest.mark.parametrize("payload", ["signed", "unsigned", "streaming"])
async def test_checksum_in_each_payload_mode(
    moto: MotoAccount, payload: Payload, algorithm: ChecksumAlgorithm
) -> None:
    data = random_bytes(MIB + 3, seed=7)
    expected = Checksum(algorithm, data)
    async with pool() as request:
        bucket = await create_bucket(request, moto)
        url = f"{moto.url}{bucket}/with-{algorithm}"
        put = s3(request, moto.user, payload, checksum=algorithm)
        response = await put(b"PUT", url, headers=content_length(data), body=in_pieces(data))
        code, body = await read(response)
        assert code == 200, body
        assert amz_checksums(response[1]) == {expected.header_name: expected.header_value()}

        code, headers, body = await s3(request, moto.user)(b"GET", url, headers=checksum_mode())
        assert code == b"200"
        assert amz_checksums(headers)[expected.header_name] == expected.header_value()
        assert await lowhaio.buffered(checksum_verified(headers, body)) == data


@pytest.mark.parametrize("payload", ["unsigned", "streaming"])
async def test_a_wrong_checksum_stored_by_moto_is_caught_on_download(
    moto: MotoAccount, payload: Payload
) -> None:
    """moto checks no checksum: a trailer changed on the way is stored, and given back with
    the object; `checksum_verified` reads the body, then raises."""
    data = random_bytes(100 * KIB)
    right, wrong = Checksum("crc64nvme", data), Checksum("crc64nvme", b"other")
    async with pool() as request:
        bucket = await create_bucket(request, moto)
        url = f"{moto.url}{bucket}/spoiled"
        spoiling = replacing_in_body(request, right.header_value(), wrong.header_value())
        put = s3(spoiling, moto.user, payload, checksum="crc64nvme")
        code, body = await read(
            await put(b"PUT", url, headers=content_length(data), body=in_pieces(data))
        )
        assert code == 200, body

        code, headers, body = await s3(request, moto.user)(b"GET", url, headers=checksum_mode())
        assert amz_checksums(headers) == {b"x-amz-checksum-crc64nvme": wrong.header_value()}
        with pytest.raises(ChecksumMismatchError) as raised:
            await lowhaio.buffered(checksum_verified(headers, body))
        assert raised.value.actual == right.header_value()


# A caller's headers, an empty token -----------------------------------------------------


async def test_an_empty_session_token_is_none(moto: MotoAccount) -> None:
    """AWS_SESSION_TOKEN="" read into Credentials: sent as an empty x-amz-security-token, moto
    answers 400 InvalidToken; the signer sends none."""
    empty = moto.user._replace(session_token="")
    async with pool() as request:
        bucket = await create_bucket(request, moto)
        code, body = await read(await s3(request, empty)(b"GET", moto.url + bucket))
        assert code == 200, body
        with_empty = s3(adding_headers(request, (b"x-amz-security-token", b"")), moto.user)
        code, body = await read(await with_empty(b"GET", moto.url + bucket))
        assert (code, error_code(body)) == (400, "InvalidToken"), body


@pytest.mark.parametrize("payload", ["signed", "streaming"])
async def test_the_callers_payload_hash(moto: MotoAccount, payload: Payload) -> None:
    data = random_bytes(200 * KIB)
    sha256 = hashlib.sha256(data).hexdigest().encode()
    async with pool() as request:
        bucket = await create_bucket(request, moto)
        for value in (sha256, b"UNSIGNED-PAYLOAD"):
            url = f"{moto.url}{bucket}/{value[:8].decode()}"
            headers = ((b"x-amz-content-sha256", value), *content_length(data))
            put = s3(request, moto.user, payload)
            code, body = await read(await put(b"PUT", url, headers=headers, body=in_pieces(data)))
            assert code == 200, body
            code, body = await read(await s3(request, moto.user)(b"GET", url))
            assert (code, body) == (200, data)


async def test_the_callers_content_encoding_follows_aws_chunked(moto: MotoAccount) -> None:
    """Sent as aws-chunked,gzip: moto, as S3, takes aws-chunked off and stores gzip."""
    data = gzip.compress(random_bytes(50 * KIB))
    async with pool() as request:
        bucket = await create_bucket(request, moto)
        url = f"{moto.url}{bucket}/compressed"
        headers = ((b"content-encoding", b"gzip"), *content_length(data))
        for payload in ("unsigned", "streaming"):
            put = s3(request, moto.user, payload, checksum="crc32")
            code, body = await read(await put(b"PUT", url, headers=headers, body=in_pieces(data)))
            assert code == 200, body
            code, headers_got, body = await s3(request, moto.user)(b"GET", url)
            assert (code, await lowhaio.buffered(body)) == (b"200", data)
            assert [v for n, v in headers_got if n == b"content-encoding"] == [b"gzip"]
