"""Name resolution and connecting, seen from the outside: a scripted DNS server on 127.0.0.1
answers names, scripted HTTP servers on loopback addresses count the connections they accept,
and a recording plugin sees which connections the pool opens, reuses and closes, and why.

Resolving (AAAA then A, cached by TTL), following DNS changes, Happy Eyeballs across several
addresses, DNS and connect failures, and the default resolver. No query ever leaves loopback:
`dns_stays_on_loopback` fails any test whose resolver tries to send one elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import resource
import select
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiodnsresolver
import pytest
from aiodnsresolver import TYPES
from conftest import Recorder, Server, get, pool, read_request, serve
from dnsserver import AAAA, NXDOMAIN, A, DnsServer, dns_server

import lowhaio

HOST = "host.test"
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
SERVFAIL = 2


@pytest.fixture(autouse=True)
def dns_stays_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiodnsresolver may only send queries to a scripted server: on 127.0.0.1, on an ephemeral
    port (a system resolver would be on port 53). A test that tries otherwise fails at once."""

    class ScriptedOnly(socket.socket):
        def connect(self, address: Any) -> None:
            assert address[0] == "127.0.0.1", f"DNS query to {address}"
            assert address[1] != 53, f"DNS query to {address}"
            super().connect(address)

    monkeypatch.setattr(aiodnsresolver, "socket", ScriptedOnly)


# Helpers ---------------------------------------------------------------------------------------


def resolved(recorder: Recorder) -> list[tuple[str, ...]]:
    """The addresses of each DNS answer the pool got."""
    return [fields["addresses"] for _, fields in recorder.select("dns_resolved")]


def connections(recorder: Recorder) -> list[tuple[str, ...]]:
    """("opened" or "reused", address) and ("closed", address, reason) of each connection
    event."""
    return [
        (name.removeprefix("connection_"), fields["address"])
        + ((fields["reason"],) if name == "connection_closed" else ())
        for name, fields in recorder.select(
            "connection_opened", "connection_reused", "connection_closed"
        )
    ]


def scripted(dns: DnsServer, tries: int = 2, timeout: float = 0.2) -> lowhaio.Nameservers:
    """A `get_nameservers` asking only the scripted server, `tries` times, `timeout` s each."""
    return lowhaio.Nameservers([("127.0.0.1", dns.port)], tries=tries, timeout=timeout)


class ScriptedResolver:
    """A `get_dns_resolver` that asks only the scripted server and never reads /etc/hosts; it
    keeps the resolver it made, so that a test can clear its cache or use it directly."""

    def __init__(self, dns: DnsServer, tries: int = 2, timeout: float = 0.2) -> None:
        self.nameservers = scripted(dns, tries, timeout)
        self.made: Any = None

    def __call__(self) -> Any:
        self.made = aiodnsresolver.Resolver(
            get_nameservers=self.nameservers, get_host=DnsServer.no_hosts
        )
        return self.made

    async def clear_cache(self) -> None:
        await self.made[1]()


async def ok_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer every request on the connection with 200 "ok", keeping it alive."""
    while True:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()


def serve_at(host: str, port: int) -> contextlib.AbstractAsyncContextManager[Server]:
    """`ok_forever` served on a given port: to serve one port on a second loopback address."""
    return serve(ok_forever, host=host, port=port)


class EofServer:
    """A handler that reads until the client closes, and says so."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        self.closed.set()


@contextlib.contextmanager
def blackhole(host: str, port: int) -> Iterator[None]:
    """A listener on (host, port) whose backlog is full, so that the kernel drops further SYNs:
    connecting there stalls, as to a firewalled host. Skips the test where SYNs are not dropped."""
    listener = socket.create_server((host, port), backlog=0)
    fillers: list[socket.socket] = []
    try:
        for _ in range(4):
            filler = socket.socket()
            fillers.append(filler)
            filler.setblocking(False)
            filler.connect_ex((host, port))
            if not select.select([], [filler], [], 0.1)[1]:
                break  # this plain connect stalls: the backlog is full
        else:
            pytest.skip("a full listen backlog does not drop SYNs here")
        yield
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def block(seconds: float) -> None:
    """Block the event loop, so that what the kernel does meanwhile is seen in one loop turn."""
    time.sleep(seconds)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def now() -> float:
    return asyncio.get_running_loop().time()


def cancelling() -> int:
    task = asyncio.current_task()
    assert task is not None
    return task.cancelling()


# Resolving and reuse ---------------------------------------------------------------------------


