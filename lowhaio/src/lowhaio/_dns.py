"""Name resolution through aiodnsresolver, into the order in which addresses are tried.

The resolver caches each answer for its TTL, so asking it on every request is what lets the
pool follow DNS changes: a pooled connection is reused only while its address is still in the
current answer. Both AAAA and A are asked, one after the other (no task is created to ask them
at once), and interleaved IPv6 first, as RFC 8305 section 4 orders them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from aiodnsresolver import TYPES, DnsError, DnsRecordDoesNotExist, DnsTimeout, Resolver

from ._exceptions import HttpDnsError, HttpDnsTimeoutError

Resolve = Callable[[str, TYPES], Awaitable[Sequence[IPv4Address | IPv6Address]]]
DnsResolver = tuple[Resolve, Callable[..., Awaitable[None]]]  # aiodnsresolver's (resolve, clear)


class Nameservers:
    """A `get_nameservers` for aiodnsresolver's `Resolver` that creates no task.

    Each query asks `servers` ((address, port) pairs; by default the nameservers of
    /etc/resolv.conf on port 53) in turn, `tries` times over, waiting `timeout` seconds for
    each. aiodnsresolver stops iterating at the first answer; its default is an async
    generator, which asyncio then closes in a task of its own, while this iterator needs no
    closing.
    """

    def __init__(
        self,
        servers: Sequence[tuple[str, int]] | None = None,
        tries: int = 5,
        timeout: float = 0.5,
    ) -> None:
        self.servers = servers
        self.tries = tries
        self.timeout = timeout

    def __call__(self, resolv_conf: Sequence[str], fqdn: bytes) -> _Attempts:
        servers = [(server, 53) for server in resolv_conf] if self.servers is None else self.servers
        return _Attempts([(self.timeout, server) for _ in range(self.tries) for server in servers])


class _Attempts:
    def __init__(self, attempts: list[tuple[float, tuple[str, int]]]) -> None:
        self._attempts = iter(attempts)

    def __aiter__(self) -> _Attempts:
        return self

    async def __anext__(self) -> tuple[float, tuple[str, int]]:
        for attempt in self._attempts:
            return attempt
        raise StopAsyncIteration


def default_dns_resolver() -> DnsResolver:
    """aiodnsresolver's `Resolver`, reading /etc/hosts as the C library does (a name listed
    there is never asked of DNS, even for an address family it has no line for), and asking
    the nameservers of /etc/resolv.conf without creating a task."""
    return Resolver(get_host=_get_host, get_nameservers=Nameservers())  # type: ignore[no-any-return]


async def _get_host(
    hosts: dict[TYPES, dict[bytes, IPv4Address | IPv6Address]], fqdn: bytes, qtype: TYPES
) -> IPv4Address | IPv6Address | None:
    if fqdn in hosts[qtype]:
        return hosts[qtype][fqdn]
    if any(fqdn in names for names in hosts.values()):
        raise DnsRecordDoesNotExist()  # listed, but not for this family (e.g. AAAA localhost)
    return None


async def resolve_addresses(resolve: Resolve, host: str) -> tuple[str, ...]:
    """The host's IPv6 and IPv4 addresses, interleaved IPv6 first."""
    task: Any = asyncio.current_task()
    cancelling = task.cancelling()
    answers: list[list[str]] = []
    missing: DnsError | None = None
    for qtype in (TYPES.AAAA, TYPES.A):
        try:
            answers.append([str(address) for address in await resolve(host, qtype)])
        except DnsRecordDoesNotExist as exc:  # no such name, or no record of this type
            missing = exc
        except DnsError as exc:
            if isinstance(exc, DnsTimeout):
                # aiodnsresolver times out by cancelling the task, and never uncancels it.
                while task.cancelling() > cancelling:
                    task.uncancel()
                raise HttpDnsTimeoutError(f"resolving {host} timed out") from exc
            raise HttpDnsError(f"resolving {host} failed: {exc!r}") from exc
    addresses = tuple(
        address for pair in itertools.zip_longest(*answers) for address in pair if address
    )
    if not addresses:
        raise HttpDnsError(f"{host} has no A or AAAA record") from missing
    return addresses
