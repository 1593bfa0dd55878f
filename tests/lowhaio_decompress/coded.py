"""Coded bodies and the responses that carry them, for the lowhaio_decompress tests.

- `encode(coding, data)`: `data` coded as a server codes it. "deflate" is the zlib format
  (RFC 9110 8.4.1.2), "deflate-raw" the raw deflate some servers send under the name deflate.
- `response(body, *fields, chunks=...)`: a whole HTTP/1.1 response, framed by content-length,
  or chunked with the body cut into `chunks` (every cut its own chunk, so that the client reads
  them apart however they arrive).
- `bomb(coding)`: 256 MiB of zeros, coded (built once: gzip takes a second).
- `answering(coding, *pieces)`: a stand-in for `request` whose body yields exactly `pieces`.
"""

from __future__ import annotations

import functools
import gzip
import itertools
import sys
import zlib
from collections.abc import Awaitable, Callable, Sequence

import brotli

from lowhaio import Response

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

MiB = 1024 * 1024
BOMB_BYTES = 256 * MiB

# Compressible, but not trivially: about 100 KB, a few KB coded.
DATA = b"".join(b"%d: lowhaio decodes %x as it is read\n" % (i, i * i) for i in range(3000))
# Small enough to cut at every byte: a few hundred bytes coded.
SMALL = DATA[:1500]

CODINGS = ["gzip", "deflate", "deflate-raw", "br", "zstd"]


def encode(coding: str, data: bytes) -> bytes:
    if coding in ("gzip", "x-gzip"):
        return gzip.compress(data, mtime=0)
    if coding == "deflate":
        return zlib.compress(data)
    if coding == "deflate-raw":
        compressor = zlib.compressobj(wbits=-15)
        return compressor.compress(data) + compressor.flush()
    if coding == "br":
        return bytes(brotli.compress(data))
    assert coding == "zstd", coding
    return bytes(zstd.compress(data))


def named(coding: str) -> bytes:
    """What content-encoding says for `coding`."""
    return b"deflate" if coding == "deflate-raw" else coding.encode()


def response(
    body: bytes,
    *fields: bytes,
    status: bytes = b"200 OK",
    chunks: Sequence[int] | None = None,
) -> bytes:
    """A response with `fields`; `chunks`: the offsets where the body is cut into chunks."""
    head = b"HTTP/1.1 %b\r\n%b" % (status, b"".join(field + b"\r\n" for field in fields))
    if chunks is None:
        return head + b"content-length: %d\r\n\r\n%b" % (len(body), body)
    cuts = [0, *chunks, len(body)]
    parts = [body[start:end] for start, end in itertools.pairwise(cuts)]
    framed = b"".join(b"%x\r\n%b\r\n" % (len(part), part) for part in parts if part)
    return head + b"transfer-encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"


def coded(coding: str, data: bytes = DATA, chunks: Sequence[int] | None = None) -> bytes:
    """A response with `data` coded with `coding`, saying so."""
    return response(encode(coding, data), b"content-encoding: " + named(coding), chunks=chunks)


@functools.cache
def bomb(coding: str) -> bytes:
    """`BOMB_BYTES` of zeros coded with `coding`, compressed a MiB at a time."""
    zeros = bytes(MiB)
    count = BOMB_BYTES // MiB
    if coding in ("gzip", "deflate"):
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31 if coding == "gzip" else 15)
        return b"".join(compressor.compress(zeros) for _ in range(count)) + compressor.flush()
    if coding == "br":
        brotli_compressor = brotli.Compressor(quality=5)
        parts = [brotli_compressor.process(zeros) for _ in range(count)]
        return b"".join(parts) + brotli_compressor.finish()
    zstd_compressor = zstd.ZstdCompressor()
    parts = [zstd_compressor.compress(zeros) for _ in range(count)]
    return b"".join(parts) + zstd_compressor.flush()


class Pieces:
    """A response body that yields exactly `pieces`, however they would have arrived: for the
    tests that must feed a coded body split at a given byte (a lowhaio body joins what is
    buffered). Like a lowhaio body, it has `url`, `history`, `trailers` and `aclose()`."""

    def __init__(self, pieces: Sequence[bytes]) -> None:
        self.left = list(pieces)
        self.read = 0  # pieces read
        self.closed = False
        self.url, self.history, self.trailers = "http://127.0.0.1:1/", (), ()

    def __aiter__(self) -> Pieces:
        return self

    async def __anext__(self) -> bytes:
        if not self.left:
            raise StopAsyncIteration
        self.read += 1
        return self.left.pop(0)

    async def aclose(self) -> None:
        self.closed = True


def answering(coding: str, *pieces: bytes) -> Callable[..., Awaitable[Response]]:
    """A `request` answering 200 with a body coded with `coding`, that yields `pieces`."""

    async def request(*args: object) -> Response:
        field = (b"content-encoding", named(coding))
        return b"200", (field,), Pieces(pieces)  # type: ignore[return-value]

    return request
