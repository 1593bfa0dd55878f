"""`upload` and `upload_file`: an S3 object in one PutObject or in parts sent concurrently.

Strategy: the caller's body is read once, in order, in the caller's task, into part-sized
buffers; each full buffer goes to a task of an `asyncio.TaskGroup` that lives for the call and
sends it (UploadPart, retried on its own: the buffer can be sent again), then hands the buffer
back for the next part. At most `concurrency` parts are in flight and one more is being read:
the buffers, (concurrency + 1) x part_size bytes, are all the memory a transfer holds. Any
failure or cancellation cancels the parts in flight and aborts the upload (AbortMultipartUpload,
then ListParts to see that no part remains, again if one does), in a task of its own that a
second cancellation does not stop, bounded by `abort_timeout`.

`upload_file` holds no buffer: a part is read from the file at its offset (`os.pread`) each time
it is sent, and once before to checksum it.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from lowhaio import BodyFactory, Request, RequestHeaders

from ._checksums import CRC32, ChecksumSpec, RunningChecksum, checked
from ._client import LIST_LIMIT, Client, caller_headers, header, slices
from ._errors import S3BodyLengthError, S3Error, S3ResponseError
from ._parallel import Job, bounded
from ._parts import (
    DEFAULT_CONCURRENCY,
    DEFAULT_PART_SIZE,
    MAX_PARTS,
    PartReader,
    part_size_for,
)
from ._retry import Retries, attempt
from ._target import S3Object
from ._xml import (
    CompletedPart,
    ListedUpload,
    complete_request,
    complete_result,
    is_error,
    multipart_uploads,
    parts_listed,
)
from ._xml import upload_id as upload_id_in

_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})

ChecksumChoice = ChecksumSpec | Literal["auto"] | None

DEFAULT_ABORT_ATTEMPTS = 3
DEFAULT_ABORT_TIMEOUT = 60.0

# Aborts that outlive a caller cancelled a second time while it waited for them: held here
# until they end (bounded by their timeout), so that they are not garbage collected.
_ABORTING: set[asyncio.Task[str | None]] = set()


class _Checksum(NamedTuple):
    value: str | None  # base64
    headers: tuple[tuple[bytes, bytes], ...]


class Uploaded(NamedTuple):
    """What an upload stored: its `etag`, `size` and `parts` (0 for a single PutObject),
    `checksum` (base64; for a multipart upload, S3's composite one, `...-N`, if it gave one),
    `upload_id` (None for a PutObject) and `version_id` (in a versioned bucket)."""

    etag: str
    size: int
    parts: int
    checksum: str | None
    upload_id: str | None
    version_id: str | None


def checksum_for(choice: ChecksumChoice, target: S3Object) -> ChecksumSpec | None:
    """The checksum an upload sends: with "auto", CRC32 on AWS's hosts and none elsewhere."""
    if choice == "auto":
        return CRC32 if target.on_aws else None
    return None if choice is None else checked(choice)


async def upload(
    request: Request,
    bucket_url: str,
    key: str,
    body: BodyFactory,
    body_args: tuple[Any, ...] = (),
    body_kwargs: Mapping[str, Any] = _NO_KWARGS,
    *,
    size: int | None = None,
    max_size: int | None = None,
    part_size: int = DEFAULT_PART_SIZE,
    threshold: int | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    checksum: ChecksumChoice = "auto",
    headers: RequestHeaders = (),
    retries: Retries = Retries(),  # noqa: B008 - immutable
    abort_attempts: int = DEFAULT_ABORT_ATTEMPTS,
    abort_timeout: float = DEFAULT_ABORT_TIMEOUT,
) -> Uploaded:
    """Upload what `body(*body_args, **body_kwargs)` yields to `key` in the bucket at
    `bucket_url`, through `request` (signed: `lowhaio_aws_sigv4.signed(...)`).

    The body is read once, in order. An object of at most `threshold` bytes (by default, the
    part size) goes in one PutObject; a larger one in parts of `part_size` bytes (5 MiB to 5
    GiB), raised to a whole number of MiB if `size` (the exact length, when known) or
    `max_size` (the most it can be, when not) would need more than 10,000 parts. Without
    either, the object can be up to 10,000 parts long. A body longer than that, or than `size`
    or `max_size`, or shorter than `size`, raises `S3BodyLengthError`.

    Up to `concurrency` parts are sent at once, each retried on its own by `retries`;
    memory holds at most (concurrency + 1) x part_size bytes. On any failure or cancellation,
    the upload is aborted (see `abort_upload`), `abort_attempts` times at most, within
    `abort_timeout` seconds, and the error raised.

    `checksum`: "auto" (CRC32 on AWS's hosts, none elsewhere: many S3-compatible servers refuse
    the checksum headers), a `ChecksumSpec` (`CRC32`), or None. `headers` (content-type,
    `x-amz-meta-*`, storage class...) go with the PutObject or CreateMultipartUpload.
    """
    if max_size is not None and max_size < 0:
        raise ValueError(f"max_size cannot be negative: {max_size}")
    transfer, threshold = _transfer(
        request,
        bucket_url,
        key,
        size if size is not None else max_size,
        part_size,
        threshold,
        concurrency,
        checksum,
        headers,
        retries,
        abort_attempts,
        abort_timeout,
    )
    part = transfer.part_size
    if size is not None:
        limit, too_long = size, f"the body is longer than its size, {size} bytes"
    elif max_size is not None:
        limit, too_long = max_size, f"the body is longer than max_size, {max_size} bytes"
    else:
        limit = part * MAX_PARTS
        too_long = (
            f"the body is longer than {MAX_PARTS} parts of {part} bytes: give its size, or"
            " max_size, for larger parts"
        )
    target = transfer.client.target

    def refuse(detail: str) -> S3BodyLengthError:
        return S3BodyLengthError(detail, target, "upload")

    reader = PartReader(body, body_args, body_kwargs, limit, size is not None, refuse, too_long)
    try:
        if size is not None:
            first = bytearray(min(size, part))
            await reader.fill(first)
            if size <= threshold:
                await reader.ended()  # raises if the body is longer than its size
                return await transfer.put_buffer(first)
        else:
            first = bytearray()  # grown as it comes: a small object takes no part-sized buffer
            await reader.grow(first, threshold)
            if await reader.ended():
                return await transfer.put_buffer(first)
            await reader.grow(first, part)
        return await transfer.multipart(
            lambda: bounded(transfer.buffered_parts(reader, first), transfer.concurrency),
            lambda: reader.total,
        )
    finally:
        await reader.aclose()


async def upload_file(
    request: Request,
    bucket_url: str,
    key: str,
    path: str | os.PathLike[str],
    *,
    part_size: int = DEFAULT_PART_SIZE,
    threshold: int | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    checksum: ChecksumChoice = "auto",
    headers: RequestHeaders = (),
    retries: Retries = Retries(),  # noqa: B008 - immutable
    abort_attempts: int = DEFAULT_ABORT_ATTEMPTS,
    abort_timeout: float = DEFAULT_ABORT_TIMEOUT,
) -> Uploaded:
    """Upload the file at `path` to `key`, as `upload` does, but each part read from the file
    as it is sent (at its offset, with `os.pread`: twice with a checksum, which is sent before
    the part): no part is held in memory, only a piece of `READ_BYTES` per part in flight. The
    size is the file's when the call begins; the file must not change until it returns."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        transfer, threshold = _transfer(
            request,
            bucket_url,
            key,
            size,
            part_size,
            threshold,
            concurrency,
            checksum,
            headers,
            retries,
            abort_attempts,
            abort_timeout,
        )
        source = _FileRanges(fd, transfer.client.target)
        if size <= threshold:
            return await transfer.put_ranges(source, size)
        return await transfer.multipart(
            lambda: bounded(transfer.ranged_parts(source, size), transfer.concurrency),
            lambda: size,
        )
    finally:
        os.close(fd)


def _transfer(
    request: Request,
    bucket_url: str,
    key: str,
    largest: int | None,
    part_size: int,
    threshold: int | None,
    concurrency: int,
    checksum: ChecksumChoice,
    headers: RequestHeaders,
    retries: Retries,
    abort_attempts: int,
    abort_timeout: float,
) -> tuple[_Upload, int]:
    """The settings checked, before anything is read or sent: the transfer and its threshold."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive int: {concurrency!r}")
    if abort_attempts < 1:
        raise ValueError(f"abort_attempts must be at least 1: {abort_attempts!r}")
    part = part_size_for(largest, None, part_size)
    if threshold is None:
        threshold = part
    elif not 0 <= threshold <= part:
        raise ValueError(f"threshold must be from 0 to the part size, {part}: {threshold}")
    target = S3Object(bucket_url, key)
    transfer = _Upload(
        Client(request, target),
        checksum_for(checksum, target),
        caller_headers(headers),
        part,
        concurrency,
        retries,
        abort_attempts,
        abort_timeout,
    )
    return transfer, threshold


