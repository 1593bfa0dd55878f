"""Sans-IO tests of `lowhaio._http11`: bytes in, bytes or exceptions out, no sockets.

The readers are driven the way a connection drives them: one bytearray that grows as bytes
arrive, `start`/`end` offsets into it, and every split of the input tried where it matters.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
from lowhaio._exceptions import (
    HttpConnectionError,
    HttpDataError,
    HttpHeaderTooLong,
    HttpInvalidRequestError,
    HttpProtocolError,
    HttpTooManyHeaders,
)
from lowhaio._http11 import (
    ChunkedDecoder,
    Headers,
    Origin,
    RequestFraming,
    ResponseFraming,
    ResponseHead,
    ResponseLimits,
    ResponseReader,
    find_head_end,
    parse_head,
    parse_url,
    request_head,
    request_target,
    response_framing,
)

from lowhaio import _http11

# Helpers -------------------------------------------------------------------------------------


def assert_refused(call: Callable[[], object]) -> HttpInvalidRequestError:
    """`call()` raises HttpInvalidRequestError, a ValueError that no retry logic would retry."""
    with pytest.raises(HttpInvalidRequestError) as info:
        call()
    assert isinstance(info.value, ValueError)
    assert not isinstance(info.value, HttpConnectionError | HttpDataError)
    return info.value


def target_of(url: str, params: Iterable[tuple[str | bytes, str | bytes]] = ()) -> bytes:
    return request_target(parse_url(url), params)


def head(*lines: bytes, max_headers: int = 100) -> ResponseHead:
    """Parse a response head given as its lines, without the final CRLF CRLF."""
    return parse_head(b"\r\n".join(lines), max_headers)


def framing(*lines: bytes, method: bytes = b"GET") -> ResponseFraming:
    return response_framing(head(*lines), method)


def splits(data: bytes) -> Iterator[list[bytes]]:
    """`data` cut in two at every offset, then one byte at a time."""
    for at in range(len(data) + 1):
        yield [data[:at], data[at:]]
    yield [data[i : i + 1] for i in range(len(data))]


class CountingBuffer(bytearray):
    """A bytearray that adds up how many bytes its `find` calls were asked to search."""

    def __init__(self, data: bytes = b"") -> None:
        super().__init__(data)
        self.searched: dict[bytes, int] = {}

    def find(self, sub: Any, start: Any = None, end: Any = None, /) -> int:
        lo = 0 if start is None else start
        hi = len(self) if end is None else min(end, len(self))
        key = bytes(sub)
        self.searched[key] = self.searched.get(key, 0) + max(hi - lo, 0)
        return super().find(sub, start, end)


# parse_url and request_target ----------------------------------------------------------------


_IDNA = "xn--bcher-kva.example"  # 'bücher.example'


@pytest.mark.parametrize(
    ("url", "origin", "host_header"),
    [
        ("http://example.com/", Origin("http", "example.com", 80), b"example.com"),
        ("http://example.com:80/", Origin("http", "example.com", 80), b"example.com"),
        ("https://example.com/", Origin("https", "example.com", 443), b"example.com"),
        ("https://example.com:443/", Origin("https", "example.com", 443), b"example.com"),
        ("http://example.com:8080/", Origin("http", "example.com", 8080), b"example.com:8080"),
        ("http://example.com:443/", Origin("http", "example.com", 443), b"example.com:443"),
        ("https://example.com:80/", Origin("https", "example.com", 80), b"example.com:80"),
        ("http://example.com:65535/", Origin("http", "example.com", 65535), b"example.com:65535"),
        ("http://example.com:/", Origin("http", "example.com", 80), b"example.com"),
        ("http://127.0.0.1:8000/", Origin("http", "127.0.0.1", 8000), b"127.0.0.1:8000"),
        ("http://[::1]:8080/", Origin("http", "::1", 8080), b"[::1]:8080"),
        ("http://[::1]/", Origin("http", "::1", 80), b"[::1]"),
        ("https://[2001:db8::1]:443/", Origin("https", "2001:db8::1", 443), b"[2001:db8::1]"),
        ("http://[::FFFF:1]/", Origin("http", "::ffff:1", 80), b"[::ffff:1]"),
        ("http://bücher.example/", Origin("http", _IDNA, 80), _IDNA.encode()),
        ("http://BÜCHER.example:81/", Origin("http", _IDNA, 81), _IDNA.encode() + b":81"),
        ("HTTP://EXAMPLE.COM/", Origin("http", "example.com", 80), b"example.com"),
        ("HtTpS://Example.Com:8443/", Origin("https", "example.com", 8443), b"example.com:8443"),
        ("http://a_b-c.example/", Origin("http", "a_b-c.example", 80), b"a_b-c.example"),
    ],
)
def test_parse_url_origin_and_host_header(url: str, origin: Origin, host_header: bytes) -> None:
    target = parse_url(url)
    assert target.origin == origin
    assert target.host_header == host_header
    assert b"@" not in target.host_header


@pytest.mark.parametrize(
    ("url", "path_query", "has_query"),
    [
        ("http://h", b"/", False),
        ("http://h/", b"/", False),
        ("http://h?a=1", b"/?a=1", True),
        ("http://h/?", b"/", False),
        ("http://h/a/b?x=1&y=2", b"/a/b?x=1&y=2", True),
        ("http://h/Case/KEPT?Q=V", b"/Case/KEPT?Q=V", True),
        ("http://h/a%2Fb?c=%2F", b"/a%2Fb?c=%2F", True),  # no double encoding
        ("http://h/%7e%41", b"/%7e%41", False),
        ("http://h/a b?c d", b"/a%20b?c%20d", True),
        ("http://h/é?q=é", b"/%C3%A9?q=%C3%A9", True),
        ("http://h/\u00a0", b"/%C2%A0", False),
        ("http://h/100%", b"/100%25", False),  # stray '%' is encoded
        ("http://h/%zz/%2", b"/%25zz/%252", False),
        ("http://h/?a=%41%", b"/?a=%41%25", True),
        ("http://h/p#frag", b"/p", False),
        ("http://h/p?q=1#frag", b"/p?q=1", True),
        ("http://h/#", b"/", False),
        ("http://h/;p=1,2:3@4!$&'()*+=-._~", b"/;p=1,2:3@4!$&'()*+=-._~", False),
        ("http://h/p?a=/:@?&b=c", b"/p?a=/:@?&b=c", True),
        ('http://h/a<b>"{}|\\^`[]', b"/a%3Cb%3E%22%7B%7D%7C%5C%5E%60%5B%5D", False),
    ],
)
def test_parse_url_path_and_query(url: str, path_query: bytes, has_query: bool) -> None:
    target = parse_url(url)
    assert target.path_query == path_query
    assert target.has_query is has_query
    assert target_of(url) == path_query


@pytest.mark.parametrize(
    ("url", "params", "expected"),
    [
        ("http://h/p", [], b"/p"),
        ("http://h/p?x=1", [], b"/p?x=1"),
        ("http://h/p", [("a", "1")], b"/p?a=1"),
        ("http://h", [("a", "1")], b"/?a=1"),
        ("http://h/p?", [("a", "1")], b"/p?a=1"),
        ("http://h/p?x=1", [("a", "1")], b"/p?x=1&a=1"),
        ("http://h/p#f", [("a", "1"), ("b", "2")], b"/p?a=1&b=2"),
        ("http://h/p", [("a", "1"), ("a", "2")], b"/p?a=1&a=2"),
        ("http://h/p", [(b"a", b"\xff\x00")], b"/p?a=%FF%00"),
        ("http://h/p", [("n", b"v"), (b"m", "w")], b"/p?n=v&m=w"),
        ("http://h/p", [("a", "")], b"/p?a="),
        ("http://h/p", [("", "")], b"/p?="),
        ("http://h/p", [("k y", "v&w=x/y?z#")], b"/p?k%20y=v%26w%3Dx%2Fy%3Fz%23"),
        ("http://h/p", [("a", "%41")], b"/p?a=%2541"),  # params are raw: '%' is encoded
        ("http://h/p", [("é", "~-._")], b"/p?%C3%A9=~-._"),
        ("http://h/p", [("a", "1\r\n2")], b"/p?a=1%0D%0A2"),
    ],
)
def test_request_target_params(
    url: str, params: list[tuple[str | bytes, str | bytes]], expected: bytes
) -> None:
    assert target_of(url, params) == expected


def test_request_target_params_from_a_generator() -> None:
    assert target_of("http://h/", (pair for pair in [("a", "b")])) == b"/?a=b"


def test_request_target_params_leave_only_unreserved_characters_bare() -> None:
    every = "".join(chr(code) for code in range(128)) + "é€"
    encoded = target_of("http://h/", [(every, every)])
    assert encoded.startswith(b"/?")
    name, value = encoded[2:].split(b"=")
    assert name == value
    assert unquote_to_bytes(name) == every.encode()
    bare = re.sub(rb"%[0-9A-F]{2}", b"", name)
    unreserved = "-." + string.digits + string.ascii_uppercase + "_" + string.ascii_lowercase + "~"
    assert bare == unreserved.encode()  # each bare, in code point order; all else is %XX


@pytest.mark.parametrize(
    "params",
    [
        [("a",)],
        [("a", "b", "c")],
        [1],
        [None],
        [(1, "b")],
        [("a", 2)],
        [("a", None)],
        [(None, "b")],
        {"key": "value"},
    ],
    ids=repr,
)
def test_request_target_invalid_params(params: Any) -> None:
    target = parse_url("http://h/")
    assert_refused(lambda: request_target(target, params))


@pytest.mark.parametrize("params", [["ab"], {"ab": "value"}], ids=repr)
def test_request_target_str_item_is_not_a_pair(params: Any) -> None:
    # A two-character str unpacks into a "pair": it must not silently become `a=b`.
    target = parse_url("http://h/")
    assert_refused(lambda: request_target(target, params))


def test_invalid_request_error_is_a_value_error_not_a_connection_error() -> None:
    assert issubclass(HttpInvalidRequestError, ValueError)
    assert not issubclass(HttpInvalidRequestError, HttpConnectionError)
    assert not issubclass(HttpInvalidRequestError, HttpDataError)


@pytest.mark.parametrize("url", [b"http://h/", None, 80, 1.5, ["http://h/"]], ids=repr)
def test_parse_url_refuses_non_str(url: Any) -> None:
    assert_refused(lambda: parse_url(url))


_CONTROLS = ["\r", "\n", "\r\n", "\x00", "\t", "\x7f", "\x1b", "\x1f"]


@pytest.mark.parametrize("control", _CONTROLS, ids=repr)
@pytest.mark.parametrize(
    "template",
    [
        "{}http://h/",
        "http{}://h/",
        "http://h{}/",
        "http://h{}.example/",
        "http://h:80{}/",
        "http://u{}@h/",
        "http://h/a{}b",
        "http://h/a{}",
        "http://h/?a={}b",
        "http://h/?a=b{}",
        "http://h/#{}",
        "http://h/{}",
    ],
)
def test_parse_url_refuses_control_characters(template: str, control: str) -> None:
    error = assert_refused(lambda: parse_url(template.format(control)))
    assert "control" in str(error)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://h/",
        "file:///etc/passwd",
        "ws://h/",
        "httpx://h/",
        "mailto:a@h",
        "h/path",
        "//h/path",
        "h:80/path",
        "",
    ],
)
def test_parse_url_refuses_unsupported_schemes(url: str) -> None:
    error = assert_refused(lambda: parse_url(url))
    assert "scheme" in str(error)


@pytest.mark.parametrize(
    "url",
    [
        "http:///p",
        "http://",
        "http://:80/",
        "http://user@/",
        "http:p",
        "https:",
    ],
)
def test_parse_url_refuses_missing_host(url: str) -> None:
    error = assert_refused(lambda: parse_url(url))
    assert "no host" in str(error)


@pytest.mark.parametrize(
    "url",
    [
        "http://h:abc/",
        "http://h:99999/",
        "http://h:65536/",
        "http://h:0/",
        "https://h:0/",
        "http://h:-1/",
        "http://h:+80/",
        "http://h: 80/",
        "http://h:\uff18\uff10/"  # fullwidth digits,
        "http://h:80:81/",
        "http://[::1]:x/",
    ],
)
def test_parse_url_refuses_bad_ports(url: str) -> None:
    assert_refused(lambda: parse_url(url))


@pytest.mark.parametrize(
    "url",
    [
        "http://[::g]/",
        "http://[::1/",
        "http://::1/",
        "http://[1:2:3]/",
        "http://[12345::]/",
        "http://[1.2.3.4]/",
        "http://[v1.a:b]/",
        "http://[v1.fe]/",  # IPvFuture: not an IPv6 address, and not a name either
        "http://[::1]x/",  # garbage after the bracket
    ],
)
def test_parse_url_refuses_invalid_ipv6(url: str) -> None:
    assert_refused(lambda: parse_url(url))


@pytest.mark.parametrize(
    "url",
    [
        "http://exa mple.com/",
        "http://a*b/",
        "http://a%41/",
        "http://a!b/",
        "http://a$b/",
        "http://a,b/",
        "http://a<b/",
        "http://a\u00a0b/",
        "http://a..b/",
        "http://.a/",
        "http://a.b../",
        "http://" + "a" * 64 + ".example/",
    ],
)
def test_parse_url_refuses_invalid_host_names(url: str) -> None:
    error = assert_refused(lambda: parse_url(url))
    assert "host" in str(error)


@pytest.mark.parametrize(
    "url", ["http://user:pass@example.com/", "http://user@example.com:81/", "http://@a/"]
)
def test_parse_url_refuses_userinfo(url: str) -> None:
    error = assert_refused(lambda: parse_url(url))
    assert "userinfo" in str(error)
    assert "pass" not in str(error).replace("password", "")


@pytest.mark.parametrize("url", ["http://a\\@b/", "http://a:1\\@b/", "http://u:p\\@b:1/"])
def test_parse_url_refuses_a_backslash_in_the_authority(url: str) -> None:
    # Read as "/" by WHATWG parsers: they would send this to host "a", urlsplit to "b".
    error = assert_refused(lambda: parse_url(url))
    assert "backslash" in str(error)


@pytest.mark.parametrize("url", ["http://a/\ud800", "http://a/?s=secret&x=\udfff"])
def test_parse_url_refuses_lone_surrogates_without_echoing_the_query(url: str) -> None:
    error = assert_refused(lambda: parse_url(url))
    assert "surrogate" in str(error)
    assert "secret" not in str(error)


# request_head --------------------------------------------------------------------------------


def test_request_head_simple_get() -> None:
    data, frame = request_head(b"GET", b"/p?q=1", b"example.com", [])
    assert data == b"GET /p?q=1 HTTP/1.1\r\nhost: example.com\r\n\r\n"
    assert frame == RequestFraming(None, False, False)


def test_request_head_host_comes_first_and_headers_keep_order_and_case() -> None:
    headers = [(b"Accept", b"*/*"), (b"X-Empty", b""), (b"x-a", b"1"), (b"X-A", b"2")]
    data, _ = request_head(b"POST", b"/", b"h:8080", iter(headers))
    assert data == (
        b"POST / HTTP/1.1\r\nhost: h:8080\r\nAccept: */*\r\nX-Empty: \r\nx-a: 1\r\nX-A: 2\r\n\r\n"
    )


@pytest.mark.parametrize("name", [b"host", b"Host", b"HOST"])
def test_request_head_caller_host_replaces_ours(name: bytes) -> None:
    data, _ = request_head(b"GET", b"/", b"ours", [(b"a", b"1"), (name, b"theirs"), (b"b", b"2")])
    assert data == b"GET / HTTP/1.1\r\na: 1\r\n" + name + b": theirs\r\nb: 2\r\n\r\n"
    assert b"ours" not in data


def test_request_head_refuses_two_host_headers() -> None:
    headers = [(b"Host", b"a"), (b"host", b"a")]
    assert_refused(lambda: request_head(b"GET", b"/", b"h", headers))


@pytest.mark.parametrize(
    "method", [b"GET", b"HEAD", b"M-SEARCH", b"PROPFIND", b"get", b"X!#$%&'*+.^_`|~9"]
)
def test_request_head_accepts_token_methods(method: bytes) -> None:
    data, _ = request_head(method, b"/", b"h", [])
    assert data == method + b" / HTTP/1.1\r\nhost: h\r\n\r\n"


@pytest.mark.parametrize(
    "method",
    [b"GE T", b"GET\r\n", b"GET ", b"", b"G:T", b"G(T", b"G\xe9T", "GET", bytearray(b"GET"), None],
    ids=repr,
)
def test_request_head_refuses_bad_methods(method: Any) -> None:
    assert_refused(lambda: request_head(method, b"/", b"h", []))


_INJECTIONS = [b"\r", b"\n", b"\x00", b"\r\n", b"\r\nX-Injected: 1\r\n"]


def _head_with(part: str, bad: bytes) -> Callable[[], object]:
    method, name, value = b"GET", b"x-name", b"value"
    if part == "method":
        method = b"GE" + bad + b"T"
    elif part == "name":
        name = b"x-" + bad + b"name"
    else:
        value = b"val" + bad + b"ue"
    return lambda: request_head(method, b"/", b"h", [(name, value)])


@pytest.mark.parametrize("bad", _INJECTIONS, ids=repr)
@pytest.mark.parametrize("part", ["method", "name", "value"])
def test_request_head_refuses_injection(part: str, bad: bytes) -> None:
    assert_refused(_head_with(part, bad))


@pytest.mark.parametrize("bad", [b" ", b"\t", b":", b"\x7f", b"\xe9", b"(", b"@", b"/"], ids=repr)
@pytest.mark.parametrize("part", ["method", "name"])
def test_request_head_refuses_non_token_characters(part: str, bad: bytes) -> None:
    assert_refused(_head_with(part, bad))


@pytest.mark.parametrize("bad", [b"\x01", b"\x08", b"\x0b", b"\x0c", b"\x1f", b"\x7f"], ids=repr)
def test_request_head_refuses_control_characters_in_values(bad: bytes) -> None:
    assert_refused(_head_with("value", bad))


@pytest.mark.parametrize("value", [b"a\tb", b"\t", b" a b ", b"\x80\xff", b"!~", b""], ids=repr)
def test_request_head_accepts_values(value: bytes) -> None:
    data, _ = request_head(b"GET", b"/", b"h", [(b"x", value)])
    assert data == b"GET / HTTP/1.1\r\nhost: h\r\nx: " + value + b"\r\n\r\n"


def test_request_head_refuses_empty_header_name() -> None:
    assert_refused(lambda: request_head(b"GET", b"/", b"h", [(b"", b"v")]))


@pytest.mark.parametrize(
    "field",
    [
        (b"a",),
        (b"a", b"b", b"c"),
        b"ab",
        "ab",
        5,
        None,
        ("a", b"b"),
        (b"a", "b"),
        (b"a", None),
        (b"a", 5),
        (None, b"b"),
        (bytearray(b"a"), b"b"),
        (b"a", bytearray(b"b")),
        (memoryview(b"a"), b"b"),
    ],
    ids=repr,
)
def test_request_head_refuses_invalid_header_items(field: Any) -> None:
    assert_refused(lambda: request_head(b"GET", b"/", b"h", [(b"ok", b"1"), field]))


@pytest.mark.parametrize(
    ("headers", "frame"),
    [
        ([], RequestFraming(None, False, False)),
        ([(b"Content-Length", b"0")], RequestFraming(0, False, False)),
        ([(b"content-length", b"12345")], RequestFraming(12345, False, False)),
        ([(b"content-length", b"007")], RequestFraming(7, False, False)),
        ([(b"Transfer-Encoding", b"chunked")], RequestFraming(None, True, False)),
        ([(b"transfer-encoding", b"Chunked")], RequestFraming(None, True, False)),
        ([(b"transfer-encoding", b"gzip, chunked")], RequestFraming(None, True, False)),
        ([(b"transfer-encoding", b"gzip,\tchunked,")], RequestFraming(None, True, False)),
        ([(b"Connection", b"close")], RequestFraming(None, False, True)),
        ([(b"connection", b"Keep-Alive, Close")], RequestFraming(None, False, True)),
        ([(b"connection", b"keep-alive")], RequestFraming(None, False, False)),
        ([(b"connection", b"closed")], RequestFraming(None, False, False)),
        ([(b"connection", b"close"), (b"Connection", b"x")], RequestFraming(None, False, True)),
        ([(b"x-connection", b"close")], RequestFraming(None, False, False)),
        ([(b"content-length", b"3"), (b"connection", b"close")], RequestFraming(3, False, True)),
    ],
)
def test_request_head_framing(headers: list[tuple[bytes, bytes]], frame: RequestFraming) -> None:
    data, got = request_head(b"POST", b"/", b"h", headers)
    assert got == frame
    for name, value in headers:
        assert b"\r\n" + name + b": " + value + b"\r\n" in data


@pytest.mark.parametrize(
    "value", [b"", b"-1", b"+1", b" 1", b"1 ", b"1.0", b"0x10", b"1e3", b"1, 1", b"1" * 19]
)
def test_request_head_refuses_invalid_content_length(value: bytes) -> None:
    assert_refused(lambda: request_head(b"POST", b"/", b"h", [(b"content-length", value)]))


@pytest.mark.parametrize("second", [b"1", b"2"])
def test_request_head_refuses_duplicate_content_length(second: bytes) -> None:
    headers = [(b"content-length", b"1"), (b"Content-Length", second)]
    assert_refused(lambda: request_head(b"POST", b"/", b"h", headers))


@pytest.mark.parametrize("value", [b"gzip", b"chunked, gzip", b"", b",", b"identity"])
def test_request_head_refuses_transfer_encoding_not_ending_with_chunked(value: bytes) -> None:
    headers = [(b"transfer-encoding", value)]
    assert_refused(lambda: request_head(b"POST", b"/", b"h", headers))


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-length", b"5"), (b"transfer-encoding", b"chunked")],
        [(b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"5")],
    ],
)
def test_request_head_refuses_content_length_with_transfer_encoding(
    headers: list[tuple[bytes, bytes]],
) -> None:
    assert_refused(lambda: request_head(b"POST", b"/", b"h", headers))


# find_head_end -------------------------------------------------------------------------------

_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\n"


def feed_head(pieces: Iterable[bytes], max_bytes: int = 1024, prefix: bytes = b"junk") -> int:
    """Feed pieces as a connection does; the head's length once found, else -1."""
    buf = bytearray(prefix)
    start, searched = len(prefix), 0
    for piece in pieces:
        buf += piece
        at = find_head_end(buf, start, len(buf), searched=searched, max_bytes=max_bytes)
        if at >= 0:
            return at - start
        searched = len(buf) - start
    return -1


