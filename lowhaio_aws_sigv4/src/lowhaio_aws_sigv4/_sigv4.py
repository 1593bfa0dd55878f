"""AWS Signature Version 4 around a lowhaio `request`, and presigned URLs.

Strategy: the signature covers what the core will send, byte for byte: the path and query come
from `lowhaio.target_of`, the same function the core uses, and are put in canonical form the
way AWS does (decoded, then encoded with only RFC 3986 unreserved bytes left bare, the query
sorted). Each call is signed afresh with the credentials the caller's async callable gives, so
wrappers outside this one (retries, redirects) get a new signature for every attempt and hop.

Payloads: "signed" hashes the body in a first pass over its (replayable) factory, so nothing
is buffered; "unsigned" sends UNSIGNED-PAYLOAD; "streaming" sends the body as aws-chunked,
each chunk signed, chained from the request's signature (S3's
STREAMING-AWS4-HMAC-SHA256-PAYLOAD), with the exact content-length computed up front.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, NamedTuple
from urllib.parse import quote, unquote_to_bytes, urlsplit, urlunsplit

from lowhaio import (
    BodyFactory,
    HttpInvalidRequestError,
    Params,
    Request,
    RequestHeaders,
    Response,
    empty_body,
    target_of,
)

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = b"UNSIGNED-PAYLOAD"
STREAMING_PAYLOAD = b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

# S3 accepts aws-chunked chunks of at least 8 KiB but the last; 64 KiB is what its documented
# example and the AWS SDKs use.
CHUNK_BYTES = 64 * 1024
MIN_CHUNK_BYTES = 8 * 1024

# Headers left out of the signature: hop-by-hop, or changed by proxies on the way.
UNSIGNED_HEADERS = frozenset(
    (b"connection", b"expect", b"user-agent", b"x-amzn-trace-id", b"transfer-encoding")
)

Payload = Literal["signed", "unsigned", "streaming"]
_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})
_spaces = re.compile(rb"\s+")


class Credentials(NamedTuple):
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:
        # Shown in logs, tracebacks and debuggers: the secret and the token never are.
        token = "None" if self.session_token is None else "'...'"
        return (
            f"Credentials(access_key_id={self.access_key_id!r}, secret_access_key='...',"
            f" session_token={token})"
        )


GetCredentials = Callable[[], Awaitable[Credentials]]


def static_credentials(
    access_key_id: str, secret_access_key: str, session_token: str | None = None
) -> GetCredentials:
    """A `credentials` callable that always gives the same credentials."""
    credentials = Credentials(access_key_id, secret_access_key, session_token)

    async def get_credentials() -> Credentials:
        return credentials

    return get_credentials


def utc_now() -> datetime:
    return datetime.now(UTC)


# Canonical form -------------------------------------------------------------------------------


def _aws_quote(text: str) -> str:
    # Decoded to bytes, not text: a byte that is not UTF-8 (%FF) is signed as it is sent.
    return quote(unquote_to_bytes(text), safe="-_.~")


def canonical_uri(target: bytes) -> bytes:
    """The path of a request target as AWS canonicalises it for S3: each segment decoded, then
    encoded with only unreserved bytes bare (no normalisation, encoded once)."""
    path = target.partition(b"?")[0].decode("ascii")
    return "/".join(_aws_quote(segment) for segment in path.split("/")).encode()


def canonical_query(target: bytes) -> bytes:
    """The query of a request target in canonical form: names and values decoded, encoded with
    only unreserved bytes bare, sorted by name, then value."""
    query = target.partition(b"?")[2].decode("ascii")
    pairs = []
    for item in query.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append((_aws_quote(name), _aws_quote(value)))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs)).encode()


def canonical_headers(headers: RequestHeaders) -> tuple[bytes, bytes]:
    """The canonical header block and the signed header names: names lowercased and sorted,
    values trimmed with inner runs of whitespace made one space, repeats joined by commas."""
    values: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        lower = name.lower()
        if lower not in UNSIGNED_HEADERS:
            values.setdefault(lower, []).append(_spaces.sub(b" ", value.strip()))
    names = sorted(values)
    block = b"".join(b"%s:%s\n" % (name, b",".join(values[name])) for name in names)
    return block, b";".join(names)


def canonical_request(
    method: bytes, target: bytes, headers: RequestHeaders, payload_hash: bytes
) -> bytes:
    block, signed_names = canonical_headers(headers)
    return b"\n".join(
        (
            method,
            canonical_uri(target),
            canonical_query(target),
            block,
            signed_names,
            payload_hash,
        )
    )


def scope(date: datetime, region: str, service: str) -> str:
    return f"{date:%Y%m%d}/{region}/{service}/aws4_request"


def string_to_sign(date: datetime, credential_scope: str, creq: bytes) -> bytes:
    return "\n".join(
        (ALGORITHM, f"{date:%Y%m%dT%H%M%SZ}", credential_scope, hashlib.sha256(creq).hexdigest())
    ).encode()


def signing_key(secret_access_key: str, date: datetime, region: str, service: str) -> bytes:
    key = ("AWS4" + secret_access_key).encode()
    for part in (f"{date:%Y%m%d}", region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _hmac_hex(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


# Streaming payload (aws-chunked) ------------------------------------------------------------


def chunk_signature(
    key: bytes, date: datetime, credential_scope: str, previous: str, chunk: bytes | memoryview
) -> str:
    """The signature of one aws-chunked chunk, chained from the previous one's."""
    to_sign = "\n".join(
        (
            f"{ALGORITHM}-PAYLOAD",
            f"{date:%Y%m%dT%H%M%SZ}",
            credential_scope,
            previous,
            EMPTY_SHA256,
            hashlib.sha256(chunk).hexdigest(),
        )
    ).encode()
    return _hmac_hex(key, to_sign)


