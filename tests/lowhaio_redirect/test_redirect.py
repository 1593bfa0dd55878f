"""`redirectable` over real scripted servers: what each server receives at each hop (method,
target, headers, body), what the caller gets back, and the typed errors of refused redirects.

Each server is a `Site`: it answers a request by its target (scripted replies, else 200 with the
target as its body) on every connection it accepts, and records the requests it reads.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Mapping
from types import MappingProxyType
from typing import Any

import pytest
from conftest import (
    Handler,
    Server,
    serve,
    server_ssl_context,
)
from redirect_site import PAUSE, Reply, Site, client, fetch, head, redirect, response, serve_site

from lowhaio import (
    BodyFactory,
    HttpError,
    HttpInvalidRequestError,
    Params,
    Pool,
    Request,
    RequestHeaders,
    Response,
    buffered,
    empty_body,
    streamed,
)
from lowhaio_redirect import HttpRedirectRefused, HttpTooManyRedirects, redirectable

NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


def sniffing(plain: Server, tls: Server) -> Handler:
    """One port for http and https: each connection is forwarded, byte for byte, to `tls` if it
    opens with a TLS handshake record, else to `plain`."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.readexactly(1)
        port = tls.port if first == b"\x16" else plain.port
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
        upstream_writer.write(first)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    return handler


