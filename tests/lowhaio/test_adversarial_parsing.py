"""Adversarial responses, byte for byte: status lines, header fields, framing, chunked bodies,
trailers, truncated and overlong bodies, and responses followed by bytes nobody asked for.

Each row is one scripted server (see `adversarial.py`): the exact result or typed error, then
the same pool makes a good request, over a new connection unless the first may be reused.
"""

from __future__ import annotations

import pytest
from adversarial import EVIL, Err, Ok, Row, case, run_case

import lowhaio

Proto = lowhaio.HttpProtocolError
TooLong = lowhaio.HttpHeaderTooLong
TooMany = lowhaio.HttpTooManyHeaders
Closed = lowhaio.HttpConnectionClosedError
Timeout = lowhaio.HttpDataTimeoutError

CL2 = b"content-length: 2\r\n\r\nok"  # the end of a head and its body
OK = Ok(b"ok")
STATUS = Err(Proto, match="status line")
FIELD = Err(Proto, match="header is invalid")


def status(line: bytes) -> bytes:
    return line + b"\r\n" + CL2


def field(*lines: bytes) -> bytes:
    """A 200 response with `lines` as its header section, then content-length 2 and "ok"."""
    return b"HTTP/1.1 200 OK\r\n" + b"".join(line + b"\r\n" for line in lines) + CL2


def with_headers(*headers: tuple[bytes, bytes]) -> Ok:
    return Ok(b"ok", headers=(*headers, (b"content-length", b"2")))


# Status lines (RFC 9112 4) ------------------------------------------------------------------

STATUS_LINES = [
    case("http-1.1", status(b"HTTP/1.1 200 OK"), OK),
    case("http-1.0-not-reused", status(b"HTTP/1.0 200 OK"), OK, reuse=False),
    case(
        "http-1.0-keep-alive-reused",
        b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\n" + CL2,
        OK,
    ),
    case("http-2.0", status(b"HTTP/2.0 200 OK"), STATUS),
    case("http-0.9", status(b"HTTP/0.9 200 OK"), STATUS),
    # RFC 9110 2.5 says a higher minor version SHOULD be processed as 1.1; refused, as curl does.
    case("http-1.2", status(b"HTTP/1.2 200 OK"), STATUS),
    case("http-11-no-dot", status(b"HTTP/11 200 OK"), STATUS),
    case("lower-case-http", status(b"http/1.1 200 OK"), STATUS),
    case("mixed-case-http", status(b"Http/1.1 200 OK"), STATUS),
    case("version-missing", status(b"200 OK"), STATUS),
    case("version-only", status(b"HTTP/1.1"), STATUS),
    case("code-099", status(b"HTTP/1.1 099 Low"), STATUS),
    case("code-000", status(b"HTTP/1.1 000 Zero"), STATUS),
    case("code-600", status(b"HTTP/1.1 600 High"), STATUS),
    case("code-999", status(b"HTTP/1.1 999 High"), STATUS),
    case("code-599-accepted", status(b"HTTP/1.1 599 Odd"), Ok(b"ok", code=b"599")),
    case("code-2-digits", status(b"HTTP/1.1 20 OK"), STATUS),
    case("code-4-digits", status(b"HTTP/1.1 2000 OK"), STATUS),
    case("code-letters", status(b"HTTP/1.1 2OO OK"), STATUS),
    case("code-signed", status(b"HTTP/1.1 +200 OK"), STATUS),
    case("code-negative", status(b"HTTP/1.1 -200 OK"), STATUS),
    case("code-missing", status(b"HTTP/1.1  OK"), STATUS),
    case("reason-missing-with-sp", status(b"HTTP/1.1 200 "), OK),
    case("reason-missing-without-sp", status(b"HTTP/1.1 200"), OK),
    case("reason-obs-text", status(b"HTTP/1.1 200 \xc3\x89t\xe9 \xff"), OK),
    case("reason-htab-and-spaces", status(b"HTTP/1.1 200 \t O  K \t"), OK),
    case("reason-long", status(b"HTTP/1.1 200 " + b"r" * 2000), OK),
    case("reason-nul", status(b"HTTP/1.1 200 O\x00K"), STATUS),
    case("reason-control", status(b"HTTP/1.1 200 O\x01K"), STATUS),
    case("reason-escape", status(b"HTTP/1.1 200 \x1b[31mred"), STATUS),
    case("reason-del", status(b"HTTP/1.1 200 O\x7fK"), STATUS),
    case("reason-bare-cr", status(b"HTTP/1.1 200 O\rK"), STATUS),
    case("two-spaces-before-code", status(b"HTTP/1.1  200 OK"), STATUS),
    case("tab-before-code", status(b"HTTP/1.1\t200 OK"), STATUS),
    case("tab-instead-of-sp-after-code", status(b"HTTP/1.1 200\tOK"), STATUS),
    case("leading-space", status(b" HTTP/1.1 200 OK"), STATUS),
    case("garbage", status(b"garbage"), STATUS),
    case("empty-line-before-status-line", b"\r\n" + status(b"HTTP/1.1 200 OK"), STATUS),
    case("empty-head", b"\r\n\r\n", STATUS),
    case("binary-junk", b"\x00\xff\xfe\x80\x01\x02\x03" * 9 + b"\r\n\r\n", STATUS),
    case("binary-junk-then-close", b"\x00\xff\xfe\x80\x01\x02\x03" * 9, Err(Closed), close=True),
    # What a TLS server answers to plain http: an alert record (or a handshake), then close.
    case("tls-alert-then-close", b"\x15\x03\x03\x00\x02\x02\x28", Err(Closed), close=True),
    case(
        "tls-server-hello-stalls",
        b"\x16\x03\x03\x00\x31\x02\x00\x00\x2d\x03\x03" + bytes(range(0x20, 0x40)),
        Err(Timeout, match="not complete within 0.1"),
        head_timeout=0.1,
    ),
]


