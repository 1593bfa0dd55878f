"""download() and open_download() against the fake S3: ranges in parallel, handed out in
order, at most `concurrency` at once; each retried alone; an object that changes midway is a
typed error (If-Match, 412), never mixed bytes; leaving early cancels what is in flight."""

from __future__ import annotations

import asyncio
import re

import pytest
from conftest import pool
from s3_fake import DROP, Answer, FakeS3, Request, error, fake_s3
from s3_helpers import SERVER_ERROR, always, data_of, no_wait, once

from lowhaio import HttpConnectionClosedError
from lowhaio_s3 import (
    Downloaded,
    S3ObjectChangedError,
    S3ProtocolError,
    S3ResponseError,
    download,
    open_download,
)

RANGE = 1000  # small ranges: many of them from a small object


async def read(request, s3: FakeS3, key: str = "key", **settings) -> tuple[bytes, Downloaded]:  # type: ignore[no-untyped-def]
    settings.setdefault("retries", no_wait())
    settings.setdefault("range_size", RANGE)
    got = bytearray()
    result = await download(request, s3.url(), key, got.extend, **settings)
    return bytes(got), result


def ranges_asked(s3: FakeS3) -> list[str | None]:
    return [r.header("range") for r in s3.of("GetObject")]


@pytest.mark.parametrize(
    ("size", "ranges"),
    [(1, 1), (RANGE - 1, 1), (RANGE, 1), (RANGE + 1, 2), (10 * RANGE, 10), (10 * RANGE + 7, 11)],
)
async def test_ranges_in_order(size: int, ranges: int) -> None:
    data = data_of(size)
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data)
        got, result = await read(request, s3, concurrency=3)
        assert got == data
        etag = s3.objects[("bucket", "key")].etag
        assert result == Downloaded(size, etag, ranges, None, None)
        asked = ranges_asked(s3)
        assert asked[0] == f"bytes=0-{RANGE - 1}"  # the first, to learn the size and ETag
        expected = [
            f"bytes={start}-{min(start + RANGE, size) - 1}" for start in range(RANGE, size, RANGE)
        ]
        assert sorted(asked[1:], key=lambda r: int(re.findall(r"\d+", r or "")[0])) == expected
        gets = s3.of("GetObject")
        assert gets[0].header("if-match") is None
        assert all(r.header("if-match") == etag for r in gets[1:])  # every later range
        assert s3.of("HeadObject") == []


async def test_a_zero_byte_object() -> None:
    async with fake_s3() as s3, pool() as request:
        s3.put("key", b"")
        got, result = await read(request, s3)
        assert (got, result.size, result.ranges) == (b"", 0, 0)
        assert [r.operation for r in s3.requests] == ["GetObject", "HeadObject"]  # 416, then HEAD


async def test_the_window_bounds_ranges_in_flight_and_held() -> None:
    data = data_of(20 * RANGE)
    held: list[int] = []
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data)

        async def slow(request: Request) -> None:
            if request.operation == "GetObject":
                await asyncio.sleep(0.01)

        s3.faults.append(slow)
        async with open_download(
            request, s3.url(), "key", range_size=RANGE, concurrency=4, retries=no_wait()
        ) as chunks:
            assert (chunks.size, chunks.ranges) == (len(data), 20)
            got = bytearray()
            async for chunk in chunks:
                got += chunk
                # Ranges answered but not handed out whole yet (this one included): what the
                # client holds. The sink is slow: the server is never the limit.
                await asyncio.sleep(0.03)
                held.append(s3.answered["GetObject"] - (len(got) - 1) // RANGE)
        assert bytes(got) == data
        assert chunks.result is not None
        assert chunks.result.ranges == 20
        assert s3.peak["GetObject"] <= 4
        assert max(held) == 4, held  # concurrency x range_size bytes at most
        assert s3.server is not None
        assert s3.server.connections <= 4


async def test_a_fast_sink_keeps_every_range_of_the_window_in_flight() -> None:
    data = data_of(12 * RANGE)
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data)

        async def slow(request: Request) -> None:
            if request.operation == "GetObject":
                await asyncio.sleep(0.02)

        s3.faults.append(slow)
        got, _ = await read(request, s3, concurrency=4)
        assert got == data
        assert s3.peak["GetObject"] == 4


