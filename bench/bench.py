"""Side-by-side benchmark: lowhaio, aiohttp (and httpx, if installed) against a raw asyncio client.

    python bench/bench.py [--quick] [--rounds N] [--loop both|asyncio|uvloop] [--only S1,S6]
                          [--out F] [--no-nginx]

A local HTTP/1.1 server runs in its own process (uvloop, a plain `asyncio.Protocol`, precomputed
responses, no HTTP library) on 127.0.0.1 and two ephemeral ports: plain HTTP, and TLS with the
test certificates in tests/certs (the clients verify them against tests/certs/ca.pem). Every
client is measured in the same run against the same server. Then, if nginx is installed (found
on PATH or as /usr/sbin/nginx; Debian's `nginx-light` will do), every scenario but S7 runs
again against nginx: one process pinned as ours is, TLS 1.3, `return 200` for /small, a file
for /large, the same file chunked, an upload read whole before the answer, and a gzip file
(see NGINX_CONF); those rows are marked [nginx] (`--no-nginx` leaves them out). Users talk to
nginx, not to our server: a gain that shows only on ours is not a gain. The clients run on
asyncio's loop and then on uvloop's (`--loop` picks one), and a last table sets lowhaio against
its targets (TARGETS) per server and loop.

- raw: the practical asyncio limit. A `BufferedProtocol` that writes precomputed request bytes
  and counts response bytes into a preallocated buffer, knowing the response length in advance.
  It parses nothing, so it is a ceiling, not a competitor. Over TLS it is the same protocol
  under `loop.create_connection(..., ssl=context)`.
- lowhaio, aiohttp, httpx: their ordinary streaming APIs, one pool or session per measurement.

Scenarios (S3-S5 and S6b move 200 MB, 50 MB with --quick):

- S1: sequential small GETs (100-byte body) on one keep-alive connection, for a fixed duration;
  req/s, and the client's CPU microseconds per request (S6a and S7 too).
- S2: 64 concurrent tasks doing small GETs through one pool or session.
- S3: a download with content-length.
- S4: the same size, chunked in 16 KiB chunks.
- S5: a streamed upload with content-length, in 64 KiB slices of one preallocated buffer.
- S6a, S6b: S1 and S3 over TLS (`--only S6` runs both). Every client gets the same kind of
  context: `lowhaio.default_ssl_context()` (system CAs, host names checked, ALPN http/1.1) with
  the test CA added.
- S7: S6a through an HTTP proxy's `CONNECT` tunnel, opened once and reused: set beside S6a, the
  cost of a request through a tunnel against a direct one. The proxy runs in the server's
  process (a third port: it answers `CONNECT` and splices bytes to the TLS port); raw opens the
  tunnel itself and then `loop.start_tls` over it.
- S8: a gzip download of the same size decoded (JSON-like lines, about 4 times smaller coded,
  compressed once by the server at its first /gzip request): lowhaio through
  `lowhaio_decompress.decompressed`, aiohttp and httpx decoding by themselves, and raw feeding
  each buffer it receives to one `zlib.decompressobj` (in pieces of 256 KiB at most: see
  `RawGzipProtocol`). In a fresh process, as S3, for its peak RSS. Rates are of decoded bytes;
  zlib's inflate is most of every client's CPU here.

S3 and S5 also measure memory: each of their measurements runs in a fresh process that imports
only what its client needs, and reports the peak RSS of that process
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`) and its baseline: the same value taken after the
imports, with the client open and one small request made (which finishes any lazy imports),
just before the first large transfer. "peak - baseline" is then what streaming cost. The fresh
processes are forked from a `multiprocessing` forkserver rather than spawned: Linux carries a
process's ru_maxrss across exec(), so a child spawned by this (larger) process would report at
least this process's own peak.

How to read the results on a noisy 2-core machine:

- Each scenario runs for several rounds, the order of the clients rotating from round to round;
  the table gives the median and the range (min-max) of the rounds. Trust a difference only when
  the ranges do not overlap, and re-run before believing a difference under ~10%.
- "vs raw" is the client's median over raw's median. raw should be the fastest (ratio <= 1 for
  rates): if another client beats it by far, the server or the machine was the bottleneck.
  For CPU s/GB and CPU us/req lower is better, so the ratio is >= 1. For memory it is the
  difference in MB (the target is an allowance over raw, not a ratio).
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
- S6a adds TLS record processing to every round trip; in S6b the server's encryption on its one
  CPU and the client's decryption set the pace, so the ratio to raw says how much a client adds
  on top of the cipher.
- Under the table, "CPUs taken by other processes" says, per scenario, how much CPU the rest of
  the machine (and the hypervisor) used meanwhile, from /proc/stat. Above ~0.1, re-run. A
  slower machine that /proc/stat does not show (a neighbour on the same physical core) shows in
  raw's CPU s/GB, which should not vary: a note says when it did.
- A client that fails or hangs in a scenario is shown as failed there, with the reason below
  the table, and the run exits with status 1 (0 otherwise).
- aiohttp reads S3/S4/S6b with `iter_chunked(65536)`, the usual idiom: with content-length its
  reads arrive in large pieces that this re-slices, which costs it more than `iter_any()` would.
- Every process that measures (and the server) first frees one 1 MiB block: see
  `settle_malloc`. Without it, the clients that allocate a bytes object per socket read ran up to
  5 times slower in S3 in a fresh process, and either way in a used one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import gc
import multiprocessing
import os
import platform
import random
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, cast

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
CERTS = Path(__file__).resolve().parent.parent / "tests/certs"  # test-only: see its README
UPLOAD_BUFFER = bytes(MiB)  # the one preallocated buffer that uploads are sliced from


def settle_malloc() -> None:
    """Free one 1 MiB block, as any long-running process soon has: glibc then raises its
    dynamic mmap threshold above the size of a socket read. Until then, each bytes object that
    a client allocates per read (asyncio's `recv`, up to 256 KiB: aiohttp, httpx) is a fresh
    mmap, faulted in page by page, which costs such a client about 5 times the CPU in S3; whether
    that happened depended on what the process had done before, and their numbers flipped
    between runs. A client that only reads into a buffer of its own (raw) does not care."""
    block = bytearray(MiB)
    del block


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
    chunked_total: int = 0  # another server's whole /chunked response, measured, if not ours

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
        if self.chunked_total:
            return self.chunked_total
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


@functools.cache
def gzip_body(size: int) -> bytes:
    """S8's body: `size` bytes of JSON-like lines (a 4 MiB block, repeated: further apart than
    gzip's 32 KiB window can see), gzip-coded at level 1, as nginx codes by default. Made by
    the server at its first /gzip request (a few seconds, within the warm-up transfer)."""
    rng = random.Random(8)
    lines, length = [], 0
    while length < 4 * MiB:
        line = b'{"id": %d, "user": "user%d", "event": "%s", "ts": %d, "path": "/items/%d"}\n' % (
            rng.randrange(10**9),
            rng.randrange(10**5),
            rng.choice((b"view", b"click", b"buy", b"share")),
            1_700_000_000 + rng.randrange(10**7),
            rng.randrange(10**4),
        )
        lines.append(line)
        length += len(line)
    block = b"".join(lines)[: 4 * MiB]
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    parts = [
        compressor.compress(block[: min(len(block), size - at)])
        for at in range(0, size, len(block))
    ]
    return b"".join([*parts, compressor.flush()])


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
            elif path == b"/gzip":
                if out:
                    self.transport.write(b"".join(out))
                del buf[:pos]
                self.stream = self.gzipped()
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

    def gzipped(self) -> Iterator[bytes | memoryview]:
        body = memoryview(gzip_body(self.r.size))
        yield head(len(body))[:-2] + b"content-encoding: gzip\r\n\r\n"
        for at in range(0, len(body), WRITE_SLICE):
            yield body[at : at + WRITE_SLICE]

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


class TunnelProtocol(asyncio.Protocol):
    """The benchmark's HTTP proxy: answers a `CONNECT` (to anywhere) with 200 and splices the
    connection to `target`, the TLS port, from then on; anything else ends the connection."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.head = b""
        self.peer: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.peer is not None:
            self.peer.write(data)
            return
        self.head += data
        if b"\r\n\r\n" in self.head:
            if not self.head.startswith(b"CONNECT "):
                self.transport.close()
                return
            self.transport.pause_reading()  # until the other side is open
            asyncio.get_running_loop().create_task(self.splice())

    async def splice(self) -> None:
        loop = asyncio.get_running_loop()
        peer, _ = await loop.create_connection(
            lambda: Splice(self.transport), "127.0.0.1", self.target
        )
        self.peer = cast(asyncio.Transport, peer)
        self.transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.peer.close()


class Splice(asyncio.Protocol):
    """The proxy's side towards the TLS port: what arrives goes back to the client."""

    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


def content_length(request_head: bytes) -> int | None:
    for line in request_head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return None


NGINX_CONF = """
daemon off;
master_process off;  # one process, pinned and metered as our server is
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {body};
    client_max_body_size 0;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    sendfile on;
    server {{
        listen 127.0.0.1:{plain};
        listen 127.0.0.1:{tls} ssl;
        ssl_certificate {certs}/server.pem;
        ssl_certificate_key {certs}/server.key;
        ssl_protocols TLSv1.3;
        location = /small {{ return 200 "{small}"; }}
        location = /large {{ alias {d}/large; default_type application/octet-stream; }}
        # The same file chunked: something appended after it (nothing) leaves nginx no length,
        # and each 16 KiB buffer read from the file goes out as one chunk.
        location = /chunked {{
            alias {d}/large;
            default_type application/octet-stream;
            sendfile off;
            output_buffers 1 16k;
            addition_types *;
            add_after_body /nothing;
        }}
        location = /nothing {{ internal; return 200 ""; }}
        # An upload read whole before the answer: `return` alone answers at once and discards
        # the body (aiohttp then stops sending: 15 GB/s of nothing). Mirroring with the body
        # makes nginx read it first (into a file on tmpfs); PUT on a file is then refused with
        # 405, which is turned into the 200 "ok" that our server sends.
        location = /upload {{
            mirror /mirrored;
            mirror_request_body on;
            error_page 405 =200 @ok;
        }}
        location = /mirrored {{ internal; return 204; }}
        location @ok {{ return 200 "ok"; }}
        location = /gzip {{ alias {d}/gzip; gzip_static always; default_type text/plain; }}
    }}
}}
"""
# What nginx cannot do as this benchmark asks: a tunnel to itself (S7).
NGINX_SKIPS = {"S7"}


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None
    )


