"""Name resolution and connecting, seen from the outside: a scripted DNS server on 127.0.0.1
answers names, scripted HTTP servers on loopback addresses count the connections they accept,
and a recording plugin sees which connections the pool opens, reuses and closes, and why.

Resolving (AAAA then A, cached by TTL), following DNS changes, Happy Eyeballs across several
addresses, DNS and connect failures, the default resolver, and the names it asks for a host
from the search list and ndots of a resolv.conf that the test writes. No query ever leaves
loopback: `dns_stays_on_loopback` fails any test whose resolver tries to send one elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import pathlib
import resource
import select
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiodnsresolver
import pytest
from aiodnsresolver import TYPES
from conftest import Recorder, Server, get, pool, read_request, recording, serve
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


# resolv.conf files for `searching`.
SEARCH = "search a.test b.test\n"
K8S = (
    "nameserver 10.96.0.10\n"
    "search ns.svc.cluster.local svc.cluster.local cluster.local\n"
    "options ndots:5\n"
)
DOTS_15 = "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p"


def searching(
    dns: DnsServer, conf: str, tmp_path: pathlib.Path, tries: int = 2, timeout: float = 0.2
) -> Callable[[], Any]:
    """A `get_dns_resolver`: the default resolver over a resolv.conf holding `conf`, asking the
    scripted server instead of the file's nameservers."""
    path = tmp_path / "resolv.conf"
    path.write_text(conf)
    nameservers = scripted(dns, tries, timeout)
    return lambda: lowhaio.default_dns_resolver(resolv_conf=str(path), nameservers=nameservers)


def asked(dns: DnsServer) -> list[str]:
    """The names the scripted server was asked, each once, in order."""
    return list(dict.fromkeys(name for name, _ in dns.queries))


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
            # A TTL of 0: every request asks again, and sees each change at once.
            dns.set(HOST, a=("127.0.0.1", "127.0.0.2"), ttl=0)
            await get(request, url)

            dns.set(HOST, a=("127.0.0.2", "127.0.0.1"), ttl=0)  # reordered, still listed
            await get(request, url)

            dns.set(HOST, a=("127.0.0.2",), ttl=0)
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


@pytest.mark.parametrize(
    ("host", "conf", "names"),
    [
        pytest.param(HOST, None, [HOST], id="as-written"),
        # The search list's svc.a.test does not exist: what it lacks expires with the answer.
        pytest.param("svc", SEARCH, ["svc.a.test", "svc.b.test"], id="expanded"),
    ],
)
async def test_a_changed_answer_takes_effect_when_its_ttl_expires(
    host: str, conf: str | None, names: list[str], tmp_path: pathlib.Path
) -> None:
    async with (
        dns_server() as dns,
        serve(ok_forever) as first,
        serve_at("127.0.0.2", first.port) as second,
    ):
        recorder = Recorder()
        resolver = ScriptedResolver(dns) if conf is None else searching(dns, conf, tmp_path)
        url = f"http://{host}:{first.port}/"
        async with pool(get_dns_resolver=resolver, plugins=(recorder,)) as request:
            dns.set(names[-1], a=("127.0.0.1",), ttl=1)
            await get(request, url)
            dns.set(names[-1], a=("127.0.0.2",), ttl=1)
            await get(request, url)  # the old answer is still cached
            assert (first.connections, second.connections) == (1, 0)

            await asyncio.sleep(1.1)
            await get(request, url)
            await get(request, url)
            assert (first.connections, second.connections) == (1, 1)
            assert connections(recorder) == [
                ("opened", "127.0.0.1"),
                ("reused", "127.0.0.1"),
                ("closed", "127.0.0.1", "dns changed"),
                ("opened", "127.0.0.2"),
                ("reused", "127.0.0.2"),
            ]
        # Each name, AAAA then A, once per TTL.
        assert dns.queries == [(name, qtype) for name in names for qtype in (AAAA, A)] * 2


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


class CountingResolver:
    """A `get_dns_resolver` whose `resolve` answers `answer` for A (nothing for AAAA) and
    records each call: what the pool asks of its resolver, beyond what DNS sees."""

    def __init__(self, answer: Callable[[], Any] | None = None) -> None:
        self.asked: list[tuple[str, TYPES]] = []
        self.answer = answer

    def __call__(self) -> Any:
        async def resolve(name: str, qtype: TYPES) -> tuple[Any, ...]:
            self.asked.append((name, qtype))
            if qtype == TYPES.AAAA or self.answer is None:
                raise aiodnsresolver.DnsRecordDoesNotExist()
            return (self.answer(),)

        async def clear() -> None:
            pass

        return resolve, clear


