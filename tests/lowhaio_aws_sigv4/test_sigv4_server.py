"""Signed requests over real loopback connections, to a scripted server that verifies them.

The server (`Verifier`) checks SigV4 the way S3 does, from the raw bytes it receives and the
secret it knows, with its own canonicalisation (over bytes, written from the AWS rules, sharing
no code with the signer): the method, the path and query as sent, the signed headers' values,
x-amz-content-sha256. It also does what the moto and SeaweedFS tests cannot: for a signed
payload it checks that hash against the body received, and it decodes aws-chunked bodies,
signed chunks or not, checking every chunk signature chained from the seed, and the signature
of the trailers (which SeaweedFS does not check). It checks the x-amz-checksum-* of a header or
a trailer against the body received, with its own CRCs (`sigv4_fakes.crc`). It answers 200, or
403 with the reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import socket
import traceback
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, unquote_to_bytes, urlsplit

import pytest
from conftest import Server, read_request, serve
from sigv4_fakes import Recorder, authorization_parts, crc_header_value

import lowhaio
from lowhaio import empty_body, streamed
from lowhaio_aws_sigv4 import (
    SIGNER_HEADERS,
    ChecksumAlgorithm,
    Credentials,
    Payload,
    aws_chunked_length,
    presigned_url,
    signed,
    signing_key,
    static_credentials,
)

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DATE = datetime(2013, 5, 24, tzinfo=UTC)
UNSIGNED = b"UNSIGNED-PAYLOAD"
STREAMING = b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_TRAILER = b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
UNSIGNED_TRAILER = b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"
CHECKSUMS = ("crc32", "crc32c", "crc64nvme")
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
OK = (b"200", b"")
_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


# The verifying server ---------------------------------------------------------------------


class Account(NamedTuple):
    secret: str
    token: str | None = None


class Received(NamedTuple):
    method: bytes
    target: bytes  # as sent
    headers: list[tuple[bytes, bytes]]  # names lowercased, values without surrounding OWS
    query: list[tuple[bytes, bytes]]  # percent-decoded, in the order sent
    auth: dict[str, str]  # the Authorization header's parts, or the X-Amz-* query parameters
    body: bytes  # the payload: aws-chunked decoded
    problems: list[str]
    trailers: list[tuple[bytes, bytes]]  # of an aws-chunked body, names lowercased

    def trailer(self, name: bytes) -> bytes:
        (value,) = [v for n, v in self.trailers if n == name]
        return value

    def header(self, name: bytes) -> bytes:
        (value,) = [v for n, v in self.headers if n == name]
        return value

    def signed_names(self) -> list[str]:
        return self.auth.get("SignedHeaders", self.auth.get("X-Amz-SignedHeaders", "")).split(";")


def _encode(data: bytes) -> bytes:
    """AWS's UriEncode: every byte but the RFC 3986 unreserved ones as %XX, hex in capitals."""
    return quote(data, safe="-_.~").encode()


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


