"""Helpers for callers that do not need to stream: `streamed` and `buffered`."""

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