@contextlib.contextmanager
def nginx(
    size: int, cpu: int | None, gzip: bool
) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    """nginx, one process pinned to `cpu`, serving plain HTTP and TLS (1.3, the test
    certificates) on two free ports of 127.0.0.1: /small, /large (a file), /chunked, /upload
    and, if `gzip` (S8 runs: compressing its file takes seconds), /gzip."""
    binary = find_nginx()
    assert binary is not None
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None  # uploads go to memory, not disk
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory(dir=shm) as body:
        Path(folder, "large").write_bytes(b"x" * size)
        if gzip:
            Path(folder, "gzip.gz").write_bytes(gzip_body(size))
        with listening_socket() as a, listening_socket() as b:  # free ports, let go for nginx
            plain, tls = a.getsockname()[1], b.getsockname()[1]
        conf = Path(folder, "nginx.conf")
        small = "x" * SMALL_BODY
        conf.write_text(
            NGINX_CONF.format(d=folder, body=body, plain=plain, tls=tls, certs=CERTS, small=small)
        )
        process = subprocess.Popen(
            [binary, "-c", str(conf), "-p", folder, "-e", f"{folder}/error.log"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", tls), timeout=1).close()
                    break
                except OSError:
                    if process.poll() is None and time.monotonic() < deadline:
                        time.sleep(0.05)
                        continue
                process.kill()
                raise RuntimeError(f"nginx did not start: {process.communicate()[1]!r}")
            yield process, plain, tls
        finally:
            process.terminate()
            process.wait(10)


def nginx_responses(size: int, plain: int) -> Responses:
    """Our responses, but with nginx's heads, and the length of its chunked body (these
    lengths are what raw waits for)."""

    def fetch(request: bytes) -> tuple[bytes, int]:
        """The head of nginx's response and the whole response's length (its body read, to
        the last chunk if chunked)."""
        with socket.create_connection(("127.0.0.1", plain)) as sock:
            sock.sendall(request)
            data = bytearray()
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            head = bytes(data[: data.index(b"\r\n\r\n") + 4])
            if b"transfer-encoding: chunked" in head.lower():
                while not data.endswith(b"\r\n0\r\n\r\n"):  # its 16 KiB chunks are all x
                    data += sock.recv(1 << 20)
                return head, len(data)
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            received = len(data)
            while received < len(head) + length:
                received += len(sock.recv(1 << 20))
            return head, len(head) + length

    host = b"host: 127.0.0.1\r\n"
    small_head, _ = fetch(b"GET /small HTTP/1.1\r\n" + host + b"\r\n")
    large_head, _ = fetch(b"GET /large HTTP/1.1\r\n" + host + b"\r\n")
    _, chunked_total = fetch(b"GET /chunked HTTP/1.1\r\n" + host + b"\r\n")
    upload_head, _ = fetch(b"PUT /upload HTTP/1.1\r\n" + host + b"content-length: 1\r\n\r\nx")
    return dataclasses.replace(
        Responses.build(size),
        small=small_head + b"x" * SMALL_BODY,
        upload=upload_head + b"ok",
        large_head=large_head,
        chunked_total=chunked_total,
    )


def listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def serve(size: int, cpu: int | None, ports_out: Any) -> None:
    """The server process: pinned to `cpu`, sends its plain and TLS ports back, serves until
    terminated."""
    import uvloop

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    settle_malloc()  # its transport copies what the kernel did not take at once
    responses = Responses.build(size)
    payload = memoryview(b"x" * WRITE_SLICE)
    plain, tls, proxy = listening_socket(), listening_socket(), listening_socket()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(CERTS / "server.pem", CERTS / "server.key")
    context.set_alpn_protocols(["http/1.1"])

    async def main() -> None:
        loop = asyncio.get_running_loop()
        servers = [
            await loop.create_server(lambda: ServerProtocol(responses, payload), sock=plain),
            await loop.create_server(
                lambda: ServerProtocol(responses, payload), sock=tls, ssl=context
            ),
            await loop.create_server(lambda: TunnelProtocol(tls.getsockname()[1]), sock=proxy),
        ]
        ports_out.send(tuple(sock.getsockname()[1] for sock in (plain, tls, proxy)))
        ports_out.close()
        await asyncio.gather(*(server.serve_forever() for server in servers))

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


def client_ssl_context() -> ssl.SSLContext:
    """What every client verifies the TLS server with: lowhaio's default context (system CAs,
    host names checked, ALPN http/1.1) and the test CA."""
    import lowhaio

    context = lowhaio.default_ssl_context()
    context.load_verify_locations(CERTS / "ca.pem")
    return context


class Client:
    """What a scenario needs from a client. `slot` is the task's index (raw: its connection).
    `base` is `http://127.0.0.1:port` or, for TLS, `https://127.0.0.1:port`; `proxy`, if set,
    the HTTP proxy to go through."""

    name = ""

    def __init__(self, base: str, responses: Responses, proxy: str | None = None) -> None:
        self.base = base
        self.proxy = proxy
        self.tls = base.startswith("https://")
        self.r = responses
        self.measure_memory = False  # set in a fresh process: see `transfers`

    async def start(self, connections: int) -> None:
        """Open the pool or session, and warm up `connections` connections."""
        await asyncio.gather(*(self.small(slot) for slot in range(connections)))

    async def small(self, slot: int) -> None:
        raise NotImplementedError

    async def download(self, path: str) -> None:
        raise NotImplementedError

    async def upload(self, size: int) -> None:
        raise NotImplementedError

    async def download_gzip(self) -> None:
        """S8: GET /gzip, its body decoded (`self.r.size` bytes)."""
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


class RawGzipProtocol(RawProtocol):
    """S8's raw client: what comes after the head goes through one zlib decompress object, as
    it is received, in pieces of at most RAW_BUFFER. Unbounded, each 256 KiB read decoded to a
    bytes object of over 1 MB, past glibc's mmap threshold even after `settle_malloc`: a fresh
    mmap faulted in page by page each time, which cost raw 1.5 times the CPU of the others."""

    async def fetch(self, request: bytes, expected: int) -> None:
        self.head, self.decoded, self.decoder = b"", 0, zlib.decompressobj(31)
        self.done = self.loop.create_future()
        self.transport.write(request)
        await self.done
        if self.decoded != expected:
            raise AssertionError(f"raw: {self.decoded} bytes decoded, {expected} expected")

    def buffer_updated(self, nbytes: int) -> None:
        data = self.view[:nbytes]
        if self.head is not None:  # until the end of the head
            self.head += bytes(data)
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            data, self.head = memoryview(self.head)[end + 4 :], None
        decoder = self.decoder
        while data:  # in pieces of at most RAW_BUFFER, as a client that streams hands them out
            self.decoded += len(decoder.decompress(data, RAW_BUFFER))
            data = decoder.unconsumed_tail
        if self.decoder.eof and self.done is not None and not self.done.done():
            self.done.set_result(None)


class RawClient(Client):
    name = "raw"

    async def start(self, connections: int) -> None:
        loop = asyncio.get_running_loop()
        authority = self.base.split("://", 1)[1]
        host, port = authority.split(":")
        context = client_ssl_context() if self.tls else None
        self.conns: list[RawProtocol] = []
        for _ in range(connections):
            if self.proxy is None:
                _, conn = await loop.create_connection(
                    lambda: RawProtocol(loop), host, int(port), ssl=context
                )
            else:
                conn = await self.tunnel(loop, authority, context)
            self.conns.append(conn)

        def get(path: bytes) -> bytes:
            return b"GET %s HTTP/1.1\r\nhost: %s\r\n\r\n" % (path, authority.encode())

        self.requests = {path: get(path.encode()) for path in ("/small", "/large", "/chunked")}
        self.upload_head = b"PUT /upload HTTP/1.1\r\nhost: %s\r\ncontent-length: %%d\r\n\r\n" % (
            authority.encode()
        )
        await super().start(connections)

    async def tunnel(
        self, loop: asyncio.AbstractEventLoop, authority: str, context: ssl.SSLContext | None
    ) -> RawProtocol:
        """A connection through the proxy's tunnel, TLS inside it."""
        assert self.proxy is not None
        assert context is not None
        host, port = self.proxy.split("://", 1)[1].split(":")
        _, conn = await loop.create_connection(lambda: RawProtocol(loop), host, int(port))
        established = b"HTTP/1.1 200 Connection established\r\n\r\n"
        await conn.exchange(b"CONNECT %s HTTP/1.1\r\n\r\n" % authority.encode(), len(established))
        server_hostname = authority.split(":")[0]
        transport = await loop.start_tls(
            conn.transport, conn, context, server_hostname=server_hostname
        )
        assert transport is not None
        conn.transport = transport
        return conn

    async def small(self, slot: int) -> None:
        await self.conns[slot].exchange(self.requests["/small"], len(self.r.small))

    async def download(self, path: str) -> None:
        r = self.r
        expected = r.large_length if path == "/large" else r.chunked_length
        await self.conns[0].exchange(self.requests[path], expected)

    async def upload(self, size: int) -> None:
        await self.conns[0].exchange(self.upload_head % size, len(self.r.upload), size)

    async def download_gzip(self) -> None:
        # A connection of its own, with a protocol that decodes; closed by stop() with the rest.
        authority = self.base.split("://", 1)[1]
        if not isinstance(self.conns[-1], RawGzipProtocol):
            loop = asyncio.get_running_loop()
            host, port = authority.split(":")
            context = client_ssl_context() if self.tls else None
            _, conn = await loop.create_connection(
                lambda: RawGzipProtocol(loop), host, int(port), ssl=context
            )
            self.conns.append(conn)
        request = b"GET /gzip HTTP/1.1\r\nhost: %s\r\n\r\n" % authority.encode()
        await self.conns[-1].fetch(request, self.r.size)  # type: ignore[attr-defined]

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

        self.request, self.close = lowhaio.Pool(
            get_ssl_context=client_ssl_context, proxy=self.proxy
        )
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

    async def download_gzip(self) -> None:
        from lowhaio_decompress import decompressed

        code, _, body = await decompressed(self.request)(b"GET", self.base + "/gzip")
        received = 0
        async for chunk in body:
            received += len(chunk)
        check("lowhaio", int(code), received, self.r.size)

    async def stop(self) -> None:
        await self.close()


class AiohttpClient(Client):
    name = "aiohttp"

    async def start(self, connections: int) -> None:
        import aiohttp

        verify = client_ssl_context() if self.tls else True
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100, ssl=verify), proxy=self.proxy
        )
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

    async def download_gzip(self) -> None:
        received = 0
        async with self.session.get(self.base + "/gzip") as response:
            async for chunk in response.content.iter_chunked(READ_SIZE):
                received += len(chunk)
        check("aiohttp", response.status, received, self.r.size)

    async def stop(self) -> None:
        await self.session.close()