def test_find_head_end_finds_the_end() -> None:
    buf = bytearray(b"previous" + _HEAD + b"hi")
    assert find_head_end(buf, 8, len(buf), searched=0, max_bytes=1024) == 8 + len(_HEAD)


def test_find_head_end_ignores_bytes_past_end() -> None:
    buf = bytearray(_HEAD)
    assert find_head_end(buf, 0, len(_HEAD) - 1, searched=0, max_bytes=1024) == -1


@pytest.mark.parametrize("size", range(len(_HEAD)))
def test_find_head_end_incomplete(size: int) -> None:
    buf = bytearray(_HEAD[:size])
    assert find_head_end(buf, 0, size, searched=0, max_bytes=1024) == -1


def test_find_head_end_at_every_split() -> None:
    for pieces in splits(_HEAD + b"hi"):
        assert feed_head(pieces) == len(_HEAD), pieces


def test_find_head_end_at_every_three_way_split() -> None:
    data = _HEAD + b"hi"
    for i in range(len(data) + 1):
        for j in range(i, len(data) + 1):
            assert feed_head([data[:i], data[i:j], data[j:]]) == len(_HEAD), (i, j)


@pytest.mark.parametrize(
    "data",
    [_HEAD, b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 4000 + b"\r\n\r\n", b"HTTP/1.1 200 OK\n\n"],
)
def test_find_head_end_never_searches_again_what_it_has_searched(data: bytes) -> None:
    # Fed a byte at a time (a server trickling a 64 KiB head must not cost 64K * 64K), each
    # call looks back at most 2 bytes, where an empty line may straddle the old end: all the
    # bytes before those are overwritten with empty lines, which a second look would take
    # for the end of the head.
    buf = bytearray(b"junk")
    start, searched = 4, 0
    for byte in data:
        buf.append(byte)
        at = find_head_end(buf, start, len(buf), searched=searched, max_bytes=1 << 16)
        if at >= 0:
            break
        searched = len(buf) - start
        buf[start : len(buf) - 2] = b"\n" * (len(buf) - 2 - start)
    assert at == len(buf) == start + len(data)


