"""`retry`: a `request` that tries again when that is safe.

Strategy: a loop in the caller's task around the wrapped `request`. Whether an error may be
retried comes from lowhaio's exceptions: `HttpConnectionError` means the server did not
process the request (nothing was sent, or a stale connection), so any method may be retried;
`HttpDataError` means it may have, so only idempotent methods are (RFC 9110 9.2.2). Waits grow
exponentially with full jitter, capped; statuses such as 429 and 503 can be retried too,
honouring `Retry-After`. An optional deadline bounds the whole call: no wait goes up to it, and
an attempt still in flight when it passes is cancelled with `asyncio.timeout` (no task is
created, and a caller's own cancellation passes through). The body is replayed by calling its
factory again. The policy is fixed when the request is wrapped, and never changes.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import math
import random
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any

from lowhaio import (
    DISCARD_LIMIT_BYTES,
    BodyFactory,
    Headers,
    HttpConnectionError,
    HttpDataError,
    HttpTimeoutError,
    Params,
    Request,
    RequestHeaders,
    Response,
    discard,
    empty_body,
)

IDEMPOTENT_METHODS = frozenset((b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"))

# Statuses that say the server did not act on the request (RFC 6585 4, RFC 9110 15.6.4), so
# they may be retried for any method; other statuses only for idempotent methods.
NOT_PROCESSED_STATUSES = frozenset((b"429", b"503"))

ExceptionIntervals = Sequence[
    tuple[type[BaseException] | tuple[type[BaseException], ...], Sequence[float]]
]
OnRetry = Callable[[int, float, "BaseException | bytes"], object]

_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


class HttpDeadlineExceeded(HttpDataError, HttpTimeoutError):
    """`retry`'s `deadline` passed while an attempt was in flight: the attempt was given up and
    its connection closed. The request may have been processed (the wrapper cannot see how far
    the attempt went), so, as an `HttpDataError` says, retry it only if it is idempotent."""


class _Within:
    """`async with _Within(seconds, message):` bounds an attempt by `seconds` (None: unbounded)
    with `asyncio.timeout`, which creates no task, lets a caller's cancellation through as it
    is, and takes back its own (the task's cancellation count is left as it was). When it
    expires, what the attempt awaited was cancelled (the core closes the connection then), and
    `HttpDeadlineExceeded(message)` is raised."""

    __slots__ = ("_message", "_timeout")

    def __init__(self, seconds: float | None, message: str) -> None:
        self._timeout = asyncio.timeout(seconds)
        self._message = message

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self._timeout.__aexit__(exc_type, exc, traceback)
        except TimeoutError as expired:  # raised only when this timeout expired
            raise HttpDeadlineExceeded(self._message) from expired


def retry_after(headers: Headers, now: float) -> float | None:
    """Seconds to wait that a `Retry-After` header asks for (RFC 9110 10.2.3), if it is valid:
    delay-seconds, or an HTTP-date compared with `now` (seconds since the epoch)."""
    value = next((v for k, v in headers if k == b"retry-after"), None)
    if value is None:
        return None
    text = value.decode("latin-1").strip()
    if text.isascii() and text.isdigit():  # not "²": str.isdigit() takes more than 0-9
        return float(text)
    try:
        date = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if date.tzinfo is None:  # asctime's format names no zone; HTTP dates are always UTC
        date = date.replace(tzinfo=datetime.UTC)
    return max(0.0, date.timestamp() - now)


def retry(
    request: Request,
    *,
    attempts: int = 3,
    backoff: float = 0.1,
    max_backoff: float = 10.0,
    deadline: float | None = None,
    statuses: Collection[bytes] = (),
    max_retry_after: float = 60.0,
    exception_intervals: ExceptionIntervals | None = None,
    idempotent_methods: Collection[bytes] = IDEMPOTENT_METHODS,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    jitter: Callable[[], float] = random.random,
    discard_limit: int = DISCARD_LIMIT_BYTES,
) -> Request:
    """Wrap `request` so that failures that are safe to retry are retried.

    Up to `attempts` attempts in all. An `HttpConnectionError` is retried for any method, an
    `HttpDataError` only for `idempotent_methods`; anything else (an invalid request, a
    cancellation) never. The n-th retry waits a random time up to `min(max_backoff, backoff *
    2**n)` seconds ("full jitter"). A response whose code is in `statuses` is retried too (for
    any method if 429 or 503, else only for idempotent ones), after the wait its `Retry-After`
    asks for, capped at `max_retry_after`; its body is dropped. When attempts run out, the last
    error is raised, or the last response returned.

    `deadline`, in seconds, bounds the whole call, up to the return of a response (reading its
    body is the caller's): a wait that would reach it is not taken (the last error or response
    is the answer then), and an attempt still in flight when it passes (connecting, sending,
    waiting for the response head, or dropping the body of a response to retry) is given up,
    its connection closed, and `HttpDeadlineExceeded` raised. Time is counted by `clock`.

    The seed's form, `exception_intervals=((HttpConnectionError, (0, 1, 2)),)`, replaces the
    rule for errors: an error of a listed class is retried after each listed interval in turn,
    and any other error is raised.

    `on_retry(attempt, delay, error_or_code)` is called before each wait; `sleep`, `clock`
    (monotonic), `wall_clock` (for HTTP dates) and `jitter` (0 <= x < 1) are injectable.
    """

    late = (  # HttpDeadlineExceeded's message
        f"the deadline of {deadline} s passed while an attempt was in flight: it was given up,"
        " and the request may have been processed"
    )

    def error_delay(
        exc: Exception, method: bytes, retries: int, used: dict[int, int]
    ) -> float | None:
        if exception_intervals is not None:
            for index, (classes, intervals) in enumerate(exception_intervals):
                if isinstance(exc, classes):
                    count = used.get(index, 0)
                    used[index] = count + 1
                    return intervals[count] if count < len(intervals) else None
            return None
        safe = isinstance(exc, HttpConnectionError) or (
            isinstance(exc, HttpDataError) and method in idempotent_methods
        )
        return backoff_delay(retries) if safe and retries + 1 < attempts else None

    def backoff_delay(retries: int) -> float:
        return jitter() * min(max_backoff, backoff * 2.0**retries)

    def status_delay(code: bytes, headers: Headers, method: bytes, retries: int) -> float | None:
        if code not in statuses or retries + 1 >= attempts:
            return None
        if code not in NOT_PROCESSED_STATUSES and method not in idempotent_methods:
            return None
        asked = retry_after(headers, wall_clock())
        return backoff_delay(retries) if asked is None else min(asked, max_retry_after)

    async def retriable_request(
        method: bytes,
        url: str,
        params: Params = (),
        headers: RequestHeaders = (),
        body: BodyFactory = empty_body,
        body_args: tuple[Any, ...] = (),
        body_kwargs: Mapping[str, Any] = _NO_KWARGS,
    ) -> Response:
        params, headers = tuple(params), tuple(headers)
        give_up_at = math.inf if deadline is None else clock() + deadline
        used: dict[int, int] = {}  # retries taken from each entry of exception_intervals
        retries = 0
        while True:
            # Each attempt within what is left of the deadline. A retry is made only if its
            # wait ends before the deadline (">="): an attempt begun at it would only be given up.
            async with _Within(None if deadline is None else give_up_at - clock(), late):
                try:
                    response = await request(
                        method, url, params, headers, body, body_args, body_kwargs
                    )
                except Exception as exc:
                    delay = error_delay(exc, method, retries, used)
                    if delay is None or clock() + delay >= give_up_at:
                        raise
                    reason: BaseException | bytes = exc
                else:
                    code, response_headers, response_body = response
                    delay = status_delay(code, response_headers, method, retries)
                    if delay is None or clock() + delay >= give_up_at:
                        return response
                    await discard(response_body, discard_limit)
                    reason = code
            retries += 1
            if on_retry is not None:
                on_retry(retries, delay, reason)
            await sleep(delay)
            # An error's traceback holds this frame, which will hold the final response: kept,
            # the two would be freed only by the garbage collector, and a body dropped unread
            # would keep its connection until then.
            del reason

    return retriable_request
