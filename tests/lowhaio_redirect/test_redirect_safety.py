"""What `redirectable` must never do, over real scripted servers on 127.0.0.1: loop past its
limit, lose the https it started with, follow a scheme it does not speak, send a caller's
credentials to an origin the caller did not name (even when `Location` tries userinfo or
backslash tricks), or leave an intermediate response's connection open. Connection events are
seen through a lowhaio plugin. Complements test_redirect.py, which covers the ordinary hops.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from conftest import Recorder, server_ssl_context
from redirect_site import HANG, Site, client, fetch, head, redirect, serve_site

from lowhaio import HttpInvalidRequestError, HttpProtocolError, Pool
from lowhaio_redirect import HttpRedirectRefused, HttpTooManyRedirects, redirectable


def connections(plugin: Recorder) -> list[tuple[str, int | None, int, str]]:
    """The connection events: (event, request_id, port, reason, or "" when opened or reused)."""
    return [
        (
            name.removeprefix("connection_"),
            fields["request_id"],
            fields["port"],
            fields.get("reason", ""),
        )
        for name, fields in plugin.select(
            "connection_opened", "connection_reused", "connection_closed"
        )
    ]


class Factory:
    """A replayable body factory that counts its calls."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls = 0

    def __call__(self) -> AsyncIterator[bytes]:
        self.calls += 1
        return self._yield()

    async def _yield(self) -> AsyncIterator[bytes]:
        yield self.data


# Origin-bound fields, repeated and in mixed case, and one field that is not origin-bound.
CREDENTIALS = (
    (b"AUTHORIZATION", b"Bearer one"),
    (b"authorization", b"Bearer two"),
    (b"Cookie", b"a=1"),
    (b"cookie", b"b=2"),
    (b"Proxy-Authorization", b"Basic eA=="),
    (b"HOST", b"example.test"),
    (b"x-trace", b"7"),
)


def dropped(line: bytes, site: Site, *more: tuple[bytes, bytes]) -> bytes:
    """The head `site` should get once the credentials and the caller's host are dropped."""
    return head(line, (b"host", site.authority), (b"x-trace", b"7"), *more)


# Loops: exactly max_redirects hops, then the chain in the error ------------------------------


@pytest.mark.parametrize("max_redirects", [0, 3])
async def test_a_self_loop_stops_at_exactly_max_redirects(max_redirects: int) -> None:
    async with serve_site() as site, client(max_redirects=max_redirects) as request:
        site.route(b"/a", redirect(302, "/a", body=b"again"))
        with pytest.raises(HttpTooManyRedirects) as raised:
            await request(b"GET", site.url("/a"))
    assert raised.value.urls == (site.url("/a"),) * (max_redirects + 2)
    assert site.targets == [b"/a"] * (max_redirects + 1)  # the refused hop is not requested
    assert site.connections == 1  # every redirect body was read: one connection throughout


async def test_a_two_url_loop_stops_at_exactly_max_redirects() -> None:
    async with serve_site() as site, client(max_redirects=3) as request:
        site.route(b"/a", redirect(301, "/b", body=b"to b"))
        site.route(b"/b", redirect(308, site.url("/a"), body=b"to a"))
        with pytest.raises(HttpTooManyRedirects) as raised:
            await request(b"GET", site.url("/a"))
    a, b = site.url("/a"), site.url("/b")
    assert raised.value.urls == (a, b, a, b, a)
    assert site.targets == [b"/a", b"/b", b"/a", b"/b"]
    assert site.connections == 1


async def test_a_307_loop_replays_the_body_once_per_hop_and_no_more() -> None:
    factory = Factory(b"abc")
    async with serve_site() as site, client(max_redirects=2) as request:
        site.route(b"/a", redirect(307, "/a"))
        with pytest.raises(HttpTooManyRedirects):
            await request(
                b"PUT", site.url("/a"), headers=((b"content-length", b"3"),), body=factory
            )
    assert factory.calls == 3
    assert site.bodies == [b"abc"] * 3


