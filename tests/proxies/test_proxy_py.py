"""lowhaio through proxy.py, a real HTTP proxy: forwarded http:// requests, CONNECT tunnels for
https:// origins, Basic credentials, TLS to the proxy (and TLS inside it), connection reuse,
and redirects across origins.

The origins are raw servers on loopback (`origins.py`) that record what reached them: that is
where "the credentials went to the proxy only" is seen. Every test runs on asyncio's loop and
on uvloop's.

proxy.py 2.4.10 rewrites and checks only the first request of a kept-alive forwarded
connection: later ones reach the origin with the client's `proxy-authorization` and without
being authenticated (`HttpProxyPlugin.on_client_data` builds them as they came). So the tests
of forwarded requests with credentials send one request per connection, and the reuse of a
forwarded connection is tested without credentials.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
from conftest import Recorder, client_ssl_context, get, pool
from origins import loop_errors, opened_and_reused, origin, response
from proxy_servers import RunningProxy, proxy_py

import lowhaio
from lowhaio_redirect import redirectable

# CPython's gh-113214, fixed in 3.11.8 and 3.12.2: where the inner handshake of TLS inside TLS
# fails, asyncio raises "TypeError: SSLProtocol._abort() takes 1 positional argument" instead.
_ASYNCIO_GH_113214 = sys.version_info < (3, 11, 8) or ((3, 12) <= sys.version_info < (3, 12, 2))

USER, PASSWORD = "lowhaio-tester", "s3cret-Pa55"
CREDENTIALS = f"{USER}:{PASSWORD}"


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test on both loops: the harness's `new_event_loop()` reads LOWHAIO_TEST_LOOP."""
    monkeypatch.setenv("LOWHAIO_TEST_LOOP", request.param)


@pytest.fixture(scope="module")
def open_proxy() -> Iterator[RunningProxy]:
    with proxy_py() as proxy:
        yield proxy


@pytest.fixture(scope="module")
def auth_proxy() -> Iterator[RunningProxy]:
    with proxy_py(basic_auth=CREDENTIALS) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def tls_proxy() -> Iterator[RunningProxy]:
    """proxy.py listening in TLS (the test certificate, valid for 127.0.0.1), with credentials."""
    with proxy_py(basic_auth=CREDENTIALS, tls=True) as proxy:
        yield proxy


def uvloop_running() -> bool:
    return os.environ.get("LOWHAIO_TEST_LOOP") == "uvloop"


def through(
    proxy_url: str, **kwargs: object
) -> contextlib.AbstractAsyncContextManager[lowhaio.Request]:
    """A pool through `proxy_url` that trusts the test CA (for the origins and the proxy). A
    read that makes no progress for 3 s has stalled (proxy.py would end it after 10 s)."""
    return pool(
        proxy=proxy_url, get_ssl_context=client_ssl_context, **{"read_timeout": 3.0, **kwargs}
    )


# Forwarding and tunnelling ---------------------------------------------------------------------


async def test_an_http_origin_gets_the_request_in_origin_form_from_the_proxy(
    open_proxy: RunningProxy,
) -> None:
    async with origin(b"plain") as site, through(open_proxy.url("http")) as request:
        assert await get(request, site.url("/page?q=1")) == b"plain /page?q=1"
    # lowhaio sent the absolute URL to the proxy; the proxy sent the origin its own form.
    assert site.request_lines() == [b"GET /page?q=1 HTTP/1.1"]
    head = site.requests[0][0].lower()
    assert b"\r\nhost: 127.0.0.1:%d\r\n" % site.port in head
    assert b"proxy-authorization" not in site.field_names()


async def test_an_https_origin_is_tunnelled_and_its_certificate_checked_against_its_name(
    open_proxy: RunningProxy,
) -> None:
    async with (
        origin(b"secure", tls=True, host="localhost") as site,
        through(open_proxy.url("http")) as request,
    ):
        assert await get(request, site.url("/x")) == b"secure /x"
    assert site.request_lines() == [b"GET /x HTTP/1.1"]
    assert b"proxy-authorization" not in site.field_names()


async def test_a_tunnelled_origin_with_an_untrusted_certificate_fails_tls(
    open_proxy: RunningProxy,
) -> None:
    """The system's CAs only: the test CA's certificate is refused, as the origin's."""
    async with (
        origin(b"secure", tls=True) as site,
        pool(proxy=open_proxy.url("http")) as request,
    ):
        with pytest.raises(lowhaio.HttpTlsError, match="CERTIFICATE_VERIFY_FAILED") as caught:
            await request(b"GET", site.url("/x"))
        await site.tls_failed.wait()  # the origin saw the handshake fail, through the tunnel
    assert str(caught.value).startswith(f"https://127.0.0.1:{site.port}: ")
    assert site.requests == []