@pytest.mark.parametrize("max_bytes", [len(_HEAD), len(_HEAD) + 1, 4096])
def test_find_head_end_accepts_head_within_limit(max_bytes: int) -> None:
    for pieces in splits(_HEAD + b"body"):
        assert feed_head(pieces, max_bytes) == len(_HEAD)


def test_find_head_end_too_long_when_complete() -> None:
    buf = bytearray(b"xx" + _HEAD)
    with pytest.raises(HttpHeaderTooLong):
        find_head_end(buf, 2, len(buf), searched=0, max_bytes=len(_HEAD) - 1)


def test_find_head_end_too_long_when_incomplete() -> None:
    limit = 100
    data = b"HTTP/1.1 200 OK\r\nX: " + b"a" * 200
    buf = bytearray(b"xx" + data[:limit])
    assert find_head_end(buf, 2, len(buf), searched=0, max_bytes=limit) == -1
    buf.append(data[limit])
    with pytest.raises(HttpHeaderTooLong):
        find_head_end(buf, 2, len(buf), searched=0, max_bytes=limit)
    with pytest.raises(HttpHeaderTooLong):
        feed_head([data[i : i + 7] for i in range(0, len(data), 7)], limit)


@pytest.mark.parametrize(
    ("data", "end", "fields"),
    [
        (b"HTTP/1.1 200 OK\n\n", 17, ()),
        (b"HTTP/1.1 200 OK\nX: a\n\n", 22, ((b"x", b"a"),)),
        (b"HTTP/1.1 200 OK\r\n\n", 18, ()),
        (b"HTTP/1.1 200 OK\nX: a\r\n\n", 23, ((b"x", b"a"),)),
        (b"HTTP/1.1 200 OK\r\nX: a\n\r\n", 24, ((b"x", b"a"),)),
        (b"HTTP/1.1 200 OK\nX: a\n\r\nX: b\r\n\r\n", 23, ((b"x", b"a"),)),
        (b"HTTP/1.1 200 OK\r\nX: a\r\n\r\nY: b\n\n", 25, ((b"x", b"a"),)),
        (b"HTTP/1.1 200 OK\r\n\n\r\n", 18, ()),  # LF LF overlapping a later LF CR LF
    ],
)
def test_find_head_end_takes_a_lone_lf_as_a_line_ending(
    data: bytes, end: int, fields: Headers
) -> None:
    # RFC 9112 2.2: the first empty line ends the head, whichever line endings come before.
    for pieces in splits(data + b"body"):
        assert feed_head(pieces, prefix=b"") == end, pieces
    head, at = ResponseReader(b"GET", ResponseLimits()).next_head(bytearray(data), 0, len(data))
    assert (head, at) == (ResponseHead(1, 200, b"200", fields), end)


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        (b"HTTP/1.1 200 OK\nX: a\nY: b", ((b"x", b"a"), (b"y", b"b"))),
        (b"HTTP/1.1 200 OK\r\nX: a\nY: b", ((b"x", b"a"), (b"y", b"b"))),
        (b"HTTP/1.1 200 OK\nX: a\n b", ((b"x", b"a b"),)),  # obs-fold after a lone LF
    ],
)
def test_parse_head_takes_a_lone_lf_as_a_line_ending(data: bytes, fields: Headers) -> None:
    assert parse_head(data, 100) == (1, 200, b"200", fields)


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\rX: a",  # a bare CR ends no line
        b"HTTP/1.1 200 OK\r\nX: a\rY: b",
        b"HTTP/1.1 200 OK\r\nX: a\r",
        b"HTTP/1.1 200 OK\r\r\nX: a",  # one CR before the LF belongs to the ending, not two
        b"HTTP/1.1 200 OK\n",  # an empty line inside a head
    ],
)
def test_parse_head_refuses_a_bare_cr(data: bytes) -> None:
    with pytest.raises(HttpProtocolError):
        parse_head(data, 100)


