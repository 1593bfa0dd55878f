"""What an error says: S3's code, message and request id from its XML document, the operation,
bucket and key, never what a SignatureDoesNotMatch document repeats of the request; which
errors are retried; how a key is put in a URL; listing the uploads left in progress."""

from __future__ import annotations

import pytest
from conftest import pool
from lowhaio_s3._target import S3Object
from s3_fake import Answer, Upload, error, fake_s3, xml_answer
from s3_helpers import always, no_wait, pieces

from lowhaio import (
    HttpConnectionClosedError,
    HttpConnectionError,
    HttpDataTimeoutError,
    HttpError,
    HttpInvalidRequestError,
    HttpPoolClosedError,
    HttpProtocolError,
)
from lowhaio_s3 import (
    RETRIABLE_CODES,
    ListedUpload,
    S3BodyLengthError,
    S3ChecksumError,
    S3ChecksumMismatchError,
    S3Error,
    S3ObjectChangedError,
    S3ProtocolError,
    S3ResponseError,
    list_uploads,
    object_url,
    retriable,
    upload,
)

TARGET = S3Object("http://127.0.0.1:1/bucket", "dir/key")


def test_the_error_tree() -> None:
    assert issubclass(S3Error, HttpError)
    assert issubclass(S3ResponseError, S3Error)
    assert issubclass(S3ObjectChangedError, S3ResponseError)
    assert issubclass(S3ProtocolError, HttpProtocolError)
    assert issubclass(S3BodyLengthError, HttpInvalidRequestError)
    assert issubclass(S3ChecksumMismatchError, S3ChecksumError)


def response_error(status: int, code: str | None = None) -> S3ResponseError:
    return S3ResponseError(TARGET, "UploadPart 1", status, code, None, None)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (HttpConnectionError("refused"), True),
        (HttpConnectionClosedError("closed"), True),  # a part or a range again is the same
        (HttpDataTimeoutError("no progress"), True),
        (HttpProtocolError("garbled"), True),
        (response_error(500, "InternalError"), True),
        (response_error(502), True),
        (response_error(503, "SlowDown"), True),
        (response_error(429), True),
        (response_error(400, "RequestTimeout"), True),
        (response_error(200, "InternalError"), True),  # inside a CompleteMultipartUpload's 200
        (response_error(400, "BadDigest"), False),
        (response_error(403, "AccessDenied"), False),
        (response_error(404, "NoSuchUpload"), False),
        (response_error(412, "PreconditionFailed"), False),
        (S3ProtocolError("no ETag", TARGET, "UploadPart 1"), False),
        (S3BodyLengthError("too long", TARGET, "upload"), False),
        (HttpInvalidRequestError("bad header"), False),
        (HttpPoolClosedError("closed"), False),
        (RuntimeError("the caller's"), False),
    ],
)
def test_what_is_retried(failure: Exception, expected: bool) -> None:
    assert retriable(failure) is expected


def test_retriable_codes() -> None:
    assert {"InternalError", "SlowDown", "RequestTimeout"} <= RETRIABLE_CODES


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            error(403, "AccessDenied", "Access Denied"),
            "403 AccessDenied: Access Denied (request id REQ123)",
        ),
        (  # S3's result documents have a namespace; error documents usually not
            xml_answer(
                '<Error xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Code>SlowDown</Code>'
                "</Error>",
                status=400,
            ),
            "400 SlowDown",
        ),
        (xml_answer("<Error><Message>only this</Message></Error>", 409), "409: only this"),
        (Answer(502, [], b"<html>Bad gateway</html>"), "502 (no S3 error document)"),
        (Answer(403, [], b"<Error><Code>Acc"), "403 (no S3 error document)"),  # not XML
        (Answer(403, [], b"<Other/>"), "403 (no S3 error document)"),
        (Answer(400, [], b"x" * 100_000), "400 (no S3 error document)"),  # read 64 KiB of it
    ],
)
async def test_error_documents(answer: Answer, message: str) -> None:
    async with fake_s3() as s3, pool() as request:
        s3.faults.append(always("PutObject", answer))
        with pytest.raises(S3ResponseError) as raised:
            await upload(request, s3.url(), "dir/key", pieces(b"x"), retries=no_wait(attempts=1))
        assert str(raised.value) == f"PutObject of bucket 'bucket' key 'dir/key': {message}"
        assert raised.value.url == s3.url() + "/dir/key"