class HttpxClient(Client):
    name = "httpx"

    async def start(self, connections: int) -> None:
        import httpx

        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        verify = client_ssl_context() if self.tls else True
        self.client = httpx.AsyncClient(limits=limits, verify=verify, proxy=self.proxy)
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

    async def download_gzip(self) -> None:
        received = 0
        async with self.client.stream("GET", self.base + "/gzip") as response:
            async for chunk in response.aiter_bytes():
                received += len(chunk)
        check("httpx", response.status_code, received, self.r.size)

    async def stop(self) -> None:
        await self.client.aclose()


# Scenarios: each returns {metric: value} for one client, one round ---------------------------


async def s1_sequential(client: Client, duration: float) -> dict[str, float]:
    await client.start(1)
    for _ in range(100):
        await client.small(0)
    requests = 0
    cpu, start = time.process_time(), time.perf_counter()
    deadline = start + duration
    while True:
        await client.small(0)
        requests += 1
        if time.perf_counter() >= deadline:
            break
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await client.stop()
    # CPU per request is the client's own cost, whatever the server or a proxy adds to the wait.
    return {"req/s": requests / elapsed, "CPU us/req": cpu / requests * 1e6}


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


PEAK_RSS, RSS_GROWTH = "peak RSS, MB", "peak - baseline, MB"


