"""Wrappers stacked in either order: a streamed POST body, redirected with 307 and replayed
byte for byte, over a server that drops the first attempt at the redirect's target while its
body is still coming (so the request was not processed, and even a POST is safe to retry); the
final URL and the redirects followed, on the body returned, whichever way retries and
redirects nest; and, wherever `decompressed` stands, the bodies that redirects and retries drop
drained as they came, never decoded."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import zlib
from collections.abc import AsyncIterator, Callable

import pytest
from conftest import Recorder, read_request, respond_with, serve

import lowhaio
from lowhaio_decompress import decompressed
from lowhaio_redirect import redirectable
from lowhaio_retry import retry

CHUNKS = [bytes([i]) * 100_000 for i in range(3)]
BODY = b"".join(CHUNKS)
PACE = 0.02  # seconds between chunks: long enough for a reset to arrive in between


async def paced(*_: object) -> AsyncIterator[bytes]:
    for chunk in CHUNKS:
        yield chunk
        await asyncio.sleep(PACE)


class Script:
    """/upload answers 307 to /target; at the first request to /target, its connection, a
    reused keep-alive one, is dropped as soon as the head is read."""

    def __init__(self) -> None:
        self.seen: list[tuple[bytes, bytes | None]] = []  # (request line, sha256 of the body)
        self.dropped = False

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n")[0]
            if line.startswith(b"POST /target ") and not self.dropped:
                self.dropped = True
                self.seen.append((line, None))
                writer.transport.abort()
                return
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            self.seen.append((line, hashlib.sha256(body).digest()))
            if line.startswith(b"POST /upload "):
                writer.write(b"HTTP/1.1 307 Temporary Redirect\r\nlocation: /target\r\n")
                writer.write(b"content-length: 5\r\n\r\nmoved")
            else:
                writer.write(b"HTTP/1.1 201 Created\r\ncontent-length: 7\r\n\r\nstored!")


Stack = Callable[[lowhaio.Request], lowhaio.Request]


@pytest.mark.parametrize(
    "stack",
    [
        pytest.param(lambda request: retry(redirectable(request)), id="retry(redirectable)"),
        pytest.param(lambda request: redirectable(retry(request)), id="redirectable(retry)"),
    ],
)
async def test_streamed_307_post_replayed_through_a_dropped_connection(stack: Stack) -> None:
    calls = []

    def body(prefix: bytes) -> AsyncIterator[bytes]:
        calls.append(prefix)
        return paced()

    script = Script()
    async with serve(script) as server:
        request, close = lowhaio.Pool()
        code, _, response = await stack(request)(
            b"POST",
            server.url("/upload"),
            headers=((b"content-length", b"%d" % len(BODY)),),
            body=body,
            body_args=(b"p",),
        )
        assert (code, await lowhaio.buffered(response)) == (b"201", b"stored!")
        await close()
    digest = hashlib.sha256(BODY).digest()
    # Every attempt read whole, byte for byte; only the dropped one was not read.
    assert [sent for _, sent in script.seen if sent != digest] == [None]
    targets = [line for line, _ in script.seen if line.startswith(b"POST /target ")]
    assert len(targets) == 2  # dropped, then answered
    assert calls == [b"p"] * len(script.seen)  # the factory called once per request sent


@pytest.mark.parametrize(
    ("stack", "targets"),
    [
        # Outside, retry replays the whole chain; inside, only the hop that failed.
        pytest.param(
            lambda request: retry(redirectable(request)),
            [b"/upload", b"/target", b"/upload", b"/target"],
            id="retry(redirectable)",
        ),
        pytest.param(
            lambda request: redirectable(retry(request)),
            [b"/upload", b"/target", b"/target"],
            id="redirectable(retry)",
        ),
    ],
)
async def test_what_retry_replays_depends_on_where_it_stands(
    stack: Stack, targets: list[bytes]
) -> None:
    script = Script()
    async with serve(script) as server:
        request, close = lowhaio.Pool()
        _, _, response = await stack(request)(
            b"POST",
            server.url("/upload"),
            headers=((b"content-length", b"%d" % len(BODY)),),
            body=paced,
        )
        await lowhaio.buffered(response)
        await close()
    assert [line.split(b" ")[1] for line, _ in script.seen] == targets
    assert server.connections == 2


MOVED = b"HTTP/1.1 302 Found\r\nlocation: /b\r\ncontent-length: 0\r\n\r\n"
BUSY = b"HTTP/1.1 503 Busy\r\ncontent-length: 4\r\n\r\nbusy"
DONE = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndone"


def retry_outside(request: lowhaio.Request) -> lowhaio.Request:
    return retry(redirectable(request), statuses=(b"503",), backoff=0)


def retry_inside(request: lowhaio.Request) -> lowhaio.Request:
    return redirectable(retry(request, statuses=(b"503",), backoff=0))


@pytest.mark.parametrize(
    ("stack", "replies", "paths"),
    [
        # A retried attempt after a redirect: the whole chain again, or the hop again.
        (retry_outside, (MOVED, BUSY, MOVED, DONE), b"/a /b /a /b"),
        (retry_inside, (MOVED, BUSY, DONE), b"/a /b /b"),
        # A redirect inside a retried attempt: the 503 is not a hop.
        (retry_outside, (BUSY, MOVED, DONE), b"/a /a /b"),
        (retry_inside, (BUSY, MOVED, DONE), b"/a /a /b"),
    ],
    ids=[
        "retry(redirectable)-503-after-the-redirect",
        "redirectable(retry)-503-after-the-redirect",
        "retry(redirectable)-503-before-the-redirect",
        "redirectable(retry)-503-before-the-redirect",
    ],
)
async def test_the_body_returned_has_the_final_url_and_only_the_redirects_followed(
    stack: Stack, replies: tuple[bytes, ...], paths: bytes
) -> None:
    recorder = Recorder()
    async with serve(respond_with(*replies)) as server:  # one connection, answers in turn
        request, close = lowhaio.Pool(plugins=(recorder,))
        code, _, body = await stack(request)(b"GET", server.url("/a"))
        assert (code, await lowhaio.buffered(body)) == (b"200", b"done")
        await close()
    assert [fields["path"] for _, fields in recorder.select("request_head_sent")] == paths.split()
    assert (body.url, body.history) == (server.url("/b"), ((b"302", server.url("/a")),))


# Decoding: only the body returned is ever decoded -----------------------------------------

DECODED = b"the final body, decoded\n" * 1000
CODED = gzip.compress(DECODED)
NOT_GZIP = b"not gzip: decoding this would raise"


def gzipped(status: bytes, body: bytes, *fields: bytes) -> bytes:
    head = b"HTTP/1.1 %b\r\ncontent-encoding: gzip\r\n%b" % (
        status,
        b"".join(f + b"\r\n" for f in fields),
    )
    return head + b"content-length: %d\r\n\r\n%b" % (len(body), body)


def decoding_outside(request: lowhaio.Request) -> lowhaio.Request:
    return decompressed(retry(redirectable(request), statuses=(b"503",), backoff=0))


def decoding_inside(request: lowhaio.Request) -> lowhaio.Request:
    return retry(redirectable(decompressed(request)), statuses=(b"503",), backoff=0)


def decoding_between(request: lowhaio.Request) -> lowhaio.Request:
    return retry(decompressed(redirectable(request)), statuses=(b"503",), backoff=0)


@pytest.mark.parametrize(
    "stack",
    [decoding_outside, decoding_inside, decoding_between],
    ids=["decompressed(retry(redirectable))", "retry(redirectable(decompressed))", "between"],
)
async def test_bodies_dropped_by_redirects_and_retries_are_drained_as_they_came(
    stack: Stack,
) -> None:
    # A 503 and a redirect, each with a body that is not the gzip it says (read as it came,
    # it is drained; decoded, it would raise), then the body returned, gzip.
    replies = (
        gzipped(b"503 Busy", NOT_GZIP),
        gzipped(b"302 Found", NOT_GZIP, b"location: /b"),
        gzipped(b"200 OK", CODED),
    )
    recorder = Recorder()
    async with serve(respond_with(*replies)) as server:
        request, close = lowhaio.Pool(plugins=(recorder,))
        code, headers, body = await stack(request)(b"GET", server.url("/a"))
        assert (code, await lowhaio.buffered(body)) == (b"200", DECODED)
        await close()
    assert (body.url, body.history) == (server.url("/b"), ((b"302", server.url("/a")),))
    assert (b"lowhaio-original-content-encoding", b"gzip") in headers
    # Each body read to its end as it came, on one connection.
    sizes = [fields["size"] for _, fields in recorder.select("response_body_received")]
    assert sizes == [len(NOT_GZIP), len(NOT_GZIP), len(CODED)]
    assert server.connections == 1


@pytest.mark.parametrize("stack", [decoding_outside, decoding_inside], ids=["outside", "inside"])
async def test_a_bomb_in_a_redirect_is_closed_not_read_to_its_end(stack: Stack) -> None:
    # 64 MiB of zeros in 290 KB: more than lowhaio reads ahead (256 KiB), so not read whole.
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    zeros = bytes(1024 * 1024)
    bomb = b"".join(compressor.compress(zeros) for _ in range(64)) + compressor.flush()
    replies = {
        b"/a": gzipped(b"302 Found", bomb, b"location: /b"),
        b"/b": gzipped(b"200 OK", CODED),
    }

    async def by_path(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, _ = await read_request(reader)
            writer.write(replies[head.split(b" ")[1]])

    recorder = Recorder()
    async with serve(by_path) as server:
        request, close = lowhaio.Pool(plugins=(recorder,))
        # Past lowhaio.DISCARD_LIMIT_BYTES as it came: closed, not read further.
        _, _, body = await stack(request)(b"GET", server.url("/a"))
        assert await lowhaio.buffered(body) == DECODED  # from a new connection: answered anew
        await close()
    assert recorder.select("connection_closed", reason="body abandoned")
    assert server.connections == 2
