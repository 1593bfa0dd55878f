"""`download`, `open_download` and `download_file`: an S3 object read by ranges in parallel.

Strategy: the first range's answer (or a HEAD, to verify a checksum) gives the object's size
and ETag; every other range is asked with `If-Match: <etag>`, so that an object replaced
meanwhile is refused (412), not mixed into the bytes. Each range is fetched whole into memory
by a task of its own, retried on its own; the tasks run in a window that slides in order: at
most `concurrency` ranges are fetched, waiting or being handed out at once, so memory holds at
most concurrency x range_size bytes. The caller's task hands out the ranges in order, the
first to fail stops the download, and leaving it (an error, a break, a cancellation) cancels
every range still being fetched.

`download_file` needs no order: each range is written at its offset as it comes (`os.pwrite`),
so that no range is held, into a temporary file that replaces the target once it is whole.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import re
import tempfile
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Literal, NamedTuple

from lowhaio import Headers, Request, RequestHeaders, ResponseBody

from ._checksums import CRC32, ChecksumSpec, RunningChecksum, checked
from ._client import ERROR_LIMIT, Client, caller_headers, header, read_at_most
from ._errors import S3ChecksumError, S3ChecksumMismatchError, S3ObjectChangedError
from ._parallel import Job, bounded
from ._parts import DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE, parts_for
from ._retry import Retries, attempt
from ._target import S3Object

VerifyChoice = bool | Literal["auto", "required"]

_CONTENT_RANGE = re.compile(rb"bytes (\d+)-(\d+)/(\d+)\Z")
_COMPOSITE = re.compile(r"-\d+\Z")  # a multipart object's checksum of its parts' checksums
_MULTIPART_ETAG = re.compile(r'-\d+"?\Z')
_NOT_CHECKSUMS = frozenset((b"x-amz-checksum-type", b"x-amz-checksum-mode"))


class Downloaded(NamedTuple):
    """What a download read: the object's `size`, `etag`, how many `ranges` were asked;
    `verified`, the algorithm (`"crc32"`) whose full-object checksum the bytes matched, and,
    when a verification was asked but could not be made, `unverified`, saying why."""

    size: int
    etag: str
    ranges: int
    verified: str | None
    unverified: str | None


Sink = Callable[[bytes], object]


async def download(
    request: Request,
    bucket_url: str,
    key: str,
    sink: Sink,
    *,
    range_size: int = DEFAULT_PART_SIZE,
    concurrency: int = DEFAULT_CONCURRENCY,
    verify_checksum: VerifyChoice = "auto",
    checksums: Sequence[ChecksumSpec] = (CRC32,),
    headers: RequestHeaders = (),
    retries: Retries = Retries(),  # noqa: B008 - immutable
) -> Downloaded:
    """Read `key` from the bucket at `bucket_url` through `request`, by ranges fetched in
    parallel, and give its bytes to `sink` in order: `sink(chunk)` is called with each chunk,
    and awaited if it returns an awaitable: an async function, or a plain one (`file.write`).

    See `open_download` for the settings. The bytes go to the sink as they come, so when an
    error is raised (the object changed, a range failed, the checksum does not match), what
    the sink got is not a whole object."""
    async with open_download(
        request,
        bucket_url,
        key,
        range_size=range_size,
        concurrency=concurrency,
        verify_checksum=verify_checksum,
        checksums=checksums,
        headers=headers,
        retries=retries,
    ) as chunks:
        async for chunk in chunks:
            written = sink(chunk)
            if inspect.isawaitable(written):
                await written
    assert chunks.result is not None
    return chunks.result


def open_download(
    request: Request,
    bucket_url: str,
    key: str,
    *,
    range_size: int = DEFAULT_PART_SIZE,
    concurrency: int = DEFAULT_CONCURRENCY,
    verify_checksum: VerifyChoice = "auto",
    checksums: Sequence[ChecksumSpec] = (CRC32,),
    headers: RequestHeaders = (),
    retries: Retries = Retries(),  # noqa: B008 - immutable
) -> Download:
    """`async with open_download(...) as chunks:` then `async for chunk in chunks:`: the
    object's bytes in order, read by ranges of `range_size` bytes, up to `concurrency` at once
    (the most memory held: concurrency x range_size). `chunks.size` and `chunks.etag` are
    known inside the block; `chunks.result`, a `Downloaded`, once every chunk was read.

    Every range after the first is asked with `If-Match` the object's ETag: an object replaced
    meanwhile raises `S3ObjectChangedError`. Each range is retried on its own by `retries`.

    `verify_checksum`: True to ask for the object's full-object checksum (a HEAD first, with
    `x-amz-checksum-mode: ENABLED`) and check the bytes against it at their end
    (`S3ChecksumMismatchError`); "required" to refuse, before reading, an object whose checksum
    cannot be verified (`S3ChecksumError`: none, or only a composite one, or one of an algorithm
    not in `checksums`); "auto" is True on AWS's hosts, False elsewhere. `headers` go with
    every request (`x-amz-request-payer`, say).
    """
    return Download(
        _reader(
            request,
            bucket_url,
            key,
            range_size,
            concurrency,
            verify_checksum,
            checksums,
            headers,
            retries,
        ),
        concurrency,
    )


async def download_file(
    request: Request,
    bucket_url: str,
    key: str,
    path: str | os.PathLike[str],
    *,
    range_size: int = DEFAULT_PART_SIZE,
    concurrency: int = DEFAULT_CONCURRENCY,
    verify_checksum: VerifyChoice = "auto",
    checksums: Sequence[ChecksumSpec] = (CRC32,),
    headers: RequestHeaders = (),
    retries: Retries = Retries(),  # noqa: B008 - immutable
) -> Downloaded:
    """Read `key` into the file at `path`, by ranges fetched in parallel, each written at its
    offset as it comes (`os.pwrite`): no range is held in memory, only the piece being
    written of each range in flight. The bytes go to a temporary file beside `path`, which
    replaces `path` once they are all there (and verified: the file is read back for a
    checksum); on any error or cancellation it is removed, and `path` is left as it was.

    The settings are `open_download`'s."""
    reader = _reader(
        request,
        bucket_url,
        key,
        range_size,
        concurrency,
        verify_checksum,
        checksums,
        headers,
        retries,
    )
    path = os.fspath(path)
    directory, name = os.path.dirname(path) or ".", os.path.basename(path)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".lowhaio")
    try:
        try:
            fetched = await reader.start(lambda: _writer(fd))
            if reader.whole is not None:
                await _write_whole(reader.whole, _writer(fd))
            else:
                os.ftruncate(fd, reader.size)
                await bounded(_range_jobs(reader, fd, 1 if fetched else 0), concurrency)
            running = None if reader.spec is None else reader.spec.new()
            if running is not None:
                for offset in range(0, reader.size, _READ_BACK_BYTES):
                    running.update(os.pread(fd, _READ_BACK_BYTES, offset))
            result = reader.verified(running)
        finally:
            os.close(fd)
            if reader.whole is not None:
                await reader.whole.aclose()
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return result