class Factory:
    """A body factory that records each call and yields its arguments: a replayable body."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[bytes, ...], dict[str, bytes]]] = []

    def __call__(self, *chunks: bytes, **more: bytes) -> AsyncIterator[bytes]:
        self.calls.append((chunks, more))
        return self._yield(*chunks, *more.values())

    @staticmethod
    async def _yield(*chunks: bytes) -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk


def rewriting_location(request: Request, location: bytes) -> Request:
    """A wrapper that sets every response's Location to `location`: how a value the core never
    lets through from a server (CR, LF, NUL) could still reach `redirectable` from below."""

    async def rewritten(
        method: bytes,
        url: str,
        params: Params = (),
        headers: RequestHeaders = (),
        body: BodyFactory = empty_body,
        body_args: tuple[Any, ...] = (),
        body_kwargs: Mapping[str, Any] = NO_KWARGS,
    ) -> Response:
        code, fields, response_body = await request(
            method, url, params, headers, body, body_args, body_kwargs
        )
        fields = tuple((k, location if k == b"location" else v) for k, v in fields)
        return code, fields, response_body

    return rewritten


# Methods and bodies ------------------------------------------------------------------------

# Fields that describe the body, in mixed case: each set with the body its framing needs.
BODY_FIELDS = [
    pytest.param(
        (
            (b"Content-Length", b"3"),
            (b"content-type", b"text/plain"),
            (b"Content-Encoding", b"identity"),
            (b"content-language", b"en"),
            (b"Content-Location", b"/doc"),
        ),
        (b"abc",),
        id="content-length",
    ),
    pytest.param(
        (
            (b"Transfer-Encoding", b"chunked"),
            (b"Content-Type", b"text/plain"),
            (b"Expect", b"100-continue"),
            (b"trailer", b"x-sum"),
        ),
        (b"3\r\nabc\r\n", b"0\r\n\r\n"),
        id="chunked-expect",
    ),
]
KEPT = ((b"Authorization", b"Bearer t"), (b"x-keep", b"1"))


@pytest.mark.parametrize("code", [301, 302])
@pytest.mark.parametrize(("fields", "chunks"), BODY_FIELDS)
async def test_301_302_turn_a_post_into_a_get_without_body_or_body_fields(
    code: int, fields: tuple[tuple[bytes, bytes], ...], chunks: tuple[bytes, ...]
) -> None:
    factory = Factory()
    async with serve_site() as site, client(continue_timeout=PAUSE) as request:
        site.route(b"/a", redirect(code, "/b"))
        got = await fetch(
            request, b"POST", site.url("/a"), headers=KEPT + fields, body=factory, body_args=chunks
        )
    assert got == (b"200", b"/b")
    assert site.heads[1] == head(b"GET /b", (b"host", site.authority), *KEPT)
    assert site.bodies == [b"".join(chunks), b""]
    assert len(factory.calls) == 1  # the body is not sent again


@pytest.mark.parametrize("code", [301, 302])
async def test_301_302_keep_a_get(code: int) -> None:
    async with serve_site() as site, client() as request:
        site.route(b"/a", redirect(code, "/b"))
        assert await fetch(request, b"GET", site.url("/a"), headers=KEPT) == (b"200", b"/b")
    assert site.heads == [
        head(b"GET /a", (b"host", site.authority), *KEPT),
        head(b"GET /b", (b"host", site.authority), *KEPT),
    ]


@pytest.mark.parametrize("code", [301, 302])
@pytest.mark.parametrize("method", [b"PUT", b"PATCH", b"DELETE"])
async def test_301_302_keep_other_methods_and_replay_their_body(code: int, method: bytes) -> None:
    factory = Factory()
    fields = ((b"content-length", b"3"), (b"content-type", b"text/plain"))
    async with serve_site() as site, client() as request:
        site.route(b"/a", redirect(code, "/b"))
        got = await fetch(
            request, method, site.url("/a"), headers=fields, body=factory, body_args=(b"abc",)
        )
    assert got == (b"200", b"/b")
    assert site.heads[1] == head(method + b" /b", (b"host", site.authority), *fields)
    assert site.bodies == [b"abc", b"abc"]
    assert factory.calls == [((b"abc",), {})] * 2


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE", b"GET"])
async def test_303_turns_anything_but_head_into_a_get_without_body(method: bytes) -> None:
    factory = Factory()
    fields = ((b"content-length", b"3"), (b"content-type", b"text/plain"), *KEPT)
    async with serve_site() as site, client() as request:
        site.route(b"/a", redirect(303, "/b"))
        got = await fetch(
            request, method, site.url("/a"), headers=fields, body=factory, body_args=(b"abc",)
        )
    assert got == (b"200", b"/b")
    assert site.heads[1] == head(b"GET /b", (b"host", site.authority), *KEPT)
    assert site.bodies == [b"abc", b""]
    assert len(factory.calls) == 1


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_a_head_stays_a_head(code: int) -> None:
    async with serve_site() as site, client() as request:
        site.route(b"/a", redirect(code, "/b"))
        site.route(b"/b", b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
        code_, fields, body = await request(b"HEAD", site.url("/a"))
        assert (code_, fields, await buffered(body)) == (b"200", ((b"content-length", b"5"),), b"")
    assert site.heads[1] == head(b"HEAD /b", (b"host", site.authority))


STREAMED = [
    pytest.param((b"content-length", b"5"), (b"ab", b"c"), {"tail": b"de"}, id="content-length"),
    pytest.param(
        (b"transfer-encoding", b"chunked"),
        (b"2\r\nab\r\n", b"1\r\nc\r\n"),
        {"tail": b"2\r\nde\r\n0\r\n\r\n"},
        id="chunked",
    ),
]


@pytest.mark.parametrize("code", [307, 308])
@pytest.mark.parametrize("method", [b"POST", b"PUT"])
@pytest.mark.parametrize(("framing", "args", "kwargs"), STREAMED)
async def test_307_308_keep_method_fields_and_replay_the_streamed_body(
    code: int,
    method: bytes,
    framing: tuple[bytes, bytes],
    args: tuple[bytes, ...],
    kwargs: dict[str, bytes],
) -> None:
    factory = Factory()
    fields = (framing, (b"content-type", b"application/octet-stream"), *KEPT)
    async with serve_site() as site, client() as request:
        site.route(b"/a", redirect(code, "/b"))
        got = await fetch(
            request,
            method,
            site.url("/a"),
            headers=fields,
            body=factory,
            body_args=args,
            body_kwargs=kwargs,
        )
    assert got == (b"200", b"/b")
    assert site.heads == [
        head(method + b" /a", (b"host", site.authority), *fields),
        head(method + b" /b", (b"host", site.authority), *fields),
    ]
    sent = b"".join((*args, kwargs["tail"]))
    assert site.bodies == [sent, sent]  # byte for byte, twice
    assert factory.calls == [(args, kwargs)] * 2  # the factory called again, with its arguments


# Location ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "target"),
    [
        pytest.param("http://127.0.0.1:{port}/x?y=1", b"/x?y=1", id="absolute"),
        pytest.param("//127.0.0.1:{port}/x", b"/x", id="scheme-relative"),
        pytest.param("/x/y", b"/x/y", id="absolute-path"),
        pytest.param("c", b"/a/c", id="relative"),
        pytest.param("../c", b"/c", id="parent"),
        pytest.param("../../c", b"/c", id="above-the-root"),
        pytest.param("./c", b"/a/c", id="dot"),
        pytest.param("c?r=2", b"/a/c?r=2", id="own-query"),
        pytest.param("?r=2", b"/a/b?r=2", id="query-only"),
        pytest.param("/x#frag", b"/x", id="fragment-dropped"),
        pytest.param("/caf\u00e9 x", b"/caf%C3%A9%20x", id="non-ascii-encoded"),
    ],
)
async def test_location_is_resolved_against_the_current_url(location: str, target: bytes) -> None:
    async with serve_site() as site, client() as request:
        site.route(b"/a/b?q=1", redirect(302, location.format(port=site.server.port)))
        assert await fetch(request, b"GET", site.url("/a/b?q=1")) == (b"200", target)
    assert site.targets == [b"/a/b?q=1", target]
    assert site.heads[1] == head(b"GET " + target, (b"host", site.authority))


async def test_params_go_to_the_first_hop_only() -> None:
    async with serve_site() as site, client() as request:
        site.route(b"/a/b?q=1&p=1%202", redirect(302, "c?r=2"))
        site.route(b"/a/c?r=2", redirect(302, "d"))
        got = await fetch(request, b"GET", site.url("/a/b?q=1"), params=[("p", "1 2")])
    assert got == (b"200", b"/a/d")
    assert site.targets == [b"/a/b?q=1&p=1%202", b"/a/c?r=2", b"/a/d"]


async def test_a_fragment_only_location_keeps_the_query_that_params_made() -> None:
    # RFC 9110 10.2.2 and RFC 3986 5.2.2: a reference with no path and no query takes both from
    # the target URI it is resolved against, and that URI's query holds the caller's params.
    async with serve_site() as site, client() as request:
        site.route(b"/a?p=1", redirect(302, "#top"), response(200, body=b"again"))
        got = await fetch(request, b"GET", site.url("/a"), params=[("p", "1")])
    assert site.targets == [b"/a?p=1", b"/a?p=1"]
    assert got == (b"200", b"again")


# max_redirects -----------------------------------------------------------------------------


def chain(site: Site) -> None:
    """/0 -> /1 -> /2 -> /3, which answers 200."""
    for i in range(3):
        site.route(f"/{i}".encode(), redirect(301, f"/{i + 1}", body=b"moved"))


async def test_max_redirects_follows_exactly_that_many() -> None:
    async with serve_site() as site, client(max_redirects=2) as request:
        chain(site)
        assert await fetch(request, b"GET", site.url("/1")) == (b"200", b"/3")
    assert site.targets == [b"/1", b"/2", b"/3"]


@pytest.mark.parametrize(("max_redirects", "start"), [(2, 0), (0, 2)])
async def test_one_more_redirect_raises_with_the_whole_chain(
    max_redirects: int, start: int
) -> None:
    async with serve_site() as site, client(max_redirects=max_redirects) as request:
        chain(site)
        with pytest.raises(HttpTooManyRedirects) as raised:
            await request(b"GET", site.url(f"/{start}"))
        assert site.connections == 1  # each redirect's body was read: one connection throughout
    assert isinstance(raised.value, HttpError)
    assert raised.value.urls == tuple(site.url(f"/{i}") for i in range(start, 4))
    assert site.targets == [f"/{i}".encode() for i in range(start, 3)]  # not /3, refused


async def test_a_redirect_loop_ends() -> None:
    async with serve_site() as site, client() as request:
        site.route(b"/a", redirect(302, "/b"))
        site.route(b"/b", redirect(302, "/a#top"))  # the chain holds URLs without fragment
        with pytest.raises(HttpTooManyRedirects) as raised:
            await request(b"GET", site.url("/a"))
    assert raised.value.urls == (site.url("/a"), site.url("/b")) * 6
    assert site.targets == [b"/a", b"/b"] * 5 + [b"/a"]


# What a crawler sees: the final URL and the hops, on the body ------------------------------


async def test_the_body_has_the_final_url_and_every_hop_followed() -> None:
    async with serve_site() as a, serve_site() as b, client() as request:
        a.route(b"/start", redirect(301, "/moved"))
        a.route(b"/moved", redirect(302, b.url("/x/y")))  # absolute, to another origin
        b.route(b"/x/y", redirect(307, "z?q=1"))  # relative to the path
        b.route(b"/x/z?q=1", redirect(308, "../end#top"))  # the fragment dropped
        code, _, body = await request(b"GET", a.url("/start"))
        assert (code, await buffered(body)) == (b"200", b"/end")
    assert body.url == b.url("/end")
    assert body.history == (
        (b"301", a.url("/start")),
        (b"302", a.url("/moved")),
        (b"307", b.url("/x/y")),
        (b"308", b.url("/x/z?q=1")),
    )


async def test_a_303_after_a_post_is_in_the_history_of_the_get() -> None:
    async with serve_site() as site, client() as request:
        site.route(b"/form", redirect(303, "/result"))
        code, _, body = await request(
            b"POST",
            site.url("/form"),
            headers=((b"content-length", b"3"),),
            body=streamed(b"a=1"),
        )
        assert (code, await buffered(body)) == (b"200", b"/result")
    assert [request_head.split(b" ")[0] for request_head in site.heads] == [b"POST", b"GET"]
    assert (body.url, body.history) == (site.url("/result"), ((b"303", site.url("/form")),))


@pytest.mark.parametrize(
    "reply",
    [response(200, body=b"here"), response(302, body=b"here")],  # a 302 without Location
    ids=["200", "302-without-location"],
)
async def test_a_response_not_redirected_answers_the_url_as_given(reply: bytes) -> None:
    async with serve_site() as site, client() as request:
        site.route(b"/a?q=1&p=2", reply)
        _, _, body = await request(b"GET", site.url("/a?q=1"), params=[("p", "2")])
        assert await buffered(body) == b"here"
    assert (body.url, body.history) == (site.url("/a?q=1"), ())


# Responses returned as they are ------------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_a_redirect_without_location_is_returned(code: int) -> None:
    async with serve_site() as site, client() as request:
        site.route(b"/a", response(code, (b"x-why", b"none"), body=b"no location"))
        code_, fields, body = await request(b"GET", site.url("/a"))
        got = (code_, fields, await buffered(body))
    assert got == (
        b"%d" % code,
        ((b"x-why", b"none"), (b"content-length", b"11")),
        b"no location",
    )
    assert site.targets == [b"/a"]


@pytest.mark.parametrize("code", [200, 201, 300, 304])
async def test_a_location_outside_a_redirect_is_not_followed(code: int) -> None:
    body = b"" if code == 304 else b"here"
    async with serve_site() as site, client() as request:
        site.route(b"/a", redirect(code, "/b", body=body))
        assert await fetch(request, b"GET", site.url("/a")) == (b"%d" % code, body)
    assert site.targets == [b"/a"]


# Credentials and origins -------------------------------------------------------------------

# Origin-bound fields in mixed case, and one that is not.
CREDENTIALS = (
    (b"Authorization", b"Bearer secret"),
    (b"COOKIE", b"session=1"),
    (b"proxy-authorization", b"Basic eA=="),
    (b"Host", b"example.test"),
    (b"x-trace", b"7"),
)


@pytest.mark.parametrize("code", [302, 307])
@pytest.mark.parametrize("absolute", [False, True])
async def test_credentials_and_host_are_kept_on_the_same_origin(code: int, absolute: bool) -> None:
    async with serve_site() as site, client() as request:
        site.route(b"/a", redirect(code, site.url("/b") if absolute else "/b"))
        assert await fetch(request, b"GET", site.url("/a"), headers=CREDENTIALS) == (b"200", b"/b")
    assert site.heads[1] == head(b"GET /b", *CREDENTIALS)


def dropped(target: bytes, site: Site) -> bytes:
    return head(b"GET " + target, (b"host", site.authority), (b"x-trace", b"7"))


@pytest.mark.parametrize("code", [302, 307])
async def test_credentials_and_host_are_dropped_for_another_port(code: int) -> None:
    async with serve_site() as a, serve_site() as b, client() as request:
        a.route(b"/a", redirect(code, b.url("/b")))
        b.route(b"/b", redirect(code, a.url("/c")))  # back to the first origin: still dropped
        assert await fetch(request, b"GET", a.url("/a"), headers=CREDENTIALS) == (b"200", b"/c")
    assert a.heads == [head(b"GET /a", *CREDENTIALS), dropped(b"/c", a)]
    assert b.heads == [dropped(b"/b", b)]


async def test_credentials_and_host_are_dropped_for_another_host_on_the_same_port() -> None:
    async with (
        serve_site() as a,
        serve_site(host="127.0.0.2", port=a.server.port) as b,
        client() as request,
    ):
        a.route(b"/a", redirect(302, b.url("/b")))
        got = await fetch(request, b"GET", a.url("/a"), headers=CREDENTIALS)
    assert got == (b"200", b"/b")
    assert b.heads == [dropped(b"/b", b)]
    assert b.authority == b"127.0.0.2:%d" % a.server.port


@pytest.mark.parametrize(("first", "then"), [("http", "https"), ("https", "http")])
async def test_credentials_and_host_are_dropped_for_another_scheme_on_the_same_port(
    first: str, then: str
) -> None:
    async with (
        serve_site() as plain,
        serve_site(server_ssl_context()) as tls,
        serve(sniffing(plain.server, tls.server)) as both,
        client(allow_insecure=True) as request,
    ):
        sites = {"http": plain, "https": tls}
        sites[first].route(b"/a", redirect(302, both.url("/b", scheme=then)))
        url = both.url("/a", scheme=first)
        got = await fetch(request, b"GET", url, headers=CREDENTIALS)
    assert got == (b"200", b"/b")
    assert sites[first].heads == [head(b"GET /a", *CREDENTIALS)]
    assert sites[then].heads == [
        head(b"GET /b", (b"host", b"127.0.0.1:%d" % both.port), (b"x-trace", b"7"))
    ]


async def test_https_to_http_is_refused_by_default() -> None:
    async with serve_site(server_ssl_context()) as tls, serve_site() as plain, client() as request:
        tls.route(b"/a", redirect(302, plain.url("/b")))
        with pytest.raises(HttpRedirectRefused) as raised:
            await request(b"GET", tls.url("/a", scheme="https"), headers=CREDENTIALS)
    assert isinstance(raised.value, HttpError)
    assert (raised.value.url, raised.value.location) == (tls.url("/a", "https"), plain.url("/b"))
    assert plain.connections == 0


async def test_https_to_http_is_followed_with_allow_insecure() -> None:
    async with (
        serve_site(server_ssl_context()) as tls,
        serve_site() as plain,
        client(allow_insecure=True) as request,
    ):
        tls.route(b"/a", redirect(302, plain.url("/b")))
        url = tls.url("/a", scheme="https")
        assert await fetch(request, b"GET", url, headers=CREDENTIALS) == (b"200", b"/b")
    assert plain.heads == [dropped(b"/b", plain)]


# Refused locations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/",
        "javascript:alert(1)",
        "data:text/html,hi",
        "/a\tb",  # the only control byte a server can put in a field value
    ],
)
async def test_a_location_that_is_not_http_is_refused(location: str) -> None:
    async with serve_site() as site, client() as request:
        site.route(b"/a", redirect(302, location, body=b"moved"))
        with pytest.raises(HttpRedirectRefused) as raised:
            await request(b"GET", site.url("/a"))
        assert await fetch(request, b"GET", site.url("/ok")) == (b"200", b"/ok")
    assert (raised.value.url, raised.value.location) == (site.url("/a"), location)
    assert site.targets == [b"/a", b"/ok"]
    assert site.connections == 1  # the refused redirect's body was read to its end


@pytest.mark.parametrize("location", [b"/b\r\nx: 1", b"/b\nc", b"/b\rc", b"/b\x00c", b"/b\x7fc"])
async def test_a_location_with_a_control_character_is_refused(location: bytes) -> None:
    async with serve_site() as site:
        request, close = Pool()
        wrapped = redirectable(rewriting_location(request, location))
        site.route(b"/a", redirect(302, "/placeholder"))
        with pytest.raises(HttpRedirectRefused) as raised:
            await wrapped(b"GET", site.url("/a"))
        await close()
    assert raised.value.location == location.decode()
    assert site.targets == [b"/a"]


@pytest.mark.parametrize(
    "location", ["http://bad host/", "http://127.0.0.1:0/", "http://[::1%25eth0]/"]
)
async def test_a_location_the_core_refuses_is_refused_with_its_error_as_cause(
    location: str,
) -> None:
    async with serve_site() as site, client() as request:
        site.route(b"/a", redirect(302, location))
        with pytest.raises(HttpRedirectRefused) as raised:
            await request(b"GET", site.url("/a"))
    assert type(raised.value.__cause__) is HttpInvalidRequestError
    assert (raised.value.url, raised.value.location) == (site.url("/a"), location)
    assert site.targets == [b"/a"]


@pytest.mark.parametrize(
    "location", ["http://127.0.0.1:99999/", "http://127.0.0.1:port/", "http://[::1/"]
)
async def test_a_location_that_does_not_parse_is_refused(location: str) -> None:
    async with serve_site() as site, client() as request:
        site.route(b"/a", redirect(302, location))
        with pytest.raises(HttpRedirectRefused) as raised:
            await request(b"GET", site.url("/a"))
    assert raised.value.url == site.url("/a")
    assert site.targets == [b"/a"]


@pytest.mark.parametrize(
    ("method", "url", "headers"),
    [
        pytest.param(b"GET", "http://bad host/", (), id="url"),
        pytest.param(b"GET /x", "http://127.0.0.1:1/", (), id="method"),
        pytest.param(b"GET", "http://127.0.0.1:1/", ((b"x", b"a\r\nb"),), id="field"),
    ],
)
async def test_an_invalid_first_request_raises_the_core_error_unchanged(
    method: bytes, url: str, headers: tuple[tuple[bytes, bytes], ...]
) -> None:
    async with client() as request:
        with pytest.raises(HttpInvalidRequestError) as raised:
            await request(method, url, headers=headers)
    assert type(raised.value) is HttpInvalidRequestError


# Intermediate bodies -----------------------------------------------------------------------

MOVED = b"HTTP/1.1 302 Found\r\nlocation: /b\r\n"


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param((MOVED + b"content-length: 10\r\n\r\nmov", b"ed here"), id="sized"),
        pytest.param(
            (MOVED + b"transfer-encoding: chunked\r\n\r\n3\r\nmov\r\n", b"2\r\ned\r\n0\r\n\r\n"),
            id="chunked",
        ),
    ],
)
async def test_a_small_redirect_body_is_read_and_its_connection_reused(reply: Reply) -> None:
    async with serve_site() as site, client(discard_limit=10) as request:
        site.route(b"/a", reply)
        assert await fetch(request, b"GET", site.url("/a")) == (b"200", b"/b")
        assert site.connections == 1
        assert not site.client_closed.is_set()
    assert site.targets == [b"/a", b"/b"]


async def test_a_redirect_body_over_discard_limit_has_its_connection_closed() -> None:
    # The head and 100 of the 1000 bytes: the rest would come later, but is not worth waiting.
    async with serve_site() as site, client(discard_limit=10) as request:
        site.route(b"/a", MOVED + b"content-length: 1000\r\n\r\n" + b"m" * 100)
        assert await fetch(request, b"GET", site.url("/a")) == (b"200", b"/b")
        async with asyncio.timeout(1):
            await site.client_closed.wait()
        assert site.connections == 2
    assert site.targets == [b"/a", b"/b"]


# The wrapper itself ------------------------------------------------------------------------


async def test_the_signature_is_the_core_one() -> None:
    request, close = Pool()
    assert inspect.signature(redirectable(request)) == inspect.signature(request)
    await close()


@pytest.mark.parametrize("keywords", [False, True])
async def test_positional_and_keyword_arguments(keywords: bool) -> None:
    factory = Factory()
    async with serve_site() as site, client() as request:
        site.route(b"/a?p=1", redirect(307, "/b"))
        arguments: dict[str, Any] = {
            "method": b"PUT",
            "url": site.url("/a"),
            "params": [("p", "1")],
            "headers": [(b"content-length", b"3")],
            "body": factory,
            "body_args": (b"a",),
            "body_kwargs": {"more": b"bc"},
        }
        if keywords:
            code, _, body = await request(**arguments)
        else:
            code, _, body = await request(*arguments.values())
        assert (code, await buffered(body)) == (b"200", b"/b")
    assert site.heads[1] == head(b"PUT /b", (b"host", site.authority), (b"content-length", b"3"))
    assert site.bodies == [b"abc", b"abc"]
    assert factory.calls == [((b"a",), {"more": b"bc"})] * 2


async def test_wrapping_itself_is_harmless() -> None:
    async with serve_site() as site:
        request, close = Pool()
        twice = redirectable(redirectable(request), max_redirects=0)
        chain(site)
        code, _, body = await twice(b"GET", site.url("/0"))
        assert (code, await buffered(body)) == (b"200", b"/3")
        await close()
    assert site.targets == [b"/0", b"/1", b"/2", b"/3"]
    assert site.connections == 1
    # The outer one followed no redirect: the hops stay those the inner one followed.
    assert body.url == site.url("/3")
    assert body.history == tuple((b"301", site.url(f"/{i}")) for i in range(3))