def test_known_lines_parse_as_before_and_stay_bounded() -> None:
    # Status and field lines already parsed are looked up rather than parsed again: a head
    # parses the same the second time, a known line beside a refused one is still refused,
    # past 512 lines of each the known ones are forgotten, and lines over 256 bytes are never
    # kept.
    fields = ((b"server", b"x"), (b"x-id", b"1"))
    for _ in range(2):
        assert head(b"HTTP/1.1 200 OK", b"Server: x ", b"X-Id:1") == (1, 200, b"200", fields)
    assert head(b"HTTP/1.1 200 OK", b"Server: x ", b"X-Id: 2").headers[1] == (b"x-id", b"2")
    with pytest.raises(HttpProtocolError):
        head(b"HTTP/1.1 200 OK", b"Server: x ", b"no colon")
    long = b"X-Long: " + b"a" * 300
    for number in range(600):
        parsed = head(b"HTTP/1.1 200 R%d" % number, b"X-N: %d" % number, long)
        assert parsed == (1, 200, b"200", ((b"x-n", b"%d" % number), (b"x-long", b"a" * 300)))
    assert 0 < len(_http11._known_statuses) <= 512
    assert 0 < len(_http11._known_fields) <= 512
    assert long not in _http11._known_fields


# parse_head ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "minor", "status"),
    [
        (b"HTTP/1.1 200 OK", 1, 200),
        (b"HTTP/1.0 404 Not Found", 0, 404),
        (b"HTTP/1.1 200", 1, 200),
        (b"HTTP/1.1 200 ", 1, 200),
        (b"HTTP/1.1 100 Continue", 1, 100),
        (b"HTTP/1.1 599 x", 1, 599),
        (b"HTTP/1.1 204  two  spaces ", 1, 204),
        (b"HTTP/1.1 200 caf\xe9\there", 1, 200),
    ],
)
def test_parse_head_status_line(line: bytes, minor: int, status: int) -> None:
    parsed = head(line)
    assert parsed == ResponseHead(minor, status, str(status).encode(), ())


