"""Side-by-side benchmark: lowhaio, aiohttp (and httpx, if installed) against a raw asyncio client.

    python bench/bench.py [--quick] [--rounds N] [--loop asyncio|uvloop] [--out FILE]

A local HTTP/1.1 server runs in its own process (uvloop, a plain `asyncio.Protocol`, precomputed
responses, no HTTP library) on 127.0.0.1 and an ephemeral port. Every client is measured in the
same run against the same server:

- raw: the practical asyncio limit. A `BufferedProtocol` that writes precomputed request bytes
  and counts response bytes into a preallocated buffer, knowing the response length in advance.
  It parses nothing, so it is a ceiling, not a competitor.
- lowhaio, aiohttp, httpx: their ordinary streaming APIs, one pool or session per measurement.

Scenarios (S3-S5 move 200 MB, 50 MB with --quick):

- S1: sequential small GETs (100-byte body) on one keep-alive connection, for a fixed duration.
- S2: 64 concurrent tasks doing small GETs through one pool or session.
- S3: a download with content-length.
- S4: the same size, chunked in 16 KiB chunks.
- S5: a streamed upload with content-length, in 64 KiB slices of one preallocated buffer.

How to read the results on a noisy 2-core machine:

- Each scenario runs for several rounds, the order of the clients rotating from round to round;
  the table gives the median and the range (min-max) of the rounds. Trust a difference only when
  the ranges do not overlap, and re-run before believing a difference under ~10%.
- "vs raw" is the client's median over raw's median. raw should be the fastest (ratio <= 1 for
  rates): if another client beats it by far, the server or the machine was the bottleneck.
  For CPU s/GB lower is better, so the ratio is >= 1.
- S1 and S2 are latency-bound: every request is a round trip between the client and the server,
  so they measure per-request overhead and are sensitive to both processes sharing cores. With
  2+ CPUs the server is pinned to one CPU and the client to another (`os.sched_setaffinity`);
  the output says whether pinning was done. Other load on the machine still shows up here first.
- S3-S5 are throughput-bound, and on loopback far above any real network's speed; each gives
  MB/s and the client's CPU seconds per GB (`time.process_time`). In S3 the server's CPU is the
  limit (~5 GB/s, mostly kernel send copies): raw and any client as fast reach it, and may land
  within ~10% of each other either way. In S5 every client is held back by its own kernel send
  copies. There, CPU s/GB is what tells clients apart, and it is what remains when a real
  network is the bottleneck.
- Under the table, "CPUs taken by other processes" says, per scenario, how much CPU the rest of
  the machine (and the hypervisor) used meanwhile, from /proc/stat. Above ~0.1, re-run.
- A client that fails or hangs in a scenario is shown as failed there, with the reason below
  the table, and the run exits with status 1 (0 otherwise).
- aiohttp reads S3/S4 with `iter_chunked(65536)`, the usual idiom: with content-length its
  reads arrive in large pieces that this re-slices, which costs it more than `iter_any()` would.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import multiprocessing
import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MB = 1_000_000
MiB = 1 << 20
SMALL_BODY = 100
WRITE_SLICE = MiB  # the server writes large bodies in slices of this size
CHUNK = 16 * 1024  # the server's chunk size for /chunked
CHUNKS_PER_BLOCK = 64  # the server writes /chunked in blocks of this many encoded chunks
UPLOAD_SLICE = 64 * 1024  # the clients' upload chunk size
READ_SIZE = 64 * 1024  # what clients that take a chunk size are asked for
RAW_BUFFER = 256 * 1024  # the raw client's receive buffer (lowhaio's default size too)
CONCURRENCY = 64  # S2
UPLOAD_BUFFER = bytes(MiB)  # the one preallocated buffer that uploads are sliced from


# Responses: shared by the server (which sends them) and the raw client (which counts them) -----


@dataclass(frozen=True)
class Responses:
    size: int  # the body size of /large, /chunked and /upload
    small: bytes  # the whole /small response
    upload: bytes  # the whole response to an upload
    large_head: bytes
    chunked_head: bytes
    chunk_block: bytes  # many encoded 16 KiB chunks, written repeatedly
    chunk_tail: bytes  # the last, shorter chunk and the last-chunk

    @classmethod
    def build(cls, size: int) -> Responses:
        chunk = b"%x\r\n" % CHUNK + b"x" * CHUNK + b"\r\n"
        rest = size % CHUNK
        tail = (b"%x\r\n" % rest + b"x" * rest + b"\r\n" if rest else b"") + b"0\r\n\r\n"
        return cls(
            size=size,
            small=head(SMALL_BODY) + b"x" * SMALL_BODY,
            upload=head(2) + b"ok",
            large_head=head(size),
            chunked_head=(
                b"HTTP/1.1 200 OK\r\nserver: bench\r\ncontent-type: application/octet-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            ),
            chunk_block=chunk * CHUNKS_PER_BLOCK,
            chunk_tail=tail,
        )

    @property
    def large_length(self) -> int:
        return len(self.large_head) + self.size

    @property
    def encoded_chunk(self) -> int:
        return len(self.chunk_block) // CHUNKS_PER_BLOCK

    @property
    def chunked_length(self) -> int:
        full_chunks = self.size // CHUNK
        return len(self.chunked_head) + full_chunks * self.encoded_chunk + len(self.chunk_tail)

    def chunked_slices(self) -> Iterator[bytes | memoryview]:
        """The chunked body: the block, repeated, then what is left of it, then the tail."""
        blocks, chunks = divmod(self.size // CHUNK, CHUNKS_PER_BLOCK)
        block = memoryview(self.chunk_block)
        for _ in range(blocks):
            yield block
        if chunks:
            yield block[: chunks * self.encoded_chunk]
        yield self.chunk_tail


def head(length: int) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nserver: bench\r\ncontent-type: application/octet-stream\r\n"
        b"content-length: %d\r\n\r\n" % length
    )


# The server: its own process, uvloop, pinned to its own CPU -----------------------------------


class ServerProtocol(asyncio.Protocol):
    """Keep-alive and pipelined requests, framed by CRLF CRLF; only /upload has a body."""

    def __init__(self, responses: Responses, payload: memoryview) -> None:
        self.r = responses
        self.payload = payload  # preallocated, WRITE_SLICE bytes
        self.buf = bytearray()
        self.upload_left = 0  # body bytes of an upload still to read and discard
        self.stream: Iterator[bytes | memoryview] | None = None  # a large body being written
        self.paused = False
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.stream = None

    def data_received(self, data: bytes) -> None:
        if self.upload_left:
            if len(data) <= self.upload_left:
                self.upload_left -= len(data)
                if not self.upload_left:
                    self.transport.write(self.r.upload)
                return
            data = data[self.upload_left :]
            self.upload_left = 0
            self.transport.write(self.r.upload)
        self.buf += data
        self.process()

    def process(self) -> None:
        buf, pos, out = self.buf, 0, []
        while self.stream is None and not self.upload_left:
            end = buf.find(b"\r\n\r\n", pos)
            if end < 0:
                break
            request_head = bytes(buf[pos:end])
            pos = end + 4
            path = request_head.split(b" ", 2)[1]
            if path == b"/small":
                out.append(self.r.small)
            elif path in (b"/large", b"/chunked"):
                if out:
                    self.transport.write(b"".join(out))
                del buf[:pos]  # before pump(), which calls process() again when done
                self.stream = self.large() if path == b"/large" else self.chunked()
                self.pump()
                return
            elif path == b"/upload":
                length = content_length(request_head)
                if length is None:
                    self.transport.write(
                        b"HTTP/1.1 411 Length Required\r\ncontent-length: 0\r\n\r\n"
                    )
                    self.transport.close()
                    return
                taken = min(length, len(buf) - pos)
                pos += taken
                self.upload_left = length - taken
                if not self.upload_left:
                    out.append(self.r.upload)
            else:
                out.append(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
        if out:
            self.transport.write(b"".join(out))
        del buf[:pos]

    def large(self) -> Iterator[bytes | memoryview]:
        yield self.r.large_head
        left = self.r.size
        while left:
            n = min(left, WRITE_SLICE)
            yield self.payload[:n]
            left -= n

    def chunked(self) -> Iterator[bytes | memoryview]:
        yield self.r.chunked_head
        yield from self.r.chunked_slices()

    def pump(self) -> None:
        """Write the large body until the transport asks to pause, or it is all written."""
        while self.stream is not None and not self.paused:
            if self.transport.is_closing():
                self.stream = None
                return
            data = next(self.stream, None)
            if data is None:
                self.stream = None
                if self.buf:
                    self.process()  # requests pipelined behind the large one
                return
            self.transport.write(data)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.pump()


def content_length(request_head: bytes) -> int | None:
    for line in request_head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return None


def serve(size: int, cpu: int | None, port_out: Any) -> None:
    """The server process: pinned to `cpu`, sends its port back, serves until terminated."""
    import uvloop

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    responses = Responses.build(size)
    payload = memoryview(b"x" * WRITE_SLICE)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: ServerProtocol(responses, payload), sock=sock)
        port_out.send(sock.getsockname()[1])
        port_out.close()
        await server.serve_forever()

    uvloop.run(main())


# Clients -----------------------------------------------------------------------------------


async def upload_body(size: int) -> AsyncIterator[memoryview]:
    """64 KiB memoryview slices of one preallocated buffer, `size` bytes in all."""
    view = memoryview(UPLOAD_BUFFER)
    sent = 0
    while sent < size:
        n = min(UPLOAD_SLICE, size - sent)
        offset = sent % len(UPLOAD_BUFFER)
        yield view[offset : offset + n]
        sent += n


class Client:
    """What a scenario needs from a client. `slot` is the task's index (raw: its connection)."""

    name = ""

    def __init__(self, base: str, responses: Responses) -> None:
        self.base = base
        self.r = responses

    async def start(self, connections: int) -> None:
        """Open the pool or session, and warm up `connections` connections."""
        await asyncio.gather(*(self.small(slot) for slot in range(connections)))

    async def small(self, slot: int) -> None:
        raise NotImplementedError

    async def download(self, path: str) -> None:
        raise NotImplementedError

    async def upload(self, size: int) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError


