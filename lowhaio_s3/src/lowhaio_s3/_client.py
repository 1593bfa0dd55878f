"""One S3 request of a transfer, over the caller's `request`: sent, its answer read whole
within a bound, an error answer turned into an `S3ResponseError`."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import NamedTuple

from lowhaio import BodyFactory, Headers, Params, Request, RequestHeaders, empty_body

from ._errors import S3ProtocolError, S3ResponseError
from ._target import S3Object
from ._xml import error_fields

# How much of an answer is read: an error document, a result (CreateMultipartUpload,
# CompleteMultipartUpload, which S3 may pad with spaces while it works), a list (1,000 parts).
ERROR_LIMIT = 64 * 1024
RESULT_LIMIT = 1024 * 1024
LIST_LIMIT = 8 * 1024 * 1024

# The pieces a buffered body is sent in.
SLICE_BYTES = 256 * 1024

# Headers a caller may not give: this package sets them.
RESERVED_HEADERS = frozenset(
    (
        b"content-length",
        b"transfer-encoding",
        b"range",
        b"if-match",
        b"x-amz-sdk-checksum-algorithm",
    )
)


def caller_headers(headers: RequestHeaders) -> tuple[tuple[bytes, bytes], ...]:
    """The caller's headers, as a tuple, unless they hold one that this package sets."""
    headers = tuple(headers)
    for name, _ in headers:
        lower = name.lower()
        if lower in RESERVED_HEADERS or lower.startswith(b"x-amz-checksum-"):
            raise ValueError(f"the header {name!r} is set by lowhaio_s3: leave it out")
    return headers


def header(headers: Headers, name: bytes) -> bytes | None:
    """The first value of the field `name` (lowercase), or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def slices(data: memoryview) -> BodyFactory:
    """A replayable body factory that yields `data` in views of `SLICE_BYTES`: no copy."""

    async def body() -> AsyncIterator[memoryview]:
        for start in range(0, data.nbytes, SLICE_BYTES):
            yield data[start : start + SLICE_BYTES]

    return body


async def read_at_most(body: AsyncIterable[bytes], limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of `body`, and whether that was all of it (if not, leaving the loop
    closes its connection)."""
    data = bytearray()
    async for chunk in body:
        data += chunk
        if len(data) > limit:
            return bytes(data[:limit]), False
    return bytes(data), True


class Answer(NamedTuple):
    status: int
    headers: Headers
    document: bytes


class Client:
    """Requests about one object, each answered whole: `call` returns a 2xx `Answer`, and
    raises `S3ResponseError` (or `error_class`) for any other status."""

    __slots__ = ("headers", "request", "target")

    def __init__(self, request: Request, target: S3Object, headers: Headers = ()) -> None:
        self.request = request
        self.target = target
        self.headers = headers  # sent with every request (the download's)

    def error(
        self,
        operation: str,
        status: int,
        document: bytes,
        upload_id: str | None = None,
        error_class: type[S3ResponseError] = S3ResponseError,
    ) -> S3ResponseError:
        fields = error_fields(document)
        return error_class(self.target, operation, status, *fields, upload_id=upload_id)

    def protocol_error(
        self, operation: str, detail: str, upload_id: str | None = None
    ) -> S3ProtocolError:
        return S3ProtocolError(detail, self.target, operation, upload_id)

    async def call(
        self,
        method: bytes,
        operation: str,
        *,
        params: Params = (),
        headers: RequestHeaders = (),
        data: memoryview | bytes | None = None,
        body: BodyFactory | None = None,
        length: int = 0,
        limit: int = RESULT_LIMIT,
        upload_id: str | None = None,
        accept: Callable[[int], bool] = lambda status: 200 <= status < 300,
    ) -> Answer:
        """Send the request (with `data` as its body, or what `body` yields, `length` bytes),
        read its answer whole: a status that `accept` takes is returned, any other raised."""
        headers = (*self.headers, *headers)
        if data is not None:
            view = memoryview(data)
            body, length = slices(view), view.nbytes
        if body is not None:
            headers += ((b"content-length", b"%d" % length),)
        code, answer_headers, answer = await self.request(
            method, self.target.url, params, headers, empty_body if body is None else body
        )
        status = int(code)
        ok = accept(status)
        async with answer:
            document, whole = await read_at_most(answer, limit if ok else ERROR_LIMIT)
        if not ok:
            raise self.error(operation, status, document, upload_id)
        if not whole:
            raise self.protocol_error(
                operation, f"the answer is longer than {limit} bytes", upload_id
            )
        return Answer(status, answer_headers, document)