@pytest.mark.parametrize(
    "line",
    [
        b"HTTP/2 200 OK",
        b"HTTP/2.0 200 OK",
        b"HTTP/1.2 200 OK",
        b"HTTP/0.9 200 OK",
        b"http/1.1 200 OK",
        b" HTTP/1.1 200 OK",
        b"HTTP/1.1 099 Low",
        b"HTTP/1.1 600 High",
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.1 20 OK",
        b"HTTP/1.1 20a OK",
        b"HTTP/1.1200 OK",
        b"HTTP/1.1 200OK",
        b"HTTP/1.1  200 OK",
        b"HTTP/1.1\t200 OK",
        b"HTTP/1.1 200 O\x00K",
        b"HTTP/1.1 200 OK\r",
        b"HTTP/1.1 200 OK\x7f",
        b"ICY 200 OK",
        b"garbage",
        b"",
    ],
)
def test_parse_head_refuses_bad_status_lines(line: bytes) -> None:
    with pytest.raises(HttpProtocolError, match="status line"):
        head(line, b"x: y")


@pytest.mark.parametrize(
    ("lines", "headers"),
    [
        ([b"Content-Type: text/html"], ((b"content-type", b"text/html"),)),
        ([b"X:  a b  "], ((b"x", b"a b"),)),
        ([b"X:\ta\tb\t"], ((b"x", b"a\tb"),)),
        ([b"X:a"], ((b"x", b"a"),)),
        ([b"X:"], ((b"x", b""),)),
        ([b"X:   "], ((b"x", b""),)),
        ([b"X: caf\xe9"], ((b"x", b"caf\xe9"),)),
        ([b"X: a: b"], ((b"x", b"a: b"),)),
        ([b"A: 1", b"B: 2", b"a: 3"], ((b"a", b"1"), (b"b", b"2"), (b"a", b"3"))),
        ([b"X: a", b" b"], ((b"x", b"a b"),)),
        ([b"X: a", b"\t b \t", b"  c"], ((b"x", b"a b c"),)),
        ([b"X:", b" b"], ((b"x", b"b"),)),
        ([b"X: a", b" b", b"Y: c"], ((b"x", b"a b"), (b"y", b"c"))),
        ([b"!#$%&'*+-.^_`|~09AZaz: v"], ((b"!#$%&'*+-.^_`|~09azaz", b"v"),)),
    ],
)
def test_parse_head_headers(lines: list[bytes], headers: Headers) -> None:
    assert head(b"HTTP/1.1 200 OK", *lines).headers == headers


def test_parse_head_whitespace_only_fold_adds_no_trailing_space() -> None:
    # RFC 9112 5.2 turns obs-fold into SP; RFC 9110 5.5: a field value has no trailing OWS.
    assert head(b"HTTP/1.1 200 OK", b"X: a", b"   ").headers == ((b"x", b"a"),)


@pytest.mark.parametrize(
    "lines",
    [
        [b"X : a"],
        [b"X\t: a"],
        [b"X"],
        [b": a"],
        [b"X Y: a"],
        [b"X(: a"],
        [b"X\xe9: a"],
        [b" X: a"],  # obs-fold on the first header line
        [b"\tX: a"],
        [b"X: a\x00b"],
        [b"X: a\rb"],
        [b"X: a\nb"],
        [b"X: a\x01"],
        [b"X: \x1fa"],
        [b"X: a\x7f"],
        [b"X: a", b" b\x00"],
        [b"X: a", b" b\rc"],
        [b"X: a", b""],
        [b"X: a", b"", b"Y: b"],
    ],
)
def test_parse_head_refuses_bad_headers(lines: list[bytes]) -> None:
    with pytest.raises(HttpProtocolError, match="header is invalid"):
        head(b"HTTP/1.1 200 OK", *lines)


def test_parse_head_max_headers() -> None:
    lines = [b"X-%d: v" % i for i in range(5)]
    assert len(head(b"HTTP/1.1 200 OK", *lines, max_headers=5).headers) == 5
    assert head(b"HTTP/1.1 200 OK", max_headers=0).headers == ()
    with pytest.raises(HttpTooManyHeaders):
        head(b"HTTP/1.1 200 OK", *lines, max_headers=4)
    # Counted as lines, obs-fold continuations included: each costs the parser as much.
    with pytest.raises(HttpTooManyHeaders):
        head(b"HTTP/1.1 200 OK", b"X: a", *[b" folded"] * 4, max_headers=4)
    assert head(b"HTTP/1.1 200 OK", b"X: a", *[b" b"] * 3, max_headers=4).headers == (
        (b"x", b"a b b b"),
    )


