"""AWS Signature Version 4 around a lowhaio `request`, and presigned URLs.

Strategy: the signature covers what the core will send, byte for byte: the path and query come
from `lowhaio.target_of`, the same function the core uses, and are put in canonical form the
way AWS does: for S3, the path decoded, then encoded with only RFC 3986 unreserved bytes left
bare, never normalised; for other services, the path as sent with its dot segments and runs of
slashes removed, then encoded again. The query is sorted. Each call is signed afresh with the
credentials the caller's async callable gives, so wrappers outside this one (retries,
redirects) get a new signature for every attempt and hop.

Payloads: "signed" hashes the body in a first pass over its (replayable) factory, so nothing
is buffered; "unsigned" sends UNSIGNED-PAYLOAD; "streaming" sends the body as aws-chunked,
each chunk signed, chained from the request's signature (S3's
STREAMING-AWS4-HMAC-SHA256-PAYLOAD), with the exact content-length computed up front.

Checksums (S3's flexible checksums) cost no other read of the body: with "signed" the first
pass computes it too, and it goes in a header; with "unsigned" and "streaming" it goes in a
trailer after the aws-chunked body (STREAMING-UNSIGNED-PAYLOAD-TRAILER, and
STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, whose trailer is signed too).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
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

from ._checksums import Checksum, ChecksumAlgorithm, _algorithm, trailer_length

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = b"UNSIGNED-PAYLOAD"
STREAMING_PAYLOAD = b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_PAYLOAD_TRAILER = b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_PAYLOAD_TRAILER = b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

# S3 accepts aws-chunked chunks of at least 8 KiB but the last; 64 KiB is what its documented
# example and the AWS SDKs use.
CHUNK_BYTES = 64 * 1024
MIN_CHUNK_BYTES = 8 * 1024

# A presigned URL lives at most 7 days: S3 refuses a longer X-Amz-Expires.
MAX_EXPIRES = 7 * 24 * 3600

# The signing names signed by S3's rules (the path encoded once, never normalised, and
# x-amz-content-sha256 always sent), as the AWS SDKs sign them; every other service is signed
# by the generic rules (the path normalised and encoded twice).
S3_SERVICES = frozenset(("s3", "s3-object-lambda", "s3-outposts", "s3express"))

# Headers left out of the signature: hop-by-hop, or changed by proxies on the way.
UNSIGNED_HEADERS = frozenset(
    (b"connection", b"expect", b"user-agent", b"x-amzn-trace-id", b"transfer-encoding")
)

# Headers that only the signer sends: from the credentials, the clock and its own framing. A
# caller's would go beside the signer's, and a server refuses the request (SeaweedFS: 403).
SIGNER_HEADERS: Mapping[bytes, str] = MappingProxyType(
    {
        b"authorization": "the signer writes it",
        b"x-amz-date": "the signer sends the time it signs with (signed(..., clock=...) sets it)",
        b"x-amz-security-token": "the signer sends the credentials' session_token",
        b"x-amz-decoded-content-length": "the signer sends it with an aws-chunked body",
        b"x-amz-trailer": "the signer sends it with the checksum trailer it writes",
    }
)

# The x-amz-checksum-* headers that are not a checksum value: GetObject's mode, and
# CreateMultipartUpload's algorithm and type.
_CHECKSUM_OPTIONS = frozenset(
    (b"x-amz-checksum-mode", b"x-amz-checksum-algorithm", b"x-amz-checksum-type")
)

Payload = Literal["signed", "unsigned", "streaming"]
PAYLOADS: tuple[Payload, ...] = ("signed", "unsigned", "streaming")
_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})
_spaces = re.compile(rb"\s+")
_sha256_hex = re.compile(rb"[0-9a-f]{64}")
# A host of AWS (with its port, if any): where checksums are on by default.
_aws_host = re.compile(rb"(?:[^:]*\.)?amazonaws\.com(?:\.cn)?\.?(?::\d*)?")


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


def _remove_dot_segments(path: str) -> str:
    """RFC 3986's remove_dot_segments, and runs of slashes made one, as AWS normalises paths
    for every service but S3."""
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    trailing = "/" if path.endswith("/") and kept else ""
    return "/" + "/".join(kept) + trailing


def canonical_uri(target: bytes, service: str = "s3") -> bytes:
    """The path of a request target as AWS canonicalises it. For S3 (`S3_SERVICES`): each
    segment decoded, then encoded with only unreserved bytes bare, not normalised ("//" and
    ".." are part of a key). For other services: the path as sent (percent-encoded once
    already), normalised, then encoded again, "%" included."""
    path = target.partition(b"?")[0].decode("ascii")
    if service in S3_SERVICES:
        return "/".join(_aws_quote(segment) for segment in path.split("/")).encode()
    return quote(_remove_dot_segments(path), safe="/").encode()


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


def canonical_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
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
    method: bytes,
    target: bytes,
    headers: RequestHeaders,
    payload_hash: bytes,
    service: str = "s3",
) -> bytes:
    """The canonical request of `method` to `target` with `headers` (`host` among them), for
    `service` (its path rule: see `canonical_uri`)."""
    block, signed_names = canonical_headers(headers)
    return b"\n".join(
        (
            method,
            canonical_uri(target, service),
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


def trailer_signature(
    key: bytes,
    date: datetime,
    credential_scope: str,
    previous: str,
    trailers: Iterable[tuple[bytes, bytes]],
) -> str:
    """The signature of an aws-chunked body's trailers (`x-amz-trailer-signature`), chained
    from the final, empty chunk's: over the SHA-256 of their canonical header block."""
    block, _ = canonical_headers(trailers)
    to_sign = "\n".join(
        (
            f"{ALGORITHM}-TRAILER",
            f"{date:%Y%m%dT%H%M%SZ}",
            credential_scope,
            previous,
            hashlib.sha256(block).hexdigest(),
        )
    ).encode()
    return _hmac_hex(key, to_sign)