def peak_rss() -> float:
    """This process's peak resident set size so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB * (1 if sys.platform == "darwin" else 1024)  # bytes on macOS, else KiB


async def transfers(
    client: Client, duration: float, transfer: Callable[[], Awaitable[None]]
) -> dict[str, float]:
    """One connection: a transfer to warm it up, then whole transfers for at least `duration`.
    In a fresh process (`client.measure_memory`), also the peak RSS and how far streaming raised
    it above what it was after the imports and the connection's first small request."""
    await client.start(1)
    baseline = peak_rss()
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
    result = {"MB/s": moved / MB / elapsed, "CPU s/GB": cpu / (moved / 1e9)}
    if client.measure_memory:
        peak = peak_rss()
        result |= {PEAK_RSS: peak, RSS_GROWTH: peak - baseline}
    return result


async def s3_large(client: Client, duration: float) -> dict[str, float]:
    return await transfers(client, duration, lambda: client.download("/large"))


async def s4_chunked(client: Client, duration: float) -> dict[str, float]:
    return await transfers(client, duration, lambda: client.download("/chunked"))


async def s5_upload(client: Client, duration: float) -> dict[str, float]:
    return await transfers(client, duration, lambda: client.upload(client.r.size))


async def s8_gzip(client: Client, duration: float) -> dict[str, float]:
    return await transfers(client, duration, client.download_gzip)


