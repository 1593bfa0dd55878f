"""Helpers for lowhaio_s3's tests: bodies, a wrapper that sends an AWS host's requests to the
fake server, retries that do not wait, and faults to put on `FakeS3.faults`."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Mapping
from types import MappingProxyType
from typing import Any

from s3_fake import DROP, Answer, Request, error

import lowhaio
from lowhaio import BodyFactory, Params, RequestHeaders, Response
from lowhaio_s3 import Retries

KIB = 1024
MIB = 1024 * KIB
PART = 5 * MIB  # S3's smallest part
AWS_BUCKET = "https://bucket.s3.eu-west-2.amazonaws.com"

_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


def data_of(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def pieces(data: bytes, piece: int = 7919) -> BodyFactory:
    """A body factory yielding `data` in pieces of `piece` bytes (a prime: never aligned)."""

    async def body() -> AsyncIterator[memoryview]:
        view = memoryview(data)
        for start in range(0, len(data), piece):
            yield view[start : start + piece]

    return body


def no_wait(attempts: int = 4, on_retry: Any = None) -> Retries:
    """Retries that do not sleep (the waits asked are recorded in `waits`)."""

    async def sleep(delay: float) -> None:
        await asyncio.sleep(0)

    return Retries(attempts=attempts, on_retry=on_retry, sleep=sleep, jitter=lambda: 0.5)


def rerouted(request: lowhaio.Request, to: str, origin: str = AWS_BUCKET) -> lowhaio.Request:
    """`request`, with URLs under `origin` (an AWS bucket) sent under `to` (the fake's)."""

    async def rerouted_request(
        method: bytes,
        url: str,
        params: Params = (),
        headers: RequestHeaders = (),
        body: BodyFactory = lowhaio.empty_body,
        body_args: tuple[Any, ...] = (),
        body_kwargs: Mapping[str, Any] = _NO_KWARGS,
    ) -> Response:
        assert url.startswith(origin), url
        url = to + url[len(origin) :]
        return await request(method, url, params, headers, body, body_args, body_kwargs)

    return rerouted_request


Fault = Callable[[Request], "Answer | str | None"]


def once(operation: str, answer: Answer | str, number: int = 1) -> Fault:
    """The `number`-th request of `operation` gets `answer` (DROP: the connection closed)."""

    def fault(request: Request) -> Answer | str | None:
        if request.operation == operation and request.number == number:
            return answer
        return None

    return fault


def always(operation: str, answer: Answer | str) -> Fault:
    def fault(request: Request) -> Answer | str | None:
        return answer if request.operation == operation else None

    return fault


SERVER_ERROR = error(500, "InternalError", "We encountered an internal error. Please try again.")
__all__ = ["DROP", "SERVER_ERROR"]