async def test_an_async_sink_is_awaited() -> None:
    data = data_of(5 * RANGE)
    written = []

    async def sink(chunk: bytes) -> None:
        await asyncio.sleep(0)
        written.append(chunk)

    async with fake_s3() as s3, pool() as request:
        s3.put("dir/a b+é", data)
        result = await download(request, s3.url(), "dir/a b+é", sink, range_size=RANGE)
        assert b"".join(written) == data
        assert result.size == len(data)


@pytest.mark.parametrize(
    "answer",
    [SERVER_ERROR, error(503, "SlowDown"), DROP, Answer(206, [], b"x" * 10, cut_at=3)],
    ids=["500", "503", "dropped", "cut-short"],
)
async def test_a_failed_range_is_asked_again_alone(answer: Answer | str) -> None:
    data = data_of(6 * RANGE)
    retried: list[tuple[str, int]] = []
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data)
        if isinstance(answer, Answer) and answer.status == 206:
            stored = s3.objects[("bucket", "key")]
            answer.headers = [
                (b"etag", stored.etag.encode()),
                (b"content-range", b"bytes 3000-3999/6000"),
                (b"content-length", b"1000"),
            ]
        s3.faults.append(once("GetObject", answer, number=4))
        got, _ = await read(
            request, s3, retries=no_wait(on_retry=lambda *args: retried.append(args[:2]))
        )
        assert got == data
        assert len(s3.of("GetObject")) == 7
        fourth = s3.of("GetObject")[3].header("range")
        assert retried == [(f"GetObject {fourth}", 1)]
        assert [r.header("range") for r in s3.of("GetObject")].count(fourth) == 2


async def test_the_first_range_is_retried_too() -> None:
    async with fake_s3() as s3, pool() as request:
        s3.put("key", b"small")
        s3.faults.append(once("GetObject", DROP))
        got, _ = await read(request, s3)
        assert got == b"small"


async def test_an_object_replaced_midway_is_refused_not_mixed() -> None:
    data = data_of(10 * RANGE)
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data)

        def replaced(request: Request) -> None:
            if request.operation == "GetObject" and request.number == 3:
                s3.put("key", data_of(10 * RANGE, seed=1))

        s3.faults.append(replaced)
        got = bytearray()
        with pytest.raises(S3ObjectChangedError) as raised:
            await download(
                request,
                s3.url(),
                "key",
                got.extend,
                range_size=RANGE,
                concurrency=2,
                retries=no_wait(),
            )
        failure = raised.value
        assert (failure.status, failure.code) == (412, "PreconditionFailed")
        assert failure.operation.startswith("GetObject bytes=")
        assert (failure.bucket, failure.key) == ("bucket", "key")
        assert isinstance(failure, S3ResponseError)
        assert len(got) < len(data)  # what came before the change
        assert data.startswith(bytes(got))
        assert all(r.header("if-match") for r in s3.of("GetObject")[1:])


@pytest.mark.parametrize("change", ["etag", "size"])
async def test_a_server_that_ignores_if_match_is_caught_by_the_etag_or_size(change: str) -> None:
    data = data_of(4 * RANGE)
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data)
        s3.ignore_if_match = True

        def replaced(request: Request) -> None:
            if request.operation == "GetObject" and request.number == 2:
                new = data_of(4 * RANGE, seed=1) if change == "etag" else data + b"more"
                s3.put("key", new)
                if change == "size":
                    s3.objects[("bucket", "key")].etag = s3.objects[("bucket", "key")].etag

        if change == "size":
            s3.faults.append(replaced)
            etag = s3.objects[("bucket", "key")].etag
            s3.faults.append(lambda r: s3.objects[("bucket", "key")].__setattr__("etag", etag))
        else:
            s3.faults.append(replaced)
        with pytest.raises(S3ObjectChangedError, match="the object changed") as raised:
            await read(request, s3, concurrency=1)
        assert raised.value.status == 206