async def test_a_loop_between_two_origins_never_regains_the_credentials() -> None:
    async with serve_site() as a, serve_site() as b, client(max_redirects=3) as request:
        a.route(b"/a", redirect(302, b.url("/b")))
        b.route(b"/b", redirect(302, a.url("/a")))
        with pytest.raises(HttpTooManyRedirects) as raised:
            await request(b"GET", a.url("/a"), headers=CREDENTIALS)
    assert raised.value.urls == (a.url("/a"), b.url("/b")) * 2 + (a.url("/a"),)
    assert a.heads == [head(b"GET /a", *CREDENTIALS), dropped(b"GET /a", a)]
    assert b.heads == [dropped(b"GET /b", b)] * 2
    assert (a.connections, b.connections) == (1, 1)


# Credentials across origins ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "method", "then"),
    [
        pytest.param(301, b"GET", b"GET", id="301"),
        pytest.param(303, b"POST", b"GET", id="303-post"),
        pytest.param(308, b"PUT", b"PUT", id="308-put"),
    ],
)
async def test_credentials_and_host_are_dropped_for_another_port_whatever_the_code(
    code: int, method: bytes, then: bytes
) -> None:
    body = b"" if method == b"GET" else b"abc"
    length = () if method == b"GET" else ((b"content-length", b"3"),)
    async with serve_site() as a, serve_site() as b, client() as request:
        a.route(b"/a", redirect(code, b.url("/b")))
        got = await fetch(
            request, method, a.url("/a"), headers=CREDENTIALS + length, body=Factory(body)
        )
    assert got == (b"200", b"/b")
    kept = length if then == method else ()
    assert b.heads == [dropped(then + b" /b", b, *kept)]
    assert b.bodies == [body if then == method else b""]


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("http://user:pass@127.0.0.2:{port}/b", id="userinfo"),
        pytest.param("http://127.0.0.1:{port}@127.0.0.2:{port}/b", id="userinfo-naming-the-origin"),
    ],
)
async def test_userinfo_in_location_is_not_sent_and_does_not_pass_for_the_origin(
    location: str,
) -> None:
    """The host after the last "@" is where the request goes, and is the origin compared: the
    credentials are dropped, and the userinfo goes neither in the target nor in `host`."""
    async with (
        serve_site() as a,
        serve_site(host="127.0.0.2", port=a.server.port) as b,
        client() as request,
    ):
        a.route(b"/a", redirect(302, location.format(port=a.server.port)))
        got = await fetch(request, b"GET", a.url("/a"), headers=CREDENTIALS)
    assert got == (b"200", b"/b")
    assert a.targets == [b"/a"]
    assert b.heads == [dropped(b"GET /b", b)]


async def test_a_backslash_in_the_authority_is_refused() -> None:
    """ "http://a\\@b/" is a request to b for urlsplit, to a for a WHATWG parser: neither is
    guessed, the core refuses it (RFC 3986 3.2), and so the redirect is refused."""
    async with (
        serve_site() as a,
        serve_site(host="127.0.0.2", port=a.server.port) as b,
        client() as request,
    ):
        location = f"http://127.0.0.1:{a.server.port}\\@127.0.0.2:{a.server.port}/b"
        a.route(b"/a", redirect(302, location))
        with pytest.raises(HttpRedirectRefused) as raised:
            await request(b"GET", a.url("/a"), headers=CREDENTIALS)
    assert type(raised.value.__cause__) is HttpInvalidRequestError
    assert raised.value.location == location
    assert a.targets == [b"/a"]
    assert b.connections == 0


async def test_a_backslash_in_the_path_stays_on_the_same_origin_where_it_is_sent() -> None:
    """Browsers read "/\\host/x" as "//host/x"; here it is a path, both for where the request
    goes and for whether the credentials go with it: the two never disagree."""
    async with (
        serve_site() as a,
        serve_site(host="127.0.0.2", port=a.server.port) as b,
        client() as request,
    ):
        a.route(b"/a", redirect(302, "/\\127.0.0.2/x"))
        got = await fetch(request, b"GET", a.url("/a"), headers=CREDENTIALS)
    assert got == (b"200", b"/%5C127.0.0.2/x")
    assert a.heads[1] == head(b"GET /%5C127.0.0.2/x", *CREDENTIALS)
    assert b.connections == 0


# https is never given up -------------------------------------------------------------------