class RawProtocol(asyncio.BufferedProtocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.view = memoryview(bytearray(RAW_BUFFER))
        self.expected = self.received = 0
        self.done: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None
        self.paused = False
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        self.received += nbytes
        if self.received >= self.expected and self.done is not None and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        for waiter in (self.done, self.drained):
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc or ConnectionResetError("connection lost"))

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    async def exchange(self, request: bytes, expected: int, size: int = 0) -> None:
        """Send `request` (and `size` body bytes), wait for `expected` response bytes."""
        self.expected, self.received = expected, 0
        self.done = self.loop.create_future()
        self.transport.write(request)
        async for chunk in upload_body(size):
            self.transport.write(chunk)
            if self.paused:
                self.drained = self.loop.create_future()
                await self.drained
        await self.done
        if self.received != expected:
            raise AssertionError(f"raw: {self.received} bytes received, {expected} expected")


class RawClient(Client):
    name = "raw"

    async def start(self, connections: int) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.base.removeprefix("http://").split(":")
        self.conns = [
            (await loop.create_connection(lambda: RawProtocol(loop), host, int(port)))[1]
            for _ in range(connections)
        ]
        authority = self.base.removeprefix("http://").encode()

        def get(path: bytes) -> bytes:
            return b"GET %s HTTP/1.1\r\nhost: %s\r\n\r\n" % (path, authority)

        self.requests = {path: get(path.encode()) for path in ("/small", "/large", "/chunked")}
        self.upload_head = b"PUT /upload HTTP/1.1\r\nhost: %s\r\ncontent-length: %%d\r\n\r\n" % (
            authority
        )
        await super().start(connections)

    async def small(self, slot: int) -> None:
        await self.conns[slot].exchange(self.requests["/small"], len(self.r.small))

    async def download(self, path: str) -> None:
        r = self.r
        expected = r.large_length if path == "/large" else r.chunked_length
        await self.conns[0].exchange(self.requests[path], expected)

    async def upload(self, size: int) -> None:
        await self.conns[0].exchange(self.upload_head % size, len(self.r.upload), size)

    async def stop(self) -> None:
        for conn in self.conns:
            conn.transport.close()


