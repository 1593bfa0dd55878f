"""The shared test harness: imports only lowhaio and the standard library.

- `async def` tests run in a fresh event loop each, bounded by `TEST_TIMEOUT` seconds so that a
  hang fails the test instead of stalling the suite. No plugin is needed.
- `serve(handler)` runs a scripted raw asyncio server on 127.0.0.1 (an ephemeral port) whose
  `handler(reader, writer)` writes exactly the bytes a test wants; it records every accepted
  connection, so tests can see whether the client reused one.
- `server_ssl_context()` / `client_ssl_context()` use the test-only certificates in `certs/`.
- `Recorder()` is a plugin for `Pool(plugins=...)` that records every trace hook call, its
  methods generated from `lowhaio.hookspecs`: a new or changed hook needs no edit here.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import pathlib
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest

from lowhaio import hookimpl, hookspecs

if TYPE_CHECKING:
    from lowhaio import Request

TEST_TIMEOUT = 30.0
CERTS = pathlib.Path(__file__).parent / "certs"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop tests run on: asyncio's, or uvloop's when LOWHAIO_TEST_LOOP=uvloop."""
    if os.environ.get("LOWHAIO_TEST_LOOP") == "uvloop":  # pragma: no cover - uvloop session
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}

    async def bounded() -> None:
        async with asyncio.timeout(TEST_TIMEOUT):
            await pyfuncitem.obj(**kwargs)

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(bounded())
    return True


class Server:
    """A scripted server: each accepted connection runs `handler(reader, writer)`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0  # accepted so far
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client went away: scripted handlers need not care
        except asyncio.CancelledError:
            pass  # cancelled by serve() at teardown; asyncio.streams would log it otherwise
        finally:
            self.tasks.discard(task)
            writer.close()

    def url(self, path: str = "/", scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


@contextlib.asynccontextmanager
async def serve(
    handler: Handler,
    ssl_context: ssl.SSLContext | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> AsyncIterator[Server]:
    """Serve `handler` on `host` and `port` (0: an ephemeral one) until the block exits; a
    given port lets a second loopback address serve the same port as a first."""
    server = Server(handler)
    listener = await asyncio.start_server(server._handle, host, port, ssl=ssl_context)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for writer in server.writers:
            writer.transport.abort()
        for task in list(server.tasks):
            task.cancel()
        await asyncio.gather(*server.tasks, return_exceptions=True)
        await listener.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """Read one request: its head (up to and including the blank line) and its body, framed by
    content-length or chunked (then as sent, with its framing and trailers)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    body = b""
    if b"\r\ncontent-length:" in lower:
        length = int(lower.split(b"\r\ncontent-length:")[1].split(b"\r\n")[0])
        body = await reader.readexactly(length)
    elif b"\r\ntransfer-encoding: chunked" in lower:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            body += size_line
            size = int(size_line.split(b";")[0], 16)
            if not size:
                break
            body += await reader.readexactly(size + 2)
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            body += line  # trailer fields
        body += line
    return head, body


def respond_with(*responses: bytes, close: bool = False) -> Handler:
    """A handler that answers each request on a connection with the next of `responses`."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for response in responses:
            await read_request(reader)
            writer.write(response)
            await writer.drain()
        if close:
            writer.close()
        else:
            await reader.read()

    return handler


def recording(heads: list[bytes]) -> Handler:
    """A handler that keeps the head of every request it receives, answering each 200 "ok" on
    a connection kept open."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, _ = await read_request(reader)
            heads.append(head)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()

    return handler


@contextlib.asynccontextmanager
async def pool(**kwargs: Any) -> AsyncIterator[Request]:
    """A `lowhaio.Pool(**kwargs)`'s request, the pool closed when the block exits."""
    import lowhaio

    request, close = lowhaio.Pool(**kwargs)
    try:
        yield request
    finally:
        await close()


async def get(request: Request, url: str, **kwargs: Any) -> bytes:
    """GET `url`, check for 200, return the whole body."""
    import lowhaio

    code, _, body = await request(b"GET", url, **kwargs)
    assert code == b"200"
    return await lowhaio.buffered(body)


def server_ssl_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERTS / "server.pem", CERTS / "server.key")
    return context


def client_ssl_context() -> ssl.SSLContext:
    import lowhaio

    context = lowhaio.default_ssl_context()
    context.load_verify_locations(CERTS / "ca.pem")
    return context


# Recording the trace hooks ---------------------------------------------------------------------

Event = tuple[str, dict[str, Any]]  # a hook's name without "lowhaio_", and its arguments


def _hook_method(name: str, spec: Callable[..., object], owner: str) -> Callable[..., None]:
    """`def lowhaio_<event>(self, <the spec's arguments>)` that records the call, marked with
    `hookimpl`. pluggy passes an implementation the arguments its parameters name, so they are
    written out in generated source, as dataclasses generates `__init__`."""
    argnames = list(inspect.signature(spec).parameters)
    fields = ", ".join(f"{argname}={argname}" for argname in argnames)
    event = name.removeprefix("lowhaio_")
    source = f"def {name}(self, {', '.join(argnames)}):\n    self.record({event!r}, {fields})\n"
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    method: Callable[..., None] = namespace[name]
    method.__qualname__ = f"{owner}.{name}"
    method.__doc__ = spec.__doc__
    return hookimpl(method)


def _implementing_every_hook(cls: type[Recorder]) -> type[Recorder]:
    """Gives `cls` a recording method for each function of `lowhaio.hookspecs` that `hookspec`
    marked (found as pluggy finds them: by the attribute the marker sets)."""
    mark = f"{hookspecs.hookspec.project_name}_spec"
    for name, spec in vars(hookspecs).items():
        if name.startswith("lowhaio_") and hasattr(spec, mark):
            setattr(cls, name, _hook_method(name, spec, cls.__qualname__))
    return cls


@_implementing_every_hook
class Recorder:
    """A plugin implementing every hook in `lowhaio.hookspecs`: `events` lists each call, in
    order, as (hook name without "lowhaio_", {argument name: value}). A subclass may override
    `record` to do more with each call.

    `keep_errors=False` records an exception argument as its repr: an exception's traceback
    holds the frames it went through (a retry wrapper's holds the final response), which a test
    of when something is freed must not keep alive."""

    def __init__(self, keep_errors: bool = True) -> None:
        self.events: list[Event] = []
        self.keep_errors = keep_errors
        self._counts: Counter[str] = Counter()
        self._recorded: dict[str, asyncio.Event] = {}  # by the names that wait() waits for

    def record(self, name: str, **fields: Any) -> None:
        if not self.keep_errors:
            fields = {k: repr(v) if isinstance(v, BaseException) else v for k, v in fields.items()}
        self.events.append((name, fields))
        self._counts[name] += 1
        if name in self._recorded:
            self._recorded[name].set()

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def count(self, name: str) -> int:
        return self._counts[name]

    def select(self, *names: str, **match: Any) -> list[Event]:
        """The events named one of `names` (any, if none) whose arguments include `match`
        (`request_id=3`, say), in order."""
        return [
            (name, fields)
            for name, fields in self.events
            if (not names or name in names)
            and all(key in fields and fields[key] == value for key, value in match.items())
        ]

    async def wait(self, name: str, timeout: float = 2.0) -> None:
        """Return once an event `name` is recorded (at once if one was already)."""
        if not self.count(name):
            async with asyncio.timeout(timeout):
                await self._recorded.setdefault(name, asyncio.Event()).wait()