# Read from a file: what a part is, at its offset, as often as it is sent.
READ_BYTES = 128 * 1024


class _FileRanges:
    """A file's bytes from an offset, as a replayable body factory for each part."""

    __slots__ = ("_fd", "_target")

    def __init__(self, fd: int, target: S3Object) -> None:
        self._fd = fd
        self._target = target

    def factory(self, offset: int, length: int) -> BodyFactory:
        return functools.partial(self.chunks, offset, length)

    async def chunks(self, offset: int, length: int) -> AsyncIterator[bytes]:
        end = offset + length
        while offset < end:
            data = os.pread(self._fd, min(READ_BYTES, end - offset), offset)
            if not data:
                raise S3BodyLengthError(
                    f"the file ended at {offset} bytes: it was shortened during the upload",
                    self._target,
                    "upload",
                )
            offset += len(data)
            yield data


class _Upload:
    __slots__ = (
        "abort_attempts",
        "abort_timeout",
        "client",
        "concurrency",
        "done",
        "headers",
        "part_size",
        "retries",
        "spec",
        "upload_id",
    )

    def __init__(
        self,
        client: Client,
        spec: ChecksumSpec | None,
        headers: tuple[tuple[bytes, bytes], ...],
        part_size: int,
        concurrency: int,
        retries: Retries,
        abort_attempts: int,
        abort_timeout: float,
    ) -> None:
        self.client = client
        self.spec = spec
        self.headers = headers
        self.part_size = part_size
        self.concurrency = concurrency
        self.retries = retries
        self.abort_attempts = abort_attempts
        self.abort_timeout = abort_timeout
        self.upload_id = ""
        self.done: dict[int, CompletedPart] = {}  # the parts sent, by number

    def checksum_headers(self, running: RunningChecksum | None) -> _Checksum:
        if running is None or self.spec is None:
            return _Checksum(None, ())
        value = running.b64digest()
        algorithm = self.spec.s3_name.encode()
        # The algorithm named too, as the AWS SDKs do (moto stores the checksum only then).
        return _Checksum(
            value,
            ((self.spec.header, value.encode()), (b"x-amz-sdk-checksum-algorithm", algorithm)),
        )

    def checksum_of(self, data: memoryview) -> _Checksum:
        running = None if self.spec is None else self.spec.new()
        if running is not None:
            running.update(data)
        return self.checksum_headers(running)

    async def checksum_of_range(self, source: _FileRanges, offset: int, length: int) -> _Checksum:
        running = None if self.spec is None else self.spec.new()
        if running is not None:
            async for chunk in source.chunks(offset, length):
                running.update(chunk)
        return self.checksum_headers(running)

    async def put_buffer(self, data: bytearray) -> Uploaded:
        view = memoryview(data)
        return await self.put(slices(view), view.nbytes, self.checksum_of(view))

    async def put_ranges(self, source: _FileRanges, size: int) -> Uploaded:
        checksum = await self.checksum_of_range(source, 0, size)
        return await self.put(source.factory(0, size), size, checksum)

    async def put(self, body: BodyFactory, length: int, checksum: _Checksum) -> Uploaded:
        answer = await attempt(
            self.retries,
            "PutObject",
            lambda: self.client.call(
                b"PUT",
                "PutObject",
                headers=(*self.headers, *checksum.headers),
                body=body,
                length=length,
            ),
        )
        return Uploaded(
            _text(header(answer.headers, b"etag")) or "",
            length,
            0,
            checksum.value,
            None,
            _text(header(answer.headers, b"x-amz-version-id")),
        )

    async def multipart(
        self, send_parts: Callable[[], Awaitable[None]], size: Callable[[], int]
    ) -> Uploaded:
        create_headers = self.headers
        if self.spec is not None:
            create_headers += ((b"x-amz-checksum-algorithm", self.spec.s3_name.encode()),)
        answer = await attempt(
            self.retries,
            "CreateMultipartUpload",
            lambda: self.client.call(
                b"POST",
                "CreateMultipartUpload",
                params=(("uploads", ""),),
                headers=create_headers,
            ),
        )
        upload_id = upload_id_in(answer.document)
        if upload_id is None:
            raise self.client.protocol_error("CreateMultipartUpload", "the answer has no UploadId")
        self.upload_id = upload_id
        try:
            await send_parts()
            parts = [self.done[number] for number in range(1, len(self.done) + 1)]
            return await self.complete(parts, size())
        except BaseException as error:
            await self.abort_after(error)
            raise

    async def buffered_parts(self, reader: PartReader, first: bytearray) -> AsyncIterator[Job]:
        """The parts of a body read in order: each in a buffer, the buffers reused (a part's
        once it was sent), so that at most concurrency + 1 exist."""
        free: list[bytearray] = []
        buffer, length, number = first, len(first), 1
        while True:
            yield functools.partial(self.send_buffer, number, buffer, length, free)
            if await reader.ended():
                return
            buffer = free.pop() if free else bytearray(self.part_size)
            length = await reader.fill(buffer)
            number += 1

    async def ranged_parts(self, source: _FileRanges, size: int) -> AsyncIterator[Job]:
        for number, offset in enumerate(range(0, size, self.part_size), 1):
            yield functools.partial(
                self.send_range, source, number, offset, min(self.part_size, size - offset)
            )

    async def send_buffer(
        self, number: int, buffer: bytearray, length: int, free: list[bytearray]
    ) -> None:
        try:
            data = memoryview(buffer)[:length]
            await self.send_part(number, slices(data), length, self.checksum_of(data))
        finally:
            free.append(buffer)

    async def send_range(self, source: _FileRanges, number: int, offset: int, length: int) -> None:
        checksum = await self.checksum_of_range(source, offset, length)
        await self.send_part(number, source.factory(offset, length), length, checksum)

    async def send_part(
        self, number: int, body: BodyFactory, length: int, checksum: _Checksum
    ) -> None:
        operation = f"UploadPart {number}"
        params = (("partNumber", str(number)), ("uploadId", self.upload_id))
        answer = await attempt(
            self.retries,
            operation,
            lambda: self.client.call(
                b"PUT",
                operation,
                params=params,
                headers=checksum.headers,
                body=body,
                length=length,
                upload_id=self.upload_id,
            ),
        )
        etag = _text(header(answer.headers, b"etag"))
        if not etag:
            raise self.client.protocol_error(operation, "the answer has no ETag", self.upload_id)
        self.done[number] = CompletedPart(number, etag, checksum.value)

    async def complete(self, parts: list[CompletedPart], size: int) -> Uploaded:
        element = None if self.spec is None else f"Checksum{self.spec.s3_name}"
        document = complete_request(parts, element)
        operation = "CompleteMultipartUpload"
        tries = 0

        async def complete_once() -> Uploaded:
            nonlocal tries
            tries += 1
            try:
                answer = await self.client.call(
                    b"POST",
                    operation,
                    params=(("uploadId", self.upload_id),),
                    headers=((b"content-type", b"application/xml"),),
                    data=document,
                    upload_id=self.upload_id,
                )
            except S3ResponseError as error:
                if error.code == "NoSuchUpload" and tries > 1:
                    error.add_note(
                        "an earlier attempt, whose answer was lost, may have completed the"
                        " upload: look at the object"
                    )
                raise
            if is_error(answer.document):  # S3 can fail it after its 200 has begun
                raise self.client.error(operation, answer.status, answer.document, self.upload_id)
            result = complete_result(answer.document, element)
            if result is None:
                raise self.client.protocol_error(
                    operation, "the answer is not a CompleteMultipartUploadResult", self.upload_id
                )
            return Uploaded(
                result.etag or "",
                size,
                len(parts),
                result.checksum,
                self.upload_id,
                _text(header(answer.headers, b"x-amz-version-id")),
            )

        return await attempt(self.retries, operation, complete_once)

    async def abort_after(self, error: BaseException) -> None:
        """Abort the upload after `error`, in a task that a second cancellation of the caller
        leaves running; a note on `error` says if it could not be."""
        task = asyncio.get_running_loop().create_task(self.abort_within())
        _ABORTING.add(task)
        task.add_done_callback(_ABORTING.discard)
        failure = await asyncio.shield(task)
        if failure is not None:
            error.add_note(failure)

    async def abort_within(self) -> str | None:
        """None once the upload is aborted, else a note saying why it is not."""
        try:
            async with asyncio.timeout(self.abort_timeout):
                await abort_parts(self.client, self.upload_id, self.abort_attempts, self.retries)
        except Exception as error:
            if isinstance(error, TimeoutError):
                reason = f"no end after {self.abort_timeout} s"
            else:
                reason = f"{type(error).__name__}: {error}"
            return (
                f"the multipart upload {self.upload_id} of {self.client.target} could not be"
                f" aborted ({reason}): its parts stay stored, and billed, until it is (by"
                " lowhaio_s3.abort_upload, or a bucket lifecycle rule with"
                " AbortIncompleteMultipartUpload)"
            )
        return None


