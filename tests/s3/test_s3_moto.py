"""lowhaio_aws_sigv4 against moto's server, with IAM authentication on.

moto checks a request's Authorization header by computing the signature again with botocore
from the request it received, with the secret of the IAM user (or assumed role) that owns the
access key; S3 takes the payload hash from x-amz-content-sha256 and decodes aws-chunked bodies
without checking chunk signatures (SeaweedFS's tests check those).

Bootstrap: the server starts with every action authenticated; the fixture lets the first
actions through unchecked (moto's /moto-api/reset-auth) to create an IAM user with an access
key and an allow-all policy, then closes that window. From then on every request is checked.
"""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
import servers
from s3_support import (
    MIB,
    REGION,
    content_length,
    error_code,
    in_pieces,
    pool,
    query_api,
    random_bytes,
    read,
    unique_bucket,
)

from lowhaio import Request
from lowhaio_aws_sigv4 import Credentials, Payload, signed, static_credentials

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


def s3(request: Request, credentials: Credentials, payload: Payload = "signed") -> Request:
    return signed(request, static_credentials(*credentials), "s3", REGION, payload=payload)


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