class Verifier:
    """A scripted S3 that verifies Signature Version 4 (see the module docstring). `fail_first`
    answers that many requests with 503 even when they verify (for retry tests)."""

    def __init__(
        self,
        accounts: Mapping[str, Account] | None = None,
        service: str = "s3",
        region: str = "us-east-1",
        fail_first: int = 0,
    ) -> None:
        self.accounts = accounts if accounts is not None else {KEY_ID: Account(SECRET)}
        self.service = service
        self.region = region
        self.fail_first = fail_first
        self.received: list[Received] = []

    @property
    def last(self) -> Received:
        return self.received[-1]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, raw = await read_request(reader)
            received = self.verify(head, raw)
            self.received.append(received)
            if received.problems:
                reason = "; ".join(received.problems).encode()
                writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: %d\r\n\r\n" % len(reason))
                writer.write(reason)
            elif len(self.received) <= self.fail_first:
                writer.write(b"HTTP/1.1 503 Slow Down\r\ncontent-length: 0\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()

    def verify(self, head: bytes, raw: bytes) -> Received:
        request_line, *lines = head[:-4].split(b"\r\n")
        method, target, _ = request_line.split(b" ")
        headers = []
        for line in lines:
            name, _, value = line.partition(b":")
            headers.append((name.lower(), value.strip(b" \t")))
        path, _, query = target.partition(b"?")
        items = [item.partition(b"=") for item in query.split(b"&") if item]
        pairs = [(unquote_to_bytes(name), unquote_to_bytes(value)) for name, _, value in items]
        received = Received(method, target, headers, pairs, {}, raw, [], [])
        if any(name == b"X-Amz-Signature" for name, _ in pairs):
            return self._verify_query(received, path)
        return self._verify_header(received, path)

    def _canonical(
        self, received: Received, path: bytes, pairs: list[tuple[bytes, bytes]], payload: bytes
    ) -> str:
        """The canonical request, as S3 builds it: path not normalised, encoded once."""
        names = received.signed_names()
        if names != sorted(set(names)) or any(name != name.lower() for name in names):
            received.problems.append("SignedHeaders are not sorted, unique and lowercase")
        if "host" not in names:
            received.problems.append("host is not signed")
        for name, _ in received.headers:
            if name.startswith(b"x-amz-") and name.decode() not in names:
                received.problems.append(f"{name.decode()} is sent but not signed")
        block = b""
        for name in names:
            values = [b" ".join(v.split()) for n, v in received.headers if n == name.encode()]
            if not values:
                received.problems.append(f"{name} is signed but not sent")
            block += name.encode() + b":" + b",".join(values) + b"\n"
        canonical_path = b"/".join(_encode(unquote_to_bytes(s)) for s in path.split(b"/"))
        # Sorted by name, then value: not as "name=value" strings ("a-b=" sorts before "a=").
        encoded = sorted((_encode(name), _encode(value)) for name, value in pairs)
        query = b"&".join(name + b"=" + value for name, value in encoded)
        return b"\n".join(
            (received.method, canonical_path, query, block, ";".join(names).encode(), payload)
        ).decode()

    def _scope(self, received: Received, credential: str, amz_date: str) -> Account | None:
        key_id, date, region, service, terminal = credential.split("/")
        if (date, region, service, terminal) != (
            amz_date[:8],
            self.region,
            self.service,
            "aws4_request",
        ):
            received.problems.append(f"bad credential scope {credential}")
        account = self.accounts.get(key_id)
        if account is None:
            received.problems.append(f"InvalidAccessKeyId {key_id}")
        return account

    def _signature(self, account: Account, amz_date: str, creq: str) -> tuple[bytes, str, str]:
        scope = f"{amz_date[:8]}/{self.region}/{self.service}/aws4_request"
        to_sign = "\n".join(
            ("AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest())
        )
        key = _key(account.secret, amz_date[:8], self.region, self.service)
        return key, scope, _hmac(key, to_sign).hex()

    def _verify_header(self, received: Received, path: bytes) -> Received:
        problems = received.problems
        (authorization,) = [v for n, v in received.headers if n == b"authorization"]
        auth = authorization_parts(authorization.decode())
        received.auth.update(auth)
        amz_date = received.header(b"x-amz-date").decode()
        account = self._scope(received, auth["Credential"], amz_date)
        if account is None:
            return received
        body_sha256 = hashlib.sha256(received.body).hexdigest().encode()
        sha256_headers = [v for n, v in received.headers if n == b"x-amz-content-sha256"]
        if self.service == "s3" and not sha256_headers:
            problems.append("MissingContentSHA256")
        payload_hash = sha256_headers[0] if sha256_headers else body_sha256
        creq = self._canonical(received, path, received.query, payload_hash)
        key, scope, expected = self._signature(account, amz_date, creq)
        if auth["algorithm"] != "AWS4-HMAC-SHA256" or not hmac.compare_digest(
            expected, auth["Signature"]
        ):
            problems.append("SignatureDoesNotMatch")
        tokens = [v.decode() for n, v in received.headers if n == b"x-amz-security-token"]
        if tokens != ([account.token] if account.token else []):
            problems.append("bad or missing x-amz-security-token")
        if payload_hash in (STREAMING, STREAMING_TRAILER, UNSIGNED_TRAILER):
            chunk_key = None if payload_hash == UNSIGNED_TRAILER else key
            decoded = self._decode_chunks(received, chunk_key, amz_date, scope, expected)
            body = received._replace(body=decoded)
            encodings = received.header(b"content-encoding").split(b",")
            if encodings[0] != b"aws-chunked" or b"aws-chunked" in encodings[1:]:
                problems.append("content-encoding does not start with aws-chunked, once")
            if received.header(b"x-amz-decoded-content-length") != b"%d" % len(decoded):
                problems.append("x-amz-decoded-content-length is not the decoded length")
            named = [v for n, v in received.headers if n == b"x-amz-trailer"]
            if named != ([b",".join(n for n, _ in received.trailers)] if received.trailers else []):
                problems.append("x-amz-trailer does not name the trailers sent")
            if payload_hash != STREAMING and not received.trailers:
                problems.append("a -TRAILER payload without trailers")
            self._check_checksums(body, received.trailers)
            return body
        if payload_hash not in (UNSIGNED, body_sha256):
            problems.append("XAmzContentSHA256Mismatch")
        self._check_checksums(received, [])
        return received

    @staticmethod
    def _check_checksums(received: Received, trailers: list[tuple[bytes, bytes]]) -> None:
        """Every x-amz-checksum-<algorithm> of a header or a trailer matches the body; the
        x-amz-sdk-checksum-algorithm, if sent, names one of them."""
        sent = [(n, v) for n, v in received.headers + trailers if n.startswith(b"x-amz-checksum-")]
        for name, value in sent:
            algorithm = name.removeprefix(b"x-amz-checksum-").decode()
            if algorithm in CHECKSUMS and value != crc_header_value(algorithm, received.body):
                received.problems.append(f"BadDigest {name.decode()}")
        for _, value in [h for h in received.headers if h[0] == b"x-amz-sdk-checksum-algorithm"]:
            if b"x-amz-checksum-" + value.lower() not in [n for n, _ in sent]:
                received.problems.append("x-amz-sdk-checksum-algorithm names no checksum sent")

    def _decode_chunks(
        self, received: Received, key: bytes | None, amz_date: str, scope: str, seed: str
    ) -> bytes:
        """The payload of an aws-chunked body (its chunks signed if `key` is given, chained
        from `seed`); its trailers go to `received.trailers`, their signature checked."""
        raw, at, previous, sizes = received.body, 0, seed, []
        decoded = bytearray()
        while True:
            end = raw.find(b"\r\n", at)
            size_hex, _, extension = raw[at : max(end, at)].partition(b";")
            name, _, signature = extension.partition(b"=")
            size = int(size_hex, 16) if size_hex.isalnum() else -1
            data = raw[end + 2 : end + 2 + size]
            if (
                end < 0
                or len(data) != size
                or (size and raw[end + 2 + size : end + 4 + size] != b"\r\n")
            ):
                received.problems.append(f"aws-chunked framing is broken at byte {at}")
                return bytes(decoded)
            if key is None:
                if extension:
                    received.problems.append(f"unsigned chunk {len(sizes)} has {extension!r}")
            else:
                to_sign = "\n".join(
                    (
                        "AWS4-HMAC-SHA256-PAYLOAD",
                        amz_date,
                        scope,
                        previous,
                        EMPTY_SHA256,
                        hashlib.sha256(data).hexdigest(),
                    )
                )
                previous = _hmac(key, to_sign).hex()
                if name != b"chunk-signature" or signature.decode() != previous:
                    received.problems.append(f"chunk {len(sizes)} signature does not match")
                    return bytes(decoded)
            if not size:
                at = end + 2  # then the trailers, and the empty line that ends them
                break
            decoded += data
            sizes.append(size)
            at = end + 4 + size
        while True:
            end = raw.find(b"\r\n", at)
            line, at = raw[at : max(end, at)], end + 2
            if end < 0 or (line and b":" not in line):
                received.problems.append("aws-chunked trailers are broken")
                return bytes(decoded)
            if not line:
                break
            name, _, value = line.partition(b":")
            received.trailers.append((name.lower(), value.strip()))
        if at != len(raw):
            received.problems.append("bytes after the trailers")
        if any(size < 8192 for size in sizes[:-1]):
            received.problems.append("a chunk but the last is smaller than 8 KiB")
        if key is not None and received.trailers:
            *trailers, (name, signature) = received.trailers
            block = "".join(f"{n.decode()}:{v.decode()}\n" for n, v in sorted(trailers))
            to_sign = "\n".join(
                (
                    "AWS4-HMAC-SHA256-TRAILER",
                    amz_date,
                    scope,
                    previous,
                    hashlib.sha256(block.encode()).hexdigest(),
                )
            )
            if (
                name != b"x-amz-trailer-signature"
                or signature.decode() != _hmac(key, to_sign).hex()
            ):
                received.problems.append("trailer signature does not match")
            del received.trailers[-1]
        return bytes(decoded)

    def _verify_query(self, received: Received, path: bytes) -> Received:
        auth = {name.decode(): value.decode() for name, value in received.query}
        received.auth.update(auth)
        account = self._scope(received, auth["X-Amz-Credential"], auth["X-Amz-Date"])
        if account is None:
            return received
        if auth["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
            received.problems.append("bad X-Amz-Algorithm")
        if not 1 <= int(auth["X-Amz-Expires"]) <= 604800:
            received.problems.append("bad X-Amz-Expires")
        if auth.get("X-Amz-Security-Token") != account.token:
            received.problems.append("bad or missing X-Amz-Security-Token")
        signed_pairs = [(n, v) for n, v in received.query if n != b"X-Amz-Signature"]
        creq = self._canonical(received, path, signed_pairs, UNSIGNED)
        _, _, expected = self._signature(account, auth["X-Amz-Date"], creq)
        if not hmac.compare_digest(expected, auth["X-Amz-Signature"]):
            received.problems.append("SignatureDoesNotMatch")
        return received


@contextlib.asynccontextmanager
async def verifying(
    verifier: Verifier | None = None,
) -> AsyncIterator[tuple[Verifier, Server, lowhaio.Request]]:
    """A verifying server, and the `request` of a fresh pool."""
    verifier = verifier or Verifier()
    async with serve(verifier.handle) as server:
        request, close = lowhaio.Pool()
        try:
            yield verifier, server, request
        finally:
            await close()


async def answer(response: Awaitable[lowhaio.Response]) -> tuple[bytes, bytes]:
    code, _, body = await response
    return code, await lowhaio.buffered(body)


def s3(request: lowhaio.Request, **kwargs: Any) -> lowhaio.Request:
    kwargs.setdefault("clock", lambda: DATE)
    return signed(request, static_credentials(KEY_ID, SECRET), "s3", "us-east-1", **kwargs)


def sized(data: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-length", b"%d" % len(data))]


def pieces_of(data: bytes, size: int = 7000) -> lowhaio.BodyFactory:
    async def body() -> AsyncIterator[bytes]:
        for at in range(0, len(data), size):
            yield data[at : at + size]

    return body


DATA = bytes(range(256)) * 400  # 102400 bytes: two aws-chunked chunks, the second short


# The modes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "content_sha256"),
    [
        ("signed", hashlib.sha256(DATA).hexdigest().encode()),
        ("unsigned", UNSIGNED),
        ("streaming", STREAMING),
    ],
)
async def test_each_payload_mode_is_accepted(payload: Payload, content_sha256: bytes) -> None:
    async with verifying() as (verifier, server, request):
        response = s3(request, payload=payload)(
            b"PUT", server.url("/bucket/key"), headers=sized(DATA), body=pieces_of(DATA)
        )
        assert await answer(response) == OK
    received = verifier.last
    assert received.body == DATA
    assert received.header(b"x-amz-content-sha256") == content_sha256
    if payload == "streaming":
        assert received.header(b"content-length") == b"%d" % aws_chunked_length(len(DATA))
        assert "content-encoding" in received.signed_names()


async def test_an_empty_body_in_each_mode() -> None:
    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""

    async with verifying() as (verifier, server, request):
        for payload in ("signed", "unsigned", "streaming"):
            # No body factory: with "streaming" too, the empty payload is signed as such.
            assert await answer(s3(request, payload=payload)(b"GET", server.url("/b/k"))) == OK
        response = s3(request, payload="streaming")(
            b"PUT", server.url("/b/k"), headers=[(b"content-length", b"0")], body=nothing
        )
        assert await answer(response) == OK
    assert [r.header(b"x-amz-content-sha256") for r in verifier.received] == [
        EMPTY_SHA256.encode(),
        UNSIGNED,
        EMPTY_SHA256.encode(),
        STREAMING,
    ]
    assert verifier.last.header(b"x-amz-decoded-content-length") == b"0"


@pytest.mark.parametrize("algorithm", CHECKSUMS)
@pytest.mark.parametrize(
    ("payload", "content_sha256"),
    [
        ("signed", hashlib.sha256(DATA).hexdigest().encode()),
        ("unsigned", UNSIGNED_TRAILER),
        ("streaming", STREAMING_TRAILER),
    ],
)
async def test_each_payload_mode_with_each_checksum(
    payload: Payload, content_sha256: bytes, algorithm: ChecksumAlgorithm
) -> None:
    """The checksum goes in a header with "signed" (from the pass that hashes the body), in a
    trailer of an aws-chunked body with "unsigned" (its chunks unsigned) and "streaming" (the
    trailer signed too); the server finds it matches the body, with CRCs of its own."""
    name = b"x-amz-checksum-" + algorithm.encode()
    async with verifying() as (verifier, server, request):
        response = s3(request, payload=payload, checksum=algorithm)(
            b"PUT", server.url("/bucket/key"), headers=sized(DATA), body=pieces_of(DATA)
        )
        assert await answer(response) == OK
    received = verifier.last
    assert received.body == DATA
    assert received.header(b"x-amz-content-sha256") == content_sha256
    assert received.header(b"x-amz-sdk-checksum-algorithm") == algorithm.upper().encode()
    if payload == "signed":
        assert received.header(name) == crc_header_value(algorithm, DATA)
        assert received.trailers == []
        assert received.header(b"content-length") == b"%d" % len(DATA)
    else:
        assert received.trailers == [(name, crc_header_value(algorithm, DATA))]
        assert received.header(b"x-amz-trailer") == name
        assert name not in [n for n, _ in received.headers]
        assert received.header(b"content-encoding") == b"aws-chunked"
        assert received.header(b"x-amz-decoded-content-length") == b"%d" % len(DATA)
        length = aws_chunked_length(len(DATA), signed=payload == "streaming", checksum=algorithm)
        assert received.header(b"content-length") == b"%d" % length
        assert "x-amz-trailer" in received.signed_names()


@pytest.mark.parametrize("payload", ["unsigned", "streaming"])
async def test_an_empty_body_with_a_checksum_trailer(payload: Payload) -> None:
    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""

    async with verifying() as (verifier, server, request):
        response = s3(request, payload=payload, checksum="crc32c")(
            b"PUT", server.url("/b/k"), headers=[(b"content-length", b"0")], body=nothing
        )
        assert await answer(response) == OK
    assert verifier.last.trailers == [(b"x-amz-checksum-crc32c", b"AAAAAA==")]


@pytest.mark.parametrize(
    ("payload", "old", "new", "problem"),
    [
        # Unsigned chunks: the checksum is what catches a body changed on the way.
        ("unsigned", b"hello", b"jello", b"BadDigest x-amz-checksum-crc32"),
        # Signed chunks: the chunk's signature catches it first.
        ("streaming", b"hello", b"jello", b"chunk 1 signature does not match"),
        # The trailer changed: its signature catches it.
        ("streaming", b"crc32:", b"trailer", b"trailer signature does not match"),
        # The trailer unsigned: the checksum no longer matches.
        ("unsigned", b"crc32:", b"trailer", b"BadDigest x-amz-checksum-crc32"),
        ("signed", b"hello", b"jello", b"XAmzContentSHA256Mismatch"),
    ],
)
async def test_a_body_or_trailer_changed_on_the_way_is_refused(
    payload: Payload, old: bytes, new: bytes, problem: bytes
) -> None:
    body = b"x" * 70000 + b"hello" + b"x" * 10
    if new == b"trailer":  # another checksum, of the same length
        old += crc_header_value("crc32", body)
        new = old[:6] + crc_header_value("crc32", b"other")
    async with verifying() as (verifier, server, request):
        response = s3(tampering(request, old, new), payload=payload, checksum="crc32")(
            b"PUT", server.url("/bucket/key"), headers=sized(body), body=streamed(body)
        )
        code, reason = await answer(response)
    assert code == b"403"
    assert problem in reason.split(b"; ")
    assert len(verifier.received) == 1


async def test_streaming_in_small_chunks_from_odd_pieces() -> None:
    async with verifying() as (verifier, server, request):
        response = s3(request, payload="streaming", chunk_bytes=8192)(
            b"PUT", server.url("/bucket/key"), headers=sized(DATA), body=pieces_of(DATA, 777)
        )
        assert await answer(response) == OK
    assert verifier.last.body == DATA
    assert verifier.last.header(b"content-length") == b"%d" % aws_chunked_length(len(DATA), 8192)


async def test_the_verifier_refuses_what_it_should() -> None:
    """The verifying server is not a rubber stamp: a wrong secret, an unknown key, another
    region are refused."""

    def with_credentials(key_id: str, secret: str, region: str = "us-east-1") -> lowhaio.Request:
        credentials = static_credentials(key_id, secret)
        return signed(request, credentials, "s3", region, clock=lambda: DATE)

    async with verifying() as (_, server, request):
        url = server.url("/b/k")
        assert await answer(with_credentials(KEY_ID, SECRET)(b"GET", url)) == OK
        assert await answer(with_credentials(KEY_ID, SECRET + "x")(b"GET", url)) == (
            b"403",
            b"SignatureDoesNotMatch",
        )
        assert await answer(with_credentials("AKIDUNKNOWN", SECRET)(b"GET", url)) == (
            b"403",
            b"InvalidAccessKeyId AKIDUNKNOWN",
        )
        code, reason = await answer(with_credentials(KEY_ID, SECRET, "eu-west-1")(b"GET", url))
    assert code == b"403"
    assert reason.startswith(b"bad credential scope")


def tampering(request: lowhaio.Request, old: bytes, new: bytes) -> lowhaio.Request:
    """A `request` between the signer and the core that changes the first `old` in the body it
    sends to `new` (same length): what a man in the middle would do."""

    async def tampered_request(
        method: bytes,
        url: str,
        params: lowhaio.Params = (),
        headers: lowhaio.RequestHeaders = (),
        body: lowhaio.BodyFactory = empty_body,
        body_args: tuple[Any, ...] = (),
        body_kwargs: Mapping[str, Any] = _NO_KWARGS,
    ) -> lowhaio.Response:
        async def tampered_body(*args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
            data = b"".join([bytes(chunk) async for chunk in body(*args, **kwargs)])
            yield data.replace(old, new, 1)

        return await request(method, url, params, headers, tampered_body, body_args, body_kwargs)

    return tampered_request


async def test_another_service_without_x_amz_content_sha256() -> None:
    """For services but S3, a signed payload sends no x-amz-content-sha256: the server hashes
    the body itself, so a body changed on the way breaks the signature."""
    verifier = Verifier(service="execute-api", region="eu-west-2")
    async with verifying(verifier) as (_, server, request):
        api = signed(
            request,
            static_credentials(KEY_ID, SECRET),
            "execute-api",
            "eu-west-2",
            clock=lambda: DATE,
        )
        body = b'{"a": 1}'
        assert (
            await answer(api(b"POST", server.url("/prod/x"), (), sized(body), streamed(body))) == OK
        )
        assert b"x-amz-content-sha256" not in [n for n, _ in verifier.last.headers]
        tampered = tampering(request, b"1", b"2")
        api = signed(
            tampered,
            static_credentials(KEY_ID, SECRET),
            "execute-api",
            "eu-west-2",
            clock=lambda: DATE,
        )
        code, reason = await answer(
            api(b"POST", server.url("/prod/x"), (), sized(body), streamed(body))
        )
    assert (code, reason) == (b"403", b"SignatureDoesNotMatch")


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ("signed", b"XAmzContentSHA256Mismatch"),
        ("streaming", b"chunk 1 signature does not match"),
    ],
)
async def test_a_body_changed_on_the_way_is_refused(payload: Payload, problem: bytes) -> None:
    body = b"x" * 70000 + b"hello" + b"x" * 10
    async with verifying() as (verifier, server, request):
        response = s3(tampering(request, b"hello", b"jello"), payload=payload)(
            b"PUT", server.url("/bucket/key"), headers=sized(body), body=streamed(body)
        )
        code, reason = await answer(response)
    assert (code, reason.split(b"; ")[0]) == (b"403", problem)  # the first problem found
    assert len(verifier.received) == 1


async def test_unsigned_payload_does_not_protect_the_body() -> None:
    """By design: UNSIGNED-PAYLOAD leaves the body to TLS; the headers are still signed."""
    body = b"hello"
    async with verifying() as (verifier, server, request):
        response = s3(tampering(request, b"hello", b"jello"), payload="unsigned")(
            b"PUT", server.url("/bucket/key"), headers=sized(body), body=streamed(body)
        )
        assert await answer(response) == OK
    assert verifier.last.body == b"jello"


async def test_a_body_factory_that_changes_between_its_two_reads_is_caught() -> None:
    """payload="signed" hashes the body in a first pass: a factory that gives other bytes the
    second time sends a body that does not match x-amz-content-sha256."""
    reads = []

    async def body() -> AsyncIterator[bytes]:
        reads.append(1)
        yield b"first" if len(reads) == 1 else b"other"

    async with verifying() as (_, server, request):
        response = s3(request)(b"PUT", server.url("/b/k"), headers=sized(b"first"), body=body)
        assert await answer(response) == (b"403", b"XAmzContentSHA256Mismatch")


@pytest.mark.parametrize(("payload", "reads"), [("signed", 2), ("unsigned", 1), ("streaming", 1)])
async def test_how_often_the_body_factory_is_read(payload: Payload, reads: int) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    async def body(*args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
        calls.append((args, kwargs))
        yield b"data"

    async with verifying() as (verifier, server, request):
        response = s3(request, payload=payload)(
            b"PUT",
            server.url("/b/k"),
            headers=sized(b"data"),
            body=body,
            body_args=(1, 2),
            body_kwargs={"three": 3},
        )
        assert await answer(response) == OK
    assert calls == [((1, 2), {"three": 3})] * reads
    assert verifier.last.body == b"data"


# What is signed: query, path, headers, host -----------------------------------------------


@pytest.mark.parametrize(
    ("url_query", "params", "expected"),
    [
        pytest.param(
            "",
            [("prefix", "a+b&c=d/e?f#g h%"), ("marker", "!*'();:@$,[]")],
            [(b"prefix", b"a+b&c=d/e?f#g h%"), (b"marker", b"!*'();:@$,[]")],
            id="reserved-in-params",
        ),
        pytest.param(
            "?a=b:c@d/e?f&g=h!$'()*,;&i=j k",
            [],
            [(b"a", b"b:c@d/e?f"), (b"g", b"h!$'()*,;"), (b"i", b"j k")],
            id="reserved-in-url",
        ),
        pytest.param(
            "?%E1%88%B4=%e1%88%b4",
            [("prefix", "ключ/é"), ("ü", "ü")],
            [
                ("ሴ".encode(), "ሴ".encode()),
                (b"prefix", "ключ/é".encode()),
                ("ü".encode(), "ü".encode()),
            ],
            id="unicode",
        ),
        pytest.param(
            "?z=1&b=2&z=0",
            [("b", "1"), ("a", "2"), ("a", "1"), ("A", "0"), ("a-b", ""), ("a", "")],
            [
                (b"z", b"1"),
                (b"b", b"2"),
                (b"z", b"0"),
                (b"b", b"1"),
                (b"a", b"2"),
                (b"a", b"1"),
                (b"A", b"0"),
                (b"a-b", b""),
                (b"a", b""),
            ],
            id="repeated-and-unsorted",
        ),
        pytest.param(
            "?versions&acl=&x",
            [("prefix", "p q"), (b"bytes", b"v w")],
            [
                (b"versions", b""),
                (b"acl", b""),
                (b"x", b""),
                (b"prefix", b"p q"),
                (b"bytes", b"v w"),
            ],
            id="url-query-and-params",
        ),
        pytest.param(
            "?&a=1&&b=%2B2&c=50%&",
            [],
            [(b"a", b"1"), (b"b", b"+2"), (b"c", b"50%")],
            id="empty-items-and-percents",
        ),
    ],
)
async def test_query_strings(
    url_query: str,
    params: list[tuple[str | bytes, str | bytes]],
    expected: list[tuple[bytes, bytes]],
) -> None:
    async with verifying() as (verifier, server, request):
        response = s3(request)(b"GET", server.url("/bucket/" + url_query), params)
        assert await answer(response) == OK
    assert verifier.last.query == expected


async def test_params_and_headers_given_as_one_shot_iterators() -> None:
    """The signer reads `params` and `headers` before the core: iterators that can be read only
    once still reach the core whole."""

    def params() -> Iterator[tuple[str, str]]:
        yield ("prefix", "a b")
        yield ("max-keys", "2")

    def headers() -> Iterator[tuple[bytes, bytes]]:
        yield (b"x-amz-meta-one", b"1")

    async with verifying() as (verifier, server, request):
        response = s3(request)(b"GET", server.url("/bucket/"), params(), headers())
        assert await answer(response) == OK
    assert verifier.last.query == [(b"prefix", b"a b"), (b"max-keys", b"2")]
    assert verifier.last.header(b"x-amz-meta-one") == b"1"


@pytest.mark.parametrize(
    ("path", "sent"),
    [
        ("/bucket/key with spaces", b"/bucket/key%20with%20spaces"),
        ("/bucket/ключ é", b"/bucket/%D0%BA%D0%BB%D1%8E%D1%87%20%C3%A9"),
        ("/bucket/test$file.text", b"/bucket/test$file.text"),
        ("/bucket/dir%2Fkey", b"/bucket/dir%2Fkey"),
        ("/bucket/dir%2fkey", b"/bucket/dir%2fkey"),
        ("/bucket//double//slash/", b"/bucket//double//slash/"),
        ("/bucket/./dot/../dots", b"/bucket/./dot/../dots"),
        ("/bucket/a+b=c;d,e@f:g!'()*&", b"/bucket/a+b=c;d,e@f:g!'()*&"),
        ("/bucket/-._~", b"/bucket/-._~"),
        ("/bucket/100%", b"/bucket/100%25"),
        ("", b"/"),
    ],
)
async def test_paths(path: str, sent: bytes) -> None:
    async with verifying() as (verifier, server, request):
        response = s3(request)(b"GET", f"http://127.0.0.1:{server.port}{path}")
        assert await answer(response) == OK
    assert verifier.last.target == sent


async def test_repeated_headers_and_inner_runs_of_spaces() -> None:
    headers = [
        (b"X-Amz-Meta-Colour", b"red"),
        (b"x-amz-meta-colour", b"  green   and \t blue "),
        (b"Content-Type", b"text/plain;   charset=utf-8"),
        (b"x-amz-meta-empty", b""),
        (b"x-amz-meta-latin", b"caf\xc3\xa9  au   lait"),
        (b"x-amz-meta-colour", b"white"),
        (b"User-Agent", b"lowhaio tests"),  # sent, not signed: proxies change it
    ]
    async with verifying() as (verifier, server, request):
        response = s3(request)(b"GET", server.url("/b/k"), headers=headers)
        assert await answer(response) == OK
    received = verifier.last
    assert received.signed_names() == [
        "content-type",
        "host",
        "x-amz-content-sha256",
        "x-amz-date",
        "x-amz-meta-colour",
        "x-amz-meta-empty",
        "x-amz-meta-latin",
    ]
    assert [v for n, v in received.headers if n == b"x-amz-meta-colour"] == [
        b"red",
        b"green   and \t blue",
        b"white",
    ]
    assert received.header(b"user-agent") == b"lowhaio tests"


async def test_the_host_with_its_port_is_signed() -> None:
    async with verifying() as (verifier, server, request):
        assert await answer(s3(request)(b"GET", server.url("/b/k"))) == OK
    assert verifier.last.header(b"host") == f"127.0.0.1:{server.port}".encode()
    assert "host" in verifier.last.signed_names()


async def test_a_host_header_given_by_the_caller_is_the_one_signed_and_sent() -> None:
    """Virtual-hosted style to another address: the caller's host header, sent once."""
    async with verifying() as (verifier, server, request):
        headers = [(b"Host", b"examplebucket.s3.amazonaws.com")]
        assert await answer(s3(request)(b"GET", server.url("/k"), headers=headers)) == OK
    assert [v for n, v in verifier.last.headers if n == b"host"] == [
        b"examplebucket.s3.amazonaws.com"
    ]


async def test_session_token_is_sent_and_signed() -> None:
    token = "FwoGZXIvYXdzEXAMPLE//token+with/reserved="
    verifier = Verifier({KEY_ID: Account(SECRET, token)})
    async with verifying(verifier) as (_, server, request):
        credentials = static_credentials(KEY_ID, SECRET, token)
        with_token = signed(request, credentials, "s3", "us-east-1", clock=lambda: DATE)
        assert await answer(with_token(b"GET", server.url("/b/k"))) == OK
        assert verifier.last.header(b"x-amz-security-token") == token.encode()
        assert "x-amz-security-token" in verifier.last.signed_names()
        # The same account without its token is refused.
        code, reason = await answer(s3(request)(b"GET", server.url("/b/k")))
    assert (code, reason) == (b"403", b"bad or missing x-amz-security-token")


async def test_credentials_are_fetched_for_every_request() -> None:
    """A refreshing credentials callable: each request is signed with what it gives then."""
    given = [
        Credentials("KEYONE", "secret/one"),
        Credentials("KEYTWO", "secret+two", "token-two"),
        Credentials("KEYONE", "secret/one"),
    ]
    calls = []

    async def credentials() -> Credentials:
        calls.append(1)
        return given[len(calls) - 1]

    verifier = Verifier(
        {"KEYONE": Account("secret/one"), "KEYTWO": Account("secret+two", "token-two")}
    )
    async with verifying(verifier) as (_, server, request):
        refreshing = signed(request, credentials, "s3", "us-east-1", clock=lambda: DATE)
        for count in (1, 2, 3):
            assert await answer(refreshing(b"GET", server.url("/b/k"))) == OK
            assert len(calls) == count
    assert [r.auth["Credential"].split("/")[0] for r in verifier.received] == [
        "KEYONE",
        "KEYTWO",
        "KEYONE",
    ]


async def test_a_retry_loop_around_the_signer_signs_each_attempt_afresh() -> None:
    """A retry wrapper outside the signer gets a new x-amz-date and signature per attempt."""
    now = [DATE]

    def clock() -> datetime:
        now[0] += timedelta(seconds=1)
        return now[0]

    def retrying(request: lowhaio.Request, attempts: int) -> lowhaio.Request:
        async def retried(*args: Any, **kwargs: Any) -> lowhaio.Response:
            for _ in range(attempts - 1):
                code, headers, body = await request(*args, **kwargs)
                if code != b"503":
                    return code, headers, body
                await lowhaio.discard(body)
            return await request(*args, **kwargs)

        return retried

    body = b"retried body"
    async with verifying(Verifier(fail_first=2)) as (verifier, server, request):
        with_retries = retrying(s3(request, clock=clock), attempts=3)
        response = with_retries(
            b"PUT", server.url("/b/k"), headers=sized(body), body=streamed(body)
        )
        assert await answer(response) == OK
    dates = [r.header(b"x-amz-date") for r in verifier.received]
    assert dates == [b"20130524T000001Z", b"20130524T000002Z", b"20130524T000003Z"]
    signatures = {r.auth["Signature"] for r in verifier.received}
    assert len(signatures) == 3
    assert all(r.body == body and not r.problems for r in verifier.received)


async def test_the_default_clock_is_now_in_utc() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    async with verifying() as (verifier, server, request):
        default_clock = signed(request, static_credentials(KEY_ID, SECRET), "s3", "us-east-1")
        assert await answer(default_clock(b"GET", server.url("/b/k"))) == OK
    sent = datetime.strptime(verifier.last.header(b"x-amz-date").decode(), "%Y%m%dT%H%M%SZ")
    assert before <= sent.replace(tzinfo=UTC) <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("url_path", "params"),
    [
        ("/bucket/", [("prefix", b"\xff\xfe")]),  # bytes params are allowed by lowhaio.Params
        ("/bucket/%FF", []),
    ],
)
async def test_bytes_that_are_not_utf8_are_signed_as_sent(url_path: str, params: Any) -> None:
    """AWS's UriEncode encodes every byte: %FF in the request is %FF in the canonical request,
    whatever its UTF-8 decoding would be."""
    async with verifying() as (_, server, request):
        response = s3(request)(b"GET", server.url(url_path), params)
        assert await answer(response) == OK


# Presigned URLs, fetched with an unsigned request ----------------------------------------


@pytest.mark.parametrize("token", [None, "presign/token+="])
async def test_presigned_urls_are_accepted(token: str | None) -> None:
    verifier = Verifier({KEY_ID: Account(SECRET, token)})
    credentials = Credentials(KEY_ID, SECRET, token)
    async with verifying(verifier) as (_, server, request):
        get = presigned_url(
            credentials,
            b"GET",
            server.url("/bucket/a key/ключ$?versionId=3&acl#fragment"),
            "s3",
            "us-east-1",
            expires=86400,
            params=[("response-content-type", "text/plain; charset=utf-8")],
            clock=lambda: DATE,
        )
        assert await answer(request(b"GET", get)) == OK
        put = presigned_url(credentials, b"PUT", server.url("/bucket/k"), "s3", "us-east-1")
        body = b"presigned body"
        assert await answer(request(b"PUT", put, (), sized(body), streamed(body))) == OK
        assert verifier.last.body == body
        # Another method than the one signed is refused.
        code, reason = await answer(request(b"DELETE", put))
    assert (code, reason) == (b"403", b"SignatureDoesNotMatch")


# Errors leak no secret ----------------------------------------------------------------------


class Spy:
    """A `request` between the signer and the core that notes the headers it is given."""

    def __init__(self, request: lowhaio.Request) -> None:
        self.request = request
        self.headers: list[tuple[bytes, bytes]] = []

    def __call__(self, method: bytes, url: str, *args: Any) -> Awaitable[lowhaio.Response]:
        self.headers = list(args[1])
        return self.request(method, url, *args)

    def signature(self) -> str:
        (value,) = [v for n, v in self.headers if n == b"authorization"]
        return authorization_parts(value.decode())["Signature"]


def assert_leaks_nothing(exc: BaseException, *secrets: str) -> None:
    """Neither the exception, its chain nor its formatted traceback holds any of `secrets`."""
    text = "".join(traceback.format_exception(exc))
    cause: BaseException | None = exc
    while cause is not None:
        text += repr(cause) + repr(cause.args)
        cause = cause.__cause__ or cause.__context__
    for secret in secrets:
        assert secret not in text
    assert SECRET not in text
    key = signing_key(SECRET, DATE, "us-east-1", "s3")
    assert key.hex() not in text
    assert repr(key) not in text


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_error_leaks_no_secret() -> None:
    request, close = lowhaio.Pool()
    spy = Spy(request)
    try:
        with pytest.raises(lowhaio.HttpConnectionError) as raised:
            await s3(spy)(b"GET", f"http://127.0.0.1:{closed_port()}/b/k?secret-free=1")
    finally:
        await close()
    assert_leaks_nothing(raised.value, spy.signature())


@pytest.mark.parametrize(
    ("header", "hidden"),
    [
        ((b"x-amz-meta-bad", b"value\r\nx-injected: 1"), "x-injected"),
        ((b"x-amz-meta-nul", b"private\x00value"), "private"),
        # The generic suite's get-header-value-multiline: obs-fold is refused, not sent.
        ((b"My-Header1", b"value1\n  value2\n     value3"), "value2"),
        ((b"bad name", b"private value"), "private"),
    ],
)
async def test_a_header_the_core_refuses_leaks_no_secret(
    header: tuple[bytes, bytes], hidden: str
) -> None:
    async with verifying() as (verifier, server, request):
        spy = Spy(request)
        with pytest.raises(lowhaio.HttpInvalidRequestError) as raised:
            await s3(spy)(b"GET", server.url("/b/k"), headers=[header])
        assert_leaks_nothing(raised.value, spy.signature(), hidden)
    assert verifier.received == []


async def test_a_session_token_the_core_refuses_leaks_no_secret() -> None:
    token = "token-with\nnewline-XYZZY"
    async with verifying() as (verifier, server, request):
        spy = Spy(request)
        credentials = static_credentials(KEY_ID, SECRET, token)
        with pytest.raises(lowhaio.HttpInvalidRequestError) as raised:
            await signed(spy, credentials, "s3", "us-east-1", clock=lambda: DATE)(
                b"GET", server.url("/b/k")
            )
        assert_leaks_nothing(raised.value, spy.signature(), "XYZZY")
    assert verifier.received == []


async def test_an_error_from_the_body_factory_propagates_and_leaks_no_secret() -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"part"
        raise OSError("disk gone")

    async with verifying() as (_, server, request):
        spy = Spy(request)
        with pytest.raises(OSError, match="disk gone") as raised:
            await s3(spy, payload="unsigned")(
                b"PUT", server.url("/b/k"), headers=[(b"content-length", b"8")], body=failing
            )
        assert_leaks_nothing(raised.value, spy.signature())


async def test_credentials_failure_propagates_before_anything_is_sent() -> None:
    async def no_credentials() -> Credentials:
        raise LookupError("no credentials")

    async with verifying() as (verifier, server, request):
        failing = signed(request, no_credentials, "s3", "us-east-1")
        with pytest.raises(LookupError):
            await failing(b"GET", server.url("/b/k"))
    assert verifier.received == []


# What the caller's headers may hold beside the signer's --------------------------------------
# Headers only the signer sends are refused (naming the header, before anything is fetched,
# read or sent); a caller's x-amz-content-sha256 chooses the payload hash; a caller's
# content-encoding follows aws-chunked; an empty session token is none.

AWS_URL = "https://examplebucket.s3.amazonaws.com/key"
CALLERS = b"caller's data" * 1000
CALLERS_SHA256 = hashlib.sha256(CALLERS).hexdigest().encode()


class Counting:
    """A credentials callable that counts its calls."""

    def __init__(self, token: str | None = None) -> None:
        self.calls = 0
        self.token = token

    async def __call__(self) -> Credentials:
        self.calls += 1
        return Credentials(KEY_ID, SECRET, self.token)


@pytest.mark.parametrize("name", [*SIGNER_HEADERS, b"X-Amz-Date", b"Authorization"])
@pytest.mark.parametrize("payload", ["signed", "unsigned", "streaming"])
async def test_headers_only_the_signer_sends_are_refused(name: bytes, payload: Payload) -> None:
    """Sent beside the signer's, they make the request fail (SeaweedFS: 403): refused at once,
    the message naming the header and why, before credentials are fetched or the body read."""
    recorder, credentials, reads = Recorder(), Counting(), []

    async def body() -> AsyncIterator[bytes]:
        reads.append(1)
        yield CALLERS

    request = signed(recorder, credentials, "s3", "us-east-1", payload=payload)
    with pytest.raises(lowhaio.HttpInvalidRequestError) as raised:
        await request(b"PUT", AWS_URL, headers=[*sized(CALLERS), (name, b"value")], body=body)
    assert str(raised.value).startswith(f"headers must not hold {name.decode().lower()}: ")
    assert SIGNER_HEADERS[name.lower()] in str(raised.value)
    assert "value" not in str(raised.value)
    assert (credentials.calls, reads, recorder.calls) == (0, [], [])


@pytest.mark.parametrize("payload", ["signed", "unsigned", "streaming"])
async def test_a_precomputed_sha256_is_the_payload_hash(payload: Payload) -> None:
    """A caller that hashed the body already (while reading it from disk, say) gives its
    SHA-256: the body is read once, sent as it is, signed with that hash, in any mode."""
    reads = []

    async def body() -> AsyncIterator[bytes]:
        reads.append(1)
        yield CALLERS

    headers = [(b"X-Amz-Content-SHA256", CALLERS_SHA256), *sized(CALLERS)]
    async with verifying() as (verifier, server, request):
        response = s3(request, payload=payload, checksum="crc32")(
            b"PUT", server.url("/b/k"), headers=headers, body=body
        )
        assert await answer(response) == (b"200", b"")
        # A wrong one: the server finds the body does not match.
        wrong = [(b"x-amz-content-sha256", hashlib.sha256(b"other").hexdigest().encode())]
        response = s3(request, payload=payload)(
            b"PUT", server.url("/b/k"), headers=wrong + sized(CALLERS), body=streamed(CALLERS)
        )
        assert await answer(response) == (b"403", b"XAmzContentSHA256Mismatch")
    assert len(reads) == 1
    first = verifier.received[0]
    assert first.body == CALLERS
    assert [v for n, v in first.headers if n == b"x-amz-content-sha256"] == [CALLERS_SHA256]
    # No checksum computed: that would need another read (give x-amz-checksum-* too).
    assert not any(n.startswith(b"x-amz-checksum") for n, _ in first.headers)


@pytest.mark.parametrize("payload", ["signed", "streaming"])
async def test_unsigned_payload_from_the_caller_chooses_it(payload: Payload) -> None:
    async with verifying() as (verifier, server, request):
        headers = [(b"x-amz-content-sha256", b"UNSIGNED-PAYLOAD"), *sized(CALLERS)]
        response = s3(request, payload=payload)(
            b"PUT", server.url("/b/k"), headers=headers, body=streamed(CALLERS)
        )
        assert await answer(response) == (b"200", b"")
    received = verifier.last
    assert received.body == CALLERS  # as it is: not aws-chunked
    assert received.header(b"x-amz-content-sha256") == b"UNSIGNED-PAYLOAD"
    assert received.header(b"content-length") == b"%d" % len(CALLERS)


@pytest.mark.parametrize(
    "value",
    [
        b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        b"STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        CALLERS_SHA256.upper(),
        CALLERS_SHA256[:-1],
        b"unsigned-payload",
        b"",
    ],
)
async def test_other_content_sha256_values_are_refused(value: bytes) -> None:
    recorder, credentials = Recorder(), Counting()
    request = signed(recorder, credentials, "s3", "us-east-1")
    headers = [(b"x-amz-content-sha256", value), *sized(CALLERS)]
    with pytest.raises(lowhaio.HttpInvalidRequestError, match="x-amz-content-sha256") as raised:
        await request(b"PUT", AWS_URL, headers=headers, body=streamed(CALLERS))
    assert "payload='streaming'" in str(raised.value)
    assert (credentials.calls, recorder.calls) == (0, [])
    with pytest.raises(lowhaio.HttpInvalidRequestError, match="more than once"):
        await request(b"PUT", AWS_URL, headers=[*headers[:1], *headers], body=streamed(CALLERS))


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ([(b"Content-Encoding", b"gzip")], b"aws-chunked,gzip"),
        ([(b"content-encoding", b"gzip"), (b"content-encoding", b"br")], b"aws-chunked,gzip,br"),
        ([], b"aws-chunked"),
    ],
)
@pytest.mark.parametrize("checksum", [None, "crc32"])
@pytest.mark.parametrize("payload", ["unsigned", "streaming"])
async def test_the_callers_content_encoding_follows_aws_chunked(
    given: list[tuple[bytes, bytes]], sent: bytes, checksum: str | None, payload: Payload
) -> None:
    """One content-encoding, aws-chunked first, as S3's documentation writes it: S3 takes
    aws-chunked off and stores the rest."""
    if payload == "unsigned" and checksum is None:
        return  # UNSIGNED-PAYLOAD: not aws-chunked
    async with verifying() as (verifier, server, request):
        response = s3(request, payload=payload, checksum=checksum)(
            b"PUT", server.url("/b/k"), headers=[*given, *sized(CALLERS)], body=streamed(CALLERS)
        )
        assert await answer(response) == (b"200", b"")
    assert [v for n, v in verifier.last.headers if n == b"content-encoding"] == [sent]
    assert verifier.last.body == CALLERS


