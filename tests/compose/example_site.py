"""`Site`: what the READMEs' `https://example.com` answers, served on 127.0.0.1 for their
examples (`test_readme_examples.py`), one `Site` per example (and one as the proxy its
examples name, answering what it forwards as the origin would, and one on a Unix socket):

- `/old` redirects (301) to `/new`, which answers `new`;
- `/flaky` answers 503 the first time it is asked, then `ok`;
- `/headers` answers the request's header fields as a JSON object (names lowercased);
- `/report` answers a text report, gzip-coded when the request's accept-encoding names gzip;
- any other target answers with the request's body (de-chunked, if it came chunked) and its
  content-type.
"""

from __future__ import annotations

import asyncio
import gzip
import json

from conftest import read_request


def response(status: bytes, body: bytes = b"", headers: tuple[bytes, ...] = ()) -> bytes:
    fields = b"".join(field + b"\r\n" for field in headers)
    return b"HTTP/1.1 %b\r\n%bcontent-length: %d\r\n\r\n%b" % (status, fields, len(body), body)


def dechunked(raw: bytes) -> bytes:
    """The data of a chunked body as `read_request` gives it (framing and trailers included)."""
    data, at = b"", 0
    while True:
        line_end = raw.index(b"\r\n", at)
        size = int(raw[at:line_end].split(b";")[0], 16)
        if not size:
            return data
        data += raw[line_end + 2 : line_end + 2 + size]
        at = line_end + 2 + size + 2


class Site:
    def __init__(self) -> None:
        self.flaky_asked = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, body = await read_request(reader)
            request_line, *lines = head[:-4].split(b"\r\n")
            target = request_line.split(b" ")[1]
            if target.startswith(b"http://"):  # absolute form: this Site is the README's proxy
                target = b"/" + target.removeprefix(b"http://").partition(b"/")[2]
            fields = {}
            for line in lines:
                name, _, value = line.partition(b":")
                fields[name.strip().lower()] = value.strip()
            writer.write(self.answer(target.partition(b"?")[0], fields, body))
            await writer.drain()

    def answer(self, path: bytes, fields: dict[bytes, bytes], body: bytes) -> bytes:
        if path == b"/old":
            return response(b"301 Moved Permanently", headers=(b"location: /new",))
        if path == b"/new":
            return response(b"200 OK", b"new")
        if path == b"/flaky":
            self.flaky_asked += 1
            if self.flaky_asked == 1:
                return response(b"503 Service Unavailable")
            return response(b"200 OK", b"ok")
        if path == b"/report":
            report = b"".join(b"line %d of the report\n" % n for n in range(1, 1001))
            if b"gzip" not in fields.get(b"accept-encoding", b""):
                return response(b"200 OK", report)
            return response(b"200 OK", gzip.compress(report), (b"content-encoding: gzip",))
        if path == b"/headers":
            echoed = {name.decode(): value.decode() for name, value in fields.items()}
            document = json.dumps(echoed).encode()
            return response(b"200 OK", document, (b"content-type: application/json",))
        if fields.get(b"transfer-encoding") == b"chunked":
            body = dechunked(body)
        content_type = fields.get(b"content-type")
        described = () if content_type is None else (b"content-type: " + content_type,)
        return response(b"200 OK", body, described)
