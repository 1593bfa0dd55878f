"""The errors of S3 transfers. Each names the operation, the bucket and the key (and the
multipart upload, if any); an error answer carries S3's status, code, message and request id,
parsed from its XML document. Never the request's headers, nor the rest of the document (S3's
SignatureDoesNotMatch answer repeats the string that was signed and the access key id)."""

from __future__ import annotations

from lowhaio import HttpError, HttpInvalidRequestError, HttpProtocolError

from ._target import S3Object


class S3Error(HttpError):
    """An S3 transfer failed: `operation` (`UploadPart 7`, `GetObject bytes=0-8388607`),
    `bucket`, `key` and, for a multipart upload, `upload_id`, are attributes and in the
    message."""

    def __init__(
        self, detail: str, target: S3Object, operation: str, upload_id: str | None = None
    ) -> None:
        where = f"{operation} of {target}"
        if upload_id is not None:
            where += f" (upload {upload_id})"
        super().__init__(f"{where}: {detail}")
        self.bucket = target.bucket
        self.key = target.key
        self.operation = operation
        self.upload_id = upload_id
        self.url = target.url  # as HttpError's: no query


class S3ResponseError(S3Error):
    """S3 answered with an error: `status` (an int; 200 for an error inside a successful
    CompleteMultipartUpload), and from its XML document, if any, `code` (`NoSuchKey`,
    `SlowDown`), `s3_message` and `request_id`."""

    def __init__(
        self,
        target: S3Object,
        operation: str,
        status: int,
        code: str | None,
        s3_message: str | None,
        request_id: str | None,
        upload_id: str | None = None,
    ) -> None:
        detail = str(status)
        if code:
            detail += f" {code}"
        if s3_message:
            detail += f": {s3_message}"
        if not (code or s3_message):
            detail += " (no S3 error document)"
        if request_id:
            detail += f" (request id {request_id})"
        super().__init__(detail, target, operation, upload_id)
        self.status = status
        self.code = code
        self.s3_message = s3_message
        self.request_id = request_id


class S3ObjectChangedError(S3ResponseError):
    """The object changed while it was being read: a range was refused as its ETag no longer
    matched (412 to `If-Match`), or came with another ETag or size. What was read is not one
    object's bytes: read it again."""


class S3ProtocolError(S3Error, HttpProtocolError):
    """The server answered what an S3 operation cannot answer: no UploadId or ETag, a document
    that is not XML, a range other than the one asked for."""


class S3BodyLengthError(S3Error, HttpInvalidRequestError):
    """The body to upload is longer or shorter than its stated `size`, or longer than
    `max_size` (or than 10,000 parts of the part size). Nothing was stored: a multipart upload
    was aborted."""


class S3ChecksumError(S3Error):
    """A download's checksum was required (`verify_checksum="required"`) but cannot be
    verified: the object has none, only a composite one (of its parts' checksums), or one of
    an algorithm not given in `checksums`."""


class S3ChecksumMismatchError(S3ChecksumError):
    """The bytes read do not match the object's full-object checksum: `algorithm`, `expected`
    (S3's, base64) and `actual` (the bytes'). They were given to the sink all the same."""

    def __init__(
        self, target: S3Object, operation: str, algorithm: str, expected: str, actual: str
    ) -> None:
        super().__init__(
            f"the bytes read give the {algorithm} checksum {actual}, the object's is {expected}",
            target,
            operation,
        )
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual
