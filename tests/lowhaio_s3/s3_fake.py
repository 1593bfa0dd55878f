"""A scripted S3 for lowhaio_s3's tests: an in-memory server on 127.0.0.1 that speaks just
enough of S3's REST API (PutObject, HeadObject, ranged GetObject with If-Match, the multipart
operations and ListMultipartUploads) and checks what S3 checks of them (each part's
`x-amz-checksum-*`, the part list of CompleteMultipartUpload), so that a test can script faults
on top: `FakeS3.faults` are called with every request before it is served, and may answer it
themselves, drop the connection, or wait.

It records what it was sent (`requests`), how many requests of each operation were in flight at
once (`peak`), how many it answered (`answered`), and the connections it accepted
(`server.connections`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from conftest import Server, serve

REASONS = {
    200: b"OK",
    204: b"No Content",
    206: b"Partial Content",
    400: b"Bad Request",
    403: b"Forbidden",
    404: b"Not Found",
    412: b"Precondition Failed",
    416: b"Range Not Satisfiable",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    # Send only this many bytes of the body (its content-length says all), then close.
    cut_at: int | None = None
    length: bool = True  # False: no content-length added (a HEAD's, a chunked body's)

    def encoded(self, head_only: bool = False) -> bytes:
        head = b"HTTP/1.1 %d %s\r\n" % (self.status, REASONS.get(self.status, b"Other"))
        names = {name.lower() for name, _ in self.headers}
        headers = list(self.headers)
        if self.length and b"content-length" not in names:
            headers.append((b"content-length", b"%d" % len(self.body)))
        head += b"".join(b"%s: %s\r\n" % pair for pair in headers) + b"\r\n"
        if head_only:
            return head
        body = self.body if self.cut_at is None else self.body[: self.cut_at]
        return head + body


DROP = "drop"  # a fault's answer: close the connection without a word


def error(status: int, code: str, message: str = "", **extra: str) -> Answer:
    fields = "".join(f"<{name}>{value}</{name}>" for name, value in extra.items())
    document = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{message}</Message>{fields}<RequestId>REQ123</RequestId></Error>"
    )
    return Answer(status, [(b"content-type", b"application/xml")], document.encode())


def xml_answer(document: str, status: int = 200) -> Answer:
    return Answer(status, [(b"content-type", b"application/xml")], document.encode())


@dataclass
class Request:
    method: str
    bucket: str
    key: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    operation: str
    number: int  # of this operation, from 1

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


Fault = Callable[[Request], "Answer | str | Awaitable[Answer | str | None] | None"]


@dataclass
class StoredObject:
    data: bytes
    etag: str
    checksums: dict[str, str] = field(default_factory=dict)  # algorithm -> value
    checksum_type: str | None = None


@dataclass
class Upload:
    key: str
    algorithm: str | None
    parts: dict[int, tuple[bytes, str, str | None]] = field(default_factory=dict)


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def md5_etag(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'


def operation_of(method: str, key: str, query: dict[str, str]) -> str:
    if not key:
        return "ListMultipartUploads" if "uploads" in query else f"Bucket{method}"
    if method == "POST":
        return "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"
    if "uploadId" in query:
        return {"PUT": "UploadPart", "DELETE": "AbortMultipartUpload", "GET": "ListParts"}[method]
    return {"PUT": "PutObject", "HEAD": "HeadObject", "GET": "GetObject"}[method]


class FakeS3:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], StoredObject] = {}
        self.uploads: dict[str, Upload] = {}
        self.faults: list[Fault] = []
        self.requests: list[Request] = []
        self.counts: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()  # answers written whole
        self.ignore_if_match = False
        self.ignore_range = False
        self.head_checksum_type = True  # False: as moto's HEAD, no x-amz-checksum-type
        self.max_uploads = 1000  # a page of ListMultipartUploads
        self._next_upload = 0
        self.server: Server | None = None

    def url(self, bucket: str = "bucket") -> str:
        assert self.server is not None
        return self.server.url(f"/{bucket}")

    def put(self, key: str, data: bytes, bucket: str = "bucket", **checksums: str) -> None:
        self.objects[(bucket, key)] = StoredObject(data, md5_etag(data), dict(checksums))

    def of(self, operation: str) -> list[Request]:
        return [r for r in self.requests if r.operation == operation]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request = self.parse(head)
            self.counts[request.operation] += 1
            request.number = self.counts[request.operation]
            self.requests.append(request)
            self.in_flight[request.operation] += 1  # from its head on
            self.peak[request.operation] = max(
                self.peak[request.operation], self.in_flight[request.operation]
            )
            try:
                length = request.header("content-length")
                request.body = await reader.readexactly(int(length)) if length else b""
                answer: Answer | str | None = None
                for fault in list(self.faults):
                    answer = fault(request)  # type: ignore[assignment]
                    if asyncio.iscoroutine(answer):
                        answer = await answer
                    if answer is not None:
                        break
                if answer is None:
                    answer = self.serve(request)
            finally:
                self.in_flight[request.operation] -= 1
            if answer == DROP:
                return
            assert isinstance(answer, Answer)
            writer.write(answer.encoded(head_only=request.method == "HEAD"))
            await writer.drain()
            self.answered[request.operation] += 1
            if answer.cut_at is not None:
                return

    def parse(self, head: bytes) -> Request:
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        parts = urlsplit(target)
        path = unquote(parts.path)
        bucket, _, key = path.lstrip("/").partition("/")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        return Request(
            method, bucket, key, query, headers, b"", operation_of(method, key, query), 0
        )

    # The operations ----------------------------------------------------------------------

    def serve(self, request: Request) -> Answer:
        return getattr(self, "op_" + request.operation)(request)

    def op_BucketPUT(self, request: Request) -> Answer:
        return Answer(200)

    def checksum_error(self, request: Request, data: bytes) -> Answer | None:
        for name, value in request.headers.items():
            if name.startswith("x-amz-checksum-") and name not in (
                "x-amz-checksum-algorithm",
                "x-amz-checksum-type",
                "x-amz-checksum-mode",
            ):
                algorithm = name.removeprefix("x-amz-checksum-")
                if algorithm == "crc32" and value != crc32_b64(data):
                    return error(
                        400, "BadDigest", f"The CRC32 you specified did not match: {value}"
                    )
        return None

    def op_PutObject(self, request: Request) -> Answer:
        refused = self.checksum_error(request, request.body)
        if refused is not None:
            return refused
        checksums = {
            name.removeprefix("x-amz-checksum-"): value
            for name, value in request.headers.items()
            if name.startswith("x-amz-checksum-")
        }
        stored = StoredObject(request.body, md5_etag(request.body), checksums, "FULL_OBJECT")
        self.objects[(request.bucket, request.key)] = stored
        headers = [(b"etag", stored.etag.encode())]
        headers += [(b"x-amz-checksum-" + k.encode(), v.encode()) for k, v in checksums.items()]
        return Answer(200, headers)

    def op_CreateMultipartUpload(self, request: Request) -> Answer:
        self._next_upload += 1
        upload_id = f"upload-{self._next_upload}+/="
        algorithm = request.header("x-amz-checksum-algorithm")
        self.uploads[upload_id] = Upload(request.key, algorithm.lower() if algorithm else None)
        return xml_answer(
            '<?xml version="1.0" encoding="UTF-8"?>\n<InitiateMultipartUploadResult'
            ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>bucket</Bucket>'
            f"<Key>{request.key}</Key><UploadId>{upload_id}</UploadId>"
            "</InitiateMultipartUploadResult>"
        )

    def op_UploadPart(self, request: Request) -> Answer:
        upload = self.uploads.get(request.query["uploadId"])
        if upload is None:
            return error(404, "NoSuchUpload", "The specified upload does not exist.")
        refused = self.checksum_error(request, request.body)
        if refused is not None:
            return refused
        checksum = request.header(f"x-amz-checksum-{upload.algorithm}")
        etag = md5_etag(request.body)
        upload.parts[int(request.query["partNumber"])] = (request.body, etag, checksum)
        return Answer(200, [(b"etag", etag.encode())])

    def op_CompleteMultipartUpload(self, request: Request) -> Answer:
        upload = self.uploads.get(request.query["uploadId"])
        if upload is None:
            return error(404, "NoSuchUpload", "The specified upload does not exist.")
        root = ET.fromstring(request.body)
        listed = []
        for part in root.iterfind("{*}Part"):
            number = int(part.findtext("{*}PartNumber") or 0)
            stored = upload.parts.get(number)
            if stored is None or stored[1] != part.findtext("{*}ETag"):
                return error(400, "InvalidPart", f"part {number}")
            if upload.algorithm is not None:
                element = f"{{*}}Checksum{upload.algorithm.upper()}"
                if part.findtext(element) != stored[2]:
                    return error(400, "InvalidPart", f"checksum of part {number}")
            listed.append(number)
        if listed != sorted(listed) or not listed:
            return error(400, "InvalidPartOrder")
        data = b"".join(upload.parts[n][0] for n in listed)
        digests = b"".join(hashlib.md5(upload.parts[n][0]).digest() for n in listed)
        etag = f'"{hashlib.md5(digests).hexdigest()}-{len(listed)}"'
        checksums = {}
        result_checksum = ""
        if upload.algorithm == "crc32":
            joined = b"".join(base64.b64decode(upload.parts[n][2] or "") for n in listed)
            value = f"{crc32_b64(joined)}-{len(listed)}"
            checksums["crc32"] = value
            result_checksum = f"<ChecksumCRC32>{value}</ChecksumCRC32>"
        self.objects[(request.bucket, upload.key)] = StoredObject(
            data, etag, checksums, "COMPOSITE" if checksums else None
        )
        del self.uploads[request.query["uploadId"]]
        return xml_answer(
            '<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUploadResult'
            ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Key>{upload.key}</Key><ETag>{etag}</ETag>{result_checksum}"
            "</CompleteMultipartUploadResult>"
        )

    def op_AbortMultipartUpload(self, request: Request) -> Answer:
        if self.uploads.pop(request.query["uploadId"], None) is None:
            return error(404, "NoSuchUpload", "The specified upload does not exist.")
        return Answer(204)

    def op_ListParts(self, request: Request) -> Answer:
        upload = self.uploads.get(request.query["uploadId"])
        if upload is None:
            return error(404, "NoSuchUpload", "The specified upload does not exist.")
        parts = "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
            for n, (_, etag, _) in sorted(upload.parts.items())
        )
        return xml_answer(
            '<?xml version="1.0" encoding="UTF-8"?>\n<ListPartsResult'
            ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<UploadId>{request.query['uploadId']}</UploadId>{parts}</ListPartsResult>"
        )

    def op_ListMultipartUploads(self, request: Request) -> Answer:
        listed = sorted((u.key, i) for i, u in self.uploads.items())
        listed = [item for item in listed if item[0].startswith(request.query.get("prefix", ""))]
        if "key-marker" in request.query:
            after = (request.query["key-marker"], request.query["upload-id-marker"])
            listed = [item for item in listed if item > after]
        page, rest = listed[: self.max_uploads], listed[self.max_uploads :]
        uploads = "".join(
            f"<Upload><Key>{key}</Key><UploadId>{i}</UploadId></Upload>" for key, i in page
        )
        more = "<IsTruncated>false</IsTruncated>"
        if rest:
            more = (
                f"<IsTruncated>true</IsTruncated><NextKeyMarker>{page[-1][0]}</NextKeyMarker>"
                f"<NextUploadIdMarker>{page[-1][1]}</NextUploadIdMarker>"
            )
        return xml_answer(
            '<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult'
            f' xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{more}{uploads}'
            "</ListMultipartUploadsResult>"
        )

    def object_headers(self, stored: StoredObject, request: Request) -> list[tuple[bytes, bytes]]:
        headers = [(b"etag", stored.etag.encode())]
        if request.header("x-amz-checksum-mode") == "ENABLED":
            for algorithm, value in stored.checksums.items():
                headers.append((b"x-amz-checksum-" + algorithm.encode(), value.encode()))
            if stored.checksums and stored.checksum_type and self.head_checksum_type:
                headers.append((b"x-amz-checksum-type", stored.checksum_type.encode()))
        return headers

    def op_HeadObject(self, request: Request) -> Answer:
        stored = self.objects.get((request.bucket, request.key))
        if stored is None:
            return Answer(404)
        headers = self.object_headers(stored, request)
        headers.append((b"content-length", b"%d" % len(stored.data)))
        return Answer(200, headers)

    def op_GetObject(self, request: Request) -> Answer:
        stored = self.objects.get((request.bucket, request.key))
        if stored is None:
            return error(404, "NoSuchKey", "The specified key does not exist.", Key=request.key)
        if_match = request.header("if-match")
        if if_match is not None and if_match != stored.etag and not self.ignore_if_match:
            return error(412, "PreconditionFailed", "At least one of the pre-conditions failed")
        asked = request.header("range")
        if asked is None or self.ignore_range:
            return Answer(200, self.object_headers(stored, request), stored.data)
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", asked)
        assert match, asked
        start, end = int(match[1]), int(match[2])
        size = len(stored.data)
        if start >= size:
            return error(416, "InvalidRange", "The requested range is not satisfiable")
        end = min(end, size - 1)
        headers = [
            (b"etag", stored.etag.encode()),
            (b"content-range", b"bytes %d-%d/%d" % (start, end, size)),
        ]
        return Answer(206, headers, stored.data[start : end + 1])


@contextlib.asynccontextmanager
async def fake_s3() -> AsyncIterator[FakeS3]:
    fake = FakeS3()
    async with serve(fake.handle) as server:
        fake.server = server
        yield fake