# ";chunk-signature=" and 64 hex digits; "x-amz-trailer-signature:", 64 hex digits and CRLF.
_CHUNK_SIGNATURE_BYTES = 17 + 64
_TRAILER_SIGNATURE_BYTES = 24 + 64 + 2


def aws_chunked_length(
    decoded_length: int,
    chunk_bytes: int = CHUNK_BYTES,
    *,
    signed: bool = True,
    checksum: ChecksumAlgorithm | None = None,
) -> int:
    """The content-length of a body of `decoded_length` bytes sent as aws-chunked: its chunks
    signed or not, with a trailer of a `checksum` or none."""
    signature = _CHUNK_SIGNATURE_BYTES if signed else 0
    full, rest = divmod(decoded_length, chunk_bytes)
    # hex size, the signature, CRLF, data, CRLF; then the final chunk: "0", the signature, CRLF
    length = full * (len(f"{chunk_bytes:x}") + signature + 2 + chunk_bytes + 2)
    if rest:
        length += len(f"{rest:x}") + signature + 2 + rest + 2
    length += 1 + signature + 2
    if checksum is not None:
        length += trailer_length(checksum) + (_TRAILER_SIGNATURE_BYTES if signed else 0)
    return length + 2  # the CRLF that ends the trailers


class _ChunkSigner(NamedTuple):
    key: bytes
    date: datetime
    credential_scope: str
    seed: str  # the request's signature


async def _aws_chunked(
    chunks: AsyncIterator[bytes | bytearray | memoryview],
    chunk_bytes: int,
    signer: _ChunkSigner | None,
    checksum: Checksum | None,
) -> AsyncIterator[bytes]:
    previous = signer.seed if signer is not None else ""

    def head(data: bytes) -> bytes:
        nonlocal previous
        if checksum is not None:
            checksum.update(data)
        if signer is None:
            return b"%x\r\n" % len(data)
        previous = chunk_signature(signer.key, signer.date, signer.credential_scope, previous, data)
        return b"%x;chunk-signature=%s\r\n" % (len(data), previous.encode())

    pending = bytearray()  # what the caller yielded but does not fill a chunk yet
    async for chunk in chunks:
        pending += chunk
        while len(pending) >= chunk_bytes:
            data = bytes(pending[:chunk_bytes])
            del pending[:chunk_bytes]
            yield b"".join((head(data), data, b"\r\n"))
    if pending:
        data = bytes(pending)
        yield b"".join((head(data), data, b"\r\n"))
    last = [head(b"")]  # then the trailers, then the CRLF that ends them
    if checksum is not None:
        trailer = (checksum.header_name, checksum.header_value())
        last.append(b"%s:%s\r\n" % trailer)
        if signer is not None:
            signature = trailer_signature(
                signer.key, signer.date, signer.credential_scope, previous, (trailer,)
            )
            last.append(b"x-amz-trailer-signature:%s\r\n" % signature.encode())
    last.append(b"\r\n")
    yield b"".join(last)


def _aws_chunked_factory(
    body: BodyFactory,
    chunk_bytes: int,
    signer: _ChunkSigner | None,
    algorithm: ChecksumAlgorithm | None,
) -> Callable[..., AsyncIterator[bytes]]:
    # Each call starts over (from the seed signature, with a new checksum): a wrapper under the
    # signer that sends the body again sends the same bytes.
    def factory(*args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
        chunks = aiter(body(*args, **kwargs))
        checksum = None if algorithm is None else Checksum(algorithm)
        return _aws_chunked(chunks, chunk_bytes, signer, checksum)

    return factory


# The wrapper ------------------------------------------------------------------------------


async def _first_pass(
    body: BodyFactory,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    checksum: Checksum | None,
) -> bytes:
    """The body's SHA-256 in hex, and its checksum updated, in one read of the body."""
    digest = hashlib.sha256()
    async for chunk in body(*args, **kwargs):
        digest.update(chunk)
        if checksum is not None:
            checksum.update(chunk)
    return digest.hexdigest().encode()


def _declared_length(headers: tuple[tuple[bytes, bytes], ...]) -> int:
    for name, value in headers:
        if name.lower() == b"content-length" and value.isdigit():
            return int(value)
    raise HttpInvalidRequestError(
        "an aws-chunked payload (payload='streaming', or a checksum in a trailer) needs the"
        " body's content-length"
    )


def _caller_content_sha256(headers: tuple[tuple[bytes, bytes], ...]) -> bytes | None:
    """The caller's x-amz-content-sha256, checked: the body's SHA-256, or UNSIGNED-PAYLOAD."""
    given = [value for name, value in headers if name.lower() == b"x-amz-content-sha256"]
    if not given:
        return None
    if len(given) > 1:
        raise HttpInvalidRequestError("headers hold x-amz-content-sha256 more than once")
    (value,) = given
    if value != UNSIGNED_PAYLOAD and not _sha256_hex.fullmatch(value):
        raise HttpInvalidRequestError(
            "x-amz-content-sha256 given in headers must be the body's SHA-256 (64 lowercase hex"
            " digits) or UNSIGNED-PAYLOAD; for aws-chunked bodies, use payload='streaming'"
        )
    return value


def _is_complete_multipart_upload(method: bytes, target: bytes) -> bool:
    """POST ?uploadId=...: its x-amz-checksum-* headers name the whole object's checksum,
    not its body's (an XML list of parts)."""
    if method.upper() != b"POST":
        return False
    query = target.partition(b"?")[2]
    return any(item.partition(b"=")[0] == b"uploadId" for item in query.split(b"&"))


def signed(
    request: Request,
    credentials: GetCredentials,
    service: str,
    region: str,
    *,
    payload: Payload = "signed",
    checksum: ChecksumAlgorithm | Literal["auto"] | None = "auto",
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

    `checksum` ("crc32", "crc32c", "crc64nvme" or None) sends S3's checksum of each request
    body: in a header with "signed", in a trailer with "unsigned" and "streaming" (aws-chunked,
    needing a content-length). "auto", the default, is "crc32" for S3 on AWS's own hosts
    (`*.amazonaws.com`, `*.amazonaws.com.cn`), and None elsewhere: many S3-compatible servers
    refuse those headers. None is computed for CompleteMultipartUpload (POST ?uploadId=), and
    a caller's own x-amz-checksum-<algorithm> header is sent instead of one computed.

    A caller's x-amz-content-sha256 (the body's SHA-256, or UNSIGNED-PAYLOAD) chooses that
    request's payload hash: the body is sent as it is, read once, with no checksum computed.
    Headers that the signer sends itself (`SIGNER_HEADERS`, and x-amz-sdk-checksum-algorithm
    beside a checksum it computes) are refused in `headers` (HttpInvalidRequestError, naming
    the header). Other services than S3 are signed by AWS's generic path rule (see
    `canonical_uri`). Secrets and signatures never appear in exception messages.
    """
    if chunk_bytes < MIN_CHUNK_BYTES:
        raise ValueError(f"chunk_bytes must be at least {MIN_CHUNK_BYTES} (S3's minimum)")
    if payload not in PAYLOADS:
        raise ValueError(f"payload must be one of {', '.join(PAYLOADS)}: {payload!r}")
    if checksum not in ("auto", None):
        _algorithm(checksum)
    s3_rules = service in S3_SERVICES

    def checksum_for(
        method: bytes, target: bytes, host: bytes, headers: tuple[tuple[bytes, bytes], ...]
    ) -> ChecksumAlgorithm | None:
        if checksum is None or _is_complete_multipart_upload(method, target):
            return None
        for name, _ in headers:
            lower = name.lower()
            if lower.startswith(b"x-amz-checksum-") and lower not in _CHECKSUM_OPTIONS:
                return None  # the caller's
        if checksum == "auto":
            return "crc32" if s3_rules and _aws_host.fullmatch(host.lower()) else None
        return checksum

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
        # Refused before anything is fetched, read or sent.
        given_names = {name.lower() for name, _ in headers}
        for name, why in SIGNER_HEADERS.items():
            if name in given_names:
                raise HttpInvalidRequestError(f"headers must not hold {name.decode()}: {why}")
        given_hash = _caller_content_sha256(headers)
        if not callable(body):  # refused as the core would, before a first pass or a wrapping
            raise HttpInvalidRequestError(
                f"body must be a factory returning an async iterable, not {type(body).__name__}"
            )
        host, target = target_of(url, params)
        signed_host = next((v for n, v in headers if n.lower() == b"host"), host)
        algorithm = None
        if body is not empty_body and given_hash is None:
            algorithm = checksum_for(method, target, signed_host, headers)
        if algorithm is not None and b"x-amz-sdk-checksum-algorithm" in given_names:
            raise HttpInvalidRequestError(
                "headers must not hold x-amz-sdk-checksum-algorithm: the signer sends it with the"
                " checksum it computes (give x-amz-checksum-<algorithm> too, or checksum=None)"
            )

        creds = await credentials()
        token = creds.session_token or None  # an empty one (AWS_SESSION_TOKEN="") is none
        date = clock().astimezone(UTC)
        credential_scope = scope(date, region, service)
        key = signing_key(creds.secret_access_key, date, region, service)

        added = [(b"x-amz-date", f"{date:%Y%m%dT%H%M%SZ}".encode())]
        chunked = False
        if given_hash is not None:
            payload_hash = given_hash
        elif body is empty_body and payload != "unsigned":
            # A request without a body (a GET, say) has nothing to stream: its empty payload is
            # signed as such.
            payload_hash = EMPTY_SHA256.encode()
        elif payload == "signed":
            in_header = None if algorithm is None else Checksum(algorithm)
            payload_hash = await _first_pass(body, body_args, body_kwargs, in_header)
            if in_header is not None:
                added += [
                    (in_header.header_name, in_header.header_value()),
                    (b"x-amz-sdk-checksum-algorithm", in_header.sdk_algorithm),
                ]
        elif payload == "unsigned" and algorithm is None:
            payload_hash = UNSIGNED_PAYLOAD
        else:
            chunked = True
            if payload == "unsigned":
                payload_hash = STREAMING_UNSIGNED_PAYLOAD_TRAILER
            elif algorithm is None:
                payload_hash = STREAMING_PAYLOAD
            else:
                payload_hash = STREAMING_PAYLOAD_TRAILER
            decoded = _declared_length(headers)
            length = aws_chunked_length(
                decoded, chunk_bytes, signed=payload == "streaming", checksum=algorithm
            )
            # The caller's content-encoding (gzip, say) is kept after aws-chunked, which S3
            # takes off: it stores the rest.
            encodings = [v for n, v in headers if n.lower() == b"content-encoding"]
            headers = tuple(
                (n, v)
                for n, v in headers
                if n.lower() not in (b"content-length", b"content-encoding")
            )
            added += [
                (b"content-encoding", b",".join((b"aws-chunked", *encodings))),
                (b"content-length", b"%d" % length),
                (b"x-amz-decoded-content-length", b"%d" % decoded),
            ]
            if algorithm is not None:
                trailer = Checksum(algorithm)
                added += [
                    (b"x-amz-sdk-checksum-algorithm", trailer.sdk_algorithm),
                    (b"x-amz-trailer", trailer.header_name),
                ]
        # S3 wants it always; other services when the payload is not plainly hashed.
        if given_hash is None and (s3_rules or not _sha256_hex.fullmatch(payload_hash)):
            added.append((b"x-amz-content-sha256", payload_hash))
        if token is not None:
            added.append((b"x-amz-security-token", token.encode()))
        if b"host" not in given_names:
            added.append((b"host", host))
        all_headers = headers + tuple(added)

        creq = canonical_request(method, target, all_headers, payload_hash, service)
        signature = _hmac_hex(key, string_to_sign(date, credential_scope, creq))
        _, signed_names = canonical_headers(all_headers)
        authorization = (
            f"{ALGORITHM} Credential={creds.access_key_id}/{credential_scope}, "
            f"SignedHeaders={signed_names.decode()}, Signature={signature}"
        ).encode()
        sent_headers = headers + tuple(h for h in added if h[0] != b"host")
        sent_headers += ((b"authorization", authorization),)
        if chunked:
            signer = None
            if payload == "streaming":
                signer = _ChunkSigner(key, date, credential_scope, signature)
            body = _aws_chunked_factory(body, chunk_bytes, signer, algorithm)
        return await request(method, url, params, sent_headers, body, body_args, body_kwargs)

    return signed_request


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
    seconds, from 1 to 604800 (7 days, S3's limit) (query-string authentication; the payload
    is UNSIGNED-PAYLOAD; only `host` is signed). Synchronous: it takes `Credentials`
    themselves, not the async callable that `signed` takes (`presigned_url(await
    get_credentials(), ...)`). A URL with userinfo (`user:password@`) is refused."""
    if not isinstance(credentials, Credentials):
        # The async callable `signed` takes, passed here too, would fail later as an
        # AttributeError that names neither the argument nor the fix.
        raise TypeError(
            "presigned_url takes Credentials, not "
            f"{type(credentials).__name__}: for a credentials callable, pass"
            " `await credentials()`"
        )
    if isinstance(expires, bool) or not isinstance(expires, int):
        raise TypeError(f"expires must be an int of seconds, not {type(expires).__name__}")
    if not 1 <= expires <= MAX_EXPIRES:
        raise ValueError(
            f"expires must be from 1 to {MAX_EXPIRES} seconds (7 days, S3's limit): {expires}"
        )
    parts = urlsplit(url)
    if "@" in parts.netloc:
        # Whoever is given the URL would be given them too.
        raise ValueError(
            "presigned_url: the url has userinfo (user:password@), which it would hand on"
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
    if credentials.session_token:  # an empty one is none
        auth_params.append(("X-Amz-Security-Token", credentials.session_token))
    host, target = target_of(url, (*tuple(params), *auth_params))
    creq = canonical_request(method, target, ((b"host", host),), UNSIGNED_PAYLOAD, service)
    key = signing_key(credentials.secret_access_key, date, region, service)
    signature = _hmac_hex(key, string_to_sign(date, credential_scope, creq))
    query = target.partition(b"?")[2].decode() + f"&X-Amz-Signature={signature}"
    return urlunsplit((parts.scheme, parts.netloc, target.partition(b"?")[0].decode(), query, ""))