async def test_a_name_is_resolved_and_its_connection_reused() -> None:
    async with dns_server() as dns, serve(ok_forever) as server:
        dns.set(HOST, a=("127.0.0.1",), ttl=30)
        recorder = Recorder()
        url = f"http://{HOST}:{server.port}/"
        async with pool(get_dns_resolver=ScriptedResolver(dns), plugins=(recorder,)) as request:
            assert await get(request, url) == b"ok"
            assert dns.queries == [(HOST, AAAA), (HOST, A)]
            assert await get(request, url) == b"ok"
        assert server.connections == 1
        assert resolved(recorder) == [("127.0.0.1",)] * 2
        assert connections(recorder) == [
            ("opened", "127.0.0.1"),
            ("reused", "127.0.0.1"),
            ("closed", "127.0.0.1", "pool closed"),
        ]


@pytest.mark.parametrize(
    "aaaa",
    [pytest.param((), id="ipv4-only"), pytest.param(("fe80::1",), id="dual-stack")],
)
async def test_a_name_is_not_asked_again_within_its_ttl(aaaa: tuple[str, ...]) -> None:
    async with dns_server() as dns, serve(ok_forever) as server:
        dns.set(HOST, aaaa=aaaa, a=("127.0.0.1",), ttl=30)
        url = f"http://{HOST}:{server.port}/"
        async with pool(get_dns_resolver=ScriptedResolver(dns)) as request:
            await get(request, url)
            await get(request, url)
            await get(request, url)
        assert dns.queries == [(HOST, AAAA), (HOST, A)]


async def test_an_idle_connection_is_reused_only_while_its_address_is_in_the_answer() -> None:
    async with (
        dns_server() as dns,
        serve(ok_forever) as first,
        serve_at("127.0.0.2", first.port) as second,
    ):
        resolver = ScriptedResolver(dns)
        recorder = Recorder()
        url = f"http://{HOST}:{first.port}/"
        async with pool(get_dns_resolver=resolver, plugins=(recorder,)) as request:
            dns.set(HOST, a=("127.0.0.1", "127.0.0.2"))
            await get(request, url)

            dns.set(HOST, a=("127.0.0.2", "127.0.0.1"))  # reordered, still listed
            await resolver.clear_cache()
            await get(request, url)

            dns.set(HOST, a=("127.0.0.2",))
            await resolver.clear_cache()
            await get(request, url)
            await get(request, url)

        assert resolved(recorder) == [
            ("127.0.0.1", "127.0.0.2"),
            ("127.0.0.2", "127.0.0.1"),
            ("127.0.0.2",),
            ("127.0.0.2",),
        ]
        assert connections(recorder)[:5] == [
            ("opened", "127.0.0.1"),
            ("reused", "127.0.0.1"),
            ("closed", "127.0.0.1", "dns changed"),
            ("opened", "127.0.0.2"),
            ("reused", "127.0.0.2"),
        ]
        assert (first.connections, second.connections) == (1, 1)


async def test_a_changed_answer_takes_effect_when_its_ttl_expires() -> None:
    async with (
        dns_server() as dns,
        serve(ok_forever) as first,
        serve_at("127.0.0.2", first.port) as second,
    ):
        recorder = Recorder()
        url = f"http://{HOST}:{first.port}/"
        async with pool(get_dns_resolver=ScriptedResolver(dns), plugins=(recorder,)) as request:
            dns.set(HOST, a=("127.0.0.1",), ttl=1)
            await get(request, url)
            dns.set(HOST, a=("127.0.0.2",), ttl=1)
            await get(request, url)  # the old answer is still cached
            assert (first.connections, second.connections) == (1, 0)

            await asyncio.sleep(1.1)
            await get(request, url)
            assert (first.connections, second.connections) == (1, 1)
            assert connections(recorder) == [
                ("opened", "127.0.0.1"),
                ("reused", "127.0.0.1"),
                ("closed", "127.0.0.1", "dns changed"),
                ("opened", "127.0.0.2"),
            ]


# IPv6 ------------------------------------------------------------------------------------------


async def test_an_ipv6_only_name_and_an_ipv6_literal() -> None:
    if not ipv6_loopback():
        pytest.skip("cannot bind ::1 here")
    async with dns_server() as dns, serve(ok_forever, host="::1") as server:
        dns.set(HOST, aaaa=("::1",))
        recorder = Recorder()
        async with pool(get_dns_resolver=ScriptedResolver(dns), plugins=(recorder,)) as request:
            assert await get(request, f"http://{HOST}:{server.port}/") == b"ok"
            assert await get(request, f"http://[::1]:{server.port}/") == b"ok"
        assert dns.queries == [(HOST, AAAA), (HOST, A)]  # none for the literal
        assert resolved(recorder) == [("::1",)]
        assert connections(recorder)[:2] == [("opened", "::1"), ("opened", "::1")]  # two origins