async def test_a_later_failure_stops_the_download_without_waiting_for_the_earlier_ranges() -> None:
    data = data_of(8 * RANGE)
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data)
        release = asyncio.Event()

        async def stuck_then_missing(request: Request) -> Answer | None:
            if request.operation != "GetObject" or request.number == 1:
                return None
            if request.header("range") == f"bytes={RANGE}-{2 * RANGE - 1}":
                await release.wait()  # the second range never comes
            if request.header("range") == f"bytes={3 * RANGE}-{4 * RANGE - 1}":
                return error(404, "NoSuchKey", "The specified key does not exist.")
            return None

        s3.faults.append(stuck_then_missing)
        with pytest.raises(S3ResponseError, match="404 NoSuchKey") as raised:
            await read(request, s3, concurrency=4)
        assert raised.value.operation == f"GetObject bytes={3 * RANGE}-{4 * RANGE - 1}"
        # not retried, and nothing more asked: the first range, then a window of four
        assert len(s3.of("GetObject")) == 5


async def test_leaving_early_cancels_the_ranges_in_flight() -> None:
    data = data_of(10 * RANGE)
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data)
        hold = asyncio.Event()

        async def held(request: Request) -> None:
            if request.operation == "GetObject" and request.number > 1:
                await hold.wait()

        s3.faults.append(held)
        async with open_download(
            request, s3.url(), "key", range_size=RANGE, concurrency=3
        ) as chunks:
            async for chunk in chunks:
                assert chunk == data[: len(chunk)]
                break
        assert s3.in_flight["GetObject"] in (0, 1, 2)
        assert chunks.result is None
        others = {asyncio.current_task(), *(s3.server.tasks if s3.server else ())}
        assert [t for t in asyncio.all_tasks() if t not in others] == []


async def test_a_cancelled_download_cancels_its_ranges() -> None:
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data_of(10 * RANGE))

        async def forever(request: Request) -> None:
            if request.operation == "GetObject" and request.number > 1:
                await asyncio.sleep(60)

        s3.faults.append(forever)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await read(request, s3, concurrency=3)
        others = {asyncio.current_task(), *(s3.server.tasks if s3.server else ())}
        assert [t for t in asyncio.all_tasks() if t not in others] == []


async def test_a_server_that_ignores_range_is_read_as_it_comes() -> None:
    data = data_of(5 * RANGE)
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data)
        s3.ignore_range = True
        got, result = await read(request, s3)
        assert got == data
        assert (result.size, result.ranges) == (len(data), 1)
        assert len(s3.of("GetObject")) == 1


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (
            once("GetObject", Answer(206, [(b"content-range", b"bytes 1-999/5000")], b"x" * 999)),
            "not the range asked for",
        ),
        (
            once("GetObject", Answer(206, [(b"content-range", b"bytes 0-9/5000")], b"x" * 10)),
            "not the range asked for",
        ),
        (once("GetObject", Answer(206, [], b"x" * 1000)), "not the range asked for"),
        (
            once("GetObject", Answer(206, [(b"content-range", b"bytes 0-999/5000")], b"x" * 1000)),
            "the answer has no ETag",
        ),
        (
            once(
                "GetObject",
                Answer(200, [(b"transfer-encoding", b"chunked")], b"0\r\n\r\n", length=False),
            ),
            "no content-length",
        ),
        (
            once(
                "GetObject",
                Answer(
                    206,
                    [(b"etag", b'"e"'), (b"content-range", b"bytes 2000-2999/5000")],
                    b"x" * 1000,
                ),
                number=2,
            ),
            "not the range asked for",
        ),
        (
            once("GetObject", Answer(200, [(b"etag", b'"e"')], b"x"), number=2),
            "a 200 answer to a range",
        ),
    ],
)
async def test_answers_that_s3_cannot_give(fault: object, message: str) -> None:
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data_of(5 * RANGE))
        s3.objects[("bucket", "key")].etag = '"e"'
        s3.faults.append(fault)  # type: ignore[arg-type]
        with pytest.raises(S3ProtocolError, match=message):
            await read(request, s3, concurrency=1)