@pytest.mark.parametrize(
    ("address", "asked"),
    [
        # aiodnsresolver's mark for /etc/hosts, read once with the resolver: kept for good.
        pytest.param(lambda: aiodnsresolver.IPv4AddressExpiresAt("127.0.0.1", 0), 1, id="hosts"),
        pytest.param(
            lambda: aiodnsresolver.IPv4AddressExpiresAt(
                "127.0.0.1", asyncio.get_running_loop().time() + 30
            ),
            1,
            id="ttl",
        ),
        pytest.param(lambda: ipaddress.IPv4Address("127.0.0.1"), 3, id="no-expiry"),
    ],
)
async def test_an_answer_is_kept_until_its_first_address_expires(
    address: Callable[[], Any], asked: int
) -> None:
    # Asking aiodnsresolver for an answer it has cached costs about 50 us a request.
    resolver = CountingResolver(address)
    async with serve(ok_forever) as server:
        async with pool(get_dns_resolver=resolver) as request:
            for _ in range(3):
                assert await get(request, f"http://{HOST}:{server.port}/") == b"ok"
        assert server.connections == 1
    assert resolver.asked == [(HOST, TYPES.AAAA), (HOST, TYPES.A)] * asked


async def test_answers_kept_stay_bounded() -> None:
    # Past 1024 hosts, the expired answers are forgotten, and then the oldest.
    async with dns_server() as dns:
        port = unused_port()
        asked: list[tuple[str, TYPES]] = []
        scripted_resolver = ScriptedResolver(dns)

        def get_dns_resolver() -> Any:
            resolve, clear = scripted_resolver()

            async def counted(name: str, qtype: TYPES) -> Any:
                asked.append((name, qtype))
                return await resolve(name, qtype)

            return counted, clear

        names = [f"n{number}.test" for number in range(1023)]
        for name in names:
            dns.set(name, a=("127.0.0.1",), ttl=30)
        for name in ("short.test", "new.test", "newer.test"):
            dns.set(name, a=("127.0.0.1",), ttl=1 if name == "short.test" else 30)

        async def refused(name: str) -> None:
            with pytest.raises(lowhaio.HttpConnectionError):
                await request(b"GET", f"http://{name}:{port}/")

        async with pool(get_dns_resolver=get_dns_resolver) as request:
            for name in ["short.test", *names]:  # 1024 answers kept
                await refused(name)
            await asyncio.sleep(1.1)
            await refused("new.test")  # short.test's, expired, is forgotten
            await refused("newer.test")  # none expired: n0.test's, the oldest, is forgotten
            asked.clear()
            await refused("n1.test")
            await refused("n0.test")
        # n0.test's A answer is asked again (from the resolver's cache: no query), its lack
        # of AAAA still remembered; n1.test's answer was kept.
        assert asked == [("n0.test", TYPES.A)]


# The search list and ndots of resolv.conf ----------------------------------------------------
#
# The default resolver over a resolv.conf each test writes, asking only the scripted server:
# which names it asks for a host, in which order, and what it does with their answers.


@pytest.mark.parametrize(
    ("conf", "host", "names"),
    [
        pytest.param(SEARCH, "svc", ["svc.a.test", "svc.b.test", "svc"], id="under-ndots"),
        pytest.param(SEARCH, "svc.x", ["svc.x", "svc.x.a.test", "svc.x.b.test"], id="at-ndots"),
        pytest.param(
            SEARCH + "options ndots:2\n",
            "svc.x",
            ["svc.x.a.test", "svc.x.b.test", "svc.x"],
            id="under-ndots-2",
        ),
        pytest.param(SEARCH, "svc.x.", ["svc.x"], id="final-dot-only-as-written"),
        pytest.param("nameserver 192.0.2.1\n", "svc", ["svc"], id="no-search-list"),
        pytest.param("domain a.test\n", "svc", ["svc.a.test", "svc"], id="domain"),
        pytest.param(
            "domain c.test\n" + SEARCH,
            "svc",
            ["svc.a.test", "svc.b.test", "svc"],
            id="search-after-domain-wins",
        ),
        pytest.param(
            SEARCH + "domain c.test\n", "svc", ["svc.c.test", "svc"], id="domain-after-search-wins"
        ),
        pytest.param(SEARCH + "search c.test\n", "svc", ["svc.c.test", "svc"], id="last-search"),
        pytest.param("search . a.test.\n", "svc", ["svc", "svc.a.test"], id="root-and-final-dot"),
        pytest.param(
            "# search a.test\n; search b.test\nsearch\n",
            "svc",
            ["svc"],
            id="comments-and-empty-search-ignored",
        ),
        pytest.param(
            SEARCH + "options ndots:0\n", "svc", ["svc", "svc.a.test", "svc.b.test"], id="ndots-0"
        ),
        pytest.param(
            SEARCH + "options ndots:16\n",
            DOTS_15,
            [DOTS_15, f"{DOTS_15}.a.test", f"{DOTS_15}.b.test"],
            id="ndots-16-is-15",
        ),
        pytest.param(
            SEARCH + "options ndots:99999\n",
            DOTS_15,
            [DOTS_15, f"{DOTS_15}.a.test", f"{DOTS_15}.b.test"],
            id="ndots-99999-is-15",
        ),
        pytest.param(
            SEARCH + "options ndots:x\n",
            "svc",
            ["svc.a.test", "svc.b.test", "svc"],
            id="ndots-without-digit-ignored",
        ),
        pytest.param(
            SEARCH + "options rotate ndots:3 timeout:1\noptions ndots:02x\n",
            "svc.x.y",
            ["svc.x.y", "svc.x.y.a.test", "svc.x.y.b.test"],
            id="last-ndots-digits",
        ),
    ],
)
async def test_the_names_asked_follow_the_search_list_and_ndots(
    conf: str, host: str, names: list[str], tmp_path: pathlib.Path
) -> None:
    async with dns_server() as dns:  # every name unknown: each is asked, AAAA then A
        async with pool(get_dns_resolver=searching(dns, conf, tmp_path)) as request:
            with pytest.raises(lowhaio.HttpDnsError):
                await request(b"GET", f"http://{host}:1/")
        assert dns.queries == [(name, qtype) for name in names for qtype in (AAAA, A)]


