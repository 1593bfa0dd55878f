"""A proxy that nobody listens for: every kind of proxy URL fails the same way, an
`HttpProxyError` naming the proxy (never its credentials), which is an `HttpConnectionError`:
nothing reached the origin, a retry is safe."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from conftest import pool
from origins import RecordingResolver, origin

import lowhaio

USER, PASSWORD = "nobody-home", "n0-Pa55"


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test on both loops: the harness's `new_event_loop()` reads LOWHAIO_TEST_LOOP."""
    monkeypatch.setenv("LOWHAIO_TEST_LOOP", request.param)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port of 127.0.0.1 bound, so no other process takes it, but not listening: a
    connection to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.mark.parametrize("scheme", ["http", "https", "socks5", "socks5h"])
@pytest.mark.parametrize("tls", [False, True], ids=["http-origin", "https-origin"])
async def test_an_unreachable_proxy_raises_a_retry_safe_proxy_error_naming_it(
    closed_port: int, scheme: str, tls: bool
) -> None:
    resolver = RecordingResolver()
    proxy_url = f"{scheme}://{USER}:{PASSWORD}@127.0.0.1:{closed_port}"
    async with (
        origin(b"site", tls=tls, host="localhost") as site,
        pool(proxy=proxy_url, get_dns_resolver=resolver) as request,
    ):
        with pytest.raises(lowhaio.HttpProxyError) as caught:
            await request(b"GET", site.url("/a"))
    error = caught.value
    assert error.proxy == f"{scheme}://127.0.0.1:{closed_port}"
    assert error.status is None
    assert isinstance(error, lowhaio.HttpConnectionError)
    assert "ConnectionRefusedError" in str(error)
    assert str(error).startswith(f"{site.scheme}://localhost:{site.port}: {error.proxy}: ")
    for shown in (str(error), repr(error)):
        assert USER not in shown
        assert PASSWORD not in shown
    assert resolver.asked == []  # nothing was resolved: the proxy was never reached
    assert site.connections == 0
