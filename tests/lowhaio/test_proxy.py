"""Proxies and Unix sockets, against scripted servers: what goes to a proxy and what to the
origin, pooling and DNS through a proxy, and every way a proxy can refuse or misbehave.
(proxy.py and pproxy, real proxies, are in `tests/proxies/`.)"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiodnsresolver
import pytest
from conftest import (
    Recorder,
    client_ssl_context,
    get,
    pool,
    read_request,
    recording,
    serve,
    server_ssl_context,
)
from dnsserver import DnsServer, dns_server
from proxies_scripted import HttpProxy, Socks5Proxy, unix_server

import lowhaio

SECRET = "s3cret-pw"
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def resolver(dns: DnsServer) -> Any:
    """A `get_dns_resolver` asking only the scripted server."""
    return lambda: aiodnsresolver.Resolver(
        get_nameservers=dns.nameservers(), get_host=DnsServer.no_hosts
    )


def connection_events(recorder: Recorder) -> list[tuple[str, str, str | None]]:
    return [
        (name.removeprefix("connection_"), fields["address"], fields["via"])
        for name, fields in recorder.select(
            "connection_opened", "connection_reused", "connection_closed"
        )
    ]


def say_nothing_secret(*texts: object) -> None:
    for text in texts:
        assert SECRET not in str(text)
        assert "alice" not in str(text)


# Forwarding: http:// origins through an HTTP proxy --------------------------------------------


async def test_an_http_origin_goes_to_the_proxy_in_absolute_form_with_its_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = HttpProxy()
    recorder = Recorder()
    caplog.set_level(logging.DEBUG, logger="lowhaio")
    async with serve(proxy) as server:
        url = f"http://alice:{SECRET}@127.0.0.1:{server.port}"
        async with pool(proxy=url, plugins=(recorder,)) as request:
            body = await get(request, "http://origin.invalid:8080/a?b=c")
            assert body == b"GET http://origin.invalid:8080/a?b=c HTTP/1.1"
            await get(request, "http://origin.invalid:8080/again")
    assert server.connections == 1  # reused
    head = proxy.requests[0]
    assert head.startswith(b"GET http://origin.invalid:8080/a?b=c HTTP/1.1\r\n")
    assert b"\r\nhost: origin.invalid:8080\r\n" in head
    assert b"\r\nproxy-authorization: Basic YWxpY2U6czNjcmV0LXB3\r\n" in head
    via = f"http://127.0.0.1:{server.port}"
    assert connection_events(recorder) == [
        ("opened", "127.0.0.1", via),
        ("reused", "127.0.0.1", via),
        ("closed", "127.0.0.1", via),
    ]
    assert recorder.select("dns_resolved") == []  # neither the proxy's IP nor the origin
    say_nothing_secret(recorder.events, caplog.text)
    assert f"at 127.0.0.1 via {via}" in caplog.text


async def test_a_forward_proxy_asking_for_credentials_is_a_proxy_error() -> None:
    proxy = HttpProxy()
    async with (
        serve(respond_with_407()) as server,
        pool(proxy=f"http://alice:{SECRET}@127.0.0.1:{server.port}") as request,
    ):
        with pytest.raises(lowhaio.HttpProxyError) as caught:
            await request(b"GET", "http://origin.invalid/")
    error = caught.value
    assert error.status == b"407"
    assert error.proxy == f"http://127.0.0.1:{server.port}"
    assert str(error).startswith(f"http://origin.invalid:80: {error.proxy}: ")
    assert "407" in str(error)
    say_nothing_secret(error)
    assert not proxy.requests


def respond_with_407() -> Any:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 407 Proxy Authentication Required\r\n"
            b'proxy-authenticate: Basic realm="p"\r\ncontent-length: 0\r\n\r\n'
        )
        await reader.read()

    return handler


async def test_the_proxy_is_chosen_per_origin_and_pooled_apart() -> None:
    proxy = HttpProxy()
    heads: list[bytes] = []
    async with serve(proxy) as proxied, serve(recording(heads)) as direct:
        chosen: list[tuple[str, str, int]] = []

        def choose(scheme: str, host: str, port: int) -> str | None:
            chosen.append((scheme, host, port))
            return None if host == "127.0.0.1" else f"http://127.0.0.1:{proxied.port}"

        async with pool(proxy=choose) as request:
            await get(request, "http://a.invalid/")
            await get(request, "http://b.invalid/")
            await get(request, direct.url("/x"))
            await get(request, "http://a.invalid/")
    assert chosen[:2] == [("http", "a.invalid", 80), ("http", "b.invalid", 80)]
    assert proxied.connections == 2  # one per origin, the first reused
    assert direct.connections == 1
    assert heads[0].startswith(b"GET /x HTTP/1.1\r\n")
    assert b"proxy-authorization" not in heads[0]


async def test_a_proxy_named_by_dns_is_resolved_and_reuse_follows_its_address() -> None:
    proxy = HttpProxy()
    async with (
        dns_server() as dns,
        serve(proxy) as first,
        serve(proxy, host="127.0.0.2", port=first.port) as second,
    ):
        dns.set("proxy.test", a=("127.0.0.1",), ttl=0)
        recorder = Recorder()
        async with pool(
            proxy=f"http://proxy.test:{first.port}",
            get_dns_resolver=resolver(dns),
            plugins=(recorder,),
        ) as request:
            await get(request, "http://origin.invalid/")
            dns.set("proxy.test", a=("127.0.0.2",), ttl=0)
            await get(request, "http://origin.invalid/")
    assert {name for name, _ in dns.queries} == {"proxy.test"}  # never the origin's name
    assert (first.connections, second.connections) == (1, 1)
    via = f"http://proxy.test:{first.port}"
    assert connection_events(recorder)[:3] == [
        ("opened", "127.0.0.1", via),
        ("closed", "127.0.0.1", via),
        ("opened", "127.0.0.2", via),
    ]


# Tunnels: https:// origins through CONNECT ---------------------------------------------------


@pytest.mark.parametrize("proxy_tls", [False, True], ids=["http-proxy", "https-proxy"])
async def test_an_https_origin_is_reached_through_a_tunnel_and_reused(proxy_tls: bool) -> None:
    proxy = HttpProxy()
    heads: list[bytes] = []
    tls = server_ssl_context() if proxy_tls else None
    scheme = "https" if proxy_tls else "http"
    async with (
        serve(recording(heads), ssl_context=server_ssl_context()) as origin,
        serve(proxy, ssl_context=tls) as server,
    ):
        url = f"{scheme}://alice:{SECRET}@localhost:{server.port}"
        async with pool(proxy=url, get_ssl_context=client_ssl_context) as request:
            assert await get(request, origin.url("/a", "https", "localhost")) == b"ok"
            assert await get(request, origin.url("/b", "https", "localhost")) == b"ok"
    assert (server.connections, origin.connections) == (1, 1)
    assert proxy.requests == [
        b"CONNECT localhost:%d HTTP/1.1\r\nhost: localhost:%d\r\n"
        b"proxy-authorization: Basic YWxpY2U6czNjcmV0LXB3\r\n\r\n" % (origin.port, origin.port)
    ]
    assert heads[0].startswith(b"GET /a HTTP/1.1\r\nhost: localhost:%d\r\n" % origin.port)
    assert not any(b"proxy-authorization" in head for head in heads)


async def test_the_origin_certificate_is_checked_against_the_origin_name() -> None:
    # The proxy sends wrong.test to the test server, whose certificate is for localhost.
    proxy = HttpProxy(names={"wrong.test": "127.0.0.1"})
    async with (
        serve(recording([]), ssl_context=server_ssl_context()) as origin,
        serve(proxy) as server,
        pool(
            proxy=f"http://localhost:{server.port}", get_ssl_context=client_ssl_context
        ) as request,
    ):
        with pytest.raises(lowhaio.HttpTlsError, match=r"wrong\.test"):
            await request(b"GET", origin.url("/", "https", "wrong.test"))


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 403 Forbidden\r\ncontent-length: 5\r\n\r\nnope!",
        b"HTTP/1.1 502 Bad Gateway\r\n\r\n",
    ],
    ids=["407", "403", "502"],
)
async def test_a_refused_connect_is_a_proxy_error_with_its_status(answer: bytes) -> None:
    proxy = HttpProxy()
    proxy.connect_answer = answer
    async with (
        serve(proxy) as server,
        pool(proxy=f"http://alice:{SECRET}@127.0.0.1:{server.port}") as request,
    ):
        with pytest.raises(lowhaio.HttpProxyError) as caught:
            await request(b"POST", "https://origin.invalid/", body=body_of(b"x"))
    error = caught.value
    assert error.status == answer[9:12]
    assert isinstance(error, lowhaio.HttpConnectionError)  # nothing reached the origin
    assert f"answered {answer[9:12].decode()} to CONNECT origin.invalid:443" in str(error)
    assert (error.method, error.url) == (b"POST", "https://origin.invalid:443/")
    say_nothing_secret(error, repr(error))


def body_of(data: bytes) -> Any:
    async def body() -> Any:
        yield data

    return body


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", "bytes after its answer"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "no valid answer to CONNECT"),
        (b"HTTP/1.1 200 OK\r\n", "no valid answer to CONNECT"),  # then closes
    ],
    ids=["body-after-200", "not-http", "closed-mid-head"],
)
async def test_a_connect_answered_wrongly_is_a_proxy_error(answer: bytes, message: str) -> None:
    proxy = HttpProxy()
    proxy.connect_answer = answer

    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    proxy.after_connect = close
    async with serve(proxy) as server, pool(proxy=f"http://127.0.0.1:{server.port}") as request:
        with pytest.raises(lowhaio.HttpProxyError, match=message):
            await request(b"GET", "https://origin.invalid/")


async def test_garbage_through_the_tunnel_is_a_tls_error() -> None:
    proxy = HttpProxy()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the TLS handshake began
        writer.write(b"\x00garbage, not TLS" * 100)
        await writer.drain()
        await asyncio.sleep(10)

    proxy.after_connect = garbage
    async with serve(proxy) as server, pool(proxy=f"http://127.0.0.1:{server.port}") as request:
        with pytest.raises(lowhaio.HttpTlsError):
            await request(b"GET", "https://origin.invalid/")


async def test_cancelled_during_tls_through_a_tunnel_the_connection_is_closed() -> None:
    proxy = HttpProxy()
    hello = asyncio.Event()
    closed = asyncio.Event()

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the client's TLS hello: never answered
        hello.set()
        while await reader.read(65536):
            pass
        closed.set()

    proxy.after_connect = stall
    async with serve(proxy) as server, pool(proxy=f"http://127.0.0.1:{server.port}") as request:
        task = asyncio.create_task(request(b"GET", "https://origin.invalid/"))
        await hello.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(closed.wait(), 2)


async def test_a_stalled_connect_is_a_proxy_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with (
        serve(silent) as server,
        pool(proxy=f"http://127.0.0.1:{server.port}", connect_timeout=0.2) as request,
    ):
        with pytest.raises(lowhaio.HttpProxyTimeoutError, match=r"connect_timeout=0\.2"):
            await request(b"GET", "https://origin.invalid/")


async def test_a_tunnel_closed_mid_response_is_a_typed_error() -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"x" * 1000)
        await writer.drain()
        writer.transport.abort()

    proxy = HttpProxy()
    async with (
        serve(half, ssl_context=server_ssl_context()) as origin,
        serve(proxy) as server,
        pool(
            proxy=f"http://127.0.0.1:{server.port}", get_ssl_context=client_ssl_context
        ) as request,
    ):
        code, _, body = await request(b"GET", origin.url("/", "https", "localhost"))
        assert code == b"200"
        with pytest.raises(lowhaio.HttpDataError) as caught:
            await lowhaio.buffered(body)
    assert "99000 bytes of the body unread" in str(caught.value)


async def test_an_unreachable_proxy_is_a_proxy_error_and_safe_to_retry() -> None:
    async with serve(recording([])) as server:
        port = server.port  # closed when the block exits: nobody listens there after
    async with pool(proxy=f"http://alice:{SECRET}@127.0.0.1:{port}") as request:
        with pytest.raises(lowhaio.HttpProxyError, match="could not be reached") as caught:
            await request(b"GET", "http://origin.invalid/")
    assert isinstance(caught.value, lowhaio.HttpConnectionError)
    assert caught.value.status is None
    say_nothing_secret(caught.value)


# SOCKS5 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
async def test_socks5_resolves_here_or_at_the_proxy(scheme: str) -> None:
    heads: list[bytes] = []
    socks = Socks5Proxy(names={"origin.test": "127.0.0.1"})
    async with dns_server() as dns, serve(recording(heads)) as origin, serve(socks) as server:
        dns.set("origin.test", a=("127.0.0.1",))
        async with pool(
            proxy=f"{scheme}://127.0.0.1:{server.port}", get_dns_resolver=resolver(dns)
        ) as request:
            await get(request, origin.url("/a", host="origin.test"))
            await get(request, origin.url("/b", host="origin.test"))
    if scheme == "socks5":
        assert socks.asked == [(1, "127.0.0.1", origin.port)]
        assert {name for name, _ in dns.queries} == {"origin.test"}
    else:
        assert socks.asked == [(3, "origin.test", origin.port)]
        assert dns.queries == []
    assert heads[1].startswith(b"GET /b HTTP/1.1\r\nhost: origin.test:%d\r\n" % origin.port)
    assert server.connections == 1


async def test_socks5_with_credentials_and_tls_to_the_origin() -> None:
    socks = Socks5Proxy(credentials=(b"alice", SECRET.encode()))
    async with (
        serve(recording([]), ssl_context=server_ssl_context()) as origin,
        serve(socks) as server,
    ):
        url = f"socks5h://alice:{SECRET}@127.0.0.1:{server.port}"
        async with pool(proxy=url, get_ssl_context=client_ssl_context) as request:
            assert await get(request, origin.url("/", "https", "localhost")) == b"ok"
    assert socks.asked == [(3, "localhost", origin.port)]


@pytest.mark.parametrize(
    ("credentials", "given", "reply", "message"),
    [
        ((b"alice", b"right"), f"alice:{SECRET}@", 0, "refused the credentials"),
        ((b"alice", b"right"), "", 0, "asks for a method not offered"),
        (None, "", 5, "could not connect to origin.invalid:80: connection refused"),
        (None, "", 0x42, "reply 66"),
    ],
)
async def test_a_socks5_refusal_is_a_proxy_error(
    credentials: tuple[bytes, bytes] | None, given: str, reply: int, message: str
) -> None:
    socks = Socks5Proxy(credentials=credentials)
    socks.reply = reply
    async with (
        serve(socks) as server,
        pool(proxy=f"socks5h://{given}127.0.0.1:{server.port}") as request,
    ):
        with pytest.raises(lowhaio.HttpProxyError, match=message) as caught:
            await request(b"GET", "http://origin.invalid/")
    say_nothing_secret(caught.value)


@pytest.mark.parametrize(
    "bound",
    [bytes((1, 127, 0, 0, 1)), bytes((4,)) + bytes(15) + b"\x01", bytes((3, 1)) + b"x"],
    ids=["ipv4", "ipv6", "name"],
)
async def test_socks5_replies_of_every_address_type_are_read_whole(bound: bytes) -> None:
    socks = Socks5Proxy()
    socks.bound = bound
    async with (
        serve(recording([])) as origin,
        serve(socks) as server,
        pool(proxy=f"socks5://127.0.0.1:{server.port}") as request,
    ):
        # The origin's first bytes would be lost if the reply were misread.
        assert await get(request, origin.url("/")) == b"ok"
        assert await get(request, origin.url("/")) == b"ok"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "not a SOCKS5 answer"),
        (b"\x05\x02", "asks for credentials"),
        (b"\x05\x01", "asks for method 1"),
        (b"\x05\x00\x05\x00\x00\x09\x00", "not a SOCKS5 reply"),
        (b"\x05", "closed the connection during SOCKS5"),
    ],
    ids=["http", "credentials", "gssapi", "bad-address-type", "closed"],
)
async def test_a_socks5_proxy_that_breaks_the_protocol_is_a_proxy_error(
    answer: bytes, message: str
) -> None:
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(3)
        writer.write(answer[:2])
        if answer[2:]:
            await reader.read(100)
            writer.write(answer[2:])
        writer.close()

    async with serve(broken) as server, pool(proxy=f"socks5h://127.0.0.1:{server.port}") as request:
        with pytest.raises(lowhaio.HttpProxyError, match=message):
            await request(b"GET", "http://origin.invalid/")


def test_socks5_credentials_longer_than_255_bytes_are_refused() -> None:
    from lowhaio._proxy import parse_proxy, socks5_credentials

    with pytest.raises(lowhaio.HttpProxyError, match="longer than 255 bytes") as caught:
        socks5_credentials(parse_proxy(f"socks5://alice:{SECRET * 30}@proxy"))
    say_nothing_secret(caught.value)


# Proxy URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"ftp://alice:{SECRET}@proxy", "scheme must be http, https, socks5 or socks5h"),
        (f"http://alice:{SECRET}@proxy/path", "must be scheme://"),
        (f"http://alice:{SECRET}@proxy:99999", "Port out of range"),
        (f"http://alice:{SECRET[:2]}/{SECRET[3:]}@proxy:3128", "user:password@ part is invalid"),
        ("http://", "must be scheme://"),
        ("http://" + "a" * 64 + ".test", "not a valid name"),
        (f"http://al%3Aice:{SECRET}@proxy", "a colon in the user"),
    ],
)
def test_an_invalid_proxy_url_is_refused_at_once_without_its_secrets(
    url: str, message: str
) -> None:
    with pytest.raises(lowhaio.HttpInvalidRequestError, match=message) as caught:
        lowhaio.Pool(proxy=url)
    error: BaseException | None = caught.value
    while error is not None:  # nor does a traceback, through an error it was raised from
        say_nothing_secret(error)
        assert SECRET[:2] not in str(error)  # nor the part of a password before a slash
        error = error.__context__


def test_a_proxy_url_is_parsed_with_defaults_and_shown_without_credentials() -> None:
    from lowhaio._http11 import parse_url
    from lowhaio._proxy import Proxy, Route, parse_proxy

    assert parse_proxy(f"HTTP://alice:{SECRET}@Proxy.Test") == Proxy(
        "http", "proxy.test", 80, b"alice", SECRET.encode()
    )
    assert parse_proxy("https://[::1]").port == 443
    assert parse_proxy("socks5h://b\u00fccher.test").host == "xn--bcher-kva.test"
    proxy = parse_proxy(f"socks5://alice:{SECRET}@[::1]")
    assert repr(proxy) == "Proxy('socks5://[::1]:1080')"
    route = Route(parse_url("https://origin.test/").origin, proxy)
    assert str(route) == "https://origin.test:443 via socks5://[::1]:1080"


def test_a_pool_has_a_proxy_or_a_unix_socket_not_both() -> None:
    with pytest.raises(ValueError, match="not both"):
        lowhaio.Pool(proxy="http://127.0.0.1:1", unix_socket="/tmp/x")


# Unix sockets -----------------------------------------------------------------------------------


async def test_requests_go_to_the_unix_socket_and_name_the_host(tmp_path: Any) -> None:
    heads: list[bytes] = []
    path = str(tmp_path / "api.sock")
    recorder = Recorder()
    async with (
        unix_server(recording(heads), path),
        pool(unix_socket=path, plugins=(recorder,)) as request,
    ):
        assert await get(request, "http://docker/v1.45/info") == b"ok"
        assert await get(request, "http://docker/v1.45/info") == b"ok"
    assert heads[0].startswith(b"GET /v1.45/info HTTP/1.1\r\nhost: docker\r\n")
    assert connection_events(recorder) == [
        ("opened", path, f"unix:{path}"),
        ("reused", path, f"unix:{path}"),
        ("closed", path, f"unix:{path}"),
    ]
    assert recorder.select("dns_resolved") == []


async def test_tls_over_a_unix_socket_checks_the_url_host(tmp_path: Any) -> None:
    path = str(tmp_path / "tls.sock")
    async with (
        unix_server(recording([]), path, server_ssl_context()),
        pool(unix_socket=path, get_ssl_context=client_ssl_context) as request,
    ):
        assert await get(request, "https://localhost/") == b"ok"
        with pytest.raises(lowhaio.HttpTlsError):
            await request(b"GET", "https://elsewhere.test/")


async def test_a_missing_unix_socket_is_a_connection_error_naming_it(tmp_path: Any) -> None:
    path = str(tmp_path / "absent.sock")
    async with pool(unix_socket=path) as request:
        with pytest.raises(lowhaio.HttpConnectionError) as caught:
            await request(b"GET", "http://docker/info")
    assert str(caught.value).startswith(f"http://docker:80: unix:{path}: FileNotFoundError")