def check(name: str, status: int, received: int, expected: int) -> None:
    if status != 200 or received != expected:
        raise AssertionError(f"{name}: status {status}, {received} bytes, {expected} expected")


class LowhaioClient(Client):
    name = "lowhaio"

    async def start(self, connections: int) -> None:
        import lowhaio

        self.request, self.close = lowhaio.Pool()
        await super().start(connections)

    async def small(self, slot: int) -> None:
        code, _, body = await self.request(b"GET", self.base + "/small")
        received = 0
        async for chunk in body:
            received += len(chunk)
        check("lowhaio", int(code), received, SMALL_BODY)

    async def download(self, path: str) -> None:
        code, _, body = await self.request(b"GET", self.base + path)
        received = 0
        async for chunk in body:
            received += len(chunk)
        check("lowhaio", int(code), received, self.r.size)

    async def upload(self, size: int) -> None:
        code, _, body = await self.request(
            b"PUT",
            self.base + "/upload",
            headers=((b"content-length", str(size).encode()),),
            body=upload_body,
            body_args=(size,),
        )
        received = 0
        async for chunk in body:
            received += len(chunk)
        check("lowhaio", int(code), received, 2)

    async def stop(self) -> None:
        await self.close()


class AiohttpClient(Client):
    name = "aiohttp"

    async def start(self, connections: int) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
        await super().start(connections)

    async def small(self, slot: int) -> None:
        async with self.session.get(self.base + "/small") as response:
            body = await response.read()
        check("aiohttp", response.status, len(body), SMALL_BODY)

    async def download(self, path: str) -> None:
        received = 0
        async with self.session.get(self.base + path) as response:
            async for chunk in response.content.iter_chunked(READ_SIZE):
                received += len(chunk)
        check("aiohttp", response.status, received, self.r.size)

    async def upload(self, size: int) -> None:
        async with self.session.put(
            self.base + "/upload", data=upload_body(size), headers={"content-length": str(size)}
        ) as response:
            body = await response.read()
        check("aiohttp", response.status, len(body), 2)

    async def stop(self) -> None:
        await self.session.close()


