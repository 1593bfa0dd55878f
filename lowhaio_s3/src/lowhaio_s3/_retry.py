"""Each request of a transfer is retried on its own: a part, a range, the abort. What is retried
is what is safe to send again: a connection error (the request was not processed); an error
after bytes were sent (every S3 operation here can be repeated: a part or a range again is the
same part or range; see the README for CreateMultipartUpload and CompleteMultipartUpload); a
5xx or 429 answer, and S3's codes that say to try again. Nothing else: not another 4xx, not an
invalid request, not a cancellation."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import NamedTuple, TypeVar

from lowhaio import HttpConnectionError, HttpDataError

from ._errors import S3Error, S3ResponseError

T = TypeVar("T")

# Codes that S3 answers when a retry is the fix (some with a 400: RequestTimeout is a socket
# that was idle too long; a 200 can carry InternalError, in CompleteMultipartUpload).
RETRIABLE_CODES = frozenset(
    ("InternalError", "RequestTimeout", "ServiceUnavailable", "SlowDown", "Throttling")
)

OnRetry = Callable[[str, int, float, Exception], object]


class Retries(NamedTuple):
    """How each request of a transfer is retried: up to `attempts` in all, the n-th retry
    after a random wait of up to `min(max_backoff, backoff * 2**(n-1))` seconds ("full
    jitter"). `on_retry(operation, attempt, delay, error)` is called before each wait;
    `sleep` and `jitter` (0 <= x < 1) can be injected."""

    attempts: int = 4
    backoff: float = 0.2
    max_backoff: float = 10.0
    on_retry: OnRetry | None = None
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    jitter: Callable[[], float] = random.random


def retriable(error: Exception) -> bool:
    """Whether a request that failed with `error` may be sent again."""
    if isinstance(error, S3ResponseError):
        return error.status >= 500 or error.status == 429 or error.code in RETRIABLE_CODES
    if isinstance(error, S3Error):
        return False  # an answer S3 cannot give, a body of the wrong length: the same again
    return isinstance(error, (HttpConnectionError, HttpDataError))


async def attempt(retries: Retries, operation: str, call: Callable[[], Awaitable[T]]) -> T:
    """`await call()`, again after each failure that `retriable` allows, within
    `retries.attempts`; then the last error, with a note of how many attempts were made."""
    number = 1
    while True:
        try:
            return await call()
        except Exception as error:
            if number >= retries.attempts or not retriable(error):
                if number > 1:
                    error.add_note(f"{operation}: the last of {number} attempts")
                raise
            delay = retries.jitter() * min(
                retries.max_backoff, retries.backoff * 2.0 ** (number - 1)
            )
            if retries.on_retry is not None:
                retries.on_retry(operation, number, delay, error)
        await retries.sleep(delay)
        number += 1