async def test_a_missing_object() -> None:
    async with fake_s3() as s3, pool() as request:
        with pytest.raises(S3ResponseError) as raised:
            await read(request, s3, key="dir/missing")
        assert str(raised.value) == (
            f"GetObject bytes=0-{RANGE - 1} of bucket 'bucket' key 'dir/missing': 404 NoSuchKey:"
            " The specified key does not exist. (request id REQ123)"
        )
        assert len(s3.of("GetObject")) == 1


async def test_a_head_without_content_length_or_etag() -> None:
    async with fake_s3() as s3, pool() as request:
        s3.put("key", b"")
        s3.faults.append(always("HeadObject", Answer(200, [(b"etag", b'"e"')])))
        _, result = await read(request, s3)  # content-length: 0, as the fake adds it
        assert result.size == 0
        s3.faults[:] = [always("HeadObject", Answer(200, [(b"etag", b'"e"')], length=False))]
        with pytest.raises(S3ProtocolError, match=r"HeadObject .*no content-length"):
            await read(request, s3)
        s3.faults[:] = [always("HeadObject", Answer(200, [(b"content-length", b"5")]))]
        with pytest.raises(S3ProtocolError, match="the answer has no ETag"):
            await read(request, s3)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"range_size": 0}, "range_size must be a positive int"),
        ({"range_size": 1.5}, "range_size must be a positive int"),
        ({"concurrency": 0}, "concurrency must be a positive int"),
        ({"verify_checksum": "yes"}, "verify_checksum is True, False, 'auto' or 'required'"),
        ({"headers": ((b"Range", b"bytes=0-1"),)}, "set by lowhaio_s3"),
        ({"checksums": ("crc32",)}, "a checksum is a ChecksumSpec"),
    ],
)
async def test_settings_are_checked(settings: dict[str, object], message: str) -> None:
    async with pool() as request:
        with pytest.raises(ValueError, match=message):
            open_download(request, "http://127.0.0.1:1/bucket", "key", **settings)  # type: ignore[arg-type]


async def test_a_download_is_used_in_async_with_once() -> None:
    async with fake_s3() as s3, pool() as request:
        s3.put("key", b"abc")
        chunks = open_download(request, s3.url(), "key")
        with pytest.raises(RuntimeError, match="in `async with`, then `async for`"):
            aiter(chunks)
        async with chunks:
            assert [chunk async for chunk in chunks] == [b"abc"]
            assert [chunk async for chunk in chunks] == []  # read once
        with pytest.raises(RuntimeError, match="entered once"):
            async with chunks:
                pass


async def test_headers_go_with_every_request() -> None:
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data_of(3 * RANGE))
        payer = (b"x-amz-request-payer", b"requester")
        await read(request, s3, headers=(payer,))
        assert all(r.header("x-amz-request-payer") == "requester" for r in s3.requests)


async def test_errors_of_the_core_pass_through_after_the_retries() -> None:
    async with fake_s3() as s3, pool() as request:
        s3.put("key", data_of(3 * RANGE))
        s3.faults.append(always("GetObject", DROP))
        with pytest.raises(HttpConnectionClosedError) as raised:
            await read(request, s3, retries=no_wait(attempts=2))
        assert raised.value.__notes__ == [f"GetObject bytes=0-{RANGE - 1}: the last of 2 attempts"]