class HttpxClient(Client):
    name = "httpx"

    async def start(self, connections: int) -> None:
        import httpx

        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        self.client = httpx.AsyncClient(limits=limits)
        await super().start(connections)

    async def small(self, slot: int) -> None:
        response = await self.client.get(self.base + "/small")
        check("httpx", response.status_code, len(response.content), SMALL_BODY)

    async def download(self, path: str) -> None:
        received = 0
        async with self.client.stream("GET", self.base + path) as response:
            async for chunk in response.aiter_bytes():
                received += len(chunk)
        check("httpx", response.status_code, received, self.r.size)

    async def upload(self, size: int) -> None:
        response = await self.client.put(
            self.base + "/upload", content=upload_body(size), headers={"content-length": str(size)}
        )
        check("httpx", response.status_code, len(response.content), 2)

    async def stop(self) -> None:
        await self.client.aclose()


# Scenarios: each returns {metric: value} for one client, one round ---------------------------


async def s1_sequential(client: Client, duration: float) -> dict[str, float]:
    await client.start(1)
    for _ in range(100):
        await client.small(0)
    requests = 0
    start = time.perf_counter()
    deadline = start + duration
    while True:
        await client.small(0)
        requests += 1
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    await client.stop()
    return {"req/s": requests / elapsed}


async def s2_concurrent(client: Client, duration: float) -> dict[str, float]:
    await client.start(CONCURRENCY)
    await asyncio.gather(*(client.small(slot) for slot in range(CONCURRENCY)))
    start = time.perf_counter()
    deadline = start + duration

    async def worker(slot: int) -> int:
        requests = 0
        while True:
            await client.small(slot)
            requests += 1
            if time.perf_counter() >= deadline:
                return requests

    counts = await asyncio.gather(*(worker(slot) for slot in range(CONCURRENCY)))
    elapsed = time.perf_counter() - start
    await client.stop()
    return {"req/s": sum(counts) / elapsed}


