"""A faulty HTTP/1.1 server for the soak test, run in its own process, and the plan it follows.

Run as `python soak_server.py SEED`: it listens on an ephemeral port of 127.0.0.1, prints
`PORT <n>` on a line, and serves until its stdin closes (so it dies with the test) or it is
killed. Imported, it gives the test what both sides must agree on, with nothing random left
to chance: the bytes of every body, and `plan`, the fault the server applies to each attempt.

Requests (the numbers are the test's request number `n` and sizes in bytes):
- `GET /get/<n>/<size>`: `get_body(n, size)`.
- `POST /echo/<n>`: the request body back; `POST /hash/<n>`: its SHA-256, in hex.
- `GET /stats`: JSON `{"seen": {n: attempts}, "open": connections, "faults": {kind: count}}`.

The fault for the `attempt`-th request for `n` that reaches the server is `plan(seed, n,
attempt)`, a pure function, so the test can tell afterwards what each of its requests met:
mostly a correct answer (framed by content-length, chunked with or without trailers, or until
close), else a close before answering, a reset (SO_LINGER 0) at a random byte, a stall (no
answer, or one that stops part way), or a body cut short and then closed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import socket
import struct
import sys
import threading
from collections import Counter
from dataclasses import dataclass

MAX_SIZE = 256 * 1024
# Bodies are slices of one pseudo-random buffer, at an offset that depends on the request:
# a response to another request, or bytes shifted or repeated, cannot compare equal.
_BYTES = random.Random(0x50A4).randbytes(2 * MAX_SIZE)

# How often each fault happens, in order; the rest are correct answers.
FAULTS = (("close", 0.05), ("reset", 0.05), ("stall", 0.02), ("truncate", 0.06))


def get_body(n: int, size: int) -> bytes:
    offset = (n * 104_729) % MAX_SIZE
    return _BYTES[offset : offset + size]


def post_body(n: int, size: int) -> bytes:
    offset = (n * 7_919 + 4_099) % MAX_SIZE
    return _BYTES[offset : offset + size]


def trailer(n: int) -> tuple[bytes, bytes]:
    return (b"x-trailer", b"%d" % n)


@dataclass(frozen=True)
class Fault:
    """What the server does with one request."""

    kind: str  # "ok", "close", "reset", "stall" or "truncate"
    framing: str  # "length", "chunked" or "eof" (until close: correct answers only)
    trailers: bool  # chunked: send a trailer field
    close_after: str  # a correct answer: "" (keep-alive), "announced" or "silent"
    early: bool  # close or stall before reading the request body
    cut: float  # where a reset, stall or truncation stops the response, 0 <= cut < 1
    pieces: int  # the response is written in this many pieces...
    pause: bool  # ... with a short pause between them
    rng_seed: int  # for chunk sizes


def plan(seed: int, n: int, attempt: int) -> Fault:
    rng = random.Random(f"{seed}/server/{n}/{attempt}")
    draw = rng.random()
    kind = "ok"
    for name, share in FAULTS:
        if draw < share:
            kind = name
            break
        draw -= share
    framing = "chunked" if rng.random() < 0.4 else "length"
    if kind == "ok" and rng.random() < 0.05:
        framing = "eof"
    close_after = ""
    if kind == "ok":
        draw = rng.random()
        close_after = "announced" if draw < 0.02 else "silent" if draw < 0.04 else ""
    return Fault(
        kind=kind,
        framing=framing,
        trailers=rng.random() < 0.3,
        close_after=close_after,
        early=rng.random() < 0.5,
        # A stall stops before the first byte half the time: no answer at all.
        cut=0.0 if kind == "stall" and rng.random() < 0.5 else rng.random(),
        pieces=rng.choice((1, 1, 2, 3, 8)),
        pause=rng.random() < 0.1,
        rng_seed=rng.getrandbits(32),
    )


def response(n: int, body: bytes, fault: Fault) -> tuple[bytes, bytes]:
    """The response's head and its body as framed on the wire."""
    rng = random.Random(fault.rng_seed)
    framing = fault.framing
    if fault.kind == "truncate" and framing == "length" and not body:
        framing = "chunked"  # so that there are body bytes to cut
    lines = [b"HTTP/1.1 200 OK", b"x-n: %d" % n]
    if fault.close_after == "announced" or framing == "eof":
        lines.append(b"connection: close")
    if framing == "length":
        lines.append(b"content-length: %d" % len(body))
        wire = body
    elif framing == "eof":
        wire = body
    else:
        lines.append(b"transfer-encoding: chunked")
        pieces = []
        at = 0
        while at < len(body):
            size = min(len(body) - at, rng.choice((1, 100, 4096, 16384, 65536)))
            extension = b";x=y" if rng.random() < 0.1 else b""
            pieces += (b"%x%s\r\n" % (size, extension), body[at : at + size], b"\r\n")
            at += size
        pieces.append(b"0\r\n")
        if fault.trailers:
            pieces.append(b"%s: %s\r\n" % trailer(n))
        pieces.append(b"\r\n")
        wire = b"".join(pieces)
    return b"\r\n".join(lines) + b"\r\n\r\n", wire