async def test_a_scheme_relative_location_keeps_https() -> None:
    async with (
        serve_site(server_ssl_context()) as tls,
        serve_site(server_ssl_context()) as other,
        client() as request,
    ):
        tls.route(b"/a", redirect(302, f"//127.0.0.1:{other.server.port}/b"))
        got = await fetch(request, b"GET", tls.url("/a", "https"), headers=CREDENTIALS)
    assert got == (b"200", b"/b")  # a TLS server answered: the hop was https
    assert other.heads == [dropped(b"GET /b", other)]


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("HTTP://127.0.0.1:{port}/b", id="upper-case-scheme"),
        pytest.param("http:/b", id="scheme-and-path"),
        pytest.param("http:b", id="scheme-and-relative-path"),
    ],
)
async def test_a_disguised_downgrade_to_http_is_refused(location: str) -> None:
    async with (
        serve_site(server_ssl_context()) as tls,
        serve_site() as plain,
        client() as request,
    ):
        location = location.format(port=plain.server.port)
        tls.route(b"/a", redirect(302, location))
        with pytest.raises(HttpRedirectRefused) as raised:
            await request(b"GET", tls.url("/a", "https"), headers=CREDENTIALS)
    assert (raised.value.url, raised.value.location) == (tls.url("/a", "https"), location)
    assert plain.connections == 0
    assert tls.targets == [b"/a"]


async def test_a_downgrade_later_in_the_chain_is_refused() -> None:
    """http -> https -> http: the hop from https is refused, though the chain began on http."""
    async with (
        serve_site(server_ssl_context()) as tls,
        serve_site() as plain,
        client() as request,
    ):
        plain.route(b"/a", redirect(302, tls.url("/b", "https")))
        tls.route(b"/b", redirect(302, plain.url("/c")))
        with pytest.raises(HttpRedirectRefused) as raised:
            await request(b"GET", plain.url("/a"))
    assert (raised.value.url, raised.value.location) == (tls.url("/b", "https"), plain.url("/c"))
    assert plain.targets == [b"/a"]
    assert tls.targets == [b"/b"]


async def test_a_307_post_from_https_to_http_is_refused_before_its_body_is_replayed() -> None:
    factory = Factory(b"secret=1")
    async with (
        serve_site(server_ssl_context()) as tls,
        serve_site() as plain,
        client() as request,
    ):
        tls.route(b"/a", redirect(307, plain.url("/b")))
        with pytest.raises(HttpRedirectRefused):
            await request(
                b"POST",
                tls.url("/a", "https"),
                headers=((b"content-length", b"8"),),
                body=factory,
            )
    assert factory.calls == 1
    assert tls.bodies == [b"secret=1"]
    assert plain.connections == 0


# Other schemes and bytes that are not a URL -------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("jAvAsCrIpT:alert(1)", id="javascript-mixed-case"),
        pytest.param("FILE:///etc/passwd", id="file-upper-case"),
        pytest.param("ws://127.0.0.1:{port}/", id="websocket"),
    ],
)
async def test_another_scheme_in_any_case_is_refused(location: str) -> None:
    async with serve_site() as site, client() as request:
        location = location.format(port=site.server.port)
        site.route(b"/a", redirect(302, location))
        with pytest.raises(HttpRedirectRefused) as raised:
            await request(b"GET", site.url("/a"), headers=CREDENTIALS)
    assert raised.value.location == location
    assert raised.value.__cause__ is None  # refused by the wrapper, not by the core
    assert site.targets == [b"/a"]


async def test_a_scheme_without_a_host_is_refused() -> None:
    """ "https:/b" from http resolves to itself, with no host: the core refuses it, and the
    wrapper says so as a refused redirect."""
    async with serve_site() as site, client() as request:
        site.route(b"/a", redirect(302, "https:/b"))
        with pytest.raises(HttpRedirectRefused) as raised:
            await request(b"GET", site.url("/a"))
    assert type(raised.value.__cause__) is HttpInvalidRequestError
    assert site.targets == [b"/a"]


@pytest.mark.parametrize("byte", [b"\x01", b"\x1b"])
async def test_a_location_with_a_control_byte_from_the_server_is_not_followed(
    byte: bytes,
) -> None:
    async with serve_site() as site, client() as request:
        site.route(b"/a", redirect(302, b"/b" + byte + b"c"))
        with pytest.raises(HttpProtocolError):
            await request(b"GET", site.url("/a"))
    assert site.targets == [b"/a"]


# Intermediate responses: their connections are reused or closed, never left open ------------


