"""Name resolution through aiodnsresolver, into the order in which addresses are tried.

The resolver caches each answer for its TTL, so asking it on every request is what lets the
pool follow DNS changes: a pooled connection is reused only while its address is still in the
current answer. Both AAAA and A are asked, one after the other (no task is created to ask them
at once), and interleaved IPv6 first, as RFC 8305 section 4 orders them.

A host is not always a name to ask as it is: the default resolver lists the names to ask in
turn as the C library does, from /etc/hosts and from the search list and `ndots` of
resolv.conf (resolv.conf(5)). Reading that file (`parse_resolv_conf`) and listing the names
(`names_to_try`) do no I/O; `DnsAnswers` asks them.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import Any, NamedTuple

from aiodnsresolver import (
    TYPES,
    DnsError,
    DnsRecordDoesNotExist,
    DnsResponseCode,
    DnsTimeout,
    Resolver,
    parse_etc_hosts,
)

from ._exceptions import HttpDnsError, HttpDnsTimeoutError

Address = IPv4Address | IPv6Address
Resolve = Callable[[str, TYPES], Awaitable[Sequence[Address]]]
DnsResolver = tuple[Resolve, Callable[..., Awaitable[None]]]  # aiodnsresolver's (resolve, clear)
Hosts = dict[TYPES, dict[bytes, Address]]  # aiodnsresolver's /etc/hosts: type -> name -> address

RESOLV_CONF = "/etc/resolv.conf"


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


# resolv.conf and the names to ask ---------------------------------------------------------------


class ResolvConf(NamedTuple):
    """What name resolution here takes from a resolv.conf."""

    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()  # the domains of the search list, in order
    ndots: int = 1


MAX_NDOTS = 15  # glibc's RES_MAXNDOTS: a larger `ndots:` counts as 15
_NDOTS = re.compile(r"ndots:0*([0-9]+)")


def parse_resolv_conf(text: str) -> ResolvConf:
    """The lines of a resolv.conf honoured here, read as glibc reads them (resolv.conf(5)).

    A line is known by its first word: `nameserver ADDRESS`, each in order; `search DOMAIN...`
    and `domain DOMAIN` (a search list of one), the last of either winning; `options`, of which
    only `ndots:N` (N's leading digits, at most 15, the last one winning; without a digit it is
    ignored, where glibc's atoi would read 0). Anything else is ignored: comments (a first word
    starting with # or ;), other options, `sortlist`. So are the LOCALDOMAIN and RES_OPTIONS
    environment variables, and glibc's search list from the host name's domain when the file
    gives none.
    """
    nameservers: list[str] = []
    search: tuple[str, ...] = ()
    ndots = 1
    for line in text.splitlines():
        keyword, *arguments = line.split() or [""]
        if not arguments:
            continue  # every keyword takes an argument: glibc skips one that has none
        if keyword == "nameserver":
            nameservers.append(arguments[0])
        elif keyword == "search":
            search = tuple(arguments)
        elif keyword == "domain":
            search = (arguments[0],)
        elif keyword == "options":
            for option in arguments:
                if match := _NDOTS.match(option):
                    # Past the leading zeros, three digits tell any value over 15.
                    ndots = min(int(match[1][:3]), MAX_NDOTS)
    return ResolvConf(tuple(nameservers), search, ndots)


def names_to_try(host: str, search: Sequence[str], ndots: int) -> tuple[str, ...]:
    """The names to ask DNS for `host`, in order, as glibc's res_search lists them.

    A host ending in a dot is absolute: only it is asked. Any other is asked with each domain
    of the search list appended in turn, and as it is: first if it has at least `ndots` dots,
    else last. Each name is asked once, without a final dot (aiodnsresolver cannot ask one).
    """
    if host.endswith("."):
        return (host[:-1],)
    # A domain's own leading or final dot is dropped; the root domain (".") gives `host` itself.
    expanded = [f"{host}.{domain.strip('.')}".rstrip(".") for domain in search]
    if host.count(".") >= ndots:
        return tuple(dict.fromkeys([host, *expanded]))
    return tuple(dict.fromkeys([*expanded, host]))


class _Searching:
    """aiodnsresolver's `resolve`, which asks exactly the name it is given, and `names`, the
    names to ask for a host: `DnsAnswers` asks them in turn."""

    def __init__(self, resolve: Resolve, conf: ResolvConf, hosts: Hosts) -> None:
        self._resolve = resolve
        self._conf = conf
        self._hosts = hosts

    def __call__(self, name: str, qtype: TYPES) -> Awaitable[Sequence[Address]]:
        return self._resolve(name, qtype)

    def names(self, host: str) -> tuple[str, ...]:
        # The C library reads /etc/hosts first, for the name as written (glibc's "files"
        # before "dns", musl alike): a name listed there is neither expanded nor asked of DNS.
        absolute = host.removesuffix(".")
        if _listed(self._hosts, absolute.encode()):
            return (absolute,)
        return names_to_try(host, self._conf.search, self._conf.ndots)


def default_dns_resolver(
    resolv_conf: str = RESOLV_CONF, nameservers: Nameservers | None = None
) -> DnsResolver:
    """aiodnsresolver's `Resolver` with what the C library reads: /etc/hosts (a name listed
    there is never asked of DNS, even for an address family it has no line for), then the
    nameservers, search list and ndots of `resolv_conf`, asking without creating a task.
    `nameservers` asks other servers than the file's (a test's scripted one, say)."""
    with open(resolv_conf, encoding="utf-8", errors="replace") as file:
        conf = parse_resolv_conf(file.read())
    if nameservers is None:
        nameservers = Nameservers([(server, 53) for server in conf.nameservers])
    resolve, clear_cache = Resolver(get_host=_get_host, get_nameservers=nameservers)
    return _Searching(resolve, conf, parse_etc_hosts()), clear_cache


async def _get_host(hosts: Hosts, fqdn: bytes, qtype: TYPES) -> Address | None:
    if fqdn in hosts[qtype]:
        return hosts[qtype][fqdn]
    if _listed(hosts, fqdn):
        raise DnsRecordDoesNotExist()  # listed, but not for this family (e.g. AAAA localhost)
    return None


def _listed(hosts: Hosts, fqdn: bytes) -> bool:
    return any(fqdn in names for names in hosts.values())


# Asking ------------------------------------------------------------------------------------------

# At most this many (name, record type) lacks remembered; past it, the expired ones are dropped.
MAX_LACKS = 1024
# At most this many hosts' answers kept; past it, the expired ones, and then the oldest, go.
MAX_ANSWERS = 1024
NAMES_SHOWN = 6  # a DNS error lists at most this many of the names it asked
SERVFAIL = 2


class DnsAnswers:
    """A host's addresses from aiodnsresolver, IPv6 and IPv4 interleaved, IPv6 first.

    The names asked are those the resolver's `names(host)` lists, in turn (the default
    resolver's follow /etc/hosts and resolv.conf), or else the host alone. The first name with
    an address answers. As in glibc, a name passes the turn to the next when a server says it
    does not exist, has no address record, or fails (SERVFAIL). When its queries get none of
    these answers (they time out, or are refused), the search ends there: glibc would still
    ask the host as written, but a later name might be another host than the one meant.

    aiodnsresolver caches answers for their TTL but never an answer that a name has no records
    of a type, so every request would ask DNS again for the AAAA of an IPv4-only name, and for
    each name of the search list before the one that answers. Such a lack is remembered here
    for as long as the answer found for the host is cached.

    The answer for a host is kept here too, until its first address expires: asking the
    resolver for a cached answer costs about 25 us per record type (a logger adapter, the
    hosts lookup, the cache lookup), on every request to a name. Until then the resolver
    would give the same answer, so reuse follows DNS exactly as if it were asked. An answer
    from /etc/hosts (aiodnsresolver marks it `expires_at=0`; the file is read once, with the
    resolver) is kept for the pool's life; one whose addresses carry no expiry, not at all.
    """

    def __init__(self, resolve: Resolve) -> None:
        self._resolve = resolve
        self._names: Callable[[str], Sequence[str]] = getattr(resolve, "names", _as_written)
        self._lacks: dict[tuple[str, TYPES], float] = {}  # (name, type) -> until (loop time)
        self._answers: dict[str, tuple[tuple[str, ...], float]] = {}  # host -> (answer, until)

    async def __call__(self, host: str, loop: asyncio.AbstractEventLoop) -> tuple[str, ...]:
        """The addresses of `host`, asked in `loop`, the running one (given, as asking asyncio
        for it costs a getpid() system call on Python 3.11)."""
        kept = self._answers.get(host)
        if kept is not None and kept[1] > loop.time():
            return kept[0]
        # One frame catches the resolver's errors and goes on: coverage's tracer loses a caller
        # whose callee caught a cancellation (aiodnsresolver's timeouts) and returned.
        task: Any = asyncio.current_task(loop)
        cancelling = task.cancelling()
        asked: list[str] = []
        lacks: list[tuple[str, TYPES]] = []  # met on the way, remembered once a name answers
        error: DnsError | None = None
        for name in self._names(host):
            asked.append(name)
            now = loop.time()
            answers: dict[TYPES, Sequence[Address]] = {}
            negative = False  # a server said this name has no address, or failed: move on
            for qtype in (TYPES.AAAA, TYPES.A):
                if self._lacks.get((name, qtype), 0.0) > now:
                    negative = True  # as a server said, not long ago
                    continue
                try:
                    answers[qtype] = await self._resolve(name, qtype)
                except DnsRecordDoesNotExist as exc:  # no such name, or no record of this type
                    lacks.append((name, qtype))
                    negative, error = True, exc
                except DnsError as exc:  # the other type may still answer
                    # aiodnsresolver times out by cancelling the task, and never uncancels it.
                    while task.cancelling() > cancelling:
                        task.uncancel()
                    negative, error = negative or _server_failed(exc), exc
            if answers:
                addresses = _interleaved(answers)
                self._remember(host, addresses, lacks, answers, loop.time())
                return addresses
            if not negative:
                break  # nothing was said of this name: a later one might be another host
        raise _failed(host, asked, error) from error

    def _remember(
        self,
        host: str,
        addresses: tuple[str, ...],
        lacks: list[tuple[str, TYPES]],
        answers: dict[TYPES, Sequence[Address]],
        now: float,
    ) -> None:
        """Keep the answer, and the lacks met on the way, for as long as the answer is cached."""
        until = min(_expiry(address) for answer in answers.values() for address in answer)
        if until > now:
            if len(self._answers) >= MAX_ANSWERS:
                self._answers = {key: kept for key, kept in self._answers.items() if kept[1] > now}
                if len(self._answers) >= MAX_ANSWERS:
                    del self._answers[next(iter(self._answers))]
            self._answers[host] = (addresses, until)
        for lack in lacks:
            if len(self._lacks) >= MAX_LACKS:
                self._lacks = {key: when for key, when in self._lacks.items() if when > now}
            self._lacks[lack] = until


def _expiry(address: Address) -> float:
    """When an address of an answer expires (loop time): never for /etc/hosts' (0, as
    aiodnsresolver marks them), at once for one without an expiry."""
    expires_at: float | None = getattr(address, "expires_at", None)
    if expires_at is None:
        return 0.0
    return math.inf if expires_at == 0 else expires_at


def _server_failed(error: DnsError) -> bool:
    return isinstance(error, DnsResponseCode) and error.args == (SERVFAIL,)


def _interleaved(answers: dict[TYPES, Sequence[Address]]) -> tuple[str, ...]:
    """The addresses of AAAA and A answers, one of each family in turn, IPv6 first."""
    families = [[str(address) for address in answer] for answer in answers.values()]
    return tuple(
        address for pair in itertools.zip_longest(*families) for address in pair if address
    )


def _as_written(host: str) -> tuple[str, ...]:
    """The names asked for `host` when the resolver lists none: the host, without a final dot
    (a trailing dot means absolute, which every name asked here is)."""
    return (host.removesuffix("."),)


def _failed(host: str, asked: list[str], error: DnsError | None) -> HttpDnsError:
    """The error for a host none of whose names resolved: the host as written, and the names
    asked (the first `NAMES_SHOWN` of them)."""
    cls = HttpDnsTimeoutError if isinstance(error, DnsTimeout) else HttpDnsError
    names = ", ".join(asked[:NAMES_SHOWN])
    if len(asked) > NAMES_SHOWN:
        names += f" and {len(asked) - NAMES_SHOWN} more"
    return cls(f"resolving {host} failed (asked {names}): {error!r}")