@pytest.mark.parametrize("row", STATUS_LINES)
async def test_status_line(row: Row) -> None:
    await run_case(row)


# Header fields (RFC 9112 5, RFC 9110 5.5) ----------------------------------------------------


def head_of_size(size: int) -> bytes:
    """A response whose head, CRLF CRLF included, is exactly `size` bytes, then "ok"."""
    start = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx: "
    return start + b"a" * (size - len(start) - 4) + b"\r\n\r\nok"


HEADERS = [
    case("obs-fold-sp", field(b"x: a", b" b"), with_headers((b"x", b"a b"))),
    case("obs-fold-htab-and-ows", field(b"x: a  ", b"\t  b \t"), with_headers((b"x", b"a b"))),
    case("obs-fold-twice", field(b"x: a", b" b", b"\tc"), with_headers((b"x", b"a b c"))),
    case("obs-fold-of-empty-value", field(b"x:", b" b"), with_headers((b"x", b"b"))),
    case("obs-fold-blank-continuation", field(b"x: a", b"   "), with_headers((b"x", b"a"))),
    case(
        "obs-fold-into-content-length",
        b"HTTP/1.1 200 OK\r\ncontent-length:\r\n 2\r\n\r\nok",
        Ok(b"ok", headers=((b"content-length", b"2"),)),
    ),
    case("obs-fold-control-byte", field(b"x: a", b" \x01b"), FIELD),
    case("obs-fold-before-any-field", field(b" x: a"), FIELD),
    case("space-before-colon", field(b"x : a"), FIELD),
    case("tab-before-colon", field(b"x\t: a"), FIELD),
    case(
        "space-before-colon-content-length",
        b"HTTP/1.1 200 OK\r\ncontent-length : 2\r\n\r\nok",
        FIELD,
    ),
    case("nul-in-value", field(b"x: a\x00b"), FIELD),
    case("cr-in-value", field(b"x: a\rb"), FIELD),
    case("lf-in-value", field(b"x: a\nb"), FIELD),
    case("escape-in-value", field(b"x: \x1b[2J"), FIELD),
    case("vtab-in-value", field(b"x: a\x0bb"), FIELD),
    case("formfeed-in-value", field(b"x: a\x0cb"), FIELD),
    case("del-in-value", field(b"x: a\x7fb"), FIELD),
    case("htab-in-value", field(b"x: a\tb"), with_headers((b"x", b"a\tb"))),
    case("obs-text-in-value", field(b"x: \xe9\xff\x80"), with_headers((b"x", b"\xe9\xff\x80"))),
    case("ows-trimmed", field(b"x: \t a  b \t "), with_headers((b"x", b"a  b"))),
    case("empty-value", field(b"x:"), with_headers((b"x", b""))),
    case("name-lowercased", field(b"X-Foo: Bar"), with_headers((b"x-foo", b"Bar"))),
    case(
        "name-all-token-chars",
        field(b"!#$%&'*+-.^_`|~09AZaz: v"),
        with_headers((b"!#$%&'*+-.^_`|~09azaz", b"v")),
    ),
    case(
        "duplicate-names-kept-in-order",
        field(b"x: 1", b"y: 2", b"X: 3"),
        with_headers((b"x", b"1"), (b"y", b"2"), (b"x", b"3")),
    ),
    case("empty-name", field(b": v"), FIELD),
    case("no-colon", field(b"novalue"), FIELD),
    case("name-with-space", field(b"x y: z"), FIELD),
    case("name-with-at", field(b"x@y: z"), FIELD),
    case("name-with-slash", field(b"x/y: z"), FIELD),
    case("name-quoted", field(b'"x": y'), FIELD),
    case("name-with-parens", field(b"x(y): z"), FIELD),
    case("name-with-braces", field(b"x{y}: z"), FIELD),
    case("name-obs-text", field(b"\xe9t\xe9: v"), FIELD),
    case("name-nul", field(b"x\x00: v"), FIELD),
    case("head-at-max-bytes", head_of_size(256), OK, max_head_bytes=256),
    case("head-over-max-bytes", head_of_size(257), Err(TooLong), max_head_bytes=256),
    case(
        "head-over-max-bytes-never-ending",
        b"HTTP/1.1 200 OK\r\nx: " + b"a" * 300,
        Err(TooLong),
        max_head_bytes=256,
    ),
    case("max-headers", field(b"a: 1", b"b: 2", b"c: 3"), OK, max_headers=4),
    case(
        "over-max-headers", field(b"a: 1", b"b: 2", b"c: 3", b"d: 4"), Err(TooMany), max_headers=4
    ),
    case(
        "over-max-headers-with-a-fold-line",
        field(b"a: 1", b"b: 2", b"c: 3", b" 3"),
        Err(TooMany),
        max_headers=4,
    ),
    case(
        "content-length-list-agrees",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2, 2\r\n\r\nok",
        Ok(b"ok", headers=((b"content-length", b"2, 2"),)),
    ),
    case("content-length-list-no-ows", b"HTTP/1.1 200 OK\r\ncontent-length: 2,2,2\r\n\r\nok", OK),
    case(
        "content-length-list-differs",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2, 3\r\n\r\nok",
        Err(Proto, match="differ"),
    ),
    case(
        "content-length-lines-agree",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nContent-Length: 2\r\n\r\nok",
        OK,
    ),
    case(
        "content-length-lines-differ",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nokk",
        Err(Proto, match="differ"),
    ),
    case(
        "content-length-trailing-comma",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2,\r\n\r\nok",
        Err(Proto, match="content-length is invalid"),
    ),
    case(
        "content-length-plus",
        b"HTTP/1.1 200 OK\r\ncontent-length: +2\r\n\r\nok",
        Err(Proto, match="content-length is invalid"),
    ),
    case(
        "content-length-negative",
        b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\nok",
        Err(Proto, match="content-length is invalid"),
    ),
    case(
        "content-length-hex",
        b"HTTP/1.1 200 OK\r\ncontent-length: 0x2\r\n\r\nok",
        Err(Proto, match="content-length is invalid"),
    ),
    case(
        "content-length-two-numbers",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2 2\r\n\r\nok",
        Err(Proto, match="content-length is invalid"),
    ),
    case(
        "content-length-empty",
        b"HTTP/1.1 200 OK\r\ncontent-length:\r\n\r\nok",
        Err(Proto, match="content-length is invalid"),
    ),
    case(
        "content-length-19-digits",
        b"HTTP/1.1 200 OK\r\ncontent-length: 0000000000000000002\r\n\r\nok",
        Err(Proto, match="content-length is invalid"),
    ),
    case(
        "content-length-18-digits-leading-zeros",
        b"HTTP/1.1 200 OK\r\ncontent-length: 000000000000000002\r\n\r\nok",
        OK,
    ),
    case("content-length-ows", b"HTTP/1.1 200 OK\r\ncontent-length: \t2 \r\n\r\nok", OK),
    # RFC 9112 2.2: a lone LF ends a line, as old embedded servers send; a bare CR ends none.
    case("bare-lf-everywhere", b"HTTP/1.1 200 OK\ncontent-length: 2\n\nok", OK),
    case("bare-lf-after-status-line", b"HTTP/1.1 200 OK\n" + CL2, OK),
    case("bare-lf-after-a-field", field(b"x: a\ny: b"), with_headers((b"x", b"a"), (b"y", b"b"))),
    case("bare-lf-ending-the-head", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\nok", OK),
    case("cr-cr-lf", field(b"x: a\r"), FIELD),
    case("bare-cr-between-fields", field(b"x: a\ry: b"), FIELD),
    case("bare-cr-after-status-line", b"HTTP/1.1 200 OK\r" + CL2, STATUS),
]


@pytest.mark.parametrize("row", HEADERS)
async def test_header_fields(row: Row) -> None:
    await run_case(row)


# Framing (RFC 9112 6) and interim responses (RFC 9110 15.2) -----------------------------------

TE = b"HTTP/1.1 200 OK\r\ntransfer-encoding: %s\r\n\r\n2\r\nok\r\n0\r\n\r\n"
HEAD_TAIL = b"0123456789"  # looks like a body, after a response that has none
CHUNKED_TAIL = b"5\r\nhello\r\n0\r\n\r\n"
EMPTY = Ok(b"")
UNSUPPORTED = Err(Proto, match="not supported")


def interim(count: int, line: bytes = b"HTTP/1.1 102 Processing") -> bytes:
    return (line + b"\r\n\r\n") * count + b"HTTP/1.1 200 OK\r\n" + CL2


FRAMING = [
    case(
        "no-framing-until-close",
        b"HTTP/1.1 200 OK\r\n\r\nuntil close",
        Ok(b"until close"),
        close=True,
        reuse=False,
    ),
    case("content-length-only", b"HTTP/1.1 200 OK\r\n" + CL2, OK),
    case("chunked-only", TE % b"chunked", OK),
    case("chunked-upper-case", TE % b"CHUNKED", OK),
    case("chunked-empty-list-elements", TE % b" , chunked ,", OK),
    case(
        "chunked-and-content-length",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 11\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
        Err(Proto, match="both"),
    ),
    case(
        "content-length-and-unknown-coding",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: foo\r\n\r\nok",
        Err(Proto, match="both"),
    ),
    case("chunked-chunked", TE % b"chunked, chunked", UNSUPPORTED),
    case(
        "chunked-on-two-lines",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
        UNSUPPORTED,
    ),
    case("gzip-chunked", TE % b"gzip, chunked", UNSUPPORTED),
    case("chunked-gzip", TE % b"chunked, gzip", UNSUPPORTED),
    case("gzip-only", TE % b"gzip", UNSUPPORTED),
    case("identity", TE % b"identity", UNSUPPORTED),
    case("unknown-coding", TE % b"x-unknown", UNSUPPORTED),
    case("chunked-with-parameter", TE % b"chunked;q=1", UNSUPPORTED),
    case("empty-value", TE % b"", UNSUPPORTED),
    case("only-commas", TE % b", ,", UNSUPPORTED),
    case(
        "chunked-in-http-1.0",
        b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        Err(Proto, match="HTTP/1.0"),
    ),
    case(
        "chunked-in-http-1.0-keep-alive",
        b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
        Err(Proto, match="HTTP/1.0"),
    ),
    case(
        "head-content-length",
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n",
        EMPTY,
        method=b"HEAD",
    ),
    case(
        "head-content-length-with-tail",
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n" + HEAD_TAIL,
        EMPTY,
        method=b"HEAD",
        reuse=False,
    ),
    case(
        "head-chunked",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        EMPTY,
        method=b"HEAD",
    ),
    case(
        "head-chunked-with-tail",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + CHUNKED_TAIL,
        EMPTY,
        method=b"HEAD",
        reuse=False,
    ),
    case(
        "head-no-framing-with-tail",
        b"HTTP/1.1 200 OK\r\n\r\n" + HEAD_TAIL,
        EMPTY,
        method=b"HEAD",
        reuse=False,
    ),
    case("204", b"HTTP/1.1 204 No Content\r\n\r\n", Ok(b"", code=b"204")),
    case(
        "204-content-length-with-tail",
        b"HTTP/1.1 204 No Content\r\ncontent-length: 10\r\n\r\n" + HEAD_TAIL,
        Ok(b"", code=b"204"),
        reuse=False,
    ),
    case(
        "204-chunked-with-tail",
        b"HTTP/1.1 204 No Content\r\ntransfer-encoding: chunked\r\n\r\n" + CHUNKED_TAIL,
        Ok(b"", code=b"204"),
        reuse=False,
    ),
    case("304", b"HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\n\r\n", Ok(b"", code=b"304")),
    case(
        "304-with-tail",
        b"HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\n\r\n" + HEAD_TAIL,
        Ok(b"", code=b"304"),
        reuse=False,
    ),
    case("interim-100", interim(1, b"HTTP/1.1 100 Continue"), OK),
    case(
        "interim-103-headers-not-merged",
        b"HTTP/1.1 103 Early Hints\r\nlink: </a>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n" + CL2,
        with_headers(),
    ),
    case("interim-199", interim(1, b"HTTP/1.1 199 Odd"), OK),
    case("interim-in-http-1.0", interim(1, b"HTTP/1.0 100 Continue"), OK),
    case(
        "interim-with-content-length-has-no-body",
        interim(1, b"HTTP/1.1 100 Continue\r\ncontent-length: 5"),
        OK,
    ),
    case("interim-16", interim(16), OK),
    case("interim-17", interim(17), Err(Proto, match="interim")),
    case(
        "101", b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\n\r\n", Err(Proto, match="101")
    ),
    case(
        "101-after-100",
        interim(1, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Up"),
        Err(Proto, match="101"),
    ),
    case("interim-with-invalid-field", interim(1, b"HTTP/1.1 100 Continue\r\nx : y"), FIELD),
    case("interim-then-close", b"HTTP/1.1 100 Continue\r\n\r\n", Err(Closed), close=True),
]


@pytest.mark.parametrize("row", FRAMING)
async def test_framing(row: Row) -> None:
    await run_case(row)


# Chunked bodies (RFC 9112 7.1) ---------------------------------------------------------------


def chunked(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + body


def sized(size_line: bytes, data: bytes = b"abc") -> bytes:
    """A chunked response: one chunk of `data` announced by `size_line`, then the last chunk."""
    return chunked(size_line + b"\r\n" + data + b"\r\n0\r\n\r\n")


ABC = Ok(b"abc")
SIZE = Err(Proto, "body", match="chunk-size line is invalid")
NO_CRLF = Err(Proto, "body", match="not followed by CRLF")

CHUNKED = [
    case("size-16-hex-digits", sized(b"0000000000000003"), ABC),
    case("size-17-hex-digits-leading-zeros", sized(b"00000000000000003"), SIZE),
    case("size-17-hex-digits-overflow", sized(b"10000000000000003"), SIZE),
    case(
        "size-2**64-1-then-close",
        chunked(b"ffffffffffffffff\r\nabc"),
        Err(Closed, "body"),
        close=True,
    ),
    case("size-0x-prefix", sized(b"0x3"), SIZE),
    case("size-plus", sized(b"+3"), SIZE),
    case("size-minus", sized(b"-3"), SIZE),
    case("size-minus-zero", chunked(b"-0\r\n\r\n"), SIZE),
    case("size-leading-space", sized(b" 3"), SIZE),
    case("size-trailing-space", sized(b"3 "), SIZE),
    case("size-trailing-tab", sized(b"3\t"), SIZE),
    case("size-space-inside", sized(b"1 2", b"x" * 0x12), SIZE),
    case("size-empty", sized(b""), SIZE),
    case("size-not-hex", sized(b"g"), SIZE),
    case("size-upper-case-hex", sized(b"A", b"0123456789"), Ok(b"0123456789")),
    case("size-lower-case-hex", sized(b"a", b"0123456789"), Ok(b"0123456789")),
    case("size-leading-zeros", sized(b"00003"), ABC),
    case("size-underscore", sized(b"0_3"), SIZE),
    case("ext-name", sized(b"3;name"), ABC),
    case("ext-name-value", sized(b"3;name=value"), ABC),
    case("ext-bws", sized(b"3 \t; name \t= value"), ABC),
    case("ext-quoted", sized(b'3;name="a; b=c"'), ABC),
    case("ext-quoted-escape", sized(b'3;name="a\\"b\\\\"'), ABC),
    case("ext-several", sized(b'3;a=1;b;c="x"'), ABC),
    case("ext-on-last-chunk", chunked(b"3\r\nabc\r\n0;last=1\r\n\r\n"), ABC),
    case("ext-empty", sized(b"3;"), SIZE),
    case("ext-trailing-semicolon", sized(b"3;a=1;"), SIZE),
    case("ext-no-name", sized(b"3;=value"), SIZE),
    case("ext-no-value", sized(b"3;name="), SIZE),
    case("ext-space-in-name", sized(b"3;na me"), SIZE),
    case("ext-unterminated-quote", sized(b'3;name="abc'), SIZE),
    case("ext-quote-inside-token", sized(b'3;name=a"b'), SIZE),
    case("ext-control-in-value", sized(b"3;name=a\x01"), SIZE),
    case("ext-control-in-quoted", sized(b'3;name="a\x01"'), SIZE),
    case("ext-del-in-quoted", sized(b'3;name="a\x7f"'), SIZE),
    case("ext-at-max-line-bytes", sized(b"3;" + b"e" * 62), ABC, max_line_bytes=64),
    case(
        "ext-over-max-line-bytes",
        sized(b"3;" + b"e" * 63),
        Err(TooLong, "body", match="chunk-size"),
        max_line_bytes=64,
    ),
    case(
        "size-line-over-max-never-ending",
        chunked(b"3;" + b"e" * 100),
        Err(TooLong, "body", match="chunk-size"),
        max_line_bytes=64,
    ),
    case("data-missing-crlf", chunked(b"3\r\nabc0\r\n\r\n"), NO_CRLF),
    case("data-longer-than-size", chunked(b"3\r\nabcd\r\n0\r\n\r\n"), NO_CRLF),
    case("data-lone-lf", chunked(b"3\r\nabc\n0\r\n\r\n"), ABC),
    case("data-bare-cr", chunked(b"3\r\nabc\r0\r\n\r\n"), NO_CRLF),
    case("data-lone-cr", chunked(b"3\r\nabc\r0\r\n\r\n"), NO_CRLF),
    case("size-lone-lf", chunked(b"3\nabc\r\n0\r\n\r\n"), ABC),
    case("size-lone-lf-then-close", chunked(b"3\nabc"), Err(Closed, "body"), close=True),
    case("size-bare-cr", chunked(b"3\rabc\r\n0\r\n\r\n"), SIZE),
    case("last-chunk-lone-lf", chunked(b"0\n\r\n"), Ok(b"")),
    case("end-lone-lf", chunked(b"3\r\nabc\r\n0\r\n\n"), ABC),
    case("lone-lf-everywhere", chunked(b"3;x=y\nabc\n2\nde\n0\n\n"), Ok(b"abcde")),
    case("many-small-chunks", chunked(b"1\r\na\r\n" * 50 + b"0\r\n\r\n"), Ok(b"a" * 50)),
    case("zero-length-body", chunked(b"0\r\n\r\n"), Ok(b"")),
    case("no-last-chunk-then-close", chunked(b"3\r\nabc\r\n"), Err(Closed, "body"), close=True),
    case("inside-data-then-close", chunked(b"5\r\nabc"), Err(Closed, "body"), close=True),
    case(
        "no-final-crlf-then-close", chunked(b"3\r\nabc\r\n0\r\n"), Err(Closed, "body"), close=True
    ),
    case(
        "inside-trailers-then-close", chunked(b"0\r\nx-a: 1\r\n"), Err(Closed, "body"), close=True
    ),
]


@pytest.mark.parametrize("row", CHUNKED)
async def test_chunked(row: Row) -> None:
    await run_case(row)


# Trailers (RFC 9112 7.1.2) -------------------------------------------------------------------


def trailed(*lines: bytes) -> bytes:
    return chunked(b"3\r\nabc\r\n0\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n")


TRAILER = Err(Proto, "body", match="header is invalid")

TRAILERS = [
    case(
        "two",
        trailed(b"X-A: 1", b"x-b:  2 "),
        Ok(b"abc", trailers=((b"x-a", b"1"), (b"x-b", b"2"))),
    ),
    case("empty-value", trailed(b"x-a:"), Ok(b"abc", trailers=((b"x-a", b""),))),
    case(
        "content-length-is-just-a-trailer",
        trailed(b"content-length: 99"),
        Ok(b"abc", trailers=((b"content-length", b"99"),)),
    ),
    case("no-colon", trailed(b"bad trailer"), TRAILER),
    case("space-before-colon", trailed(b"x-a : 1"), TRAILER),
    case("nul-in-value", trailed(b"x-a: 1\x00"), TRAILER),
    case("cr-in-value", trailed(b"x-a: 1\r2"), TRAILER),
    # RFC 9112 5.2: a user agent replaces obs-fold with SP, in trailers as in the head.
    case(
        "obs-fold-becomes-sp", trailed(b"x-a: 1", b" 2"), Ok(b"abc", trailers=((b"x-a", b"1 2"),))
    ),
    case(
        "lone-lf-inside",
        trailed(b"x-a: 1\nx-b: 2"),
        Ok(b"abc", trailers=((b"x-a", b"1"), (b"x-b", b"2"))),
    ),
    case("bare-cr-inside", trailed(b"x-a: 1\rx-b: 2"), TRAILER),
    case(
        "at-max-headers",
        trailed(b"a: 1", b"b: 2", b"c: 3", b"d: 4"),
        Ok(b"abc", trailers=((b"a", b"1"), (b"b", b"2"), (b"c", b"3"), (b"d", b"4"))),
        max_headers=4,
    ),
    case(
        "over-max-headers",
        trailed(b"a: 1", b"b: 2", b"c: 3", b"d: 4", b"e: 5"),
        Err(TooMany, "body"),
        max_headers=4,
    ),
    case(
        "at-max-line-bytes",
        trailed(b"x: " + b"t" * 61),
        Ok(b"abc", trailers=((b"x", b"t" * 61),)),
        max_line_bytes=64,
    ),
    case(
        "over-max-line-bytes",
        trailed(b"x: " + b"t" * 62),
        Err(TooLong, "body", match="trailer"),
        max_line_bytes=64,
    ),
]


@pytest.mark.parametrize("row", TRAILERS)
async def test_trailers(row: Row) -> None:
    await run_case(row)


# Bodies shorter or longer than declared, and bytes after a complete response -----------------

CL5 = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
HELLO = Ok(b"hello")

BODIES = [
    case(
        "shorter-than-declared-then-close",
        CL5 + b"he",
        Err(Closed, "body", match="3 bytes"),
        close=True,
    ),
    case("none-of-declared-then-close", CL5, Err(Closed, "body", match="5 bytes"), close=True),
    case("longer-than-declared", CL5 + b"hello, world", HELLO, reuse=False),
    case("one-byte-longer", CL5 + b"hello!", HELLO, reuse=False),
    case(
        "zero-length-then-bytes",
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\nxyz",
        EMPTY,
        reuse=False,
    ),
    case(
        "until-close-http-1.0",
        b"HTTP/1.0 200 OK\r\n\r\nuntil close",
        Ok(b"until close"),
        close=True,
        reuse=False,
    ),
    case(
        "until-close-http-1.0-keep-alive",
        b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\n\r\nuntil close",
        Ok(b"until close"),
        close=True,
        reuse=False,
    ),
    case("until-close-empty", b"HTTP/1.1 200 OK\r\n\r\n", EMPTY, close=True, reuse=False),
    case(
        "until-close-looks-like-responses",
        b"HTTP/1.1 200 OK\r\n\r\n" + EVIL * 2,
        Ok(EVIL * 2),
        close=True,
        reuse=False,
    ),
    case(
        "until-close-large",
        b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 300_000,
        Ok(b"x" * 300_000),
        close=True,
        reuse=False,
    ),
    # A second response nobody asked for, in the same write: never handed to the next request.
    case("split-after-content-length", CL5 + b"hello" + EVIL, HELLO, reuse=False),
    case("split-after-chunked", chunked(b"5\r\nhello\r\n0\r\n\r\n") + EVIL, HELLO, reuse=False),
    case(
        "split-after-trailers",
        trailed(b"x-a: 1") + EVIL,
        Ok(b"abc", trailers=((b"x-a", b"1"),)),
        reuse=False,
    ),
    case("split-after-head", CL5 + EVIL, Ok(b""), method=b"HEAD", reuse=False),
    case(
        "split-after-204",
        b"HTTP/1.1 204 No Content\r\n\r\n" + EVIL,
        Ok(b"", code=b"204"),
        reuse=False,
    ),
    case(
        "split-after-304",
        b"HTTP/1.1 304 Not Modified\r\n\r\n" + EVIL,
        Ok(b"", code=b"304"),
        reuse=False,
    ),
    case(
        "split-after-interim-and-final",
        interim(1, b"HTTP/1.1 100 Continue") + EVIL,
        OK,
        reuse=False,
    ),
    case(
        "split-after-http-1.0-keep-alive",
        b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\n" + CL2 + EVIL,
        OK,
        reuse=False,
    ),
    case(
        "split-interim-after-final",
        b"HTTP/1.1 200 OK\r\n" + CL2 + b"HTTP/1.1 100 Continue\r\n\r\n",
        OK,
        reuse=False,
    ),
    case("stray-crlf-after-response", b"HTTP/1.1 200 OK\r\n" + CL2 + b"\r\n", OK, reuse=False),
]


@pytest.mark.parametrize("row", BODIES)
async def test_bodies(row: Row) -> None:
    await run_case(row)
