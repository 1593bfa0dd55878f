"""upload() when things fail: each request retried on its own when that is safe, typed errors
that name the object, the multipart upload aborted (and checked, and aborted again) after any
failure or cancellation, even a second cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from conftest import pool
from s3_fake import DROP, Answer, FakeS3, Request, Upload, error, fake_s3, xml_answer
from s3_helpers import PART, SERVER_ERROR, always, data_of, no_wait, once, pieces

from lowhaio import HttpDataError
from lowhaio_s3 import (
    S3Error,
    S3ProtocolError,
    S3ResponseError,
    abort_upload,
    upload,
)

DATA = data_of(3 * PART + 100)  # four parts of PART


def retried_calls(record: list[tuple[str, int]]):  # type: ignore[no-untyped-def]
    def on_retry(operation: str, attempt: int, delay: float, error: Exception) -> None:
        record.append((operation, attempt))

    return on_retry


async def send(request, s3: FakeS3, data: bytes = DATA, **settings):  # type: ignore[no-untyped-def]
    settings.setdefault("retries", no_wait())
    return await upload(request, s3.url(), "key", pieces(data), part_size=PART, **settings)


def sent_parts(s3: FakeS3) -> list[str]:
    return [r.query["partNumber"] for r in s3.of("UploadPart")]


@pytest.mark.parametrize(
    "answer",
    [
        SERVER_ERROR,
        error(503, "SlowDown", "Please reduce your request rate."),
        error(429, "TooManyRequests"),
        error(400, "RequestTimeout", "Your socket connection to the server was not read from"),
        DROP,  # the connection closed after the part was sent: it is sent again
        Answer(200, [(b"etag", b'"x"')], b"cut", cut_at=1),
    ],
    ids=["500", "503", "429", "RequestTimeout", "dropped", "cut-short"],
)
async def test_a_failed_part_is_sent_again_alone(answer: Answer | str) -> None:
    retries: list[tuple[str, int]] = []
    async with fake_s3() as s3, pool() as request:
        s3.faults.append(once("UploadPart", answer, number=2))
        uploaded = await send(request, s3, retries=no_wait(on_retry=retried_calls(retries)))
        assert uploaded.parts == 4
        failed = s3.of("UploadPart")[1].query["partNumber"]
        assert sorted(sent_parts(s3)) == sorted(["1", "2", "3", "4", failed])
        assert retries == [(f"UploadPart {failed}", 1)]
        assert s3.objects[("bucket", "key")].data == DATA
        assert len(s3.of("CreateMultipartUpload")) == len(s3.of("CompleteMultipartUpload")) == 1


async def test_a_part_refused_is_not_sent_again_and_the_upload_is_aborted() -> None:
    async with fake_s3() as s3, pool() as request:
        s3.faults.append(always("UploadPart", error(403, "AccessDenied", "Access Denied")))
        with pytest.raises(S3ResponseError) as raised:
            await send(request, s3, concurrency=1)
        failure = raised.value
        assert (failure.status, failure.code, failure.s3_message) == (
            403,
            "AccessDenied",
            "Access Denied",
        )
        assert (failure.bucket, failure.key, failure.operation) == ("bucket", "key", "UploadPart 1")
        assert failure.upload_id == "upload-1+/="
        assert str(failure) == (
            "UploadPart 1 of bucket 'bucket' key 'key' (upload upload-1+/=): 403 AccessDenied:"
            " Access Denied (request id REQ123)"
        )
        assert sent_parts(s3) == ["1"]
        assert [r.operation for r in s3.requests[-2:]] == ["AbortMultipartUpload", "ListParts"]
        assert s3.uploads == {}
        assert s3.objects == {}


async def test_retries_run_out() -> None:
    async with fake_s3() as s3, pool() as request:
        s3.faults.append(always("UploadPart", SERVER_ERROR))
        with pytest.raises(S3ResponseError) as raised:
            await send(request, s3, concurrency=1, retries=no_wait(attempts=3))
        assert raised.value.code == "InternalError"
        assert raised.value.__notes__ == ["UploadPart 1: the last of 3 attempts"]
        assert sent_parts(s3) == ["1", "1", "1"]
        assert s3.uploads == {}


@pytest.mark.parametrize("operation", ["PutObject", "CreateMultipartUpload"])
async def test_the_first_request_is_retried_too(operation: str) -> None:
    data = DATA if operation == "CreateMultipartUpload" else b"small"
    async with fake_s3() as s3, pool() as request:
        s3.faults.append(once(operation, SERVER_ERROR))
        await send(request, s3, data)
        assert len(s3.of(operation)) == 2
        assert s3.objects[("bucket", "key")].data == data


async def test_a_refused_create_leaves_nothing_to_abort() -> None:
    async with fake_s3() as s3, pool() as request:
        s3.faults.append(always("CreateMultipartUpload", error(404, "NoSuchBucket")))
        with pytest.raises(S3ResponseError, match=r"CreateMultipartUpload.*404 NoSuchBucket"):
            await send(request, s3)
        assert [r.operation for r in s3.requests] == ["CreateMultipartUpload"]


@pytest.mark.parametrize(
    ("operation", "answer", "message"),
    [
        ("CreateMultipartUpload", xml_answer("<Other/>"), "the answer has no UploadId"),
        ("CreateMultipartUpload", Answer(200, [], b"not xml"), "the answer has no UploadId"),
        ("UploadPart", Answer(200), "UploadPart 1 .*the answer has no ETag"),
        ("CompleteMultipartUpload", Answer(200, [], b"<a/>"), "not a CompleteMultipartUpload"),
        ("CompleteMultipartUpload", Answer(200, [], b"x" * (2 << 20)), "longer than 1048576"),
    ],
)
async def test_answers_that_s3_cannot_give(operation: str, answer: Answer, message: str) -> None:
    async with fake_s3() as s3, pool() as request:
        s3.faults.append(always(operation, answer))
        with pytest.raises(S3ProtocolError, match=message):
            await send(request, s3, concurrency=1)
        assert len(s3.of(operation)) == 1  # not retried
        assert s3.uploads == {}


async def test_an_error_inside_a_completed_answer_is_retried() -> None:
    inside = error(200, "InternalError", "We encountered an internal error.")
    async with fake_s3() as s3, pool() as request:
        s3.faults.append(once("CompleteMultipartUpload", inside))
        uploaded = await send(request, s3)
        assert len(s3.of("CompleteMultipartUpload")) == 2
        assert uploaded.etag == s3.objects[("bucket", "key")].etag


async def test_a_lost_answer_to_complete_is_said_when_the_retry_finds_no_upload() -> None:
    async with fake_s3() as s3, pool() as request:

        def completed_then_lost(request: Request) -> Answer | None:
            if request.operation == "CompleteMultipartUpload" and request.number == 1:
                s3.serve(request)  # it completes...
                return SERVER_ERROR  # ...and the answer says otherwise
            return None

        s3.faults.append(completed_then_lost)
        with pytest.raises(S3ResponseError) as raised:
            await send(request, s3)
        assert raised.value.code == "NoSuchUpload"
        assert raised.value.__notes__[0].startswith("an earlier attempt, whose answer was lost")
        assert s3.objects[("bucket", "key")].data == DATA  # it was stored


async def test_several_parts_failing_at_once_raise_the_first_with_the_others_noted() -> None:
    async with fake_s3() as s3, pool() as request:
        waiting: list[asyncio.Future[None]] = []

        async def refusing(method, url, params=(), headers=(), body=None, *args):  # type: ignore[no-untyped-def]
            params = tuple(params)
            if ("uploads", "") in params or ("uploadId", "upload-1+/=") not in params:
                return await request(method, url, params, headers, body, *args)
            if method == b"PUT":  # two parts wait for each other, then fail together
                if waiting:
                    waiting[0].set_result(None)
                else:
                    waiting.append(asyncio.get_running_loop().create_future())
                    await waiting[0]
                raise PermissionError(f"part {dict(params)['partNumber']} refused")
            return await request(method, url, params, headers, body, *args)

        with pytest.raises(PermissionError) as raised:
            await upload(
                refusing, s3.url(), "key", pieces(data_of(2 * PART)), part_size=PART, threshold=0
            )
        assert str(raised.value) == "part 2 refused"  # the first to fail
        assert raised.value.__notes__ == ["also: PermissionError: part 1 refused"]
        assert s3.uploads == {}


async def test_an_error_of_the_callers_body_is_raised_as_it_is_after_the_abort() -> None:
    failure = RuntimeError("disk on fire")

    async def body() -> AsyncIterator[bytes]:
        yield bytes(PART + 1)
        raise failure

    async with fake_s3() as s3, pool() as request:
        with pytest.raises(RuntimeError) as raised:
            await upload(request, s3.url(), "key", body, part_size=PART, retries=no_wait())
        assert raised.value is failure
        assert s3.of("AbortMultipartUpload")
        assert s3.uploads == {}


# The abort ------------------------------------------------------------------------------------


def not_removed(request: Request) -> Answer | None:
    """An abort that answers 204 but leaves the upload and its parts (a part landing late)."""
    return Answer(204) if request.operation == "AbortMultipartUpload" else None


async def test_the_abort_is_repeated_while_parts_are_listed() -> None:
    async with fake_s3() as s3, pool() as request:
        s3.faults.append(once("UploadPart", error(403, "AccessDenied"), number=2))
        s3.faults.append(once("AbortMultipartUpload", Answer(204)))  # the first leaves part 1
        s3.faults.append(once("AbortMultipartUpload", SERVER_ERROR, number=2))  # retried
        s3.uploads["earlier"] = Upload("key", None)
        with pytest.raises(S3ResponseError, match="AccessDenied"):
            await send(request, s3, concurrency=1)
        assert [r.operation for r in s3.requests if r.operation != "UploadPart"][1:] == [
            "AbortMultipartUpload",
            "ListParts",  # parts still listed
            "AbortMultipartUpload",  # 500: retried
            "AbortMultipartUpload",
            "ListParts",  # 404 NoSuchUpload: gone
        ]
        assert list(s3.uploads) == ["earlier"]


async def test_an_upload_that_cannot_be_aborted_is_noted_on_the_error() -> None:
    async with fake_s3() as s3, pool() as request:
        s3.faults.append(once("UploadPart", error(403, "AccessDenied"), number=2))
        s3.faults.append(not_removed)
        with pytest.raises(S3ResponseError, match="AccessDenied") as raised:
            await send(request, s3, concurrency=1, abort_attempts=2)
        assert len(s3.of("AbortMultipartUpload")) == len(s3.of("ListParts")) == 2
        (note,) = raised.value.__notes__
        assert note == (
            "the multipart upload upload-1+/= of bucket 'bucket' key 'key' could not be aborted"
            " (S3Error: abort of bucket 'bucket' key 'key' (upload upload-1+/=): 1 parts are"
            " still listed after 2 aborts): its parts stay stored, and billed, until it is (by"
            " lowhaio_s3.abort_upload, or a bucket lifecycle rule with"
            " AbortIncompleteMultipartUpload)"
        )
        assert list(s3.uploads) == ["upload-1+/="]


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (always("AbortMultipartUpload", error(403, "AccessDenied")), "S3ResponseError: Abort"),
        (always("ListParts", Answer(200, [], b"<Nonsense/>")), "not a ListPartsResult"),
        (always("ListParts", error(403, "AccessDenied")), "S3ResponseError: ListParts"),
    ],
)
async def test_an_abort_that_fails_is_noted(fault: object, reason: str) -> None:
    async with fake_s3() as s3, pool() as request:
        s3.faults.append(always("UploadPart", error(403, "AccessDenied")))
        s3.faults.append(fault)  # type: ignore[arg-type]
        with pytest.raises(S3ResponseError, match="AccessDenied") as raised:
            await send(request, s3, concurrency=1)
        assert reason in raised.value.__notes__[-1]
        assert "could not be aborted" in raised.value.__notes__[-1]


async def test_an_abort_that_hangs_is_given_up_after_its_timeout() -> None:
    async with fake_s3() as s3, pool() as request:

        async def hangs(request: Request) -> None:
            if request.operation == "AbortMultipartUpload":
                await asyncio.sleep(60)

        s3.faults.append(always("UploadPart", error(403, "AccessDenied")))
        s3.faults.append(hangs)
        with pytest.raises(S3ResponseError) as raised:
            await send(request, s3, concurrency=1, abort_timeout=0.1)
        assert "could not be aborted (no end after 0.1 s)" in raised.value.__notes__[-1]


async def test_an_abort_that_finds_an_empty_list_is_done() -> None:
    empty = xml_answer("<ListPartsResult><UploadId>x</UploadId></ListPartsResult>")
    async with fake_s3() as s3, pool() as request:
        s3.faults.append(always("UploadPart", error(403, "AccessDenied")))
        s3.faults.append(not_removed)
        s3.faults.append(always("ListParts", empty))
        with pytest.raises(S3ResponseError) as raised:
            await send(request, s3, concurrency=1)
        assert not hasattr(raised.value, "__notes__")
        assert len(s3.of("AbortMultipartUpload")) == 1


async def test_abort_upload() -> None:
    async with fake_s3() as s3, pool() as request:
        s3.uploads["u1"] = Upload("dir/key", None, {1: (b"x", '"e"', None)})
        await abort_upload(request, s3.url(), "dir/key", "u1")
        assert s3.uploads == {}
        await abort_upload(request, s3.url(), "dir/key", "u1")  # gone already: fine
        assert [r.operation for r in s3.requests] == [
            "AbortMultipartUpload",
            "ListParts",
            "AbortMultipartUpload",
            "ListParts",
        ]
        s3.uploads["u2"] = Upload("dir/key", None, {1: (b"x", '"e"', None)})
        s3.faults.append(not_removed)
        with pytest.raises(S3Error, match="1 parts are still listed after 3 aborts"):
            await abort_upload(request, s3.url(), "dir/key", "u2", retries=no_wait())


# Cancellation -------------------------------------------------------------------------------


async def until(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Poll the fake's state: it has no event for every change a test waits for."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.001)


def client_tasks(s3: FakeS3) -> list[asyncio.Task[object]]:
    """The tasks running but the test's and the fake server's."""
    assert s3.server is not None
    others = {asyncio.current_task(), *s3.server.tasks}
    return [task for task in asyncio.all_tasks() if task not in others]


def holding_part(number: int, release: asyncio.Event):  # type: ignore[no-untyped-def]
    async def fault(request: Request) -> None:
        if request.operation == "UploadPart" and request.query["partNumber"] == str(number):
            await release.wait()

    return fault


async def test_a_cancelled_upload_cancels_its_parts_and_is_aborted() -> None:
    async with fake_s3() as s3, pool() as request:
        s3.faults.append(holding_part(3, asyncio.Event()))
        task = asyncio.ensure_future(send(request, s3, data_of(6 * PART), concurrency=2))
        await until(lambda: s3.in_flight["UploadPart"] == 1 and "3" in sent_parts(s3))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [r.operation for r in s3.requests[-2:]] == ["AbortMultipartUpload", "ListParts"]
        assert s3.uploads == {}
        assert s3.objects == {}
        assert client_tasks(s3) == []  # no part's task outlives the call


async def test_a_timeout_around_an_upload() -> None:
    async with fake_s3() as s3, pool() as request:
        s3.faults.append(holding_part(2, asyncio.Event()))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await send(request, s3, concurrency=2)
        assert s3.uploads == {}


async def test_a_second_cancellation_leaves_the_abort_running() -> None:
    async with fake_s3() as s3, pool() as request:
        aborting = asyncio.Event()
        release = asyncio.Event()

        async def slow_abort(request: Request) -> None:
            if request.operation == "AbortMultipartUpload":
                aborting.set()
                await release.wait()

        s3.faults.append(holding_part(2, asyncio.Event()))
        s3.faults.append(slow_abort)
        task = asyncio.ensure_future(send(request, s3, concurrency=2))
        await until(lambda: "2" in sent_parts(s3))
        task.cancel()
        await aborting.wait()
        task.cancel()  # while it aborts
        with pytest.raises(asyncio.CancelledError):
            await task
        assert s3.uploads  # not aborted yet: it goes on in the background
        release.set()
        await until(lambda: not s3.uploads)
        await until(lambda: client_tasks(s3) == [])  # and ends


async def test_data_error_on_a_part_is_retried_because_a_part_is_idempotent() -> None:
    async with fake_s3() as s3, pool() as request:
        s3.faults.append(once("UploadPart", DROP))
        retries: list[tuple[str, int]] = []
        await send(request, s3, retries=no_wait(on_retry=retried_calls(retries)))
        ((operation, attempt),) = retries
        assert attempt == 1
        assert operation.startswith("UploadPart ")
    assert issubclass(HttpDataError, Exception)
