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


# At most this many (host, record type) lacks remembered; past it, the expired ones are dropped.
MAX_LACKS = 1024


class DnsAnswers:
    """A host's addresses from aiodnsresolver, IPv6 and IPv4 interleaved, IPv6 first.

    aiodnsresolver caches answers for their TTL but never an answer that a type has no
    records, so an IPv4-only name would cost a DNS round trip for AAAA on every request. Such
    a lack is remembered here for as long as the other family's answer is cached.
    """

    def __init__(self, resolve: Resolve) -> None:
        self._resolve = resolve
        self._lacks: dict[tuple[str, TYPES], float] = {}  # (host, type) -> until (loop time)

    async def __call__(self, host: str) -> tuple[str, ...]:
        task: Any = asyncio.current_task()
        cancelling = task.cancelling()
        now = asyncio.get_running_loop().time()
        answers: dict[TYPES, Sequence[IPv4Address | IPv6Address]] = {}
        lacking: list[TYPES] = []
        errors: list[DnsError] = []
        for qtype in (TYPES.AAAA, TYPES.A):
            if self._lacks.get((host, qtype), 0.0) > now:
                continue
            try:
                answers[qtype] = await self._resolve(host, qtype)
            except DnsRecordDoesNotExist as exc:  # no such name, or no record of this type
                lacking.append(qtype)
                errors.append(exc)
            except DnsError as exc:  # the other type may still answer
                # aiodnsresolver times out by cancelling the task, and never uncancels it.
                while task.cancelling() > cancelling:
                    task.uncancel()
                errors.append(exc)
        if not answers:
            error = errors[-1] if errors else None
            cls = HttpDnsTimeoutError if isinstance(error, DnsTimeout) else HttpDnsError
            raise cls(f"resolving {host} failed: {error!r}") from error
        for qtype in lacking:  # for as long as the other family's answer is cached
            (other,) = answers.values()
            until = min(getattr(address, "expires_at", 0.0) for address in other)
            self._lack(host, qtype, until, now)
        families = [[str(address) for address in answer] for answer in answers.values()]
        return tuple(
            address for pair in itertools.zip_longest(*families) for address in pair if address
        )

    def _lack(self, host: str, qtype: TYPES, until: float, now: float) -> None:
        if len(self._lacks) >= MAX_LACKS:
            self._lacks = {key: when for key, when in self._lacks.items() if when > now}
        self._lacks[(host, qtype)] = until