# Several addresses: Happy Eyeballs -------------------------------------------------------------


@pytest.mark.parametrize(
    ("aaaa", "a"),
    [
        pytest.param((), ("127.0.0.2", "127.0.0.1"), id="first-refused"),
        # A link-local address without a scope fails in connect() itself: no packet leaves.
        pytest.param(("fe80::1",), ("127.0.0.1",), id="first-fails-locally"),
        pytest.param(("fe80::1",), ("127.0.0.2", "127.0.0.1"), id="both"),
    ],
)
async def test_a_failing_address_moves_on_to_the_next_at_once(
    aaaa: tuple[str, ...], a: tuple[str, ...]
) -> None:
    async with dns_server() as dns, serve(ok_forever) as server:
        dns.set(HOST, aaaa=aaaa, a=a)
        recorder = Recorder()
        async with pool(get_dns_resolver=ScriptedResolver(dns), plugins=(recorder,)) as request:
            started = now()
            assert await get(request, f"http://{HOST}:{server.port}/") == b"ok"
            elapsed = now() - started
        assert elapsed < 0.15  # no Happy Eyeballs stagger (0.25 s) was waited for
        assert connections(recorder)[0] == ("opened", "127.0.0.1")
        assert server.connections == 1


async def test_a_blackholed_address_is_passed_after_the_stagger_not_the_connect_timeout() -> None:
    async with dns_server() as dns, serve(ok_forever) as server:
        dns.set(HOST, a=("127.0.0.3", "127.0.0.1"))
        recorder = Recorder()
        url = f"http://{HOST}:{server.port}/"
        async with pool(
            get_dns_resolver=ScriptedResolver(dns), plugins=(recorder,), connect_timeout=5
        ) as request:
            with blackhole("127.0.0.3", server.port):
                started = now()
                assert await get(request, url) == b"ok"
                elapsed = now() - started
        assert 0.2 < elapsed < 1.0
        assert connections(recorder)[0] == ("opened", "127.0.0.1")


async def test_a_blackholed_address_times_out_after_the_connect_timeout() -> None:
    async with dns_server() as dns, serve(ok_forever) as server:
        # Tried in the order fe80::1 (fails at once), 127.0.0.3 (stalls), fe80::2 (fails at once).
        dns.set(HOST, aaaa=("fe80::1", "fe80::2"), a=("127.0.0.3",))
        url = f"http://{HOST}:{server.port}/"
        async with pool(get_dns_resolver=ScriptedResolver(dns), connect_timeout=0.4) as request:
            with blackhole("127.0.0.3", server.port):
                before = cancelling()
                started = now()
                with pytest.raises(lowhaio.HttpConnectTimeoutError) as raised:
                    await request(b"GET", url)
                elapsed = now() - started
        assert 0.35 < elapsed < 1.0
        assert isinstance(raised.value.__cause__, TimeoutError)
        assert cancelling() == before
        assert server.connections == 0


@pytest.mark.parametrize(
    ("aaaa", "a"),
    [
        pytest.param((), ("127.0.0.2", "127.0.0.3"), id="refused-twice"),
        pytest.param(("fe80::1",), ("127.0.0.2",), id="local-error-then-refused"),
    ],
)
async def test_when_every_address_fails_the_last_error_is_the_cause(
    aaaa: tuple[str, ...], a: tuple[str, ...]
) -> None:
    async with dns_server() as dns, serve(ok_forever) as server:
        dns.set(HOST, aaaa=aaaa, a=a)
        async with pool(get_dns_resolver=ScriptedResolver(dns)) as request:
            with pytest.raises(lowhaio.HttpConnectionError) as raised:
                await request(b"GET", f"http://{HOST}:{server.port}/")
        assert type(raised.value) is lowhaio.HttpConnectionError
        assert isinstance(raised.value.__cause__, ConnectionRefusedError)


async def test_an_ip_literal_that_refuses_is_a_connection_error() -> None:
    async with serve(ok_forever) as server:
        port = server.port
    async with pool() as request:
        with pytest.raises(lowhaio.HttpConnectionError) as raised:
            await request(b"GET", f"http://127.0.0.1:{port}/")
    assert isinstance(raised.value.__cause__, ConnectionRefusedError)


# Giving up while connecting --------------------------------------------------------------------


