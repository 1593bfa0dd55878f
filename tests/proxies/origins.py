"""What the proxy interop tests share, besides the proxies themselves (`proxy_servers.py`).

- `origin(name, tls=False, host="127.0.0.1")`: a raw HTTP/1.1 origin server, plain or TLS with
  the test certificates, that counts the connections it accepts and records each request it
  reads (its head and body) and each failed TLS handshake; it answers 200 with
  `<name> <target>` as the body, or what `Origin.route` scripted.
- `RecordingResolver`: a `get_dns_resolver` for `Pool` that knows one name, `localhost`
  (127.0.0.1, no IPv6), asks no DNS server nor /etc/hosts, and records every name it is asked.
- `loop_errors()`: what the running loop's exception handler is given meanwhile (errors that
  asyncio or uvloop would log: a protocol callback that raised, say).
- `opened_and_reused(recorder)`: the `via` of each `connection_opened` and `connection_reused`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from aiodnsresolver import TYPES, DnsRecordDoesNotExist
from conftest import Recorder, read_request, server_ssl_context


def response(code: int, *fields: tuple[bytes, bytes], body: bytes = b"") -> bytes:
    """A response with a content-length body, kept alive."""
    lines = b"".join(b"%s: %s\r\n" % field for field in fields)
    return b"HTTP/1.1 %d X\r\n%scontent-length: %d\r\n\r\n%s" % (code, lines, len(body), body)


@dataclass
class Origin:
    """A recording origin on `host`:`port`, its URLs naming `host`."""

    name: bytes
    scheme: str
    host: str
    port: int = 0
    connections: int = 0  # accepted so far (before any TLS handshake)
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)  # (head, body) as read
    replies: dict[bytes, bytes] = field(default_factory=dict)  # by request target
    # Handshakes that failed (the client refused the certificate, say), and an event set then.
    tls_failures: list[Exception] = field(default_factory=list)
    tls_failed: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def route(self, target: bytes, reply: bytes) -> None:
        self.replies[target] = reply

    def request_lines(self) -> list[bytes]:
        return [head.split(b"\r\n", 1)[0] for head, _ in self.requests]

    def field_names(self) -> set[bytes]:
        """The names of every header field of every request it read, lowercased."""
        return {
            line.split(b":", 1)[0].lower()
            for head, _ in self.requests
            for line in head.split(b"\r\n")[1:]
            if line
        }

    async def serve(self, sock: socket.socket, tls: ssl.SSLContext | None) -> None:
        """One connection: TLS first if `tls`, then each request answered in turn."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock, ssl=tls)
        except (ssl.SSLError, ConnectionError) as exc:
            sock.close()
            self.tls_failures.append(exc)
            self.tls_failed.set()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        try:
            while True:
                head, body = await read_request(reader)
                self.requests.append((head, body))
                target = head.split(b" ", 2)[1]
                default = response(200, body=self.name + b" " + target)
                writer.write(self.replies.get(target) or default)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass  # the client went away
        finally:
            transport.abort()


@contextlib.asynccontextmanager
async def origin(
    name: bytes = b"origin", tls: bool = False, host: str = "127.0.0.1"
) -> AsyncIterator[Origin]:
    """A recording origin on `host` (an ephemeral port), TLS with the test certificates (valid
    for localhost, 127.0.0.1 and ::1) if `tls`; its URLs name `host` unless told otherwise.

    Each connection is accepted as a socket and then handed to the loop, TLS and all
    (`connect_accepted_socket`): a handshake is then the connection's own task's, which fails
    there (and is recorded) or is cancelled at the end of the block; none can be left half done
    when the test's loop closes, as a listener's own could."""
    loop = asyncio.get_running_loop()
    site = Origin(name, "https" if tls else "http", host)
    context = server_ssl_context() if tls else None
    tasks: set[asyncio.Task[None]] = set()

    async def accept(listener: socket.socket) -> None:
        while True:
            sock, _ = await loop.sock_accept(listener)
            site.connections += 1
            task = loop.create_task(site.serve(sock, context))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    with socket.socket() as listener:
        listener.bind(("127.0.0.1" if host == "localhost" else host, 0))
        listener.listen()
        listener.setblocking(False)
        site.port = listener.getsockname()[1]
        accepting = loop.create_task(accept(listener))
        try:
            yield site
        finally:
            for task in (accepting, *tasks):
                task.cancel()
            await asyncio.gather(accepting, *tasks, return_exceptions=True)


Address = IPv4Address


class RecordingResolver:
    """`Pool(get_dns_resolver=RecordingResolver())`: `localhost` is 127.0.0.1 (and has no IPv6
    address); any other name does not exist. `asked` lists each (name, record type) asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, TYPES]] = []

    def __call__(
        self,
    ) -> tuple[
        Callable[[str, TYPES], Awaitable[Sequence[Address]]], Callable[..., Awaitable[None]]
    ]:
        return self.resolve, self.clear_cache

    def names(self) -> list[str]:
        return list(dict.fromkeys(name for name, _ in self.asked))

    async def resolve(self, name: str, qtype: TYPES) -> Sequence[Address]:
        self.asked.append((name, qtype))
        if name == "localhost" and qtype == TYPES.A:
            return [IPv4Address("127.0.0.1")]
        raise DnsRecordDoesNotExist()

    async def clear_cache(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def loop_errors() -> Iterator[list[str]]:
    """The messages the running loop's exception handler gets within the block (what asyncio
    and uvloop would log as errors), with their exceptions."""
    loop = asyncio.get_running_loop()
    reported: list[str] = []

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exception = context.get("exception")
        reported.append(f"{context['message']}: {exception!r}" if exception else context["message"])

    previous = loop.get_exception_handler()
    loop.set_exception_handler(handler)
    try:
        yield reported
    finally:
        loop.set_exception_handler(previous)


def opened_and_reused(recorder: Recorder) -> list[tuple[str, str | None]]:
    """(`opened` or `reused`, via) for each connection a request took, in order."""
    return [
        (name.removeprefix("connection_"), fields["via"])
        for name, fields in recorder.select("connection_opened", "connection_reused")
    ]