@pytest.mark.parametrize("proxy_name", ["open_proxy", "tls_proxy"])
async def test_the_origins_name_is_checked_not_the_proxys(
    proxy_name: str, request: pytest.FixtureRequest
) -> None:
    """An origin at 127.0.0.2 serving a certificate for 127.0.0.1 (and localhost): refused,
    though the proxy itself is 127.0.0.1, the name that certificate is valid for."""
    proxy: RunningProxy = request.getfixturevalue(proxy_name)
    tls_in_tls = proxy_name == "tls_proxy"
    credentials = CREDENTIALS if tls_in_tls else ""
    scheme = "https" if tls_in_tls else "http"
    async with (
        origin(b"secure", tls=True, host="127.0.0.2") as site,
        through(proxy.url(scheme, credentials)) as send,
    ):
        with pytest.raises(lowhaio.HttpConnectionError) as caught:
            await send(b"GET", site.url("/x"))
        await site.tls_failed.wait()  # the origin saw the handshake fail, through the tunnel
    error = caught.value
    assert str(error).startswith(f"https://127.0.0.2:{site.port}: ")
    if tls_in_tls and _ASYNCIO_GH_113214 and not uvloop_running():
        # Still a retry-safe HttpConnectionError, naming the origin.
        assert "SSLProtocol._abort()" in str(error)
    else:
        assert isinstance(error, lowhaio.HttpTlsError)
        assert "certificate is not valid for '127.0.0.2'" in str(error)
    assert site.requests == []


# Basic credentials -----------------------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["http-origin", "https-origin"])
async def test_credentials_reach_the_proxy_and_never_the_origin(
    auth_proxy: RunningProxy, tls: bool
) -> None:
    async with (
        origin(b"site", tls=tls) as site,
        through(auth_proxy.url("http", CREDENTIALS)) as request,
    ):
        assert await get(request, site.url("/a")) == b"site /a"
    assert site.request_lines() == [b"GET /a HTTP/1.1"]
    assert b"proxy-authorization" not in site.field_names()


@pytest.mark.parametrize("tls", [False, True], ids=["http-origin", "https-origin"])
@pytest.mark.parametrize(
    "credentials",
    [f"{USER}:wrong-{PASSWORD}", f"not-{USER}:{PASSWORD}", ""],
    ids=["wrong-password", "wrong-user", "none"],
)
async def test_refused_credentials_raise_a_407_proxy_error_that_shows_none(
    auth_proxy: RunningProxy, tls: bool, credentials: str
) -> None:
    async with (
        origin(b"site", tls=tls) as site,
        through(auth_proxy.url("http", credentials)) as send,
    ):
        with pytest.raises(lowhaio.HttpProxyError) as caught:
            await send(b"GET", site.url("/a"))
    error = caught.value
    assert error.status == b"407"
    assert error.proxy == f"http://127.0.0.1:{auth_proxy.port}"
    assert isinstance(error, lowhaio.HttpConnectionError)  # the origin got nothing: retry-safe
    for shown in (str(error), repr(error), error.proxy):
        assert USER not in shown
        assert PASSWORD not in shown
    assert site.requests == []


# TLS to the proxy ------------------------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["http-origin", "https-origin-tls-in-tls"])
async def test_tls_to_the_proxy(tls_proxy: RunningProxy, tls: bool) -> None:
    """An https:// proxy: TLS to proxy.py (its certificate checked against 127.0.0.1), the
    request forwarded in it, or a tunnel in it with the origin's own TLS inside. Nothing is
    reported to the loop's exception handler on the way."""
    recorder = Recorder()
    async with origin(b"site", tls=tls, host="localhost") as site:
        with loop_errors() as reported:
            async with through(tls_proxy.url("https", CREDENTIALS), plugins=(recorder,)) as send:
                assert await get(send, site.url("/t")) == b"site /t"
        assert reported == []
    assert site.request_lines() == [b"GET /t HTTP/1.1"]
    assert b"proxy-authorization" not in site.field_names()
    assert opened_and_reused(recorder) == [("opened", f"https://127.0.0.1:{tls_proxy.port}")]