@dataclass(frozen=True)
class Scenario:
    key: str  # what --only names: "S6" selects S6a and S6b
    title: str
    run: Callable[[Client, float], Awaitable[dict[str, float]]]
    tls: bool = False
    proxied: bool = False  # through the proxy's CONNECT tunnel
    isolated: bool = False  # each measurement in a fresh process, which reports its peak RSS


def scenarios(size: int) -> list[Scenario]:
    mb = f"{size // MB} MB"
    return [
        Scenario("S1", "S1 sequential small GETs, 1 connection", s1_sequential),
        Scenario("S2", f"S2 small GETs, {CONCURRENCY} concurrent tasks", s2_concurrent),
        Scenario("S3", f"S3 {mb} download, content-length", s3_large, isolated=True),
        Scenario("S4", f"S4 {mb} download, chunked", s4_chunked),
        Scenario("S5", f"S5 {mb} upload, content-length", s5_upload, isolated=True),
        Scenario("S6a", "S6a TLS: sequential small GETs, 1 connection", s1_sequential, tls=True),
        Scenario("S6b", f"S6b TLS: {mb} download, content-length", s3_large, tls=True),
        Scenario("S7", "S7 S6a through a CONNECT tunnel", s1_sequential, tls=True, proxied=True),
        Scenario("S8", f"S8 {mb} gzip download, decoded", s8_gzip, isolated=True),
    ]