async def abort_parts(client: Client, upload_id: str, rounds: int, retries: Retries) -> None:
    """AbortMultipartUpload, then ListParts: if parts are still listed (parts being uploaded
    when it was aborted can still land, as S3's documentation warns), abort again, up to
    `rounds` times in all. Raises if parts remain."""
    params = (("uploadId", upload_id),)
    listed = 0
    for round_number in range(1, rounds + 1):
        try:
            await attempt(
                retries,
                "AbortMultipartUpload",
                lambda: client.call(
                    b"DELETE", "AbortMultipartUpload", params=params, upload_id=upload_id
                ),
            )
        except S3ResponseError as error:
            if error.status != 404:  # 404 NoSuchUpload: aborted already
                raise
        try:
            answer = await attempt(
                retries,
                "ListParts",
                lambda: client.call(
                    b"GET", "ListParts", params=params, limit=LIST_LIMIT, upload_id=upload_id
                ),
            )
        except S3ResponseError as error:
            if error.status == 404:  # NoSuchUpload: gone, with its parts
                return
            raise
        listed_now = parts_listed(answer.document)
        if listed_now is None:
            raise client.protocol_error(
                "ListParts", "the answer is not a ListPartsResult", upload_id
            )
        if listed_now == 0:
            return
        listed = listed_now
        if round_number < rounds:
            await retries.sleep(min(retries.max_backoff, retries.backoff * 2.0**round_number))
    raise S3Error(
        f"{listed} parts are still listed after {rounds} aborts", client.target, "abort", upload_id
    )