# response_framing ----------------------------------------------------------------------------

_OK11 = b"HTTP/1.1 200 OK"
_OK10 = b"HTTP/1.0 200 OK"


@pytest.mark.parametrize(
    ("lines", "length"),
    [
        ([b"Content-Length: 0"], 0),
        ([b"Content-Length: 5"], 5),
        ([b"Content-Length: 0005"], 5),
        ([b"Content-Length: " + b"9" * 18], 10**18 - 1),
        ([b"Content-Length: 5", b"content-length: 5"], 5),
        ([b"Content-Length: 5, 5"], 5),
        ([b"Content-Length: 5,5,\t5"], 5),
        ([b"Content-Length: 5, 005", b"Content-Length: 5"], 5),
    ],
)
def test_response_framing_content_length(lines: list[bytes], length: int) -> None:
    assert framing(_OK11, *lines) == ResponseFraming(length, False, True, None)


@pytest.mark.parametrize(
    "lines",
    [
        [b"Content-Length: 5", b"Content-Length: 6"],
        [b"Content-Length: 5, 6"],
        [b"Content-Length: 5, 5, 0"],
    ],
)
def test_response_framing_refuses_differing_content_lengths(lines: list[bytes]) -> None:
    with pytest.raises(HttpProtocolError, match="differ"):
        framing(_OK11, *lines)


@pytest.mark.parametrize(
    "value",
    [
        b"-5",
        b"+5",
        b"0x5",
        b"5a",
        b"5.0",
        b"1e3",
        b"",
        b"5,",
        b", 5",
        b"5 5",
        b"1" * 19,
        b"\xd9\xa5",
    ],
)
def test_response_framing_refuses_invalid_content_length(value: bytes) -> None:
    with pytest.raises(HttpProtocolError, match="content-length is invalid"):
        framing(_OK11, b"Content-Length: " + value)


@pytest.mark.parametrize(
    "lines",
    [
        [b"Transfer-Encoding: chunked"],
        [b"transfer-encoding: Chunked"],
        [b"transfer-encoding: chunked,"],
        [b"transfer-encoding: chunked", b"Connection: keep-alive"],
    ],
)
def test_response_framing_chunked(lines: list[bytes]) -> None:
    assert framing(_OK11, *lines) == ResponseFraming(None, True, True, None)


@pytest.mark.parametrize(
    "lines",
    [
        [b"Transfer-Encoding: chunked", b"Content-Length: 5"],
        [b"Content-Length: 5", b"Transfer-Encoding: chunked"],
        [b"Transfer-Encoding: gzip", b"Content-Length: 5"],
    ],
)
def test_response_framing_refuses_transfer_encoding_with_content_length(
    lines: list[bytes],
) -> None:
    with pytest.raises(HttpProtocolError, match="both"):
        framing(_OK11, *lines)


@pytest.mark.parametrize("value", [b"chunked", b"gzip"])
def test_response_framing_refuses_transfer_encoding_in_http10(value: bytes) -> None:
    with pytest.raises(HttpProtocolError, match=r"HTTP/1\.0"):
        framing(_OK10, b"Transfer-Encoding: " + value)