def aws_chunked_length(decoded_length: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """The content-length of a body of `decoded_length` bytes sent as aws-chunked."""
    full, rest = divmod(decoded_length, chunk_bytes)
    sizes = [chunk_bytes] * full + ([rest] if rest else []) + [0]
    # hex size, ";chunk-signature=", 64 hex digits, CRLF, data, CRLF
    return sum(len(f"{size:x}") + 17 + 64 + 2 + size + 2 for size in sizes)


async def _aws_chunked(
    chunks: AsyncIterator[bytes | bytearray | memoryview],
    key: bytes,
    date: datetime,
    credential_scope: str,
    seed_signature: str,
    chunk_bytes: int,
) -> AsyncIterator[bytes]:
    previous = seed_signature

    def encoded(data: bytes | memoryview) -> bytes:
        nonlocal previous
        previous = chunk_signature(key, date, credential_scope, previous, data)
        size = memoryview(data).nbytes
        return b"".join((b"%x;chunk-signature=%s\r\n" % (size, previous.encode()), data, b"\r\n"))

    pending = bytearray()  # what the caller yielded but does not fill a chunk yet
    async for chunk in chunks:
        pending += chunk
        while len(pending) >= chunk_bytes:
            yield encoded(bytes(pending[:chunk_bytes]))
            del pending[:chunk_bytes]
    if pending:
        yield encoded(bytes(pending))
    yield encoded(b"")


# The wrapper ------------------------------------------------------------------------------


async def _sha256_of(body: BodyFactory, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bytes:
    digest = hashlib.sha256()
    async for chunk in body(*args, **kwargs):
        digest.update(chunk)
    return digest.hexdigest().encode()


def _declared_length(headers: tuple[tuple[bytes, bytes], ...]) -> int:
    for name, value in headers:
        if name.lower() == b"content-length" and value.isdigit():
            return int(value)
    raise HttpInvalidRequestError("a streaming payload needs the body's content-length")


def signed(
    request: Request,
    credentials: GetCredentials,
    service: str,
    region: str,
    *,
    payload: Payload = "signed",
    chunk_bytes: int = CHUNK_BYTES,
    clock: Callable[[], datetime] = utc_now,
) -> Request:
    """Wrap `request` so that every call is signed with AWS Signature Version 4.

    `credentials` is an async callable returning `Credentials`; it is called for every request,
    so it can refresh them. `payload` is "signed" (the default: accepted by every AWS service,
    and the body is checked by the signature; the body factory is read twice, once to hash it),
    "unsigned" (UNSIGNED-PAYLOAD: the body is read once; TLS protects it on the way) or
    "streaming" (aws-chunked, S3 only: read once, every chunk of `chunk_bytes` signed; needs a
    content-length header; a request without a body factory is signed as an empty payload).
    Secrets and signatures never appear in exception messages.
    """
    if chunk_bytes < MIN_CHUNK_BYTES:
        raise ValueError(f"chunk_bytes must be at least {MIN_CHUNK_BYTES} (S3's minimum)")

    async def signed_request(
        method: bytes,
        url: str,
        params: Params = (),
        headers: RequestHeaders = (),
        body: BodyFactory = empty_body,
        body_args: tuple[Any, ...] = (),
        body_kwargs: Mapping[str, Any] = _NO_KWARGS,
    ) -> Response:
        params, headers = tuple(params), tuple(headers)
        creds = await credentials()
        date = clock().astimezone(UTC)
        host, target = target_of(url, params)
        credential_scope = scope(date, region, service)
        key = signing_key(creds.secret_access_key, date, region, service)

        added = [(b"x-amz-date", f"{date:%Y%m%dT%H%M%SZ}".encode())]
        # A request without a body (a GET, say) has nothing to stream: its empty payload is
        # signed as such.
        mode = "signed" if payload == "streaming" and body is empty_body else payload
        if mode == "signed":
            if not callable(body):  # refused as the core would, before a first pass
                raise HttpInvalidRequestError(
                    f"body must be a factory returning an async iterable, not {type(body).__name__}"
                )
            payload_hash = await _sha256_of(body, body_args, body_kwargs)
        elif mode == "unsigned":
            payload_hash = UNSIGNED_PAYLOAD
        else:
            decoded = _declared_length(headers)
            payload_hash = STREAMING_PAYLOAD
            headers = tuple((k, v) for k, v in headers if k.lower() != b"content-length")
            added += [
                (b"content-encoding", b"aws-chunked"),
                (b"content-length", b"%d" % aws_chunked_length(decoded, chunk_bytes)),
                (b"x-amz-decoded-content-length", b"%d" % decoded),
            ]
        if service == "s3" or mode != "signed":
            added.append((b"x-amz-content-sha256", payload_hash))
        if creds.session_token is not None:
            added.append((b"x-amz-security-token", creds.session_token.encode()))
        if not any(name.lower() == b"host" for name, _ in headers):
            added.append((b"host", host))
        all_headers = headers + tuple(added)

        creq = canonical_request(method, target, all_headers, payload_hash)
        signature = _hmac_hex(key, string_to_sign(date, credential_scope, creq))
        _, signed_names = canonical_headers(all_headers)
        authorization = (
            f"{ALGORITHM} Credential={creds.access_key_id}/{credential_scope}, "
            f"SignedHeaders={signed_names.decode()}, Signature={signature}"
        ).encode()
        sent_headers = headers + tuple(h for h in added if h[0] != b"host")
        sent_headers += ((b"authorization", authorization),)
        if mode == "streaming":
            return await request(
                method,
                url,
                params,
                sent_headers,
                _aws_chunked_factory(body, key, date, credential_scope, signature, chunk_bytes),
                body_args,
                body_kwargs,
            )
        return await request(method, url, params, sent_headers, body, body_args, body_kwargs)

    return signed_request


def _aws_chunked_factory(
    body: BodyFactory,
    key: bytes,
    date: datetime,
    credential_scope: str,
    seed_signature: str,
    chunk_bytes: int,
) -> Callable[..., AsyncIterator[bytes]]:
    def factory(*args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
        chunks = aiter(body(*args, **kwargs))
        return _aws_chunked(chunks, key, date, credential_scope, seed_signature, chunk_bytes)

    return factory


# Presigned URLs ---------------------------------------------------------------------------


def presigned_url(
    credentials: Credentials,
    method: bytes,
    url: str,
    service: str,
    region: str,
    *,
    expires: int = 3600,
    params: Params = (),
    clock: Callable[[], datetime] = utc_now,
) -> str:
    """A URL that lets its holder make this one request, signed in its query, for `expires`
    seconds (query-string authentication; the payload is UNSIGNED-PAYLOAD; only `host` is
    signed). Synchronous: it takes `Credentials` themselves, not the async callable that
    `signed` takes (`presigned_url(await get_credentials(), ...)`)."""
    if not isinstance(credentials, Credentials):
        # The async callable `signed` takes, passed here too, would fail later as an
        # AttributeError that names neither the argument nor the fix.
        raise TypeError(
            "presigned_url takes Credentials, not "
            f"{type(credentials).__name__}: for a credentials callable, pass"
            " `await credentials()`"
        )
    date = clock().astimezone(UTC)
    credential_scope = scope(date, region, service)
    auth_params = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{credentials.access_key_id}/{credential_scope}"),
        ("X-Amz-Date", f"{date:%Y%m%dT%H%M%SZ}"),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", "host"),
    ]
    if credentials.session_token is not None:
        auth_params.append(("X-Amz-Security-Token", credentials.session_token))
    host, target = target_of(url, (*tuple(params), *auth_params))
    creq = canonical_request(method, target, ((b"host", host),), UNSIGNED_PAYLOAD)
    key = signing_key(credentials.secret_access_key, date, region, service)
    signature = _hmac_hex(key, string_to_sign(date, credential_scope, creq))
    parts = urlsplit(url)
    query = target.partition(b"?")[2].decode() + f"&X-Amz-Signature={signature}"
    return urlunsplit((parts.scheme, parts.netloc, target.partition(b"?")[0].decode(), query, ""))