async def abort_upload(
    request: Request,
    bucket_url: str,
    key: str,
    upload_id: str,
    *,
    attempts: int = DEFAULT_ABORT_ATTEMPTS,
    retries: Retries = Retries(),  # noqa: B008 - immutable
) -> None:
    """Abort the multipart upload `upload_id` of `key` and check, with ListParts, that none of
    its parts remains; abort again while one does, `attempts` times at most (then `S3Error`).
    An upload that is gone already is not an error."""
    await abort_parts(Client(request, S3Object(bucket_url, key)), upload_id, attempts, retries)


async def list_uploads(
    request: Request,
    bucket_url: str,
    prefix: str = "",
    *,
    retries: Retries = Retries(),  # noqa: B008 - immutable
) -> list[ListedUpload]:
    """The multipart uploads in progress in the bucket, of keys that start with `prefix`, as
    `(key, upload_id)` pairs, every page of them (ListMultipartUploads): uploads that a failed
    abort left, or another client's. Their parts are billed until they are aborted or
    completed."""
    client = Client(request, S3Object(bucket_url, None))
    operation = "ListMultipartUploads"
    found: list[ListedUpload] = []
    markers: tuple[str, str] | None = None
    while True:
        params: tuple[tuple[str, str], ...] = (("uploads", ""),)
        if prefix:
            params += (("prefix", prefix),)
        if markers is not None:
            params += (("key-marker", markers[0]), ("upload-id-marker", markers[1]))
        answer = await attempt(
            retries,
            operation,
            functools.partial(client.call, b"GET", operation, params=params, limit=LIST_LIMIT),
        )
        page = multipart_uploads(answer.document)
        if page is None or (page.next_markers is not None and page.next_markers == markers):
            raise client.protocol_error(
                operation, "the answer is not a ListMultipartUploadsResult that goes on"
            )
        found += page.uploads
        if page.next_markers is None:
            return found
        markers = page.next_markers


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")
