"""S3's multipart limits, the part size that keeps an object within them, and the reader that
cuts a caller's body into parts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from lowhaio import BodyFactory

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
TIB = 1024 * GIB

# S3's limits (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html).
MIN_PART_SIZE = 5 * MIB  # every part but the last
MAX_PART_SIZE = 5 * GIB
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 5 * TIB
MAX_PUT_SIZE = 5 * GIB  # one PutObject

DEFAULT_PART_SIZE = 8 * MIB
DEFAULT_CONCURRENCY = 8


def part_size_for(
    size: int | None, max_size: int | None = None, part_size: int = DEFAULT_PART_SIZE
) -> int:
    """The part size for an object of `size` bytes (or, of unknown size, of at most
    `max_size`): `part_size`, raised to a whole number of MiB when that many bytes would need
    more than 10,000 parts of it. Refuses a `part_size` outside S3's 5 MiB to 5 GiB, and an
    object over 5 TiB (`ValueError`). With neither size, `part_size`: the object may then have
    up to 10,000 of them."""
    if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
        raise ValueError(
            f"part_size must be from {MIN_PART_SIZE} (5 MiB) to {MAX_PART_SIZE} (5 GiB) bytes,"
            f" as S3 allows: {part_size}"
        )
    largest = size if size is not None else max_size
    if largest is None:
        return part_size
    if largest < 0:
        raise ValueError(f"an object's size cannot be negative: {largest}")
    if largest > MAX_OBJECT_SIZE:
        raise ValueError(f"S3 objects are at most 5 TiB ({MAX_OBJECT_SIZE} bytes): {largest} bytes")
    needed = -(-largest // MAX_PARTS)  # the smallest part size that fits in MAX_PARTS parts
    if needed <= part_size:
        return part_size
    return -(-needed // MIB) * MIB  # at most 525 MiB, for 5 TiB


def parts_for(size: int, part_size: int) -> int:
    """How many parts an object of `size` bytes takes (one at least)."""
    return max(1, -(-size // part_size))


Refuse = Callable[[str], Exception]


class PartReader:
    """Reads a caller's body, in order and once, into the buffers it is given: what a part
    holds. `limit` bounds the bytes it takes (the stated size, or the maximum); past it,
    `refuse(message)` is raised before another byte is stored. With `exact`, a body that ends
    short of `limit` is refused too.

    A piece of the caller's chunk that did not fit in a part is kept as a view of that chunk,
    and the caller's iterator is not advanced until it is copied out: the caller may reuse its
    buffer once asked for the next chunk."""

    __slots__ = ("_chunks", "_ended", "_exact", "_left", "_limit", "_refuse", "_too_long", "total")

    def __init__(
        self,
        body: BodyFactory,
        body_args: tuple[object, ...],
        body_kwargs: Mapping[str, object],
        limit: int,
        exact: bool,
        refuse: Refuse,
        too_long: str,
    ) -> None:
        self._chunks = aiter(body(*body_args, **body_kwargs))
        self._limit = limit
        self._exact = exact
        self._refuse = refuse
        self._too_long = too_long
        self._left: memoryview | None = None  # the rest of the caller's current chunk
        self._ended = False
        self.total = 0  # bytes taken from the caller

    async def _piece(self) -> memoryview | None:
        """The next bytes of the body (None at its end), counted against the limit."""
        if self._left is not None:
            piece, self._left = self._left, None
            return piece
        while not self._ended:
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._ended = True
                if self._exact and self.total != self._limit:
                    raise self._refuse(
                        f"the body ended after {self.total} bytes, short of its size, {self._limit}"
                    ) from None
                return None
            view = memoryview(chunk)
            if view.format != "B" or view.ndim != 1:
                view = view.cast("B")
            if not view.nbytes:
                continue
            self.total += view.nbytes
            if self.total > self._limit:
                raise self._refuse(self._too_long)
            return view
        return None

    async def ended(self) -> bool:
        """Whether the body has no byte left (asks the caller for one more chunk if needed)."""
        if self._left is None:
            self._left = await self._piece()
        return self._left is None

    async def fill(self, buffer: bytearray) -> int:
        """Fill `buffer` (its whole length) with the next bytes: how many it got (fewer at the
        end of the body, 0 after it)."""
        filled = 0
        size = len(buffer)
        while filled < size:
            piece = await self._piece()
            if piece is None:
                break
            take = min(size - filled, piece.nbytes)
            buffer[filled : filled + take] = piece[:take]
            filled += take
            if take < piece.nbytes:
                self._left = piece[take:]
        return filled

    async def grow(self, buffer: bytearray, up_to: int) -> None:
        """Append the next bytes to `buffer` until it holds `up_to` bytes or the body ends: for
        a first part that may be a small object's whole, read without a part-sized buffer."""
        while len(buffer) < up_to:
            piece = await self._piece()
            if piece is None:
                return
            take = min(up_to - len(buffer), piece.nbytes)
            buffer += piece[:take]
            if take < piece.nbytes:
                self._left = piece[take:]

    async def aclose(self) -> None:
        """Close the caller's iterator, if it can be (an async generator's `finally` runs)."""
        self._left = None
        aclose: Callable[[], Awaitable[object]] | None = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()
