"""The scripted DNS server in tests/dnsserver.py, checked on the wire and through aiodnsresolver.

What these tests pin down about aiodnsresolver: answers are cached until their TTL expires (a
TTL of 0 still serves the next loop iteration or so from the cache), errors are never cached,
NXDOMAIN and "no records" are not retried on the next nameserver but SERVFAIL and timeouts are,
and a timeout cancels the calling task without uncancelling it.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Coroutine
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import aiodnsresolver
import pytest
from aiodnsresolver import TYPES
from dnsserver import DnsServer, dns_server

Resolve = Callable[[str, TYPES], Coroutine[Any, Any, tuple[Any, ...]]]
ClearCache = Callable[[], Awaitable[None]]


def resolver(dns: DnsServer, tries: int = 2) -> tuple[Resolve, ClearCache]:
    resolve, clear_cache = aiodnsresolver.Resolver(
        get_nameservers=dns.nameservers(tries=tries), get_host=dns.no_hosts
    )
    return resolve, clear_cache


def query(qid: int, name: bytes, qtype: int = 1, flags: int = 0x0100) -> bytes:
    header = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 0)
    labels = b"".join(bytes((len(label),)) + label for label in name.split(b"."))
    return header + labels + b"\0" + struct.pack("!HH", qtype, 1)


async def test_answers_on_the_wire_echo_the_question_and_ignore_malformed_datagrams() -> None:
    loop = asyncio.get_running_loop()
    async with dns_server() as dns:
        dns.set("Example.TEST.", a=("127.0.0.1",), ttl=30)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.connect(("127.0.0.1", dns.port))
            garbage = [
                b"\0",  # shorter than a header
                query(1, b"example.test")[:-6],  # the name is cut short
                query(2, b"example.test", flags=0x8000),  # a response, not a query
                query(3, b"example.test")[:12] + b"\xc0\x0c" + b"\0\1\0\1",  # a pointer
            ]
            for datagram in [*garbage, query(0x1234, b"eXaMpLe.TeSt")]:
                await loop.sock_sendall(sock, datagram)
            reply = await asyncio.wait_for(loop.sock_recv(sock, 512), 1)

    question = b"\x07eXaMpLe\x04TeSt\0" + b"\0\1\0\1"
    header = struct.pack("!HHHHHH", 0x1234, 0x8580, 1, 1, 0, 0)  # QR AA RD RA, NOERROR
    record = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + bytes((127, 0, 0, 1))
    assert reply == header + question + record
    assert dns.queries == [("example.test", 1)]


async def test_a_and_aaaa_records_resolve_to_ip_addresses() -> None:
    async with dns_server() as dns:
        dns.set("Host.Test", a=("127.0.0.1", "127.0.0.2"), aaaa=("::1",))
        resolve, _ = resolver(dns)

        assert await resolve("host.test", TYPES.A) == (
            IPv4Address("127.0.0.1"),
            IPv4Address("127.0.0.2"),
        )
        assert await resolve("host.test", TYPES.AAAA) == (IPv6Address("::1"),)
        assert dns.queries == [("host.test", 1), ("host.test", 28)]


async def test_the_ttl_caches_until_it_expires_or_the_cache_is_cleared() -> None:
    async with dns_server() as dns:
        dns.set("host.test", a=("127.0.0.1",), ttl=1)
        resolve, clear_cache = resolver(dns)
        assert await resolve("host.test", TYPES.A) == (IPv4Address("127.0.0.1"),)

        dns.set("host.test", a=("127.0.0.2",), ttl=1)
        assert await resolve("host.test", TYPES.A) == (IPv4Address("127.0.0.1"),)
        assert len(dns.queries) == 1
        await asyncio.sleep(1.1)
        assert await resolve("host.test", TYPES.A) == (IPv4Address("127.0.0.2"),)
        assert len(dns.queries) == 2

        dns.set("host.test", a=("127.0.0.3",), ttl=30)
        await clear_cache()
        assert await resolve("host.test", TYPES.A) == (IPv4Address("127.0.0.3"),)
        assert await resolve("host.test", TYPES.A) == (IPv4Address("127.0.0.3"),)
        assert len(dns.queries) == 3


async def test_the_cache_is_keyed_by_the_name_as_given() -> None:
    async with dns_server() as dns:
        dns.set("host.test", a=("127.0.0.1",))
        resolve, _ = resolver(dns)
        await resolve("host.test", TYPES.A)
        await resolve("HOST.test", TYPES.A)
        await resolve("host.test", TYPES.A)
        assert dns.queries == [("host.test", 1), ("host.test", 1)]


async def test_a_zero_ttl_expires_only_when_the_loop_runs_its_timer() -> None:
    async with dns_server() as dns:
        dns.set("host.test", a=("127.0.0.1",), ttl=0)
        resolve, _ = resolver(dns)
        await resolve("host.test", TYPES.A)
        await resolve("host.test", TYPES.A)  # no loop iteration yet: still cached
        assert len(dns.queries) == 1
        await asyncio.sleep(0.01)
        await resolve("host.test", TYPES.A)
        assert len(dns.queries) == 2


async def test_no_records_of_a_type_raises_no_matching_answers_once() -> None:
    async with dns_server() as dns:
        dns.set("v4only.test", a=("127.0.0.1",), aaaa=())
        resolve, _ = resolver(dns)
        with pytest.raises(aiodnsresolver.DnsNoMatchingAnswers):
            await resolve("v4only.test", TYPES.AAAA)
        assert dns.queries == [("v4only.test", 28)]  # not retried


async def test_nxdomain_raises_record_does_not_exist_and_is_not_cached() -> None:
    async with dns_server() as dns:
        dns.fail("gone.test", rcode=3)
        resolve, _ = resolver(dns)
        for name in ("gone.test", "unknown.test"):
            with pytest.raises(aiodnsresolver.DnsRecordDoesNotExist) as raised:
                await resolve(name, TYPES.A)
            assert type(raised.value) is aiodnsresolver.DnsRecordDoesNotExist
        assert dns.queries == [("gone.test", 1), ("unknown.test", 1)]  # not retried

        dns.set("gone.test", a=("127.0.0.1",))
        assert await resolve("gone.test", TYPES.A) == (IPv4Address("127.0.0.1"),)


async def test_servfail_raises_response_code_after_every_try() -> None:
    async with dns_server() as dns:
        dns.fail("broken.test", rcode=2)
        resolve, _ = resolver(dns, tries=2)
        with pytest.raises(aiodnsresolver.DnsResponseCode) as raised:
            await resolve("broken.test", TYPES.A)
        assert raised.value.args == (2,)
        assert dns.queries == [("broken.test", 1)] * 2


async def test_a_dropped_query_times_out_in_its_own_task() -> None:
    async with dns_server() as dns:
        dns.drop("slow.test")
        resolve, _ = resolver(dns, tries=2)
        started = time.monotonic()
        with pytest.raises(aiodnsresolver.DnsTimeout):
            await asyncio.create_task(resolve("slow.test", TYPES.A))
        assert time.monotonic() - started < 1.0  # 2 tries of 0.2 s
        assert dns.queries == [("slow.test", 1)] * 2
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0


async def test_a_timeout_leaves_the_calling_task_cancelling() -> None:
    async with dns_server() as dns:
        dns.drop("slow.test")
        resolve, _ = resolver(dns, tries=1)
        task = asyncio.current_task()
        assert task is not None
        with pytest.raises(aiodnsresolver.DnsTimeout):
            await resolve("slow.test", TYPES.A)
        assert task.cancelling() == 1  # task.cancel() per timed-out try, never uncancelled
        task.uncancel()