CLIENTS: dict[str, type[Client]] = {
    cls.name: cls for cls in (RawClient, LowhaioClient, AiohttpClient, HttpxClient)
}


# Running and reporting ---------------------------------------------------------------------


class Row(NamedTuple):
    scenario: str  # its title, with the server and loop in brackets if not ours or the only one
    metric: str
    client: str
    values: list[float]  # one per round
    key: str  # S1 .. S8
    where: str  # the server ("ours" or "nginx") and the loop


# lowhaio's targets, as ratios to raw's median in the same run: (metric, at least).
TARGETS = {
    "S1": ("req/s", 0.70),
    "S2": ("req/s", 0.50),
    "S3": ("MB/s", 0.90),
    "S4": ("MB/s", 0.80),
    "S5": ("MB/s", 0.90),
    "S6a": ("req/s", 0.80),
    "S6b": ("MB/s", 0.95),
}
RSS_ALLOWANCE = 8.0  # MB over raw's peak RSS while streaming (S3, S5)
S3_CPU = 0.3  # CPU s/GB at most in S3


def loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


class LoadMeter:
    """How many CPUs other processes (and the hypervisor) took while a scenario ran: the
    machine's user, nice and steal time from /proc/stat, minus the user time of this process,
    of the server and of the measurement processes (the forkserver's children, not ours)."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.measured_elsewhere = 0.0  # user CPU seconds of the measurement processes so far
        self.before: tuple[float, float, float] | None = None

    def sample(self) -> tuple[float, float, float] | None:
        """Wall time, the machine's CPU time, and ours, in seconds; None where /proc cannot
        tell (not Linux)."""
        try:
            machine = Path("/proc/stat").read_text().split("\n", 1)[0].split()
            server = Path(f"/proc/{self.server_pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        tick = os.sysconf("SC_CLK_TCK")
        user_and_steal = (int(machine[1]) + int(machine[2]) + int(machine[8])) / tick
        times = os.times()
        ours = times.user + times.children_user + int(server[11]) / tick
        return time.perf_counter(), user_and_steal, ours + self.measured_elsewhere

    def start(self) -> None:
        self.before = self.sample()

    def other_load(self) -> float | None:
        after = self.sample()
        if self.before is None or after is None:
            return None
        wall, machine, ours = (b - a for a, b in zip(self.before, after, strict=True))
        return max(machine - ours, 0.0) / wall


async def measure(client: Client, scenario: Scenario, duration: float) -> dict[str, float]:
    """One measurement, bounded in time; a client that fails is closed as well as it can be."""
    try:
        async with asyncio.timeout(60 + 10 * duration):
            return await scenario.run(client, duration)
    except Exception:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await client.stop()
        raise


def measure_in_child(
    name: str, key: str, base: str, responses: Responses, duration: float, loop: str, out: Any
) -> None:
    """A fresh process's measurement: forked from the forkserver, it starts with none of the
    clients' libraries imported and with its own ru_maxrss. Sends back (result, error, CPU)."""
    settle_malloc()
    client = CLIENTS[name](base, responses)
    client.measure_memory = True
    scenario = next(scenario for scenario in scenarios(responses.size) if scenario.key == key)
    try:
        with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
            result = runner.run(measure(client, scenario, duration))
    except Exception as exc:
        out.send((None, f"{type(exc).__name__}: {exc}", os.times().user))
    else:
        out.send((result, None, os.times().user))
    out.close()


def measure_isolated(
    client: Client, scenario: Scenario, duration: float, loop: str, meter: LoadMeter
) -> dict[str, float]:
    """`measure` in a fresh process (see `measure_in_child`)."""
    context = multiprocessing.get_context("forkserver")
    result_in, result_out = context.Pipe(duplex=False)
    args = (client.name, scenario.key, client.base, client.r, duration, loop, result_out)
    child = context.Process(target=measure_in_child, args=args, daemon=True)
    child.start()
    result_out.close()
    try:
        if not result_in.poll(90 + 10 * duration):
            raise TimeoutError(f"{client.name}: no result from the measurement process")
        answer: tuple[dict[str, float] | None, str | None, float] = result_in.recv()
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join()
    result, error, cpu = answer  # (recv raised EOFError if the process died)
    meter.measured_elsewhere += cpu
    if result is None:
        raise RuntimeError(error)
    return result


@dataclass
class Target:
    """A server the scenarios run against: its name in the table (empty for ours), its URLs
    (plain, TLS and, for ours, the proxy), its responses, and what measures the rest's load."""

    name: str
    bases: tuple[str, ...]
    responses: Responses
    meter: LoadMeter