async def test_content_encoding_is_the_callers_without_aws_chunked() -> None:
    async with verifying() as (verifier, server, request):
        headers = [(b"content-encoding", b"gzip"), *sized(CALLERS)]
        for payload in ("signed", "unsigned"):
            response = s3(request, payload=payload, checksum=None)(
                b"PUT", server.url("/b/k"), headers=headers, body=streamed(CALLERS)
            )
            assert await answer(response) == (b"200", b"")
            assert verifier.last.header(b"content-encoding") == b"gzip"


async def test_an_empty_session_token_is_none() -> None:
    """AWS_SESSION_TOKEN="" read into Credentials: no x-amz-security-token is sent (moto
    answers an empty one 400 InvalidToken)."""
    async with verifying(Verifier()) as (verifier, server, request):
        empty = signed(request, Counting(""), "s3", "us-east-1", clock=lambda: DATE)
        assert await answer(empty(b"GET", server.url("/b/k"))) == (b"200", b"")
    assert b"x-amz-security-token" not in [n for n, _ in verifier.last.headers]
    url = presigned_url(Credentials(KEY_ID, SECRET, ""), b"GET", AWS_URL, "s3", "us-east-1")
    assert "X-Amz-Security-Token" not in dict(parse_qsl(urlsplit(url).query))


async def test_a_callers_checksum_header_is_signed_and_sent_once() -> None:
    """The S3 package's part checksum, computed as it read the part: checked by the server."""
    own = b"x-amz-checksum-crc32c"
    headers = [(own, crc_header_value("crc32c", CALLERS)), *sized(CALLERS)]
    async with verifying() as (verifier, server, request):
        for payload in ("signed", "unsigned", "streaming"):
            response = s3(request, payload=payload, checksum="crc64nvme")(
                b"PUT", server.url("/b/k"), headers=headers, body=streamed(CALLERS)
            )
            assert await answer(response) == (b"200", b"")
            assert [v for n, v in verifier.last.headers if n == own] == [headers[0][1]]
            assert verifier.last.trailers == []
            assert "x-amz-checksum-crc32c" in verifier.last.signed_names()
