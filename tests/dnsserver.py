"""A scripted UDP DNS server for tests: standard library only.

    async with dns_server() as dns:
        dns.set("example.test", a=("127.0.0.1",), aaaa=("::1",), ttl=30)
        dns.fail("broken.test", rcode=2)  # SERVFAIL; rcode=3 is NXDOMAIN
        dns.drop("slow.test")  # never answered: the client times out
        resolve, clear_cache = aiodnsresolver.Resolver(
            get_nameservers=dns.nameservers(), get_host=dns.no_hosts
        )
        ...
        assert dns.queries == [("example.test", 1)]

Names match case-insensitively; an unknown name is NXDOMAIN. Only class IN, types A (1) and
AAAA (28) have records; a known name asked for another type gets NOERROR and no records. An
answer echoes the question section byte for byte (resolvers randomise the case of the name and
check it) and names its records with a pointer to that question. Datagrams that are not a
well-formed standard query with one question are ignored and not recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import struct
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

A = 1
AAAA = 28
CLASS_IN = 1
NXDOMAIN = 3

Nameservers = Callable[[Sequence[str], bytes], AsyncIterator[tuple[float, tuple[str, int]]]]


@dataclasses.dataclass(frozen=True)
class Rule:
    """How to answer a name: `rcode` with `records` by qtype, or never (`rcode is None`)."""

    rcode: int | None
    records: dict[int, tuple[bytes, ...]] = dataclasses.field(default_factory=dict)
    ttl: int = 0


@dataclasses.dataclass(frozen=True)
class Query:
    qid: int
    flags: int
    question: bytes  # the question section exactly as received
    name: str  # lowercased, without a trailing dot
    qtype: int
    qclass: int


def normalise(name: str) -> str:
    return name.rstrip(".").lower()


def parse_query(data: bytes) -> Query | None:
    """The query in `data`, or None if it is not a standard query with one question."""
    if len(data) < 12:
        return None
    qid, flags, qdcount = struct.unpack_from("!HHH", data)
    if flags & 0xF800 or qdcount != 1:  # QR set (a response), or an opcode other than QUERY
        return None
    labels: list[bytes] = []
    pos = 12
    while True:
        if pos >= len(data):
            return None
        length = data[pos]
        if length == 0:
            break
        if length > 63 or pos + 1 + length > len(data):  # > 63: a pointer, not allowed here
            return None
        labels.append(data[pos + 1 : pos + 1 + length])
        pos += 1 + length
    end = pos + 5
    if end > len(data) or end - 12 - 4 > 255:
        return None
    qtype, qclass = struct.unpack_from("!HH", data, pos + 1)
    name = b".".join(labels).lower().decode("ascii", "backslashreplace")
    return Query(qid, flags, data[12:end], name, qtype, qclass)


class DnsServer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.port = 0
        self.queries: list[tuple[str, int]] = []  # (lowercased name, qtype) of every query
        self.rules: dict[str, Rule] = {}
        self.type_rules: dict[tuple[str, int], Rule] = {}  # for one record type of a name
        self.transport: asyncio.DatagramTransport | None = None

    def set(
        self, name: str, *, a: Iterable[str] = (), aaaa: Iterable[str] = (), ttl: int = 30
    ) -> None:
        """Answer `name` with these records; an empty type is NOERROR with no answers."""
        records = {
            A: tuple(ipaddress.IPv4Address(address).packed for address in a),
            AAAA: tuple(ipaddress.IPv6Address(address).packed for address in aaaa),
        }
        self.rules[normalise(name)] = Rule(0, records, ttl)

    def fail(self, name: str, rcode: int = NXDOMAIN, qtype: int | None = None) -> None:
        """Answer `name` (only for `qtype`, if given) with this response code and no records:
        3 NXDOMAIN, 2 SERVFAIL..."""
        self._rule(name, qtype, Rule(rcode))

    def drop(self, name: str, qtype: int | None = None) -> None:
        """Never answer queries for `name` (only for `qtype`, if given)."""
        self._rule(name, qtype, Rule(None))

    def _rule(self, name: str, qtype: int | None, rule: Rule) -> None:
        if qtype is None:
            self.rules[normalise(name)] = rule
        else:
            self.type_rules[(normalise(name), qtype)] = rule

    def nameservers(self, tries: int = 2, timeout: float = 0.2) -> Nameservers:
        """A `get_nameservers` for aiodnsresolver.Resolver: this server, `tries` times."""

        async def get_nameservers(
            nameservers: Sequence[str], fqdn: bytes
        ) -> AsyncIterator[tuple[float, tuple[str, int]]]:
            for _ in range(tries):
                yield timeout, ("127.0.0.1", self.port)

        return get_nameservers

    @staticmethod
    async def no_hosts(hosts: object, fqdn: bytes, qtype: int) -> None:
        """A `get_host` for aiodnsresolver.Resolver that never consults /etc/hosts."""
        return None

    def answer(self, query: Query) -> bytes | None:
        rule = self.type_rules.get((query.name, query.qtype)) or self.rules.get(
            query.name, Rule(NXDOMAIN)
        )
        if rule.rcode is None:
            return None
        records = rule.records.get(query.qtype, ()) if query.qclass == CLASS_IN else ()
        rd = query.flags & 0x0100
        flags = 0x8000 | 0x0400 | rd | 0x0080 | rule.rcode  # QR, AA, RD as asked, RA
        header = struct.pack("!HHHHHH", query.qid, flags, 1, len(records), 0, 0)
        answers = b"".join(
            b"\xc0\x0c"  # a pointer to the question's name, at offset 12
            + struct.pack("!HHIH", query.qtype, CLASS_IN, rule.ttl, len(rdata))
            + rdata
            for rdata in records
        )
        return header + query.question + answers

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        query = parse_query(data)
        if query is None:
            return
        self.queries.append((query.name, query.qtype))
        reply = self.answer(query)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


@contextlib.asynccontextmanager
async def dns_server() -> AsyncIterator[DnsServer]:
    """A DnsServer listening on 127.0.0.1 on an ephemeral UDP port until the block exits."""
    loop = asyncio.get_running_loop()
    server = DnsServer()
    transport, _ = await loop.create_datagram_endpoint(lambda: server, local_addr=("127.0.0.1", 0))
    server.transport = transport
    server.port = transport.get_extra_info("sockname")[1]
    try:
        yield server
    finally:
        transport.close()