async def test_a_kubernetes_service_answers_by_its_short_name(tmp_path: pathlib.Path) -> None:
    heads: list[bytes] = []
    async with dns_server() as dns, serve(recording(heads)) as server:
        dns.set("my-service.ns.svc.cluster.local", a=("127.0.0.1",))
        async with pool(get_dns_resolver=searching(dns, K8S, tmp_path)) as request:
            assert await get(request, f"http://my-service:{server.port}/") == b"ok"
        assert asked(dns) == ["my-service.ns.svc.cluster.local"]
        assert b"\r\nhost: my-service:%d\r\n" % server.port in heads[0]  # the name as written


@pytest.mark.parametrize(
    ("conf", "address"),
    [
        pytest.param(SEARCH, "127.0.0.1", id="as-written-first"),
        pytest.param(SEARCH + "options ndots:2\n", "127.0.0.2", id="search-list-first"),
    ],
)
async def test_the_first_name_with_an_address_answers(
    conf: str, address: str, tmp_path: pathlib.Path
) -> None:
    async with (
        dns_server() as dns,
        serve(ok_forever) as first,
        serve_at("127.0.0.2", first.port),
    ):
        dns.set("svc.x", a=("127.0.0.1",))
        dns.set("svc.x.a.test", a=("127.0.0.2",))
        dns.set("svc.x.b.test", a=("127.0.0.3",))
        recorder = Recorder()
        resolver = searching(dns, conf, tmp_path)
        async with pool(get_dns_resolver=resolver, plugins=(recorder,)) as request:
            assert await get(request, f"http://svc.x:{first.port}/") == b"ok"
        assert resolved(recorder) == [(address,)]
        assert "svc.x.b.test" not in asked(dns)


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(lambda dns: None, id="nxdomain"),
        pytest.param(lambda dns: dns.set("svc.a.test"), id="no-records"),
        pytest.param(lambda dns: dns.fail("svc.a.test", SERVFAIL), id="servfail"),
        pytest.param(lambda dns: dns.drop("svc.a.test", qtype=AAAA), id="aaaa-lost-a-nxdomain"),
    ],
)
async def test_a_name_without_an_address_passes_the_turn_to_the_next(
    script: Callable[[DnsServer], None], tmp_path: pathlib.Path
) -> None:
    async with dns_server() as dns, serve(ok_forever) as server:
        script(dns)
        dns.set("svc.b.test", a=("127.0.0.1",))
        dns.set("svc", a=("127.0.0.2",))
        async with pool(get_dns_resolver=searching(dns, SEARCH, tmp_path, timeout=0.1)) as request:
            assert await get(request, f"http://svc:{server.port}/") == b"ok"
        assert asked(dns) == ["svc.a.test", "svc.b.test"]


async def test_a_name_whose_queries_all_time_out_ends_the_search(tmp_path: pathlib.Path) -> None:
    async with dns_server() as dns:
        dns.drop("svc.a.test")
        dns.set("svc.b.test", a=("127.0.0.1",))
        resolver = searching(dns, SEARCH, tmp_path, tries=1, timeout=0.1)
        async with pool(get_dns_resolver=resolver) as request:
            before = cancelling()
            with pytest.raises(lowhaio.HttpDnsTimeoutError) as raised:
                await request(b"GET", "http://svc:1/")
            assert cancelling() == before
        assert asked(dns) == ["svc.a.test"]  # not passed over: svc.b.test may be another host
        assert str(raised.value) == (
            "http://svc:1: resolving svc failed (asked svc.a.test): DnsTimeout()"
        )
        assert isinstance(raised.value.__cause__, aiodnsresolver.DnsTimeout)