async def transfers(
    client: Client, duration: float, transfer: Callable[[], Awaitable[None]]
) -> dict[str, float]:
    """One connection: a transfer to warm it up, then whole transfers for at least `duration`."""
    await client.start(1)
    await transfer()
    count = 0
    cpu, start = time.process_time(), time.perf_counter()
    deadline = start + duration
    while True:
        await transfer()
        count += 1
        if time.perf_counter() >= deadline:
            break
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await client.stop()
    moved = count * client.r.size
    return {"MB/s": moved / MB / elapsed, "CPU s/GB": cpu / (moved / 1e9)}


async def s3_large(client: Client, duration: float) -> dict[str, float]:
    return await transfers(client, duration, lambda: client.download("/large"))


async def s4_chunked(client: Client, duration: float) -> dict[str, float]:
    return await transfers(client, duration, lambda: client.download("/chunked"))


async def s5_upload(client: Client, duration: float) -> dict[str, float]:
    return await transfers(client, duration, lambda: client.upload(client.r.size))


Scenario = Callable[[Client, float], Awaitable[dict[str, float]]]


def scenarios(size: int) -> list[tuple[str, Scenario]]:
    mb = f"{size // MB} MB"
    return [
        ("S1 sequential small GETs, 1 connection", s1_sequential),
        (f"S2 small GETs, {CONCURRENCY} concurrent tasks", s2_concurrent),
        (f"S3 {mb} download, content-length", s3_large),
        (f"S4 {mb} download, chunked", s4_chunked),
        (f"S5 {mb} upload, content-length", s5_upload),
    ]


# Running and reporting ---------------------------------------------------------------------


Row = tuple[str, str, str, list[float]]  # scenario, metric, client, one value per round