async def test_a_signature_error_shows_nothing_of_the_request() -> None:
    document = error(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided.",
        AWSAccessKeyId="AKIAEXAMPLEKEYID1234",
        StringToSign="AWS4-HMAC-SHA256\n20260101T000000Z\nscope\nfeedface",
        SignatureProvided="0123456789abcdef",
        CanonicalRequest="PUT\n/bucket/dir/key\n\nhost:example\n",
    )
    async with fake_s3() as s3, pool() as request:
        s3.faults.append(always("PutObject", document))
        with pytest.raises(S3ResponseError) as raised:
            await upload(request, s3.url(), "dir/key", pieces(b"x"), retries=no_wait())
        failure = raised.value
        assert failure.code == "SignatureDoesNotMatch"
        for secret in ("AKIAEXAMPLE", "AWS4-HMAC", "feedface", "0123456789abcdef", "host:example"):
            assert secret not in str(failure)
            assert secret not in repr(failure)
            assert all(secret not in str(value) for value in vars(failure).values())


@pytest.mark.parametrize(
    ("bucket_url", "key", "url"),
    [
        ("https://b.s3.eu-west-2.amazonaws.com", "k", "https://b.s3.eu-west-2.amazonaws.com/k"),
        (
            "https://b.s3.eu-west-2.amazonaws.com/",
            "a/b/c",
            "https://b.s3.eu-west-2.amazonaws.com/a/b/c",
        ),
        ("http://127.0.0.1:9000/bucket", "a b", "http://127.0.0.1:9000/bucket/a%20b"),
        ("http://127.0.0.1:9000/bucket/", "/lead//x/", "http://127.0.0.1:9000/bucket//lead//x/"),
        (
            "http://h/b",
            "~-._unreserved+plus%pct?q#f&a=b;c:d@e!f$g'h(i)j*k,l é",
            "http://h/b/~-._unreserved%2Bplus%25pct%3Fq%23f%26a%3Db%3Bc%3Ad%40e%21f%24g%27h%28i%29j%2Ak%2Cl%20%C3%A9",
        ),
    ],
)
def test_keys_in_urls(bucket_url: str, key: str, url: str) -> None:
    assert object_url(bucket_url, key) == url


async def test_list_uploads_follows_every_page() -> None:
    async with fake_s3() as s3, pool() as request:
        for number in range(5):
            s3.uploads[f"id-{number}"] = Upload(f"dir/{number % 2}", None)
        s3.uploads["other"] = Upload("elsewhere", None)
        s3.max_uploads = 2
        listed = await list_uploads(request, s3.url())
        assert len(listed) == 6
        assert listed[0] == ListedUpload("dir/0", "id-0")
        assert len(s3.of("ListMultipartUploads")) == 3
        assert await list_uploads(request, s3.url(), "dir/1") == [
            ListedUpload("dir/1", "id-1"),
            ListedUpload("dir/1", "id-3"),
        ]
        assert s3.of("ListMultipartUploads")[-1].query["prefix"] == "dir/1"


@pytest.mark.parametrize(
    "answer",
    [
        xml_answer("<Nope/>"),
        xml_answer(  # the same page again and again
            "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated></ListMultipartUploadsResult>"
        ),
    ],
)
async def test_list_uploads_refuses_answers_that_do_not_end(answer: Answer) -> None:
    async with fake_s3() as s3, pool() as request:
        s3.faults.append(always("ListMultipartUploads", answer))
        with pytest.raises(S3ProtocolError, match="ListMultipartUploads of bucket 'bucket'"):
            await list_uploads(request, s3.url() + "/")
        assert len(s3.requests) <= 2
