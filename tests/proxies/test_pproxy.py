"""lowhaio through pproxy, a real SOCKS5 server: socks5:// (the origin's name resolved here, the
proxy given an address) and socks5h:// (the name given to the proxy, which resolves it),
username and password (RFC 1929), and connection reuse.

Which name went where is seen from both ends: the pool's resolver (`RecordingResolver`, which
knows only `localhost`, asks no DNS and does not read /etc/hosts) records what it was asked,
and pproxy logs the target of each connection it was asked for. pproxy resolves `localhost`
with the system's resolver: /etc/hosts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from conftest import Recorder, client_ssl_context, get, pool
from origins import RecordingResolver, opened_and_reused, origin
from proxy_servers import RunningProxy, pproxy

import lowhaio

USER, PASSWORD = "socks-tester", "s0cks-Pa55"


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test on both loops: the harness's `new_event_loop()` reads LOWHAIO_TEST_LOOP."""
    monkeypatch.setenv("LOWHAIO_TEST_LOOP", request.param)


@pytest.fixture(scope="module")
def socks() -> Iterator[RunningProxy]:
    with pproxy() as proxy:
        yield proxy


@pytest.fixture(scope="module")
def socks_auth() -> Iterator[RunningProxy]:
    with pproxy(auth=f"{USER}:{PASSWORD}") as proxy:
        yield proxy


def through(
    proxy_url: str, resolver: RecordingResolver, **kwargs: object
) -> contextlib.AbstractAsyncContextManager[lowhaio.Request]:
    """A pool through `proxy_url`, resolving with `resolver`, trusting the test CA."""
    return pool(
        proxy=proxy_url,
        get_dns_resolver=resolver,
        get_ssl_context=client_ssl_context,
        read_timeout=3.0,
        **kwargs,
    )


@pytest.mark.parametrize("tls", [False, True], ids=["http-origin", "https-origin"])
async def test_socks5_resolves_the_name_here_and_gives_the_proxy_an_address(
    socks: RunningProxy, tls: bool
) -> None:
    resolver = RecordingResolver()
    async with (
        origin(b"site", tls=tls, host="localhost") as site,
        through(socks.url("socks5"), resolver) as request,
    ):
        asked_before = len(socks.asked())
        assert await get(request, site.url("/a")) == b"site /a"
    assert resolver.names() == ["localhost"]
    assert socks.asked()[asked_before:] == [f"127.0.0.1:{site.port}"]
    # The origin is reached by its name all the same: host header, and TLS's name check.
    assert site.requests[0][0].startswith(b"GET /a HTTP/1.1\r\nhost: localhost:%d\r\n" % site.port)


@pytest.mark.parametrize("tls", [False, True], ids=["http-origin", "https-origin"])
async def test_socks5h_gives_the_proxy_the_name_and_resolves_nothing_here(
    socks: RunningProxy, tls: bool
) -> None:
    resolver = RecordingResolver()
    async with (
        origin(b"site", tls=tls, host="localhost") as site,
        through(socks.url("socks5h"), resolver) as request,
    ):
        asked_before = len(socks.asked())
        assert await get(request, site.url("/a")) == b"site /a"
    assert resolver.asked == []  # nor the proxy's name: it is an IP address
    assert socks.asked()[asked_before:] == [f"localhost:{site.port}"]
    assert site.requests[0][0].startswith(b"GET /a HTTP/1.1\r\nhost: localhost:%d\r\n" % site.port)


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
@pytest.mark.parametrize("tls", [False, True], ids=["http-origin", "https-origin"])
async def test_username_and_password_open_the_tunnel(
    socks_auth: RunningProxy, scheme: str, tls: bool
) -> None:
    async with (
        origin(b"site", tls=tls, host="localhost") as site,
        through(socks_auth.url(scheme, f"{USER}:{PASSWORD}"), RecordingResolver()) as request,
    ):
        assert await get(request, site.url("/a")) == b"site /a"
    assert site.request_lines() == [b"GET /a HTTP/1.1"]
    assert b"proxy-authorization" not in site.field_names()


@pytest.mark.parametrize(
    "credentials",
    [f"{USER}:wrong-{PASSWORD}", f"not-{USER}:{PASSWORD}", ""],
    ids=["wrong-password", "wrong-user", "none"],
)
async def test_refused_credentials_raise_a_proxy_error_that_shows_none(
    socks_auth: RunningProxy, credentials: str
) -> None:
    """pproxy closes the connection on refusing them (no RFC 1929 failure reply), and on a
    client that offers no username and password."""
    async with (
        origin(b"site") as site,
        through(socks_auth.url("socks5h", credentials), RecordingResolver()) as request,
    ):
        with pytest.raises(lowhaio.HttpProxyError) as caught:
            await request(b"GET", site.url("/a"))
    error = caught.value
    assert error.proxy == f"socks5h://127.0.0.1:{socks_auth.port}"
    assert error.status is None
    assert isinstance(error, lowhaio.HttpConnectionError)  # the origin got nothing: retry-safe
    for shown in (str(error), repr(error)):
        assert USER not in shown
        assert PASSWORD not in shown
    assert site.connections == 0


@pytest.mark.parametrize("tls", [False, True], ids=["http-origin", "https-origin"])
async def test_two_requests_to_one_origin_share_one_connection_through_socks5(
    socks_auth: RunningProxy, tls: bool
) -> None:
    recorder = Recorder()
    proxy_url = socks_auth.url("socks5h", f"{USER}:{PASSWORD}")
    async with (
        origin(b"site", tls=tls) as site,
        through(proxy_url, RecordingResolver(), plugins=(recorder,)) as request,
    ):
        asked_before = len(socks_auth.asked())
        assert await get(request, site.url("/1")) == b"site /1"
        assert await get(request, site.url("/2")) == b"site /2"
    via = f"socks5h://127.0.0.1:{socks_auth.port}"
    assert opened_and_reused(recorder) == [("opened", via), ("reused", via)]
    assert site.connections == 1
    assert socks_auth.asked()[asked_before:] == [f"127.0.0.1:{site.port}"]
