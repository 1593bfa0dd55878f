"""Request-side safety through the real request path: whatever a caller passes that could
smuggle a second request or a header (CR, LF, NUL, other control bytes, bytes a part may not
hold) is refused with `HttpInvalidRequestError` before a byte is sent, and what is sent is
exactly what the URL says, encoded.

Every refusal is checked against a scripted server on 127.0.0.1: it accepted no connection
for the refused request, and a canary request made afterwards on the same pool is the only
thing it ever received, on the only connection it ever accepted. Names are never resolved: the
pool's resolver records any name it is asked and fails. `test_http11.py` covers the same
validators without sockets; this module covers what reaches the wire.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import get, pool, recording, serve

import lowhaio

# Every C0 control byte and DEL: 0x00-0x1f, 0x7f.
CONTROLS = [chr(code) for code in range(0x20)] + ["\x7f"]
CONTROL_BYTES = [char.encode("latin-1") for char in CONTROLS]


def _ids(value: object) -> str:
    return repr(value)


# Harness ---------------------------------------------------------------------------------------


def no_dns(asked: list[str]) -> Callable[[], Any]:
    """A `get_dns_resolver` that records the names it is asked and resolves none."""

    async def resolve(name: str, qtype: object) -> Any:
        asked.append(name)
        raise OSError("this test resolves no name")

    async def clear(*args: object) -> None:
        return None

    return lambda: (resolve, clear)


def canary_head(port: int) -> bytes:
    return b"GET /canary HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n\r\n" % port


async def refused_before_sending(
    url: str = "http://127.0.0.1:PORT/",
    method: bytes = b"GET",
    params: Any = (),
    headers: Any = (),
) -> lowhaio.HttpInvalidRequestError:
    """Make the request, with PORT in `url` replaced by the scripted server's port: it must be
    refused with HttpInvalidRequestError, with no connection opened, no name resolved and no
    byte sent; the pool then still works."""
    heads: list[bytes] = []
    asked: list[str] = []
    async with serve(recording(heads)) as server, pool(get_dns_resolver=no_dns(asked)) as request:
        with pytest.raises(lowhaio.HttpInvalidRequestError) as info:
            await request(
                method, url.replace("PORT", str(server.port)), params=params, headers=headers
            )
        await asyncio.sleep(0)  # an accept the refused request caused would run here
        assert server.connections == 0
        assert await get(request, server.url("/canary")) == b"ok"
    assert server.connections == 1
    assert heads == [canary_head(server.port)]
    assert asked == []
    error = info.value
    assert type(error) is lowhaio.HttpInvalidRequestError
    assert not isinstance(error, lowhaio.HttpConnectionError | lowhaio.HttpDataError)
    return error


async def heads_sent(
    url: str, params: Any = (), headers: Any = (), host: str = "127.0.0.1"
) -> tuple[list[bytes], int]:
    """Make the request (PORT in `url` replaced), read the response; the heads received and
    the port."""
    heads: list[bytes] = []
    async with (
        serve(recording(heads), host=host) as server,
        pool(get_dns_resolver=no_dns([])) as request,
    ):
        url = url.replace("PORT", str(server.port))
        body = await get(request, url, params=params, headers=headers)
    assert body == b"ok"
    return heads, server.port


def messages(error: BaseException) -> Iterator[str]:
    """str and repr of the error and of every exception chained to it."""
    seen: BaseException | None = error
    while seen is not None:
        yield str(seen)
        yield repr(seen)
        seen = seen.__cause__ or seen.__context__


# Control bytes in every part of the URL ------------------------------------------------------

_URL_PARTS = {
    "path": "http://127.0.0.1:PORT/a{}b",
    "query": "http://127.0.0.1:PORT/?a=1{}b",
    "fragment": "http://127.0.0.1:PORT/#f{}g",
    "host": "http://127.0.0.1{}:PORT/",
    "name-host": "http://exa{}mple.test:PORT/",
    "port": "http://127.0.0.1:PORT{}/",
    "userinfo": "http://us{}er:pw@127.0.0.1:PORT/",
    "password": "http://user:p{}w@127.0.0.1:PORT/",
}


@pytest.mark.parametrize("control", CONTROLS, ids=_ids)
@pytest.mark.parametrize("part", list(_URL_PARTS))
async def test_control_byte_in_any_part_of_the_url_is_refused(part: str, control: str) -> None:
    error = await refused_before_sending(_URL_PARTS[part].format(control))
    assert "control character" in str(error)


# Control bytes in every part of the head -----------------------------------------------------


def _head_part(part: str, bad: bytes) -> dict[str, Any]:
    """Request arguments with `bad` inside `part` of the head."""
    if part == "method":
        return {"method": b"GE" + bad + b"T"}
    header = {
        "header name": (b"x-" + bad + b"name", b"v"),
        "header value": (b"x-name", b"v" + bad + b"v"),
        "host header": (b"host", b"127.0.0.1" + bad),
        "content-length": (b"content-length", b"0" + bad),
        "transfer-encoding": (b"transfer-encoding", b"chunked" + bad),
        "authorization": (b"authorization", b"Bearer t" + bad + b"k"),
    }[part]
    return {"headers": ((b"accept", b"*/*"), header)}


# A tab is whitespace inside a field value (RFC 9110 5.5), and so allowed there; it is not a
# token character (RFC 9110 5.6.2), nor a digit.
_TAB_ALLOWED = {"header value", "host header", "transfer-encoding", "authorization"}
_HEAD_CASES = [
    (part, bad)
    for part in [
        "method",
        "header name",
        "header value",
        "host header",
        "content-length",
        "transfer-encoding",
        "authorization",
    ]
    for bad in CONTROL_BYTES
    if not (bad == b"\t" and part in _TAB_ALLOWED)
]


@pytest.mark.parametrize(("part", "bad"), _HEAD_CASES, ids=_ids)
async def test_control_byte_in_any_part_of_the_head_is_refused(part: str, bad: bytes) -> None:
    await refused_before_sending(**_head_part(part, bad))


@pytest.mark.parametrize(
    "name",
    [b"x y", b"x:y", b":authority", b"x(", b"x)", b"x\xe9", b"\xc3\xa9", b"", b"x\x7f", b'x"'],
    ids=_ids,
)
async def test_header_names_must_be_tokens(name: bytes) -> None:
    await refused_before_sending(headers=((name, b"v"),))


@pytest.mark.parametrize(
    "headers",
    [
        ((b"x-a", b"1\r\nX-Injected: 1"),),
        ((b"x-a", b"1\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: 127.0.0.1"),),
        ((b"x-a", b"1\nX-Injected: 1"),),
        ((b"x-a", b"1\rX-Injected: 1"),),
        ((b"host", b"127.0.0.1\r\nX-Injected: 1"),),
        ((b"content-length", b"0\r\n\r\nGET /smuggled HTTP/1.1"),),
        ((b"transfer-encoding", b"chunked\r\nX-Injected: 1"),),
        ((b"X-Injected: 1\r\nx-a", b"1"),),
    ],
    ids=_ids,
)
async def test_header_injection_is_refused(headers: Any) -> None:
    await refused_before_sending(headers=headers)


@pytest.mark.parametrize(
    "url",
    [
        # CVE-2019-9740: CRLF in the query, injecting a header.
        "http://127.0.0.1:PORT/?a=1 HTTP/1.1\r\nX-Injected: 1\r\n\r\n",
        # CVE-2019-9947: the same in the path.
        "http://127.0.0.1:PORT/path HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /smuggled",
        "http://127.0.0.1:PORT/?a=1\nX-Injected: 1",
        "http://127.0.0.1:PORT\r\nX-Injected: 1/",
        "http://127.0.0.1:PORT/\x00",
    ],
    ids=_ids,
)
async def test_request_splitting_through_the_url_is_refused(url: str) -> None:
    await refused_before_sending(url)


# What is sent: encoded, never raw ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "request_line"),
    [
        # Percent-encoded CR LF stays encoded, in the case it was written in.
        (
            "http://127.0.0.1:PORT/a%0d%0ab?q=%0D%0A%00&r=%0a#%0d%0a",
            b"GET /a%0d%0ab?q=%0D%0A%00&r=%0a HTTP/1.1",
        ),
        # The first half of CVE-2019-9740 without the CRLF: the space is encoded.
        ("http://127.0.0.1:PORT/?a=1 HTTP/1.1", b"GET /?a=1%20HTTP/1.1 HTTP/1.1"),
        # Characters that a latin-1 truncation would turn into CR LF (the Node.js
        # unicode request splitting) are UTF-8 encoded, then percent-encoded.
        (
            "http://127.0.0.1:PORT/\u010d\u010a?x=\u010d\u010a",
            b"GET /%C4%8D%C4%8A?x=%C4%8D%C4%8A HTTP/1.1",
        ),
        # C1 controls and Unicode line separators are not ASCII: encoded.
        ("http://127.0.0.1:PORT/\x85\u2028?\u2029", b"GET /%C2%85%E2%80%A8?%E2%80%A9 HTTP/1.1"),
        # A stray '%' is encoded, so it cannot combine with what follows.
        ("http://127.0.0.1:PORT/%%0d%0a", b"GET /%25%0d%0a HTTP/1.1"),
        ("http://127.0.0.1:PORT/%0%0a", b"GET /%250%0a HTTP/1.1"),
    ],
    ids=_ids,
)
async def test_what_looks_like_crlf_reaches_the_wire_encoded(url: str, request_line: bytes) -> None:
    heads, port = await heads_sent(url)
    assert heads == [request_line + b"\r\nhost: 127.0.0.1:%d\r\n\r\n" % port]


@pytest.mark.parametrize("kind", [str, bytes])
@pytest.mark.parametrize("where", ["name", "value"])
async def test_control_bytes_in_params_are_percent_encoded(kind: type, where: str) -> None:
    # Parameters are raw data, not URL syntax: every byte that is not unreserved is encoded,
    # so a control byte is data (a multi-line form value), never a line break on the wire.
    every = "".join(CONTROLS)
    raw: str | bytes = every if kind is str else every.encode("latin-1")
    pair = (raw, "v") if where == "name" else ("k", raw)
    heads, port = await heads_sent("http://127.0.0.1:PORT/p?x=1", params=(pair,))
    encoded = b"".join(b"%%%02X" % ord(char) for char in CONTROLS)
    expected = b"/p?x=1&" + (encoded + b"=v" if where == "name" else b"k=" + encoded)
    assert heads == [b"GET " + expected + b" HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n\r\n" % port]


@pytest.mark.parametrize(
    "params",
    [
        (("a", "\ud800"),),  # a lone surrogate has no UTF-8 encoding
        (("\udfff", "b"),),
        (("a", None),),
        ((None, "b"),),
        (("a", 1),),
        ("ab",),  # a str of two characters is not a pair
        (("a", "b", "c"),),
    ],
    ids=_ids,
)
async def test_invalid_params_are_refused(params: Any) -> None:
    await refused_before_sending(params=params)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:PORT/\ud800",
        "http://127.0.0.1:PORT/?q=\udfff",
        "http://127.0.0.1:PORT/a?b=\ud83d",  # half of a surrogate pair
    ],
    ids=_ids,
)
async def test_lone_surrogates_in_path_or_query_are_refused(url: str) -> None:
    # A lone surrogate has no UTF-8 encoding, so no percent-encoding either: the URL is
    # invalid, and the caller must get the typed error, not a UnicodeEncodeError.
    await refused_before_sending(url)


# Absolute http(s) URLs only ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/relative",
        "relative/path",
        "?q=1",
        "//127.0.0.1:PORT/",  # scheme-relative
        "127.0.0.1:PORT/",
        "ftp://127.0.0.1:PORT/",
        "file:///etc/passwd",
        "file://127.0.0.1/etc/passwd",
        "ws://127.0.0.1:PORT/",
        "gopher://127.0.0.1:PORT/_GET%20/",
        "http:/127.0.0.1:PORT/",
        "http:127.0.0.1:PORT",
        "http://",
        "http://:PORT/",
        "http://user@:PORT/",
    ],
    ids=_ids,
)
async def test_only_absolute_http_urls_are_requested(url: str) -> None:
    await refused_before_sending(url)


# Userinfo is refused, and never sent -----------------------------------------------------------


@pytest.mark.parametrize(
    "userinfo",
    ["user:secret-pw@", "user@", ":secret-pw@", "user:@", "us%40er:p%3Aw@", "a@b:secret-pw@"],
    ids=_ids,
)
async def test_userinfo_is_refused_and_never_sent(userinfo: str) -> None:
    # Not dropped silently (the request would go out without the credentials the caller
    # meant), not sent as Basic auth (credentials in URLs end up in logs): refused, with what
    # to do instead, and without the credentials in the error.
    url = f"http://{userinfo}127.0.0.1:PORT/p?q=1"
    error = await refused_before_sending(url)
    assert "basic_auth(user, password)" in str(error)
    for message in messages(error):
        assert "secret" not in message
        assert "us%40er" not in message
    with pytest.raises(lowhaio.HttpInvalidRequestError):
        lowhaio.target_of(url.replace("PORT", "80"))


@pytest.mark.parametrize(
    ("user", "password", "value"),
    [
        ("aladdin", "open sesame", b"Basic YWxhZGRpbjpvcGVuIHNlc2FtZQ=="),  # RFC 7617 2
        ("test", "123\u00a3", b"Basic dGVzdDoxMjPCow=="),  # RFC 7617 2.1: UTF-8
        (b"user", b"", b"Basic dXNlcjo="),
        ("", "p:w", b"Basic OnA6dw=="),  # a colon in the password is fine
    ],
)
async def test_basic_auth_header(user: str | bytes, password: str | bytes, value: bytes) -> None:
    assert lowhaio.basic_auth(user, password) == (b"authorization", value)
    heads, port = await heads_sent(
        "http://127.0.0.1:PORT/", headers=(lowhaio.basic_auth(user, password),)
    )
    assert heads == [
        b"GET / HTTP/1.1\r\nhost: 127.0.0.1:%d\r\nauthorization: %s\r\n\r\n" % (port, value)
    ]


@pytest.mark.parametrize(("user", "password"), [("a:b", "pw"), ("a\nb", "pw"), ("a", "p\rw")])
def test_basic_auth_refuses_what_cannot_be_sent(user: str, password: str) -> None:
    with pytest.raises(lowhaio.HttpInvalidRequestError) as raised:
        lowhaio.basic_auth(user, password)
    assert password not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        # WHATWG parsers (browsers, and many proxies and allow-lists) read a backslash in the
        # authority of an http URL as a '/', so these go to 127.0.0.1 for them, and to
        # 'evil.test' for a parser that takes 'http://127.0.0.1\' as userinfo. A backslash
        # may not stand in userinfo (RFC 3986 3.2.1): such a URL is refused.
        "http://127.0.0.1:PORT\\@evil.test/",
        "http://127.0.0.1\\@evil.test:PORT/",
        "http://u:p\\@evil.test/",
    ],
    ids=_ids,
)
async def test_a_backslash_in_the_authority_is_refused(url: str) -> None:
    await refused_before_sending(url)


# IPv6 literals -------------------------------------------------------------------------------


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
async def test_ipv6_literal_connects_on_loopback_and_sends_a_bracketed_host() -> None:
    heads, port = await heads_sent("http://[::1]:PORT/v6?x=1", host="::1")
    assert heads == [b"GET /v6?x=1 HTTP/1.1\r\nhost: [::1]:%d\r\n\r\n" % port]


def test_ipv6_literal_target() -> None:
    # The literal as written, lowercased (RFC 3986 6.2.2.1), in brackets, port after them.
    assert lowhaio.target_of("http://[0:0::1]:8080/v6") == (b"[0:0::1]:8080", b"/v6")
    assert lowhaio.target_of("http://[::FFFF:127.0.0.1]/") == (b"[::ffff:127.0.0.1]", b"/")


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1%25lo]:PORT/",  # zone identifiers (RFC 6874) are refused
        "http://[fe80::1%25eth0]:PORT/",
        "http://[fe80::1%eth0]:PORT/",
        "http://[::1]]:PORT/",
        "http://[[::1]:PORT/",
        "http://[::1:PORT/",
        "http://::1:PORT/",
        "http://[127.0.0.1]:PORT/",
        "http://[v1.x]:PORT/",
        "http://[::1]x:PORT/",
        "http://[:::1]:PORT/",
        "http://[1:2:3:4:5:6:7:8:9]:PORT/",
    ],
    ids=_ids,
)
async def test_invalid_ipv6_literals_are_refused(url: str) -> None:
    await refused_before_sending(url)


# IDNA hosts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://bücher.example/", (b"xn--bcher-kva.example", b"/")),
        (
            "http://BÜCHER.example:8080/ü?q=ü",
            (b"xn--bcher-kva.example:8080", b"/%C3%BC?q=%C3%BC"),
        ),
        ("https://例え.テスト/", (b"xn--r8jz45g.xn--zckzah", b"/")),
        ("https://münchen.example:443/", (b"xn--mnchen-3ya.example", b"/")),
    ],
    ids=_ids,
)
def test_idna_hosts_are_sent_as_a_labels(url: str, expected: tuple[bytes, bytes]) -> None:
    assert lowhaio.target_of(url) == expected


_BAD_IDNA = [
    "http://" + "ü" * 60 + ".example:PORT/",  # an A-label longer than 63 bytes
    "http://a..ü:PORT/",  # an empty label
    "http://\u00ad:PORT/",  # maps to nothing: an empty name
    "http://a\u2028b:PORT/",  # a line separator is not a name character
    "http://\ud800.example:PORT/",  # a lone surrogate
    "http://a\u3000b.example:PORT/",  # an ideographic space
]


@pytest.mark.parametrize("url", _BAD_IDNA, ids=_ids)
async def test_invalid_idna_hosts_are_refused(url: str) -> None:
    with pytest.raises(lowhaio.HttpInvalidRequestError, match="host"):
        lowhaio.target_of(url.replace("PORT", "80"))
    await refused_before_sending(url)


# Error messages carry no secret ---------------------------------------------------------------

SECRET = "s3cr3t-T0KEN"
_S = SECRET.encode()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"headers": ((b"authorization", b"Bearer " + _S + b"\r\n"),)},
        {"headers": ((b"cookie", b"session=" + _S + b"\x00"),)},
        {"headers": ((b"x-api-key", _S + b"\x7f"),)},
        {"headers": ((b"x api key", _S),)},  # a bad name: the name may be shown, not the value
        {"headers": ((b"authorization", _S), (b"host", b"h\r\n"))},
        {"headers": ((b"x-api-key", _S), (b"content-length", b"1"), (b"content-length", b"2"))},
        {"headers": ((b"x-api-key", _S), (b"host", b"a"), (b"host", b"b"))},
        {"headers": ((b"x-api-key", _S), ("x", b"str name"))},
        {"url": f"http://127.0.0.1:PORT/?token={SECRET}\r\n"},
        {"url": f"http://127.0.0.1:PORT/?token={SECRET}#\n"},
        {"url": f"http://user:{SECRET}@127.0.0.1:99999/"},
        {"url": f"http://user:{SECRET}@127.0.0.1:x/"},
        {"url": f"http://user:{SECRET}@[::1%25lo]/"},
        {"url": f"http://exa mple/?token={SECRET}"},
        {"url": f"ftp://127.0.0.1/?token={SECRET}"},
        {"url": f"http://127.0.0.1:PORT/?token={SECRET}&x=\ud800"},
        {"params": (("token", SECRET), ("x", None))},
        {"params": (("token", SECRET), ("x", "\ud800"))},
    ],
    ids=_ids,
)
async def test_error_messages_do_not_echo_values_or_queries(kwargs: dict[str, Any]) -> None:
    error = await refused_before_sending(**kwargs)
    for message in messages(error):
        assert SECRET not in message
