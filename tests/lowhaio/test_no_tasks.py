"""The seed's promise: a request runs in its caller's task and creates none, through DNS,
Happy Eyeballs over a dead first address, TLS, the body both ways and pooling."""

from __future__ import annotations

import asyncio

import aiodnsresolver
from conftest import client_ssl_context, read_request, serve, server_ssl_context
from dnsserver import dns_server

from lowhaio import Nameservers, Pool, buffered, streamed


async def test_a_request_creates_no_task() -> None:
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    seen: set[asyncio.Task[object]] = set()
    turns = 0

    def sample() -> None:
        # A callback, not a task: it looks at every turn of the loop while the request runs.
        nonlocal turns, sampler
        turns += 1
        seen.update(asyncio.all_tasks())
        sampler = loop.call_soon(sample)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            _, body = await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))

    async with dns_server() as dns, serve(handler, ssl_context=server_ssl_context()) as server:
        # The certificate names localhost; here the scripted DNS server answers for it, with
        # a first address where nothing listens.
        dns.set("localhost", a=("127.0.0.2", "127.0.0.1"))
        request, close = Pool(
            get_ssl_context=client_ssl_context,
            get_dns_resolver=lambda: aiodnsresolver.Resolver(
                get_nameservers=Nameservers([("127.0.0.1", dns.port)]), get_host=dns.no_hosts
            ),
        )
        url = f"https://localhost:{server.port}/"
        sampler = loop.call_soon(sample)
        try:
            for _ in range(2):  # a new connection, then a reused one
                _, _, body = await request(
                    b"POST", url, headers=((b"content-length", b"3"),), body=streamed(b"abc")
                )
                assert await buffered(body) == b"abc"
        finally:
            sampler.cancel()
            await close()
    assert turns > 10
    assert {task for task in seen if not _serving(task)} == {me}


def _serving(task: asyncio.Task[object]) -> bool:
    """A task of the test's own server: asyncio's start_server makes one per connection."""
    name = task.get_coro().__qualname__  # type: ignore[union-attr]
    return name in ("Server._handle", "BaseSelectorEventLoop._accept_connection2")