async def test_a_connection_completing_as_the_connect_timeout_expires_is_closed() -> None:
    loop = asyncio.get_running_loop()
    eof = EofServer()
    async with serve(eof) as server, pool(connect_timeout=0.05) as request:
        task = asyncio.create_task(request(b"GET", server.url()))
        # The task starts connecting; then, while the loop is blocked, the kernel completes the
        # handshake and the timeout expires: the loop sees both in the same turn.
        loop.call_soon(block, 0.1)
        with pytest.raises(lowhaio.HttpConnectTimeoutError):
            await task
        async with asyncio.timeout(1):
            await eof.closed.wait()
        assert server.connections == 1


async def test_a_request_cancelled_as_its_connection_completes_closes_it() -> None:
    loop = asyncio.get_running_loop()
    errors: list[str] = []
    loop.set_exception_handler(lambda loop, context: errors.append(repr(context)))
    eof = EofServer()
    async with serve(eof) as server, pool() as request:
        task = asyncio.create_task(request(b"GET", server.url()))

        def block_then_cancel() -> None:
            # The handshake completes while the loop is blocked; in the next turn, before the
            # loop sees the socket writable, another callback cancels the request.
            block(0.1)
            loop.call_soon(task.cancel)

        loop.call_soon(block_then_cancel)
        with pytest.raises(asyncio.CancelledError):
            await task
        assert errors == []  # e.g. no InvalidStateError in a callback
        async with asyncio.timeout(1):
            await eof.closed.wait()  # the socket was closed, not left for the GC


# DNS failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "cause"),
    [
        pytest.param(
            lambda dns: dns.fail(HOST, NXDOMAIN),
            aiodnsresolver.DnsRecordDoesNotExist,
            id="nxdomain",
        ),
        pytest.param(
            lambda dns: dns.set(HOST, a=(), aaaa=()),
            aiodnsresolver.DnsNoMatchingAnswers,
            id="no-records",
        ),
        pytest.param(
            lambda dns: dns.fail(HOST, SERVFAIL),
            aiodnsresolver.DnsResponseCode,
            id="servfail",
        ),
    ],
)
async def test_a_name_that_does_not_resolve_is_a_dns_error(
    script: Callable[[DnsServer], None], cause: type[Exception]
) -> None:
    async with dns_server() as dns, serve(ok_forever) as server:
        script(dns)
        async with pool(get_dns_resolver=ScriptedResolver(dns)) as request:
            with pytest.raises(lowhaio.HttpDnsError) as raised:
                await request(b"GET", f"http://{HOST}:{server.port}/")
        assert isinstance(raised.value, lowhaio.HttpConnectionError)
        assert not isinstance(raised.value, lowhaio.HttpTimeoutError)
        assert isinstance(raised.value.__cause__, cause)
        assert server.connections == 0


async def test_a_dns_timeout_leaves_the_task_uncancelled() -> None:
    loop = asyncio.get_running_loop()
    async with dns_server() as dns, serve(ok_forever) as server:
        dns.drop(HOST)
        resolver = ScriptedResolver(dns, tries=2, timeout=0.1)
        async with pool(get_dns_resolver=resolver) as request:
            before = cancelling()
            with pytest.raises(TimeoutError):  # noqa: PT012 - the timeout block is under test
                async with asyncio.timeout(5) as timeout:
                    with pytest.raises(lowhaio.HttpDnsTimeoutError) as raised:
                        await request(b"GET", f"http://{HOST}:{server.port}/")
                    assert cancelling() == before
                    timeout.reschedule(loop.time() + 0.01)
                    await asyncio.sleep(1)  # the caller's own timeout still works
            assert cancelling() == before
        assert isinstance(raised.value, lowhaio.HttpDnsError)
        assert isinstance(raised.value, lowhaio.HttpTimeoutError)
        assert isinstance(raised.value.__cause__, aiodnsresolver.DnsTimeout)
        # Both tries of each: A is still asked when AAAA times out.
        assert dns.queries == [(HOST, AAAA)] * 2 + [(HOST, A)] * 2
        assert server.connections == 0


async def test_the_callers_timeout_during_resolution_is_its_own() -> None:
    async with dns_server() as dns:
        dns.drop(HOST)
        async with pool(get_dns_resolver=ScriptedResolver(dns, timeout=1)) as request:
            before = cancelling()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await request(b"GET", f"http://{HOST}:1/")
            assert cancelling() == before


# The default resolver, and closing -------------------------------------------------------------