@pytest.mark.parametrize(
    "lines",
    [
        [b"Transfer-Encoding: gzip"],
        [b"Transfer-Encoding: gzip, chunked"],
        [b"Transfer-Encoding: chunked, gzip"],
        [b"Transfer-Encoding: chunked, chunked"],
        [b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"],
        [b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"],
        [b"Transfer-Encoding: identity"],
        [b"Transfer-Encoding: x-unknown"],
        [b"Transfer-Encoding: chunked;q=1"],
    ],
)
def test_response_framing_refuses_codings_other_than_chunked(lines: list[bytes]) -> None:
    with pytest.raises(HttpProtocolError, match="not supported"):
        framing(_OK11, *lines)


@pytest.mark.parametrize(
    "lines",
    [
        [b"Transfer-Encoding:"],
        [b"Transfer-Encoding: ,"],
        [b"Transfer-Encoding:", b"Content-Length: 3"],
    ],
)
def test_response_framing_refuses_empty_transfer_encoding(lines: list[bytes]) -> None:
    # A Transfer-Encoding field that is present is not "exactly chunked", and beside a
    # Content-Length it is the shape of request smuggling (RFC 9112 6.1, 6.3).
    with pytest.raises(HttpProtocolError):
        framing(_OK11, *lines)


@pytest.mark.parametrize(
    ("status_line", "method", "lines"),
    [
        (_OK11, b"HEAD", [b"Content-Length: 100"]),
        (_OK11, b"HEAD", [b"Transfer-Encoding: chunked"]),
        (_OK11, b"HEAD", []),
        (b"HTTP/1.1 204 No Content", b"GET", [b"Content-Length: 100"]),
        (b"HTTP/1.1 204 No Content", b"GET", []),
        (b"HTTP/1.1 304 Not Modified", b"GET", [b"Content-Length: 100"]),
        (b"HTTP/1.1 304 Not Modified", b"GET", [b"Transfer-Encoding: chunked"]),
        (b"HTTP/1.1 304 Not Modified", b"POST", []),
    ],
)
def test_response_framing_no_body(status_line: bytes, method: bytes, lines: list[bytes]) -> None:
    assert framing(status_line, *lines, method=method) == ResponseFraming(0, False, True, None)


@pytest.mark.parametrize("method", [b"GET", b"head", b"POST"])
def test_response_framing_until_close(method: bytes) -> None:
    assert framing(_OK11, b"Connection: keep-alive", method=method) == ResponseFraming(
        None, False, False, None
    )
    assert framing(_OK11, b"Keep-Alive: timeout=5", method=method) == ResponseFraming(
        None, False, False, 5.0
    )


@pytest.mark.parametrize(
    ("status_line", "lines", "keep_alive"),
    [
        (_OK11, [], True),
        (_OK11, [b"Connection: close"], False),
        (_OK11, [b"Connection: Keep-Alive, Close"], False),
        (_OK11, [b"Connection: keep-alive", b"Connection: close"], False),
        (_OK11, [b"Connection: upgrade"], True),
        (_OK11, [b"Connection: closed"], True),
        (_OK11, [b"X-Connection: close"], True),
        (_OK10, [], False),
        (_OK10, [b"Connection: keep-alive"], True),
        (_OK10, [b"Connection: Keep-Alive"], True),
        (_OK10, [b"Connection: foo,  keep-alive "], True),
        (_OK10, [b"Connection: keep-alive, close"], False),
        (_OK10, [b"Keep-Alive: timeout=5"], False),
    ],
)
def test_response_framing_keep_alive(
    status_line: bytes, lines: list[bytes], keep_alive: bool
) -> None:
    frame = framing(status_line, b"Content-Length: 1", *lines)
    assert frame.length == 1
    assert frame.keep_alive is keep_alive


@pytest.mark.parametrize(
    ("value", "timeout"),
    [
        (b"timeout=5, max=100", 5.0),
        (b"max=100, timeout=5", 5.0),
        (b"max=100,timeout=7", 7.0),
        (b"Timeout=7", 7.0),
        (b"timeout = 3 ", 3.0),
        (b"timeout=0", 0.0),
        (b"timeout=123456789", 123456789.0),
        (b"timeout=abc", None),
        (b"timeout=", None),
        (b"timeout=-1", None),
        (b"timeout=5s", None),
        (b"timeout=5.5", None),
        (b"xtimeout=5", None),
        (b"timeout=1234567890", None),
        (b"max=100", None),
        (b"", None),
    ],
)
def test_response_framing_keep_alive_timeout(value: bytes, timeout: float | None) -> None:
    frame = framing(_OK11, b"Content-Length: 0", b"Keep-Alive: " + value)
    assert frame == ResponseFraming(0, False, True, timeout)


# ChunkedDecoder ------------------------------------------------------------------------------


class Conn:
    """The connection's side of the buffer: bytes land at `end`, `consume` moves `start`,
    and both go back to 0 once everything is consumed. Stale bytes past `end` are filled with
    CRLFs, so a decoder that looked past `end` would misparse."""

    def __init__(self, offset: int = 7) -> None:
        self.buf = bytearray(b"\r\n" * 512)
        self.start = self.end = offset

    def feed(self, data: bytes) -> None:
        self.buf[self.end : self.end + len(data)] = data
        self.end += len(data)

    def consume(self, end: int) -> None:
        if end == self.end:
            self.start = self.end = 0
        else:
            self.start = end


def decode(
    pieces: Iterable[bytes], max_line: int = 64, max_fields: int = 8
) -> tuple[bytes, Headers, bytes]:
    """Decode a complete chunked body fed in `pieces`: (payload, trailers, bytes left over)."""
    conn = Conn()
    decoder = ChunkedDecoder(max_line, max_fields)
    payload = bytearray()
    for piece in pieces:
        conn.feed(piece)
        while True:
            a, b, consumed = decoder.read(conn.buf, conn.start, conn.end)
            assert conn.start <= a <= b <= consumed <= conn.end
            payload += conn.buf[a:b]
            conn.consume(consumed)
            if a == b:
                break
    assert decoder.done, "the chunked body did not end"
    return bytes(payload), decoder.trailers, bytes(conn.buf[conn.start : conn.end])


_BIG = (b"\r\n0\r\n\r\n" * 40)[:0xFF]  # chunk data that looks like the end of a body
_QUOTED_EXT = b'b;q="quoted \\" string\t\xe9";x\r\n'
_CHUNKED = (
    b"5\r\nhello\r\n"
    b"1;ext\r\n \r\n"
    b"A;name=value\r\n0123456789\r\n" + _QUOTED_EXT + b"x" * 11 + b"\r\n"
    b"00000000000000Ff ; a = b ;c\r\n" + _BIG + b"\r\n"
    b"0\r\nX-Trailer: One\r\nother:  two \r\n\r\n"
)
_PAYLOAD = b"hello 0123456789" + b"x" * 11 + _BIG
_TRAILERS = ((b"x-trailer", b"One"), (b"other", b"two"))


def test_chunked_decoder_whole_body() -> None:
    assert decode([_CHUNKED]) == (_PAYLOAD, _TRAILERS, b"")


def test_chunked_decoder_at_every_split() -> None:
    for pieces in splits(_CHUNKED):
        assert decode(pieces) == (_PAYLOAD, _TRAILERS, b""), pieces


def test_chunked_decoder_does_not_consume_after_the_end() -> None:
    after = b"HTTP/1.1 200 OK\r\n\r\n"
    body = b"3\r\nabc\r\n0\r\n\r\n"
    for pieces in splits(body + after):
        assert decode(pieces) == (b"abc", (), after), pieces


def test_chunked_decoder_streams_partial_data() -> None:
    conn = Conn(0)
    decoder = ChunkedDecoder(64, 8)
    conn.feed(b"a\r\nhel")
    a, b, consumed = decoder.read(conn.buf, conn.start, conn.end)
    assert (conn.buf[a:b], consumed) == (b"hel", b)
    conn.consume(consumed)
    assert decoder.read(conn.buf, conn.start, conn.end) == (0, 0, 0)
    assert not decoder.done
    conn.feed(b"lo wor")
    a, b, consumed = decoder.read(conn.buf, conn.start, conn.end)
    assert (conn.buf[a:b], consumed) == (b"lo wor", b)
    assert not decoder.done


def test_chunked_decoder_takes_the_next_size_line_with_a_chunk() -> None:
    buf = bytearray(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    decoder = ChunkedDecoder(64, 8)
    assert decoder.read(buf, 0, len(buf)) == (3, 6, 11)  # "abc", and CRLF "2" CRLF taken
    assert decoder.read(buf, 11, len(buf)) == (11, 13, 18)  # "de", and CRLF "0" CRLF
    assert decoder.read(buf, 18, len(buf)) == (20, 20, 20)
    assert decoder.done
    # A size line with extensions, or too long for max_line, is left to the general path.
    for body, line in (
        (b"1\r\na\r\n1;x\r\nb\r\n0\r\n\r\n", 64),
        (b"1\r\na\r\n01\r\nb\r\n0\r\n\r\n", 1),
    ):
        decoder = ChunkedDecoder(line, 8)
        assert decoder.read(bytearray(body), 0, len(body)) == (3, 4, 4)


def test_chunked_decoder_done_is_idempotent() -> None:
    buf = bytearray(b"0\r\n\r\nrest")
    decoder = ChunkedDecoder(64, 8)
    assert decoder.read(buf, 0, len(buf)) == (5, 5, 5)
    assert decoder.done
    assert decoder.read(buf, 5, len(buf)) == (5, 5, 5)
    assert decoder.trailers == ()


@pytest.mark.parametrize(
    ("body", "payload"),
    [
        (b"0\r\n\r\n", b""),
        (b"a\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        (b"1f\r\n" + b"y" * 31 + b"\r\n0\r\n\r\n", b"y" * 31),
        (b"1F\r\n" + b"y" * 31 + b"\r\n0\r\n\r\n", b"y" * 31),
        (b"0005\r\nhello\r\n000\r\n\r\n", b"hello"),
        (b"000000000000000f\r\n" + b"z" * 15 + b"\r\n0\r\n\r\n", b"z" * 15),
        (b"5;a\r\nhello\r\n0;b=c\r\n\r\n", b"hello"),
        (b"5;a=b;c=d\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b'5;a="b; c=\\"d\\""\r\nhello\r\n0\r\n\r\n', b"hello"),
        (b'5;a=""\r\nhello\r\n0\r\n\r\n', b"hello"),
        (b"5 \t; a\t=\tb\r\nhello\r\n0\r\n\r\n", b"hello"),
        # RFC 9112 2.2: a lone LF ends a line, wherever a line ends.
        (b"5\r\nhello\n0\r\n\r\n", b"hello"),
        (b"5\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5;a=b\nhello\n3\nabc\n0\n\n", b"helloabc"),
        (b"0\n\r\n", b""),
        (b"0\r\n\n", b""),
    ],
)
def test_chunked_decoder_accepts(body: bytes, payload: bytes) -> None:
    for pieces in splits(body):
        assert decode(pieces) == (payload, (), b"")


def test_chunked_decoder_trailers() -> None:
    body = b"0\r\nA: 1\r\nContent-MD5:\txyz \t\r\nEmpty:\r\na: 2\r\n\r\n"
    trailers = ((b"a", b"1"), (b"content-md5", b"xyz"), (b"empty", b""), (b"a", b"2"))
    for pieces in splits(body):
        assert decode(pieces) == (b"", trailers, b"")


def test_chunked_decoder_trailers_obs_fold_becomes_sp() -> None:
    # RFC 9112 5.2: a user agent replaces obs-fold with SP in any field of a response.
    body = b"0\r\nA: b\r\n c\r\n\t d \r\nE: f\r\n\r\n"
    for pieces in splits(body):
        assert decode(pieces) == (b"", ((b"a", b"b c d"), (b"e", b"f")), b"")


def test_chunked_decoder_trailer_lines_may_end_with_a_lone_lf() -> None:
    body = b"0\r\nA: b\nC: d\r\n\nrest"
    for pieces in splits(body):
        assert decode(pieces) == (b"", ((b"a", b"b"), (b"c", b"d")), b"rest")


@pytest.mark.parametrize(
    "body",
    [
        b"5\r\nhelloXX0\r\n\r\n",  # missing CRLF after data
        b"5\r\nhello0\r\n\r\n",
        b"5\r\nhello\r0\r\n\r\n",  # a bare CR ends no line
        b"5\r\r\nhello\r\n0\r\n\r\n",
        b"0\r\nA: b\rC: d\r\n\r\n",
        b"5\r\nhello!!\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"5 x\r\nhello\r\n0\r\n\r\n",
        b"5x\r\nhello\r\n0\r\n\r\n",
        b"5\x00\r\nhello\r\n0\r\n\r\n",
        b"\r\nhello\r\n0\r\n\r\n",  # empty size line
        b"g\r\n0\r\n\r\n",
        b"5;\r\nhello\r\n0\r\n\r\n",
        b"5;=v\r\nhello\r\n0\r\n\r\n",
        b"5;a=\r\nhello\r\n0\r\n\r\n",
        b"5;a=b c\r\nhello\r\n0\r\n\r\n",
        b"5;a b\r\nhello\r\n0\r\n\r\n",
        b'5;a"b"\r\nhello\r\n0\r\n\r\n',
        b"5;a==b\r\nhello\r\n0\r\n\r\n",
        b'5;a="open\r\nhello\r\n0\r\n\r\n',
        b"5;a\x01\r\nhello\r\n0\r\n\r\n",
        b"00000000000000005\r\nhello\r\n0\r\n\r\n",  # 17 hex digits
        b"10000000000000000\r\n0\r\n\r\n",
        b"0\r\n folded: x\r\n\r\n",
        b"0\r\nno colon\r\n\r\n",
        b"0\r\nA : b\r\n\r\n",
        b"0\r\nA: b\x00\r\n\r\n",
        b"0\r\nA: b\rc\r\n\r\n",
    ],
)
def test_chunked_decoder_refuses(body: bytes) -> None:
    for pieces in splits(body):
        with pytest.raises(HttpProtocolError) as info:
            decode(pieces)
        assert type(info.value) is HttpProtocolError, pieces


_MAX_LINE = 32


@pytest.mark.parametrize(
    "body",
    [
        b"5;" + b"a" * (_MAX_LINE - 2) + b"\r\nhello\r\n0\r\n\r\n",
        b"0;" + b"a" * (_MAX_LINE - 2) + b"\r\n\r\n",
        b"0\r\nX: " + b"a" * (_MAX_LINE - 3) + b"\r\n\r\n",
    ],
)
def test_chunked_decoder_accepts_lines_of_max_line(body: bytes) -> None:
    for pieces in splits(body):
        decode(pieces, max_line=_MAX_LINE)


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b"5;" + b"a" * (_MAX_LINE - 1) + b"\r\nhello\r\n0\r\n\r\n", "chunk-size"),
        (b"5;" + b"a" * 200, "chunk-size"),  # no CRLF in sight
        (b"5\r\nhello\r\n" + b"0" * 200, "chunk-size"),
        (b"0\r\nX: " + b"a" * (_MAX_LINE - 2) + b"\r\n\r\n", "trailer"),
        (b"0\r\nX: " + b"a" * 200, "trailer"),
        (b"0\r\nA: b\r\nX: " + b"a" * 200, "trailer"),
    ],
)
def test_chunked_decoder_line_too_long(body: bytes, what: str) -> None:
    for pieces in splits(body):
        with pytest.raises(HttpHeaderTooLong, match=what):
            decode(pieces, max_line=_MAX_LINE)


@pytest.mark.parametrize("prefix", [b"5;", b"0\r\nX: "])
def test_chunked_decoder_line_too_long_as_soon_as_it_cannot_fit(prefix: bytes) -> None:
    # A line of max_line bytes and its CR may still be waiting for the LF; one byte more may not.
    first = prefix.find(b"\n") + 1  # where the line under test starts
    buf = bytearray(prefix + b"a" * (first + _MAX_LINE + 2 - len(prefix)))
    assert len(buf) - first == _MAX_LINE + 2
    decoder = ChunkedDecoder(_MAX_LINE, 8)
    assert decoder.read(buf, 0, len(buf) - 1) == (first, first, first)
    with pytest.raises(HttpHeaderTooLong):
        decoder.read(buf, first, len(buf))


def test_chunked_decoder_max_fields() -> None:
    body = b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
    for pieces in splits(body):
        assert len(decode(pieces, max_fields=3)[1]) == 3
        with pytest.raises(HttpTooManyHeaders):
            decode(pieces, max_fields=2)


def test_chunked_decoder_is_linear_when_fed_one_byte_at_a_time() -> None:
    # A size line trickled in must not be searched again from its start on every read.
    line = b"5;" + b"a" * 4000 + b"\r\n"
    buf = CountingBuffer()
    decoder = ChunkedDecoder(8192, 8)
    for byte in line[:-1]:
        buf.append(byte)
        assert decoder.read(buf, 0, len(buf)) == (0, 0, 0)
    buf.append(line[-1])
    assert decoder.read(buf, 0, len(buf)) == (len(line), len(line), len(line))
    assert sum(buf.searched.values()) <= 16 * len(line)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\n\n", "status line is invalid: b''"),  # nothing before the empty line
        (b"\r\n\r\n", "status line is invalid: b''"),
        (b"X\n\n", "status line is invalid: b'X'"),
        (b"\rX\r\n\r\n", "status line is invalid: b'\\rX'"),
    ],
)
def test_response_reader_takes_a_head_no_further_than_its_first_byte(
    data: bytes, error: str
) -> None:
    # Whatever comes before `start` in the buffer (here a CR) is never taken for the head's.
    buf = bytearray(b"\r" + data)
    with pytest.raises(HttpProtocolError) as raised:
        ResponseReader(b"GET", ResponseLimits()).next_head(buf, 1, len(buf))
    assert str(raised.value) == f"response {error}"