def run_all(
    classes: list[type[Client]],
    target: Target,
    chosen: list[Scenario],
    rounds: int,
    duration: float,
    loop: str,
    where: str,
    label: str,
) -> tuple[list[Row], list[str], list[str]]:
    """The table's rows; for each scenario, how busy the rest of the machine was; failures.
    A client that fails (or hangs) in a scenario is left out of that scenario's later rounds.
    `where` names the server and loop; `label`, if any, is added to the titles."""
    rows: list[Row] = []
    loads, failures = [], []
    bases, responses, meter = target.bases, target.responses, target.meter
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        for scenario in chosen:
            if label:
                scenario = dataclasses.replace(scenario, title=f"{scenario.title} [{label}]")
            print(f"{scenario.title}: ", end="", flush=True)
            base = bases[1] if scenario.tls else bases[0]
            proxy = bases[2] if scenario.proxied else None
            clients = [cls(base, responses, proxy) for cls in classes]
            meter.start()
            results: dict[str, dict[str, list[float]]] = {client.name: {} for client in clients}
            failed: dict[str, str] = {}
            for round_ in range(rounds):
                shift = round_ % len(clients)
                for client in clients[shift:] + clients[:shift]:
                    if client.name in failed:
                        continue
                    gc.collect()
                    try:
                        if scenario.isolated:
                            result = measure_isolated(client, scenario, duration, loop, meter)
                        else:
                            result = runner.run(measure(client, scenario, duration))
                    except Exception as exc:
                        failed[client.name] = f"{type(exc).__name__}: {exc}"
                        results[client.name] = {}
                        print(f"({client.name} failed)", end="", flush=True)
                        continue
                    for metric, value in result.items():
                        results[client.name].setdefault(metric, []).append(value)
                print(".", end="", flush=True)
            load = meter.other_load()
            if load is not None:
                loads.append(f"{scenario.key}{' ' + label if label else ''} {load:.2f}")
                print(f" other processes: {load:.2f} CPU", end="")
            print()
            metrics = dict.fromkeys(metric for result in results.values() for metric in result)
            for metric in metrics or ["-"]:
                for client in clients:
                    values = results[client.name].get(metric, [])
                    row = Row(scenario.title, metric, client.name, values, scenario.key, where)
                    rows.append(row)
            at = f"{scenario.key}{' ' + label if label else ''}"
            failures += [f"{at} {name} failed: {why}" for name, why in failed.items()]
    return rows, loads, failures


def slowdowns(rows: list[Row]) -> list[str]:
    """raw does the same work per GB in every round: when its CPU s/GB varies between rounds,
    the machine itself ran slower for a while, which /proc/stat does not show (a neighbour on
    the same physical core, a lower clock)."""
    notes = []
    for scenario, metric, client, values, *_ in rows:
        if client == "raw" and metric == "CPU s/GB" and values and max(values) > 1.3 * min(values):
            notes.append(
                f"{scenario.split()[0]}: raw's CPU s/GB varied {max(values) / min(values):.1f}x "
                f"between rounds ({fmt(min(values))}-{fmt(max(values))}): the machine slowed "
                "down for a while; re-run it"
            )
    return notes


def fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def table(rows: list[Row]) -> list[list[str]]:
    medians = {(s, m, c): statistics.median(values) for s, m, c, values, *_ in rows if values}
    lines = [["scenario", "metric", "client", "median", "vs raw", "range (min-max)"]]
    for scenario, metric, client, values, *_ in rows:
        if not values:
            lines.append([scenario, metric, client, "failed", "-", "-"])
            continue
        median = medians[scenario, metric, client]
        raw = medians.get((scenario, metric, "raw"))
        if metric in (PEAK_RSS, RSS_GROWTH):  # an allowance over raw: the difference
            median_text, spread = f"{median:.1f}", f"{min(values):.1f}-{max(values):.1f}"
            ratio = "-" if raw is None else f"{median - raw:+.1f} MB"
        else:
            median_text, spread = fmt(median), f"{fmt(min(values))}-{fmt(max(values))}"
            ratio = f"{median / raw:.2f}" if raw else "-"
        lines.append([scenario, metric, client, median_text, ratio, spread])
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


def target_table(rows: list[Row]) -> list[list[str]]:
    """lowhaio against its targets: a line per target, a column per server and loop; "missed"
    where it falls short. Empty if no scenario with a target ran."""
    medians = {
        (row.key, row.where, row.metric, row.client): statistics.median(row.values)
        for row in rows
        if row.values
    }
    wheres = list(dict.fromkeys(row.where for row in rows))
    checks: list[tuple[str, str, str, Callable[[float, float], tuple[str, bool]]]] = []
    for key, (metric, least) in TARGETS.items():

        def ratio(m: float, r: float, least: float = least) -> tuple[str, bool]:
            return f"{m / r:.2f}", m >= least * r

        checks.append((f"{key} {metric} >= {least:.2f} x raw", key, metric, ratio))
    checks.append(
        (f"S3 CPU s/GB <= {S3_CPU}", "S3", "CPU s/GB", lambda m, r: (f"{m:.3f}", m <= S3_CPU))
    )
    for key in ("S3", "S5"):
        checks.append(
            (
                f"{key} {PEAK_RSS} <= raw + {RSS_ALLOWANCE:g}",
                key,
                PEAK_RSS,
                lambda m, r: (f"{m - r:+.1f}", m - r <= RSS_ALLOWANCE),
            )
        )
    lines = [["lowhaio's target", *wheres]]
    for title, key, metric, judge in checks:
        cells = []
        for where in wheres:
            ours, raw = (medians.get((key, where, metric, c)) for c in ("lowhaio", "raw"))
            if ours is None or raw is None:
                cells.append("-")
                continue
            text, met = judge(ours, raw)
            cells.append(text if met else f"{text} missed")
        if any(cell != "-" for cell in cells):
            lines.append([title, *cells])
    return lines if len(lines) > 1 else []