async def test_the_default_resolver_answers_localhost_from_etc_hosts_only() -> None:
    async with serve(ok_forever) as server:
        recorder = Recorder()
        async with pool(plugins=(recorder,)) as request, asyncio.timeout(2):
            assert await get(request, f"http://localhost:{server.port}/") == b"ok"
        assert resolved(recorder) == [("127.0.0.1",)]


async def test_the_default_resolver_asks_dns_for_names_not_in_etc_hosts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with dns_server() as dns, serve(ok_forever) as server:
        dns.set(HOST, a=("127.0.0.1",))

        def resolver(**kwargs: Any) -> Any:  # the default one, asking the scripted server
            return aiodnsresolver.Resolver(**{**kwargs, "get_nameservers": scripted(dns)})

        monkeypatch.setattr(lowhaio._dns, "Resolver", resolver)
        async with pool() as request:
            assert await get(request, f"http://{HOST}:{server.port}/") == b"ok"
            assert await get(request, f"http://localhost:{server.port}/") == b"ok"
        assert dns.queries == [(HOST, AAAA), (HOST, A)]


async def test_nameservers_default_to_aiodnsresolvers_order_over_resolv_conf() -> None:
    conf = ["192.0.2.1", "192.0.2.2"]  # as read from /etc/resolv.conf: nothing is sent here
    ours = [attempt async for attempt in lowhaio.Nameservers()(conf, b"host.test")]
    theirs = [
        attempt async for attempt in aiodnsresolver.get_nameservers_default(conf, b"host.test")
    ]
    assert ours == theirs == [(0.5, (server, 53)) for _ in range(5) for server in conf]


async def test_close_clears_the_resolvers_cache() -> None:
    async with dns_server() as dns, serve(ok_forever) as server:
        dns.set(HOST, a=("127.0.0.1",), ttl=30)
        resolver = ScriptedResolver(dns)
        async with pool(get_dns_resolver=resolver) as request:
            await get(request, f"http://{HOST}:{server.port}/")
        assert len(dns.queries) == 2
        resolve, _ = resolver.made
        assert await resolve(HOST, TYPES.A) == (ipaddress.IPv4Address("127.0.0.1"),)
        assert len(dns.queries) == 3  # asked again: nothing was left cached


# Out of file descriptors -----------------------------------------------------------------------


async def test_running_out_of_file_descriptors_is_a_connection_error() -> None:
    async with serve(ok_forever) as server, pool() as request:
        url = server.url()
        lowest_free = os.dup(0)  # the lowest free descriptor number
        os.close(lowest_free)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
        try:
            with pytest.raises(lowhaio.HttpConnectionError) as raised:
                await request(b"GET", url)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert type(raised.value) is lowhaio.HttpConnectionError
        assert isinstance(raised.value.__cause__, OSError)
        assert raised.value.__cause__.errno == errno.EMFILE
        assert await get(request, url) == b"ok"  # the pool is usable again


@pytest.mark.parametrize("failure", ["drop", "servfail"])
async def test_a_failing_aaaa_query_does_not_hide_the_a_answer(failure: str) -> None:
    async with dns_server() as dns, serve(ok_forever) as server:
        dns.set(HOST, a=("127.0.0.1",))
        if failure == "drop":
            dns.drop(HOST, qtype=AAAA)
        else:
            dns.fail(HOST, rcode=2, qtype=AAAA)
        before = cancelling()
        async with pool(get_dns_resolver=ScriptedResolver(dns, tries=2, timeout=0.1)) as request:
            assert await get(request, f"http://{HOST}:{server.port}/") == b"ok"
        assert cancelling() == before
        assert dns.queries == [(HOST, AAAA)] * 2 + [(HOST, A)]


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_remembered_lacks_of_records_stay_bounded() -> None:
    # An IPv4-only name's lack of AAAA is remembered while its A answer is cached, so it is
    # not asked again; past 1024 names, the expired ones are forgotten and the rest kept.
    async with dns_server() as dns:
        port = unused_port()
        dns.set("kept.test", a=("127.0.0.1",), ttl=30)
        for number in range(1024):
            dns.set(f"n{number}.test", a=("127.0.0.1",), ttl=0)
        async with pool(get_dns_resolver=ScriptedResolver(dns)) as request:
            for name in ["kept.test", *(f"n{number}.test" for number in range(1024))]:
                with pytest.raises(lowhaio.HttpConnectionError):
                    await request(b"GET", f"http://{name}:{port}/")
            dns.queries.clear()
            with pytest.raises(lowhaio.HttpConnectionError):
                await request(b"GET", f"http://kept.test:{port}/")
        assert dns.queries == []  # A from the resolver's cache, the lack of AAAA remembered