async def test_when_no_name_resolves_the_error_names_the_host_and_some_names_asked(
    tmp_path: pathlib.Path,
) -> None:
    domains = [f"d{number}.test" for number in range(8)]
    async with dns_server() as dns:
        conf = "search " + " ".join(domains) + "\n"
        async with pool(get_dns_resolver=searching(dns, conf, tmp_path)) as request:
            with pytest.raises(lowhaio.HttpDnsError) as raised:
                await request(b"GET", "http://svc:1/")
        assert asked(dns) == [f"svc.{domain}" for domain in domains] + ["svc"]
    assert type(raised.value) is lowhaio.HttpDnsError
    assert str(raised.value) == (
        "http://svc:1: resolving svc failed (asked svc.d0.test, svc.d1.test, svc.d2.test,"
        " svc.d3.test,"
        " svc.d4.test, svc.d5.test and 3 more): DnsRecordDoesNotExist()"
    )
    assert isinstance(raised.value.__cause__, aiodnsresolver.DnsRecordDoesNotExist)


async def test_the_expanded_names_connection_is_reused_and_its_lacks_not_asked_again(
    tmp_path: pathlib.Path,
) -> None:
    async with dns_server() as dns, serve(ok_forever) as server:
        dns.set("svc.b.test", a=("127.0.0.1",), ttl=30)  # svc.a.test unknown, svc.b.test no AAAA
        recorder = Recorder()
        url = f"http://svc:{server.port}/"
        async with pool(
            get_dns_resolver=searching(dns, SEARCH, tmp_path), plugins=(recorder,)
        ) as request:
            for _ in range(3):
                assert await get(request, url) == b"ok"
        assert dns.queries == [
            ("svc.a.test", AAAA),
            ("svc.a.test", A),
            ("svc.b.test", AAAA),
            ("svc.b.test", A),
        ]  # the first request only
        assert server.connections == 1
        assert connections(recorder) == [
            ("opened", "127.0.0.1"),
            ("reused", "127.0.0.1"),
            ("reused", "127.0.0.1"),
            ("closed", "127.0.0.1", "pool closed"),
        ]


@pytest.mark.parametrize("resolver", ["default", "custom"])
async def test_a_name_with_a_final_dot_is_asked_only_as_written(
    resolver: str, tmp_path: pathlib.Path
) -> None:
    heads: list[bytes] = []
    async with dns_server() as dns, serve(recording(heads)) as server:
        dns.set("svc.a.test", a=("127.0.0.1",))
        get_dns_resolver = (
            searching(dns, SEARCH, tmp_path) if resolver == "default" else ScriptedResolver(dns)
        )
        async with pool(get_dns_resolver=get_dns_resolver) as request:
            assert await get(request, f"http://svc.a.test.:{server.port}/") == b"ok"
        assert dns.queries == [("svc.a.test", AAAA), ("svc.a.test", A)]
        assert b"\r\nhost: svc.a.test.:%d\r\n" % server.port in heads[0]  # as written


async def test_a_name_in_etc_hosts_is_answered_from_it_before_any_search(
    tmp_path: pathlib.Path,
) -> None:
    async with dns_server() as dns, serve(ok_forever) as server:
        recorder = Recorder()
        async with pool(
            get_dns_resolver=searching(dns, K8S, tmp_path), plugins=(recorder,)
        ) as request:
            assert await get(request, f"http://localhost:{server.port}/") == b"ok"
            assert await get(request, f"http://localhost.:{server.port}/") == b"ok"
        assert dns.queries == []  # localhost.ns.svc.cluster.local... never asked
        assert resolved(recorder) == [("127.0.0.1",)] * 2


async def test_the_default_resolver_asks_the_nameservers_of_its_resolv_conf(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 192.0.2.1\n#nameserver 192.0.2.9\nnameserver 192.0.2.2 x\n")
    given: dict[str, Any] = {}

    def resolver(**kwargs: Any) -> Any:  # nothing is asked of these: the test only lists them
        given.update(kwargs)
        return aiodnsresolver.Resolver(**kwargs)

    monkeypatch.setattr(lowhaio._dns, "Resolver", resolver)
    lowhaio.default_dns_resolver(resolv_conf=str(path))
    attempts = [attempt async for attempt in given["get_nameservers"]([], b"svc")]
    assert attempts == [
        (0.5, (server, 53)) for _ in range(5) for server in ("192.0.2.1", "192.0.2.2")
    ]
