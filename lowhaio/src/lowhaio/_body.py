"""Helpers for bodies: `streamed` and `buffered` for callers that do not need to stream, and
`discard` for wrappers that drop a response they will not return."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable


def streamed(data: bytes) -> Callable[[], AsyncIterator[bytes]]:
    """A body factory that yields `data` once, each time it is called (so it can be replayed)."""

    async def body() -> AsyncIterator[bytes]:
        yield data

    return body


async def buffered(body: AsyncIterable[bytes]) -> bytes:
    """Read a whole response body into memory."""
    return b"".join([chunk async for chunk in body])


# What `discard` reads of an unwanted body before it closes the connection instead: reading a
# little keeps the connection for reuse; reading a lot would cost more than a new connection.
DISCARD_LIMIT_BYTES = 64 * 1024


async def discard(body: AsyncIterable[bytes], limit: int = DISCARD_LIMIT_BYTES) -> None:
    """Drop a response body: read it to its end if that takes at most `limit` bytes (so its
    connection can be reused), else close it (`aclose()`, which closes the connection).

    A body that yields what it makes of another (`lowhaio_decompress` decodes one) names that
    one in `wrapped`: the innermost is read instead, as it came, so that nothing is decoded only
    to be dropped and `limit` counts the bytes received."""
    while (wrapped := getattr(body, "wrapped", None)) is not None:
        body = wrapped
    iterator = aiter(body)
    async for chunk in iterator:
        limit -= len(chunk)
        if limit < 0:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
            return