async def test_an_https_proxy_with_an_untrusted_certificate_is_refused(
    tls_proxy: RunningProxy,
) -> None:
    """The system's CAs only: the proxy's certificate (from the test CA) is refused before
    anything, credentials included, is sent to it."""
    async with (
        origin(b"site") as site,
        pool(proxy=tls_proxy.url("https", CREDENTIALS)) as request,
    ):
        with pytest.raises(lowhaio.HttpProxyError, match="CERTIFICATE_VERIFY_FAILED") as caught:
            await request(b"GET", site.url("/t"))
    assert caught.value.proxy == f"https://127.0.0.1:{tls_proxy.port}"
    assert PASSWORD not in str(caught.value)
    assert site.connections == 0


# Reuse -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("proxy_name", "scheme", "credentials", "tls"),
    [
        ("open_proxy", "http", "", False),  # forwarded (no credentials: see the docstring)
        ("auth_proxy", "http", CREDENTIALS, True),  # a CONNECT tunnel
        ("tls_proxy", "https", CREDENTIALS, True),  # a tunnel inside TLS to the proxy
    ],
    ids=["forwarded", "tunnel", "tunnel-in-tls"],
)
async def test_two_requests_to_one_origin_share_one_connection_through_the_proxy(
    request: pytest.FixtureRequest, proxy_name: str, scheme: str, credentials: str, tls: bool
) -> None:
    proxy: RunningProxy = request.getfixturevalue(proxy_name)
    recorder = Recorder()
    async with (
        origin(b"site", tls=tls) as site,
        through(proxy.url(scheme, credentials), plugins=(recorder,)) as send,
    ):
        assert await get(send, site.url("/1")) == b"site /1"
        assert await get(send, site.url("/2")) == b"site /2"
    via = f"{scheme}://127.0.0.1:{proxy.port}"
    assert opened_and_reused(recorder) == [("opened", via), ("reused", via)]
    assert site.connections == 1
    assert site.request_lines() == [b"GET /1 HTTP/1.1", b"GET /2 HTTP/1.1"]
    assert b"proxy-authorization" not in site.field_names()


# Request bodies --------------------------------------------------------------------------------


async def _pieces() -> AsyncIterator[bytes]:
    for i in range(4):
        yield b"%d" % i * 1000


@pytest.mark.parametrize(
    ("proxy_name", "scheme", "tls"),
    [("auth_proxy", "http", False), ("auth_proxy", "http", True), ("tls_proxy", "https", True)],
    ids=["forwarded", "tunnel", "tunnel-in-tls"],
)
async def test_a_streamed_body_goes_through_the_proxy_whole(
    request: pytest.FixtureRequest, proxy_name: str, scheme: str, tls: bool
) -> None:
    """A body of several chunks: each waits for the one before to drain (a second without
    progress is far longer than loopback needs)."""
    proxy: RunningProxy = request.getfixturevalue(proxy_name)
    async with (
        origin(b"site", tls=tls) as site,
        through(proxy.url(scheme, CREDENTIALS), write_timeout=1.0) as send,
    ):
        code, _, body = await send(
            b"POST", site.url("/up"), headers=((b"content-length", b"4000"),), body=_pieces
        )
        assert (code, await lowhaio.buffered(body)) == (b"200", b"site /up")
    assert site.requests[0][1] == b"0" * 1000 + b"1" * 1000 + b"2" * 1000 + b"3" * 1000


# Redirects -------------------------------------------------------------------------------------


async def test_a_redirect_to_another_origin_through_the_proxy_takes_no_credentials_there(
    auth_proxy: RunningProxy,
) -> None:
    """lowhaio_redirect from an http:// origin to an https:// one, both through a proxy with
    credentials: each hop goes through the proxy with them, neither origin sees them."""
    async with (
        origin(b"first") as first,
        origin(b"second", tls=True, host="localhost") as second,
        through(auth_proxy.url("http", CREDENTIALS)) as send,
    ):
        first.route(b"/old", response(302, (b"location", second.url("/new").encode())))
        code, _, body = await redirectable(send)(b"GET", first.url("/old"))
        assert (code, await lowhaio.buffered(body)) == (b"200", b"second /new")
        assert body.url == second.url("/new")
    assert first.request_lines() == [b"GET /old HTTP/1.1"]
    assert second.request_lines() == [b"GET /new HTTP/1.1"]
    assert b"proxy-authorization" not in first.field_names() | second.field_names()