def markdown_table(lines: list[list[str]]) -> str:
    align = (
        "|---|---|---|--:|--:|---|" if lines[0][0] == "scenario" else "|---" * len(lines[0]) + "|"
    )
    out = ["| " + " | ".join(lines[0]) + " |", align]
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
    parser.add_argument(
        "--loop", choices=("both", "asyncio", "uvloop"), default="both", help="the clients' loop"
    )
    parser.add_argument("--only", help="scenarios to run, e.g. S1,S6 (S6 is S6a and S6b)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results/latest.md")
    parser.add_argument(
        "--no-nginx", dest="nginx", action="store_false", help="only our server, not nginx too"
    )
    args = parser.parse_args()
    size = 50 * MB if args.quick else 200 * MB
    rounds = args.rounds or (3 if args.quick else 5)
    duration = 1.0 if args.quick else 2.0
    chosen = scenarios(size)
    if args.only:
        wanted = {name.strip().upper() for name in args.only.split(",")} - {""}
        names = {s: {s.key.upper(), s.key[:2]} for s in chosen}  # S6a answers to S6 too
        if not wanted or not wanted <= set().union(*names.values()):
            parser.error(f"--only {args.only}: the scenarios are S1 to S8, S6a and S6b")
        chosen = [s for s in chosen if names[s] & wanted]

    began = time.perf_counter()
    settle_malloc()
    client_cpu, server_cpu = pin()
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})  # inherited by the measurement processes
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
    ports_in, ports_out = context.Pipe(duplex=False)
    server = context.Process(target=serve, args=(size, server_cpu, ports_out), daemon=True)
    server.start()
    try:
        if not ports_in.poll(30):
            raise RuntimeError("the server did not start")
        plain, tls, proxy = ports_in.recv()
        bases = (
            f"http://127.0.0.1:{plain}",
            f"https://127.0.0.1:{tls}",
            f"http://127.0.0.1:{proxy}",
        )
        nginx_found = find_nginx() if args.nginx else None
        servers = "uvloop" + (" and nginx (1 process, TLS 1.3)" if nginx_found else "")
        loops = ["asyncio", "uvloop"] if args.loop == "both" else [args.loop]
        header = [
            f"Python {platform.python_version()}, client loop: {' and '.join(loops)}, servers: "
            f"{servers}, {', '.join(versions)}",
            f"{os.cpu_count()} CPUs, {pinning}",
            f"{rounds} rounds per scenario; in each, every client runs S1/S2/S6a/S7 for "
            f"{duration:g} s and repeats S3-S5/S6b/S8's {size // MB} MB transfers for at least "
            f"{duration:g} s; S3, S5 and S8 each in a fresh process, whose peak RSS is shown",
        ]
        if args.nginx and not nginx_found:
            header.append(
                "nginx not found: its rows are left out (on Debian: apt-get install nginx-light)"
            )
        print("\n".join(header), flush=True)
        targets = [Target("", bases, Responses.build(size), LoadMeter(server.pid or 0))]
        on_nginx = [scenario for scenario in chosen if scenario.key not in NGINX_SKIPS]
        with contextlib.ExitStack() as stack:
            if nginx_found and on_nginx:
                process, plain, tls = stack.enter_context(
                    nginx(size, server_cpu, gzip=any(s.key == "S8" for s in on_nginx))
                )
                urls = (f"http://127.0.0.1:{plain}", f"https://127.0.0.1:{tls}")
                meter = LoadMeter(process.pid)
                targets.append(Target("nginx", urls, nginx_responses(size, plain), meter))
            rows: list[Row] = []
            loads: list[str] = []
            failures: list[str] = []
            for loop in loops:
                for target in targets:
                    label = ", ".join(filter(None, [target.name, loop if len(loops) > 1 else ""]))
                    where = f"{target.name or 'ours'}, {loop}"
                    on = on_nginx if target.name else chosen
                    more = run_all(classes, target, on, rounds, duration, loop, where, label)
                    rows, loads, failures = rows + more[0], loads + more[1], failures + more[2]
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
    notes += slowdowns(rows) + failures
    lines, goals = table(rows), target_table(rows)
    print()
    print(text_table(lines))
    if goals:
        print("", text_table(goals), sep="\n")
    print("", *notes[len(header) :], sep="\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python", "bench/bench.py", *sys.argv[1:]])
    listed = "\n".join(f"- {note}" for note in notes)
    goals_text = f"{markdown_table(goals)}\n\n" if goals else ""
    args.out.write_text(f"# `{command}`\n\n{listed}\n\n{goals_text}{markdown_table(lines)}\n")
    print(f"\nwritten to {args.out} ({time.perf_counter() - began:.0f} s in all)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