_READ_BACK_BYTES = 1024 * 1024  # a downloaded file is read back in pieces of this, to verify


def _writer(fd: int) -> Write:
    def write(offset: int, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written

    return write


async def _write_whole(body: ResponseBody, write: Write) -> None:
    offset = 0
    async for chunk in body:
        write(offset, chunk)
        offset += len(chunk)


async def _range_jobs(reader: _Reader, fd: int, first: int) -> AsyncIterator[Job]:
    write = _writer(fd)
    for index in range(first, reader.ranges):
        operation, start, end = reader.bounds(index)
        yield functools.partial(
            attempt,
            reader.retries,
            operation,
            functools.partial(reader.get, operation, start, end, write),
        )


def _reader(
    request: Request,
    bucket_url: str,
    key: str,
    range_size: int,
    concurrency: int,
    verify_checksum: VerifyChoice,
    checksums: Sequence[ChecksumSpec],
    headers: RequestHeaders,
    retries: Retries,
) -> _Reader:
    """The settings checked, before anything is sent."""
    if isinstance(range_size, bool) or not isinstance(range_size, int) or range_size < 1:
        raise ValueError(f"range_size must be a positive int: {range_size!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive int: {concurrency!r}")
    if verify_checksum not in (True, False, "auto", "required"):
        raise ValueError(
            f"verify_checksum is True, False, 'auto' or 'required': {verify_checksum!r}"
        )
    target = S3Object(bucket_url, key)
    verify = target.on_aws if verify_checksum == "auto" else bool(verify_checksum)
    return _Reader(
        Client(request, target, caller_headers(headers)),
        range_size,
        verify,
        verify_checksum == "required",
        tuple(checked(spec) for spec in checksums),
        retries,
    )


Write = Callable[[int, bytes], object]  # a range's chunk, at its offset in the object


class _Reader:
    """One object read by ranges: its size, ETag and checksum learnt first (a HEAD, or the first
    range's answer), then each range fetched, checked, and written where it goes."""

    def __init__(
        self,
        client: Client,
        range_size: int,
        verify: bool,
        required: bool,
        checksums: tuple[ChecksumSpec, ...],
        retries: Retries,
    ) -> None:
        self.client = client
        self.range_size = range_size
        self.verify = verify
        self.required = required
        self.checksums = checksums
        self.retries = retries
        self.size = 0
        self.etag = ""
        self.etag_bytes = b""
        self.ranges = 0
        self.spec: ChecksumSpec | None = None  # the checksum to verify, and its value
        self.expected = ""
        self.unverified: str | None = None
        self.whole: ResponseBody | None = None  # a 200 to the first range: the whole object

    async def start(self, first: Callable[[], Write]) -> bool:
        """Learn the size, the ETag (and the checksum, if verifying): a HEAD, or the first
        range, each of whose attempts writes with a writer from `first()` (True then)."""
        fetched = False
        if self.verify:
            await self.head(checksum_mode=True)
        else:
            operation = f"GetObject bytes=0-{self.range_size - 1}"
            kind = await attempt(self.retries, operation, lambda: self.first(operation, first()))
            if kind == "empty":  # 416: an empty object has no range to give
                await self.head(checksum_mode=False)
            fetched = kind == "range"
        self.ranges = 0 if self.size == 0 else parts_for(self.size, self.range_size)
        if self.whole is not None:
            self.ranges = 1
        return fetched

    def learn(self, operation: str, headers: Headers, size: int, more_from: int) -> None:
        """Take the object's size and ETag; one is needed if ranges from `more_from` on are
        to be asked (with If-Match)."""
        self.size = size
        etag = header(headers, b"etag")
        if etag is None and size > more_from:
            raise self.client.protocol_error(
                operation, "the answer has no ETag: the object's ranges cannot be matched"
            )
        self.etag_bytes = etag or b""
        self.etag = self.etag_bytes.decode("latin-1")

    async def head(self, checksum_mode: bool) -> None:
        operation = "HeadObject"
        mode = ((b"x-amz-checksum-mode", b"ENABLED"),) if checksum_mode else ()
        answer = await attempt(
            self.retries,
            operation,
            lambda: self.client.call(b"HEAD", operation, headers=mode),
        )
        length = header(answer.headers, b"content-length")
        if length is None or not length.isdigit():
            raise self.client.protocol_error(operation, "the answer has no content-length")
        self.learn(operation, answer.headers, int(length), 0)
        if checksum_mode:
            self.choose_checksum(answer.headers)
            if self.spec is None and self.required:
                raise S3ChecksumError(
                    f"the checksum cannot be verified: {self.unverified}",
                    self.client.target,
                    operation,
                )

    async def first(self, operation: str, write: Write) -> str:
        """The first range, written: "range"; or "empty" for a 416 (an empty object); or
        "whole" for a 200 (a server that ignores ranges): the body kept, to be read as it
        comes."""
        client = self.client
        asked = (b"range", b"bytes=0-%d" % (self.range_size - 1))
        code, headers, body = await client.request(
            b"GET", client.target.url, (), (*client.headers, asked)
        )
        status = int(code)
        if status == 200:
            length = header(headers, b"content-length")
            if length is None or not length.isdigit():
                await body.aclose()
                raise client.protocol_error(operation, "the answer has no content-length")
            self.whole = body
            self.learn(operation, headers, int(length), int(length))
            return "whole"
        async with body:
            if status == 416:
                await read_at_most(body, ERROR_LIMIT)
                return "empty"
            if status != 206:
                document, _ = await read_at_most(body, ERROR_LIMIT)
                raise client.error(operation, status, document)
            given = _CONTENT_RANGE.match(header(headers, b"content-range") or b"")
            if given is None or int(given[1]) != 0:
                raise client.protocol_error(operation, "the answer is not the range asked for")
            size = int(given[3])
            if int(given[2]) != min(size, self.range_size) - 1:
                raise client.protocol_error(operation, "the answer is not the range asked for")
            self.learn(operation, headers, size, self.range_size)
            offset = 0
            async for chunk in body:
                write(offset, chunk)
                offset += len(chunk)
        return "range"

    def choose_checksum(self, headers: Headers) -> None:
        """The full-object checksum to verify, of the first algorithm of `checksums` that the
        object has one of; else why none can be (`unverified`)."""
        named = {
            name[len(b"x-amz-checksum-") :].decode("latin-1"): value.decode("latin-1").strip()
            for name, value in headers
            if name.startswith(b"x-amz-checksum-") and name not in _NOT_CHECKSUMS
        }
        kind = (header(headers, b"x-amz-checksum-type") or b"").upper()
        if not named:
            self.unverified = (
                "the object has no checksum (none was stored with it, or the server does not"
                " give it)"
            )
            return
        reasons = []
        for spec in self.checksums:
            value = named.get(spec.name)
            if value is None:
                continue
            if kind == b"COMPOSITE" or _COMPOSITE.search(value):
                reasons.append(
                    f"its {spec.s3_name} checksum, {value}, is composite: a checksum of its"
                    " parts' checksums (a multipart upload's), which the bytes alone cannot give"
                )
            elif not kind and _MULTIPART_ETAG.search(self.etag):
                # moto's HEAD gives a composite checksum without its "-N" nor its type.
                reasons.append(
                    f"it was uploaded in parts (its ETag ends in -N), and the answer does not"
                    f" say whether its {spec.s3_name} checksum, {value}, is the whole object's"
                    " (no x-amz-checksum-type)"
                )
            else:
                self.spec, self.expected = spec, value
                return
        if not reasons:
            reasons.append(
                f"its checksum is of {', '.join(sorted(named))}, for which `checksums` has no"
                " ChecksumSpec"
            )
        self.unverified = "; ".join(reasons)

    def bounds(self, index: int) -> tuple[str, int, int]:
        start = index * self.range_size
        end = min(start + self.range_size, self.size) - 1
        return f"GetObject bytes={start}-{end}", start, end

    async def get(self, operation: str, start: int, end: int, write: Write) -> None:
        """One range (not the first), asked with If-Match the ETag, checked, written."""
        client = self.client
        asked = ((b"range", b"bytes=%d-%d" % (start, end)), (b"if-match", self.etag_bytes))
        code, headers, body = await client.request(
            b"GET", client.target.url, (), (*client.headers, *asked)
        )
        status = int(code)
        async with body:
            if status != 206:
                document, _ = await read_at_most(body, ERROR_LIMIT)
                if status == 412:
                    raise client.error(operation, status, document, None, S3ObjectChangedError)
                if 200 <= status < 300:
                    raise client.protocol_error(operation, f"a {status} answer to a range")
                raise client.error(operation, status, document)
            given = _CONTENT_RANGE.match(header(headers, b"content-range") or b"")
            etag = header(headers, b"etag")
            if (given is not None and int(given[3]) != self.size) or (
                etag is not None and etag != self.etag_bytes
            ):
                raise S3ObjectChangedError(
                    client.target,
                    operation,
                    status,
                    None,
                    f"the object changed: its ETag and size were {self.etag} and {self.size}"
                    f", a range now says {(etag or b'').decode('latin-1')} and"
                    f" {given[3].decode() if given else '?'}",
                    None,
                )
            if given is None or (int(given[1]), int(given[2])) != (start, end):
                raise client.protocol_error(operation, "the answer is not the range asked for")
            offset = start
            async for chunk in body:
                write(offset, chunk)
                offset += len(chunk)

    def verified(self, running: RunningChecksum | None) -> Downloaded:
        """The result, once every byte went through `running` (None: nothing to verify)."""
        if running is not None and self.spec is not None:
            actual = running.b64digest()
            if actual != self.expected:
                raise S3ChecksumMismatchError(
                    self.client.target, "GetObject", self.spec.name, self.expected, actual
                )
        return Downloaded(
            self.size,
            self.etag,
            self.ranges,
            None if self.spec is None else self.spec.name,
            self.unverified,
        )


class Download:
    """An object being read in order: see `open_download`."""

    def __init__(self, reader: _Reader, concurrency: int) -> None:
        self._reader = reader
        self._concurrency = concurrency
        self.size = 0
        self.etag = ""
        self.ranges = 0
        self.result: Downloaded | None = None
        self._first: list[bytes] | None = None  # the first range, read to learn the size
        self._tasks: deque[asyncio.Task[list[bytes]]] = deque()
        self._next = 0  # the next range to start
        self._failed: asyncio.Future[asyncio.Task[list[bytes]]] | None = None
        self._iterator: AsyncGenerator[bytes, None] | None = None
        self._entered = False

    async def __aenter__(self) -> Download:
        if self._entered:
            raise RuntimeError("a download is entered once")
        self._entered = True
        self._failed = asyncio.get_running_loop().create_future()

        def first() -> Write:  # a list for each attempt
            chunks: list[bytes] = []
            self._first = chunks
            return lambda offset, chunk: chunks.append(chunk)

        reader = self._reader
        try:
            if await reader.start(first):
                self._next = 1
            else:
                self._first = None
        except BaseException:
            await self._close()
            raise
        self.size, self.etag, self.ranges = reader.size, reader.etag, reader.ranges
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._close()

    def __aiter__(self) -> AsyncIterator[bytes]:
        if not self._entered:
            raise RuntimeError("use a download in `async with`, then `async for`")
        if self._iterator is None:
            self._iterator = self._chunks()
        return self._iterator

    async def _chunks(self) -> AsyncGenerator[bytes, None]:
        spec = self._reader.spec
        running = None if spec is None else spec.new()
        async for chunk in self._in_order():
            if running is not None:
                running.update(chunk)
            yield chunk
        self.result = self._reader.verified(running)

    async def _in_order(self) -> AsyncGenerator[bytes, None]:
        whole = self._reader.whole
        if whole is not None:
            async for chunk in whole:
                yield chunk
            return
        for index in range(self.ranges):
            if index == 0 and self._first is not None:  # read already, to learn the size
                chunks, self._first = self._first, None
                self._start_ranges(self._concurrency - 1)  # it is the window's first
            else:
                self._start_ranges(self._concurrency)
                chunks = await self._result(self._tasks[0])  # left in the window until done,
                self._tasks.popleft()  # to be cancelled if the wait for it is
            for chunk in chunks:
                yield chunk
            del chunks  # before more ranges are started: the window holds it no more

    def _start_ranges(self, window: int) -> None:
        loop = asyncio.get_running_loop()
        while len(self._tasks) < window and self._next < self.ranges:
            task = loop.create_task(self._fetch(self._next))
            task.add_done_callback(self._ended)
            self._tasks.append(task)
            self._next += 1

    def _ended(self, task: asyncio.Task[list[bytes]]) -> None:
        failed = self._failed
        if task.cancelled() or task.exception() is None or failed is None or failed.done():
            return
        failed.set_result(task)

    async def _result(self, task: asyncio.Task[list[bytes]]) -> list[bytes]:
        """The bytes of `task`'s range, or the error of the first range to fail."""
        assert self._failed is not None
        if not task.done():
            await asyncio.wait((task, self._failed), return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            error = self._failed.result().exception()
            assert error is not None
            raise error
        return task.result()

    async def _fetch(self, index: int) -> list[bytes]:
        reader = self._reader
        operation, start, end = reader.bounds(index)

        async def once() -> list[bytes]:
            chunks: list[bytes] = []
            await reader.get(operation, start, end, lambda offset, chunk: chunks.append(chunk))
            return chunks

        return await attempt(reader.retries, operation, once)

    async def _close(self) -> None:
        """Stop: the iterator closed, every range still fetched cancelled and awaited."""
        if self._iterator is not None:
            await self._iterator.aclose()
        tasks, self._tasks = list(self._tasks), deque()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        whole = self._reader.whole
        if whole is not None:
            await whole.aclose()
        self._first = None
