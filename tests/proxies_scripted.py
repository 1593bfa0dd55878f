"""Scripted proxies for the core's tests: an HTTP proxy that forwards or tunnels (`CONNECT`) and
a SOCKS5 proxy, each keeping what it was asked, and each able to misbehave on cue.

They connect only to 127.0.0.1: a name in a request is looked up in `names` (a test's own
table), never in DNS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

from conftest import read_request

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy `reader` to `writer` until either side ends."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def splice(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter], host: str, port: int
) -> None:
    """Join the client's connection to `host:port` in both directions, until both end."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        await asyncio.gather(pipe(client[0], writer), pipe(reader, client[1]))
    finally:
        writer.close()


class HttpProxy:
    """An HTTP proxy: a request in absolute form is answered by `forward` (by default 200 with
    the request line as body), a `CONNECT` by `connect_answer` and then, for a 2xx, a tunnel.
    `requests` keeps every request head it received."""

    def __init__(self, names: dict[str, str] | None = None) -> None:
        self.names = {"localhost": "127.0.0.1", **(names or {})}
        self.requests: list[bytes] = []
        self.connect_answer = b"HTTP/1.1 200 Connection established\r\n\r\n"
        # Instead of the tunnel: what the proxy does after its answer to CONNECT.
        self.after_connect: Handler | None = None

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, _ = await read_request(reader)
            self.requests.append(head)
            method, target, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
            if method != b"CONNECT":
                body = head.split(b"\r\n", 1)[0]
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
                continue
            writer.write(self.connect_answer)
            await writer.drain()
            if self.after_connect is not None:
                await self.after_connect(reader, writer)
                return
            if not self.connect_answer.startswith(b"HTTP/1.1 2"):
                continue
            host, _, port = target.decode().rpartition(":")
            await splice((reader, writer), self.names[host.strip("[]")], int(port))
            return


class Socks5Proxy:
    """A SOCKS5 proxy (RFC 1928, RFC 1929's credentials if `credentials` is set). `asked`
    keeps each CONNECT's address type and address; `reply` is the reply code to give."""

    def __init__(
        self, credentials: tuple[bytes, bytes] | None = None, names: dict[str, str] | None = None
    ) -> None:
        self.credentials = credentials
        self.names = {"localhost": "127.0.0.1", **(names or {})}
        self.asked: list[tuple[int, str, int]] = []
        self.reply = 0
        self.bound = bytes((3, 5)) + b"bound"  # the reply's address: a name, an IPv4 or an IPv6

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        assert version == 5
        wanted = 2 if self.credentials else 0
        if wanted not in methods:
            writer.write(b"\x05\xff")
            return
        writer.write(bytes((5, wanted)))
        if self.credentials:
            _, size = await reader.readexactly(2)
            user = await reader.readexactly(size)
            password = await reader.readexactly((await reader.readexactly(1))[0])
            good = (user, password) == self.credentials
            writer.write(b"\x01\x00" if good else b"\x01\x01")
            if not good:
                return
        _, command, _, kind = await reader.readexactly(4)
        assert command == 1
        if kind == 3:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        else:
            host = str(ipaddress.ip_address(await reader.readexactly(4 if kind == 1 else 16)))
        port = int.from_bytes(await reader.readexactly(2), "big")
        self.asked.append((kind, host, port))
        writer.write(bytes((5, self.reply, 0)) + self.bound + b"\x00\x50")
        if self.reply == 0:
            await splice((reader, writer), self.names.get(host, host), port)


@contextlib.asynccontextmanager
async def unix_server(
    handler: Handler, path: str, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[asyncio.Server]:
    """Serve `handler` on a Unix socket at `path` until the block exits."""
    tasks: set[asyncio.Task[object]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(handle, path, ssl=ssl_context)
    try:
        yield server
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