def cpu_times(server_pid: int) -> tuple[float, float, float] | None:
    """Wall time, the machine's user and steal CPU time, and ours (client and server user CPU
    time), in seconds; None where /proc cannot tell (not Linux)."""
    try:
        machine = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        server = Path(f"/proc/{server_pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    user_and_steal = (int(machine[1]) + int(machine[2]) + int(machine[8])) / tick
    ours = os.times().user + int(server[11]) / tick
    return time.perf_counter(), user_and_steal, ours


def other_load(before: tuple[float, float, float] | None, server_pid: int) -> float | None:
    """How many CPUs other processes (and the hypervisor) took since `before`, on average."""
    after = cpu_times(server_pid)
    if before is None or after is None:
        return None
    wall, machine, ours = (b - a for a, b in zip(before, after, strict=True))
    return max(machine - ours, 0.0) / wall


async def measure(client: Client, scenario: Scenario, duration: float) -> dict[str, float]:
    """One measurement, bounded in time; a client that fails is closed as well as it can be."""
    try:
        async with asyncio.timeout(60 + 10 * duration):
            return await scenario(client, duration)
    except Exception:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await client.stop()
        raise


async def run_all(
    clients: list[Client], size: int, rounds: int, duration: float, server_pid: int
) -> tuple[list[Row], list[str], list[str]]:
    """The table's rows; for each scenario, how busy the rest of the machine was; failures.
    A client that fails (or hangs) in a scenario is left out of that scenario's later rounds."""
    rows: list[Row] = []
    loads, failures = [], []
    for title, scenario in scenarios(size):
        print(f"{title}: ", end="", flush=True)
        before = cpu_times(server_pid)
        results: dict[str, dict[str, list[float]]] = {client.name: {} for client in clients}
        failed: dict[str, str] = {}
        for round_ in range(rounds):
            shift = round_ % len(clients)
            for client in clients[shift:] + clients[:shift]:
                if client.name in failed:
                    continue
                gc.collect()
                try:
                    result = await measure(client, scenario, duration)
                except Exception as exc:
                    failed[client.name] = f"{type(exc).__name__}: {exc}"
                    results[client.name] = {}
                    print(f"({client.name} failed)", end="", flush=True)
                    continue
                for metric, value in result.items():
                    results[client.name].setdefault(metric, []).append(value)
            print(".", end="", flush=True)
        load = other_load(before, server_pid)
        if load is not None:
            loads.append(f"{title.split()[0]} {load:.2f}")
            print(f" other processes: {load:.2f} CPU", end="")
        print()
        metrics = dict.fromkeys(metric for result in results.values() for metric in result)
        for metric in metrics or ["-"]:
            for client in clients:
                rows.append((title, metric, client.name, results[client.name].get(metric, [])))
        failures += [f"{title.split()[0]} {name} failed: {why}" for name, why in failed.items()]
    return rows, loads, failures


def fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def table(rows: list[Row]) -> list[list[str]]:
    medians = {(s, m, c): statistics.median(values) for s, m, c, values in rows if values}
    lines = [["scenario", "metric", "client", "median", "vs raw", "range (min-max)"]]
    for scenario, metric, client, values in rows:
        if not values:
            lines.append([scenario, metric, client, "failed", "-", "-"])
            continue
        median = medians[scenario, metric, client]
        raw = medians.get((scenario, metric, "raw"))
        ratio = f"{median / raw:.2f}" if raw else "-"
        spread = f"{fmt(min(values))}-{fmt(max(values))}"
        lines.append([scenario, metric, client, fmt(median), ratio, spread])
    return lines


def text_table(lines: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    right = {3, 4}
    out = []
    for n, line in enumerate(lines):
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


def markdown_table(lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(lines[0]) + " |", "|---|---|---|--:|--:|---|"]
    out += ["| " + " | ".join(line) + " |" for line in lines[1:]]
    return "\n".join(out)


def pin() -> tuple[int | None, int | None]:
    """CPUs for the client and the server, when there are two to give (else None, None)."""
    if not hasattr(os, "sched_setaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller, shorter, fewer rounds")
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 5, quick 3)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results/latest.md")
    args = parser.parse_args()
    size = 50 * MB if args.quick else 200 * MB
    rounds = args.rounds or (3 if args.quick else 5)
    duration = 1.0 if args.quick else 2.0

    began = time.perf_counter()
    client_cpu, server_cpu = pin()
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
        pinning = f"client pinned to CPU {client_cpu}, server to CPU {server_cpu}"
    else:
        pinning = "not pinned (fewer than 2 CPUs): S1/S2 share cores with the server"

    import aiohttp

    import lowhaio

    classes: list[type[Client]] = [RawClient, LowhaioClient, AiohttpClient]
    versions = [f"lowhaio {lowhaio.__version__}", f"aiohttp {aiohttp.__version__}"]
    try:
        import httpx
    except ImportError:
        print("httpx not installed")
    else:
        classes.append(HttpxClient)
        versions.append(f"httpx {httpx.__version__}")

    context = multiprocessing.get_context("spawn")
    port_in, port_out = context.Pipe(duplex=False)
    server = context.Process(target=serve, args=(size, server_cpu, port_out), daemon=True)
    server.start()
    try:
        if not port_in.poll(30):
            raise RuntimeError("the server did not start")
        base = f"http://127.0.0.1:{port_in.recv()}"
        responses = Responses.build(size)
        clients = [cls(base, responses) for cls in classes]
        header = [
            f"Python {platform.python_version()}, client loop: {args.loop}, server: uvloop, "
            f"{', '.join(versions)}",
            f"{os.cpu_count()} CPUs, {pinning}",
            f"{rounds} rounds per scenario; in each, every client runs S1/S2 for {duration:g} s "
            f"and repeats S3-S5's {size // MB} MB transfers for at least {duration:g} s",
        ]
        print("\n".join(header), flush=True)
        coroutine = run_all(clients, size, rounds, duration, server.pid or 0)
        if args.loop == "uvloop":
            import uvloop

            rows, loads, failures = uvloop.run(coroutine)
        else:
            rows, loads, failures = asyncio.run(coroutine)
    finally:
        server.terminate()
        server.join(5)
        if server.is_alive():
            server.kill()

    notes = header[:]
    if loads:
        notes.append(
            "CPUs taken by other processes and the hypervisor, per scenario (0 on a quiet "
            f"machine; above ~0.1, re-run): {', '.join(loads)}"
        )
    notes += failures
    lines = table(rows)
    print()
    print(text_table(lines))
    print("", *notes[len(header) :], sep="\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python", "bench/bench.py", *sys.argv[1:]])
    listed = "\n".join(f"- {note}" for note in notes)
    args.out.write_text(f"# `{command}`\n\n{listed}\n\n{markdown_table(lines)}\n")
    print(f"\nwritten to {args.out} ({time.perf_counter() - began:.0f} s in all)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