async def test_a_chain_on_one_origin_reuses_one_connection_until_the_pool_closes() -> None:
    plugin = Recorder()
    async with serve_site() as site, client(plugin) as request:
        for i in range(3):
            site.route(b"/%d" % i, redirect(302, f"/{i + 1}", body=b"moved"))
        assert await fetch(request, b"GET", site.url("/0")) == (b"200", b"/3")
        port = site.server.port
        assert connections(plugin) == [
            ("opened", 1, port, ""),
            ("reused", 2, port, ""),
            ("reused", 3, port, ""),
            ("reused", 4, port, ""),
        ]
    assert connections(plugin)[-1] == ("closed", None, port, "pool closed")
    assert site.connections == 1


async def test_a_redirect_body_over_the_discard_limit_has_its_connection_closed() -> None:
    plugin = Recorder()
    async with serve_site() as site, client(plugin, discard_limit=10) as request:
        # 100 of the 1000 bytes announced: the rest would never come.
        site.route(
            b"/a",
            b"HTTP/1.1 302 Found\r\nlocation: /b\r\ncontent-length: 1000\r\n\r\n" + b"m" * 100,
        )
        assert await fetch(request, b"GET", site.url("/a")) == (b"200", b"/b")
        async with asyncio.timeout(1):
            await site.client_closed.wait()  # the server sees the first connection go
        port = site.server.port
        assert connections(plugin) == [
            ("opened", 1, port, ""),
            ("closed", 1, port, "body abandoned"),
            ("opened", 2, port, ""),
        ]
    assert plugin.count("connection_opened") == plugin.count("connection_closed") == 2


async def test_a_redirect_that_says_connection_close_is_closed_not_reused() -> None:
    plugin = Recorder()
    async with serve_site() as site, client(plugin) as request:
        site.route(b"/a", redirect(302, "/b", (b"connection", b"close"), body=b"moved"))
        assert await fetch(request, b"GET", site.url("/a")) == (b"200", b"/b")
        async with asyncio.timeout(1):
            await site.client_closed.wait()
        port = site.server.port
        assert connections(plugin)[:3] == [
            ("opened", 1, port, ""),
            ("closed", 1, port, "not reusable"),
            ("opened", 2, port, ""),
        ]
    assert plugin.count("connection_opened") == plugin.count("connection_closed") == 2
    assert site.connections == 2


async def test_a_refused_redirect_with_a_large_body_closes_its_connection() -> None:
    plugin = Recorder()
    async with serve_site() as site, client(plugin, discard_limit=10) as request:
        # 100 of the 1000 bytes announced, as in the test above.
        site.route(
            b"/a",
            b"HTTP/1.1 302 Found\r\nlocation: ftp://127.0.0.1/\r\ncontent-length: 1000\r\n\r\n"
            + b"x" * 100,
        )
        with pytest.raises(HttpRedirectRefused):
            await request(b"GET", site.url("/a"))
        assert connections(plugin) == [
            ("opened", 1, site.server.port, ""),
            ("closed", 1, site.server.port, "body abandoned"),
        ]
        async with asyncio.timeout(1):
            await site.client_closed.wait()


async def test_cancelling_during_a_hop_closes_that_hops_connection() -> None:
    plugin = Recorder()
    async with serve_site() as a, serve_site() as b, client(plugin) as request:
        a.route(b"/a", redirect(302, b.url("/b")))
        b.route(b"/b", HANG)
        task = asyncio.ensure_future(request(b"GET", a.url("/a")))
        async with asyncio.timeout(1):
            await b.received.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(1):
            await b.client_closed.wait()  # not left open until the pool closes
        assert connections(plugin) == [
            ("opened", 1, a.server.port, ""),
            ("opened", 2, b.server.port, ""),
            ("closed", 2, b.server.port, "error"),
        ]
    assert connections(plugin)[-1] == ("closed", None, a.server.port, "pool closed")


async def test_a_307_whose_body_factory_cannot_replay_is_the_callers_error() -> None:
    # The core's own error for a body shorter than its content-length, not a refused redirect:
    # the Location was fine, the caller's factory was not.
    calls = []

    async def once() -> AsyncIterator[bytes]:
        calls.append(1)
        if len(calls) == 1:
            yield b"abc"

    async with serve_site() as site:
        site.route(b"/a", redirect(307, "/b"))
        request, close = Pool()
        with pytest.raises(HttpInvalidRequestError, match="shorter than its content-length"):
            await redirectable(request)(
                b"POST", site.url("/a"), headers=((b"content-length", b"3"),), body=once
            )
        await close()
    assert len(calls) == 2