class FaultyServer:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.seen: Counter[int] = Counter()  # requests that reached the server, by n
        self.faults: Counter[str] = Counter()
        self.open = 0  # connections open now

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            while await self.exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client closed or reset the connection: normal after its timeouts
        finally:
            self.open -= 1
            writer.close()

    async def exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; whether to read another from the connection."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        request_line, *fields = head[:-4].split(b"\r\n")
        method, target, _ = request_line.split(b" ")
        headers = dict(field.lower().split(b": ", 1) for field in fields)
        if target == b"/stats":
            await self.send_stats(writer)
            return False
        _, route, number, *rest = target.split(b"/")
        n = int(number)
        fault = plan(self.seed, n, self.seen[n])
        self.seen[n] += 1
        self.faults[fault.kind] += 1
        has_body = method == b"POST"
        if fault.early and has_body and fault.kind in ("close", "stall"):
            return await self.fail_early(reader, writer, fault)
        if has_body:
            if headers.get(b"expect") == b"100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            received = await read_body(reader, headers)
            body = received if route == b"echo" else hashlib.sha256(received).hexdigest().encode()
        else:
            body = get_body(n, int(rest[0]))
        if fault.kind == "close":
            return await self.fail_early(reader, writer, fault)
        head, wire = response(n, body, fault)
        whole = head + wire
        if fault.kind == "ok":
            await write(writer, whole, fault)
            return not (fault.close_after or fault.framing == "eof")
        if fault.kind == "truncate":
            await write(writer, whole[: len(head) + int(fault.cut * len(wire))], fault)
            return False  # closed once written: the body is cut short
        await write(writer, whole[: int(fault.cut * len(whole))], fault)
        if fault.kind == "reset":
            reset(writer)
        else:
            await reader.read()  # stalled until the client gives up and closes
        return False

    async def fail_early(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, fault: Fault
    ) -> bool:
        if fault.kind == "stall":
            await reader.read()
        return False  # and closed: any request body unread makes that a reset

    async def send_stats(self, writer: asyncio.StreamWriter) -> None:
        stats = {"seen": self.seen, "open": self.open - 1, "faults": self.faults}
        body = json.dumps(stats).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
            % (len(body), body)
        )
        await writer.drain()


async def read_body(reader: asyncio.StreamReader, headers: dict[bytes, bytes]) -> bytes:
    if b"content-length" in headers:
        return await reader.readexactly(int(headers[b"content-length"]))
    chunks = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        chunks.append((await reader.readexactly(size + 2))[:-2])
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass  # trailer fields
    return b"".join(chunks)


async def write(writer: asyncio.StreamWriter, data: bytes, fault: Fault) -> None:
    step = -(-len(data) // fault.pieces) or 1
    for at in range(0, len(data), step):
        writer.write(data[at : at + step])
        await writer.drain()
        if fault.pause:
            await asyncio.sleep(0.002)


def reset(writer: asyncio.StreamWriter) -> None:
    if writer.transport.is_closing():
        return  # the client closed first (it cancelled, or gave up on the body)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def main(seed: int) -> None:
    server = FaultyServer(seed)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, backlog=512)
    print("PORT", listener.sockets[0].getsockname()[1], flush=True)
    async with listener:
        await listener.serve_forever()


def _exit_with_parent() -> None:
    sys.stdin.buffer.read()
    os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    asyncio.run(main(int(sys.argv[1])))
