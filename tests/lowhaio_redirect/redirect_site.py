"""What the redirect tests share: `Site`, a scripted server that answers each request by its
target (scripted replies, else 200 with the target as its body) on every connection it accepts,
and records the requests it reads; builders of the responses it sends; and `client`, a
redirectable request over a fresh pool."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

from conftest import Server, client_ssl_context, read_request, serve

from lowhaio import Pool, Request, buffered
from lowhaio_redirect import redirectable

PAUSE = 0.01  # between the pieces of a reply, so that the client reads them apart
HANG = b"hang"  # a reply: read the request, then wait for the client to go away

Reply = bytes | tuple[bytes, ...]  # a response, or its pieces written PAUSE apart


def response(code: int, *fields: tuple[bytes, bytes], body: bytes = b"") -> bytes:
    """A response with a content-length body."""
    lines = b"".join(b"%s: %s\r\n" % field for field in fields)
    return b"HTTP/1.1 %d X\r\n%scontent-length: %d\r\n\r\n%s" % (code, lines, len(body), body)


def redirect(
    code: int, location: str | bytes, *fields: tuple[bytes, bytes], body: bytes = b""
) -> bytes:
    if isinstance(location, str):
        location = location.encode()
    return response(code, (b"location", location), *fields, body=body)


def head(line: bytes, *fields: tuple[bytes, bytes]) -> bytes:
    """The head a server should receive: the request line and the fields, in order."""
    return line + b" HTTP/1.1\r\n" + b"".join(b"%s: %s\r\n" % field for field in fields) + b"\r\n"


class Site:
    """A scripted server's handler, for any number of requests and connections."""

    def __init__(self) -> None:
        self.replies: dict[bytes, list[Reply]] = {}
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body) as read
        self.received = asyncio.Event()  # set at each request
        self.client_closed = asyncio.Event()  # a connection was closed by the client
        self.host = "127.0.0.1"
        self.server: Server  # set by serve_site

    def route(self, target: bytes, *replies: Reply) -> None:
        """Answer `target` with `replies` in turn, the last one from then on."""
        self.replies[target] = list(replies)

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                request_head, body = await read_request(reader)
            except asyncio.IncompleteReadError:
                self.client_closed.set()
                return
            self.requests.append((request_head, body))
            self.received.set()
            target = request_head.split(b" ")[1]
            queue = self.replies.get(target, [response(200, body=target)])
            reply = queue.pop(0) if len(queue) > 1 else queue[0]
            if reply == HANG:
                await reader.read()
                self.client_closed.set()
                return
            for i, piece in enumerate((reply,) if isinstance(reply, bytes) else reply):
                if i:
                    await asyncio.sleep(PAUSE)
                writer.write(piece)
                await writer.drain()

    @property
    def heads(self) -> list[bytes]:
        return [request_head for request_head, _ in self.requests]

    @property
    def bodies(self) -> list[bytes]:
        return [body for _, body in self.requests]

    @property
    def targets(self) -> list[bytes]:
        return [request_head.split(b" ")[1] for request_head, _ in self.requests]

    @property
    def connections(self) -> int:
        return self.server.connections

    @property
    def authority(self) -> bytes:
        return b"%s:%d" % (self.host.encode(), self.server.port)

    def url(self, path: str, scheme: str = "http") -> str:
        return self.server.url(path, scheme, self.host)


@contextlib.asynccontextmanager
async def serve_site(
    ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[Site]:
    site = Site()
    site.host = host
    async with serve(site, ssl_context, host, port) as server:
        site.server = server
        yield site


@contextlib.asynccontextmanager
async def client(
    *plugins: object, continue_timeout: float = 1.0, **options: Any
) -> AsyncIterator[Request]:
    """`redirectable(request, **options)` over a fresh pool that trusts the test CA."""
    request, close = Pool(
        get_ssl_context=client_ssl_context, plugins=plugins, continue_timeout=continue_timeout
    )
    try:
        yield redirectable(request, **options)
    finally:
        await close()


async def fetch(request: Request, method: bytes, url: str, **kwargs: Any) -> tuple[bytes, bytes]:
    """The final code and the whole final body."""
    code, _, body = await request(method, url, **kwargs)
    return code, await buffered(body)
