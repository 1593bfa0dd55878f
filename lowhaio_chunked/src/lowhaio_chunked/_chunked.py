"""`chunked`: a body factory that sends another one with chunked transfer coding (RFC 9112 7.1).

Each non-empty chunk the wrapped factory yields becomes one chunk on the wire, its size line,
data and CRLF joined into one piece (one write, one copy); an empty chunk is skipped, never
sent as the last-chunk that would end the body early. The last-chunk and any trailer fields
follow when the wrapped body ends. The caller sends `transfer-encoding: chunked` (`HEADER`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable

from lowhaio import BodyFactory, HttpInvalidRequestError

HEADER = (b"transfer-encoding", b"chunked")

Trailers = Iterable[tuple[bytes, bytes]]

_token = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_bad_value_byte = re.compile(rb"[^\t\x20-\x7e\x80-\xff]")


def _trailer_section(trailers: Trailers) -> bytes:
    lines = []
    for name, value in trailers:
        if not _token.fullmatch(name) or _bad_value_byte.search(value):
            raise HttpInvalidRequestError(f"trailer {name!r} is not a token with a valid value")
        lines.append(b"%s: %s\r\n" % (name, value))
    return b"".join(lines)


def chunked(
    body: BodyFactory,
    trailers: Trailers | Callable[[], Trailers] = (),
) -> Callable[..., AsyncIterator[bytes]]:
    """A body factory that encodes what `body` yields as chunks. `trailers` are sent after the
    last chunk; a callable is called then, so it can give what the body computed (a checksum).
    Arguments given to the returned factory are passed on to `body`."""

    async def chunked_body(*args: object, **kwargs: object) -> AsyncIterator[bytes]:
        async for chunk in body(*args, **kwargs):
            size = memoryview(chunk).nbytes
            if size:
                yield b"".join((b"%x\r\n" % size, chunk, b"\r\n"))
        fields = trailers() if callable(trailers) else trailers
        yield b"0\r\n" + _trailer_section(fields) + b"\r\n"

    return chunked_body
