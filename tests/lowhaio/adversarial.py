"""Helpers shared by the adversarial server suites (`test_adversarial_*.py`).

Every case runs one scripted server: its first connection answers the first request with the
bytes under test (then closes, stalls, resets...), and every later connection, or a later
request on that same connection, gets `GOOD`. Each case checks the exact result or typed error,
then that the same pool still works (`assert_pool_usable`): the next request gets `GOOD`'s body,
over the number of connections that says whether the first one was reused.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest
from conftest import Handler, Server, pool, read_request, serve

import lowhaio
from lowhaio import Headers

GOOD = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ngood"
# What a server slips in unasked: were it ever handed to a later request, its body would be "evil".
EVIL = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nevil"
# Generous bounds, so that a wrong expectation fails instead of stalling the suite.
BOUNDS = {"read_timeout": 2.0, "head_timeout": 2.0, "write_timeout": 2.0}


async def answer_good(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer every request on the connection with GOOD."""
    while True:
        await read_request(reader)
        writer.write(GOOD)
        await writer.drain()


def scripted(first: bytes | Handler, *, close: bool = False) -> Handler:
    """A handler whose first connection answers the first request with the bytes `first` (then
    closes if `close`, else answers GOOD to any later request on it), or runs `first` if it is
    a handler; every later connection answers GOOD."""
    accepted = itertools.count()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if next(accepted) == 0:
            if not isinstance(first, bytes):
                await first(reader, writer)
                return
            await read_request(reader)
            writer.write(first)
            await writer.drain()
            if close:
                return  # Server closes the writer: a FIN after the bytes
        await answer_good(reader, writer)

    return handler


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the peer gets a RST, not a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def no_delay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Result(NamedTuple):
    code: bytes
    headers: Headers
    body: bytes
    trailers: Headers


Outcome = Result | tuple[str, Exception]  # ("head" | "body", the error raised there)


@dataclass(frozen=True)
class Ok:
    """The exact result expected; `headers` are checked only when given."""

    body: bytes
    code: bytes = b"200"
    headers: Headers | None = None
    trailers: Headers = ()


@dataclass(frozen=True)
class Err:
    """The exact error class expected, raised by `request` ("head") or by reading the body."""

    error: type[Exception]
    at: str = "head"
    match: str = ""


async def exchange(
    request: lowhaio.Request, url: str, method: bytes = b"GET", **kwargs: Any
) -> Outcome:
    """One request, its body read to the end: the result, or where which error was raised."""
    try:
        code, headers, body = await request(method, url, **kwargs)
    except lowhaio.HttpError as exc:
        return ("head", exc)
    try:
        data = await lowhaio.buffered(body)
    except lowhaio.HttpError as exc:
        return ("body", exc)
    return Result(code, headers, data, body.trailers)


def error_of(outcome: Outcome) -> tuple[str, Exception]:
    """Where an error was raised, and which: the outcome must be one."""
    assert not isinstance(outcome, Result), f"expected an error, got {outcome}"
    return outcome


def check(outcome: Outcome, expected: Ok | Err) -> None:
    if isinstance(expected, Err):
        assert not isinstance(outcome, Result), f"expected {expected}, got {outcome}"
        at, exc = outcome
        assert (at, type(exc)) == (expected.at, expected.error), repr(exc)
        assert expected.match in str(exc), repr(exc)
        return
    assert isinstance(outcome, Result), f"expected {expected}, got {outcome!r}"
    got = (outcome.code, outcome.body, outcome.trailers)
    assert got == (expected.code, expected.body, expected.trailers), f"{got} != {expected}"
    if expected.headers is not None:
        assert outcome.headers == expected.headers, f"{outcome.headers} != {expected.headers}"


async def assert_pool_usable(request: lowhaio.Request, server: Server, connections: int) -> None:
    """The same pool makes a successful request, and the server saw `connections` in all."""
    outcome = await exchange(request, server.url("/next"))
    assert outcome == Result(b"200", ((b"content-length", b"4"),), b"good", ()), outcome
    assert server.connections == connections, f"{server.connections} connections, not {connections}"


class Row(NamedTuple):
    """One row of a table: `response` answers a `method` request (then the server closes if
    `close`); `expected` is what the caller gets; `reuse` is whether the pool then reuses the
    connection for its next request; `pool_kwargs` configure the pool."""

    response: bytes
    expected: Ok | Err
    reuse: bool
    close: bool
    method: bytes
    pool_kwargs: dict[str, Any]


def case(
    id: str,
    response: bytes,
    expected: Ok | Err,
    *,
    reuse: bool | None = None,
    close: bool = False,
    method: bytes = b"GET",
    **pool_kwargs: Any,
) -> Any:
    """A `Row` as a pytest parameter named `id`; `reuse` is by default yes for a result and
    no for an error."""
    if reuse is None:
        reuse = isinstance(expected, Ok)
    return pytest.param(Row(response, expected, reuse, close, method, pool_kwargs), id=id)


async def run_case(row: Row) -> None:
    async with (
        serve(scripted(row.response, close=row.close)) as server,
        pool(**{**BOUNDS, **row.pool_kwargs}) as request,
    ):
        check(await exchange(request, server.url(), row.method), row.expected)
        await assert_pool_usable(request, server, 1 if row.reuse else 2)
