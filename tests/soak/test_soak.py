"""A bounded soak: 20,000 requests from 64 tasks through one pool, against a server in its own
process that closes, resets, stalls and truncates at random (see soak_server.py), while the
callers cancel some requests and abandon some bodies.

Afterwards nothing is left: no descriptor, no task, no connection in use; every failure was a
typed `HttpError` (or the caller's own cancellation), the one that the server's fault calls
for; every body that arrived is exact to the byte. The seed is printed;
LOWHAIO_SOAK_SEED=<seed> replays the same plan (the interleaving still varies).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import hashlib
import json
import os
import random
import selectors
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import Recorder, new_event_loop
from soak_server import MAX_SIZE, Fault, get_body, plan, post_body, trailer

import lowhaio
import lowhaio_retry

REQUESTS = 20_000
TASKS = 64
MAX_CONNECTIONS = 32  # fewer than the tasks, so that requests wait for connections
READ_TIMEOUT = 0.3  # also the write timeout; a stalled server costs this much
TIME_LIMIT = 60.0  # seconds for the whole run

SERVER = Path(__file__).with_name("soak_server.py")

# The request number of the request running in this context, for the hooks.
current = contextvars.ContextVar[int]("current")

TIMEOUT = lowhaio.HttpDataTimeoutError
CLOSED = lowhaio.HttpConnectionClosedError
STALE = lowhaio.HttpStaleConnectionError
# What a request that met a fault may raise. HttpStaleConnectionError says that the server did
# not process the request: it is right only on a reused connection that the server closed
# before reading the whole request (after its previous answer, or at once on a POST's head).
EXPECTED: dict[str, tuple[type[lowhaio.HttpError], ...]] = {
    "ok": (),
    "close": (CLOSED,),
    "reset": (CLOSED,),
    "stall": (TIMEOUT,),
    "truncate": (CLOSED,),
}


@dataclass(frozen=True)
class Call:
    """What the caller does for request `n`: all drawn from the seed."""

    n: int
    method: bytes
    route: str  # "get", "echo" or "hash"
    size: int
    chunked: bool  # a POST body sent chunked rather than with content-length
    expect: bool  # a POST with Expect: 100-continue
    retry: bool  # through lowhaio_retry.retry
    action: str  # "read", "abandon", "drop", "timeout" (asyncio.timeout) or "cancel"
    whole: bool  # a cancellation's clock starts with the request, else with the body
    delay: float  # seconds until the cancellation

    @property
    def url_path(self) -> str:
        if self.route == "get":
            return f"/get/{self.n}/{self.size}"
        return f"/{self.route}/{self.n}"

    def expected_body(self) -> bytes:
        if self.route == "get":
            return get_body(self.n, self.size)
        if self.route == "echo":
            return post_body(self.n, self.size)
        return hashlib.sha256(post_body(self.n, self.size)).hexdigest().encode()


def call(seed: int, n: int) -> Call:
    rng = random.Random(f"{seed}/client/{n}")
    post = rng.random() < 0.15
    # Sizes spread evenly over orders of magnitude, 0 to 256 KiB: mostly small, some large.
    size = 0 if rng.random() < 0.1 else min(int(2 ** rng.uniform(0, 18)), MAX_SIZE)
    draw = rng.random()
    action = "read"
    for name, share in (("abandon", 0.025), ("drop", 0.005), ("timeout", 0.01), ("cancel", 0.01)):
        if draw < share:
            action = name
            break
        draw -= share
    whole = rng.random() < 0.5
    return Call(
        n=n,
        method=b"POST" if post else b"GET",
        route=rng.choice(("echo", "hash")) if post else "get",
        size=size,
        chunked=rng.random() < 0.3,
        expect=rng.random() < 0.1,
        retry=rng.random() < 0.2,
        action=action,
        whole=whole,
        delay=rng.uniform(0, 0.03) if whole else rng.uniform(0, 0.005),
    )


@dataclass
class Outcome:
    """What one request came to."""

    result: str  # "success", "error", "cancelled", "abandoned" or "dropped"
    error: BaseException | None = None
    trailers: lowhaio.Headers = ()


class Connections(Recorder):
    """Every hook call, in conftest's Recorder, with errors as their repr (kept, an error's
    traceback would keep a retry's frame alive, and the response it returns); and the number of
    the request that each request id served, to tell which requests took a reused connection.
    The counts and the connections close() found in use are read from the events."""

    def __init__(self) -> None:
        super().__init__(keep_errors=False)
        self.numbers: dict[int, int] = {}  # request number by request id

    def record(self, name: str, **fields: Any) -> None:
        super().record(name, **fields)
        if name in ("connection_opened", "connection_reused"):
            self.numbers[fields["request_id"]] = current.get()

    @property
    def opened(self) -> int:
        return self.count("connection_opened")

    @property
    def closed(self) -> int:
        return self.count("connection_closed")

    @property
    def most_open(self) -> int:
        """The most connections open at once."""
        most = now = 0
        for name in self.names():
            if name == "connection_opened":
                now += 1
                most = max(most, now)
            elif name == "connection_closed":
                now -= 1
        return most

    @property
    def reasons(self) -> Counter[str]:
        return Counter(fields["reason"] for _, fields in self.select("connection_closed"))

    def reused(self) -> set[int]:
        """The numbers of the requests that took a reused connection."""
        return {
            self.numbers[fields["request_id"]] for _, fields in self.select("connection_reused")
        }

    def in_use(self, seed: int) -> list[str]:
        """What each connection that close() found in use was used for."""
        return [
            f"request id {request_id}: {call(seed, self.numbers[request_id])}:"
            f" {self.select(request_id=request_id)}"
            for _, fields in self.select("connection_closed", reason="pool closed")
            if (request_id := fields["request_id"]) is not None
        ]


class ServerProcess:
    """soak_server.py in a child process: killed when the block exits, whatever happens."""

    def __init__(self, seed: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER), str(seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout=20):
                self.stop()
                raise AssertionError("the soak server did not start within 20 s")
        line = self.process.stdout.readline().split()
        if line[:1] != [b"PORT"]:
            self.stop()
            raise AssertionError(f"the soak server said {line!r}, not its port")
        self.port = int(line[1])

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


def descriptors() -> dict[int, str]:
    """This process's open descriptors, and what each is (`socket:[inode]`, `pipe:[inode]`...)."""
    found = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # listdir's own, closed since
            found[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return found


def sockets(found: dict[int, str]) -> int:
    return sum(target.startswith("socket:") for target in found.values())


def changed(before: dict[int, str], after: dict[int, str]) -> dict[int, str]:
    """Descriptors opened (or reused for something else) since `before`."""
    return {fd: target for fd, target in after.items() if before.get(fd) != target}


async def body_of(data: bytes, chunked: bool, n: int) -> AsyncIterator[bytes]:
    """A request body factory: `data` in pieces of varied sizes, framed by hand if `chunked`."""
    rng = random.Random(n)
    at = 0
    while at < len(data):
        piece = data[at : at + rng.choice((1000, 16384, 65536))]
        at += len(piece)
        yield b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
    if chunked:
        yield b"0\r\n\r\n"


@dataclass(repr=False)  # pytest would show all 20,000 outcomes
class Run:
    """What the soak saw; checked once the loop and the server are gone."""

    seed: int
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    connections: Connections = field(default_factory=Connections)
    seen: dict[int, int] = field(default_factory=dict)  # by the server: attempts per request
    server_faults: dict[str, int] = field(default_factory=dict)
    server_open: int = -1  # connections the server still had open at the end
    timed_out: bool = False
    elapsed: float = 0.0
    tasks: tuple[int, int] = (0, 0)  # before and after
    descriptors: tuple[dict[int, str], dict[int, str]] = ({}, {})  # before and after, in the loop
    # Before close(): sockets opened since the start, and connections open as the hooks count.
    idle: tuple[int, int] = (0, 0)
    closed_by_close: int = 0


async def soak(seed: int, port: int) -> Run:
    run = Run(seed)
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    await warm_up(port)
    gc.collect()
    tasks_before = len(asyncio.all_tasks())
    fds_before = descriptors()
    sockets_before = sockets(fds_before)
    conns = run.connections
    request, close = lowhaio.Pool(
        plugins=(conns,),
        read_timeout=READ_TIMEOUT,
        write_timeout=READ_TIMEOUT,
        continue_timeout=0.05,
        max_connections=MAX_CONNECTIONS,
    )
    retrying = lowhaio_retry.retry(
        request,
        attempts=3,
        backoff=0.005,
        max_backoff=0.05,
        jitter=random.Random(f"{seed}/jitter").random,
    )
    base = f"http://127.0.0.1:{port}"

    async def exchange(c: Call, on_head: Callable[[], object] | None = None) -> Outcome:
        current.set(c.n)
        headers: list[tuple[bytes, bytes]] = []
        kwargs: dict[str, Any] = {}
        if c.method == b"POST":
            data = post_body(c.n, c.size)
            if c.chunked:
                headers.append((b"transfer-encoding", b"chunked"))
            else:
                headers.append((b"content-length", b"%d" % len(data)))
            if c.expect:
                headers.append((b"expect", b"100-continue"))
            kwargs = {"body": body_of, "body_args": (data, c.chunked, c.n)}
        send = retrying if c.retry else request
        code, response_headers, body = await send(
            c.method, base + c.url_path, headers=headers, **kwargs
        )
        if on_head is not None:
            on_head()  # the body's turn: a cancellation's clock may start now
        if code != b"200" or (b"x-n", b"%d" % c.n) not in response_headers:
            run.problems.append(f"{c}: got {code!r} {response_headers!r}")
        if c.action == "drop":
            del body  # let go of unread: collected at once, which closes its connection
            return Outcome("dropped")
        expected = c.expected_body()
        if c.action == "abandon":
            pieces = []
            async for chunk in body:  # at least one chunk, up to half the body
                pieces.append(chunk)
                if sum(map(len, pieces)) * 2 >= len(expected):
                    break
            await body.aclose()
            if not expected.startswith(b"".join(pieces)):
                run.problems.append(f"{c}: {sum(map(len, pieces))} bytes not at the body's start")
            return Outcome("abandoned")
        received = await lowhaio.buffered(body)
        if received != expected:
            run.problems.append(f"{c}: {len(received)} bytes, not the {len(expected)} expected")
            if len(received) == len(expected):
                run.problems[-1] += ", but other bytes"
        return Outcome("success", trailers=body.trailers)

    async def cancelled_by_timeout(c: Call) -> Outcome:
        deadline = asyncio.timeout(None)

        def start_clock() -> None:
            deadline.reschedule(loop.time() + c.delay)

        try:
            async with deadline:
                if c.whole:
                    start_clock()
                outcome = await exchange(c, None if c.whole else start_clock)
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            return Outcome("cancelled", exc)
        except lowhaio.HttpError as exc:
            swallowed(c, deadline.expired(), exc)
            raise
        swallowed(c, deadline.expired(), outcome)
        return outcome

    def swallowed(c: Call, cancelled: bool, instead: object) -> None:
        # A cancellation is delivered at the next await, as CancelledError, which lowhaio
        # never translates nor swallows: the request cannot end otherwise.
        if cancelled:
            run.problems.append(f"{c}: cancelled, but it ended with {instead!r}")

    async def cancelled_by_task(c: Call) -> Outcome:
        timers = []
        cancelled = False

        def cancel() -> None:
            nonlocal cancelled
            cancelled = task.cancel()  # False once the task is done

        def start_clock() -> None:
            timers.append(loop.call_later(c.delay, cancel))

        task = asyncio.create_task(exchange(c, None if c.whole else start_clock))
        if c.whole:
            start_clock()
        try:
            await asyncio.wait({task})
        finally:
            task.cancel()  # no-op once done; else the worker itself was cancelled
            for timer in timers:
                timer.cancel()
        if task.cancelled():
            return Outcome("cancelled", asyncio.CancelledError())
        swallowed(c, cancelled, task.exception() or task.result())
        return task.result()

    async def one(c: Call) -> Outcome:
        try:
            if c.action == "timeout":
                return await cancelled_by_timeout(c)
            if c.action == "cancel":
                return await cancelled_by_task(c)
            return await exchange(c)
        except lowhaio.HttpError as exc:
            return Outcome("error", exc)
        except Exception as exc:
            trace = "".join(traceback.format_exception(exc))
            run.problems.append(f"{c}: untyped {exc!r}\n{trace}")
            return Outcome("untyped", exc)

    async def worker(numbers: Iterator[int]) -> None:
        for n in numbers:
            run.outcomes[n] = await one(call(seed, n))

    start = time.monotonic()
    try:
        numbers = iter(range(REQUESTS))
        try:
            async with asyncio.timeout(TIME_LIMIT), asyncio.TaskGroup() as group:
                for _ in range(TASKS):
                    group.create_task(worker(numbers))
        except TimeoutError:
            run.timed_out = True
        run.elapsed = time.monotonic() - start
        # Connections aborted by the pool close their sockets a turn of the loop later, and
        # idle ones that the server closed are seen closed when its FIN arrives: let them.
        idle = (0, 0)
        for _ in range(200):
            idle = (sockets(descriptors()) - sockets_before, conns.opened - conns.closed)
            if idle[0] == idle[1]:
                break
            await asyncio.sleep(0.01)
        run.idle = idle
    finally:
        closed_before = conns.closed
        await close()
        run.closed_by_close = conns.closed - closed_before
    gc.collect()
    await stats(run, port)
    run.tasks = (tasks_before, len(asyncio.all_tasks() - {me}) + 1)
    run.descriptors = (fds_before, descriptors())
    return run


async def warm_up(port: int) -> None:
    """One request through a pool of its own: the loop's first connection may open lasting
    descriptors of its own (libuv, under uvloop, opens /dev/null as a spare), not a leak."""
    sockets_before = sockets(descriptors())
    request, close = lowhaio.Pool()
    try:
        _, _, body = await request(b"GET", f"http://127.0.0.1:{port}/stats")
        await lowhaio.buffered(body)
    finally:
        await close()
    for _ in range(200):  # its socket is closed a turn of the loop after the connection
        if sockets(descriptors()) == sockets_before:
            break
        await asyncio.sleep(0.01)


async def stats(run: Run, port: int) -> None:
    """The server's record, once it has seen every connection closed (or after 2 s)."""
    for _ in range(100):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /stats HTTP/1.1\r\nhost: x\r\n\r\n")
            answer = await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()
        record = json.loads(answer.partition(b"\r\n\r\n")[2])
        run.server_open = record["open"]
        if not run.server_open:
            break
        await asyncio.sleep(0.02)
    run.seen = {int(n): count for n, count in record["seen"].items()}
    run.server_faults = record["faults"]


def check(run: Run) -> tuple[list[str], Counter[str]]:
    """Every request's outcome against what the server did with it: the problems, and counts."""
    problems = list(run.problems)
    counts: Counter[str] = Counter()
    conns = run.connections
    reused_numbers = conns.reused()
    for n in range(REQUESTS):
        c = call(run.seed, n)
        outcome = run.outcomes.get(n)
        if outcome is None:
            problems.append(f"{c}: never finished")
            continue
        counts[outcome.result] += 1
        attempts = run.seen.get(n, 0)
        if attempts > (3 if c.retry else 1):
            problems.append(f"{c}: reached the server {attempts} times")
        if outcome.result == "cancelled" and c.action not in ("timeout", "cancel"):
            problems.append(f"{c}: cancelled, but not by its caller")
        if outcome.result == "success":
            fault = plan(run.seed, n, attempts - 1) if attempts else None
            if fault is None or fault.kind != "ok":
                problems.append(f"{c}: a success, from a server that did {fault}")
            elif outcome.trailers != expected_trailers(n, fault):
                problems.append(f"{c}: trailers {outcome.trailers!r}")
        error = outcome.error
        if outcome.result != "error":
            continue
        counts[type(error).__name__] += 1
        if type(error) not in (TIMEOUT, CLOSED, STALE):
            problems.append(f"{c}: {error!r}, from a server that never sends bad HTTP")
        if c.retry or c.action in ("timeout", "cancel"):
            continue  # which attempt met which fault, or where it was cancelled, is unknown
        reused = n in reused_numbers
        if not attempts:
            # Sent on a connection that the server closed after its previous answer: stale if
            # the client saw that before the whole request was sent, else it cannot tell.
            if not reused or type(error) not in (STALE, CLOSED):
                problems.append(f"{c}: {error!r}, but the server never saw the request")
            continue
        fault = plan(run.seed, n, 0)
        allowed = EXPECTED[fault.kind]
        if reused and fault.kind == "close" and fault.early and c.method == b"POST":
            allowed += (STALE,)  # closed with the body unread: not processed
        if fault.kind == "ok" and type(error) is TIMEOUT:
            counts["slow"] += 1  # the server was late with a correct answer: bounded below
        elif type(error) not in allowed:
            problems.append(
                f"{c}: {error!r} ({'reused' if reused else 'new'} connection), from {fault}"
            )
    # On a loaded machine, a correct answer may come late; more than 1% of them would not be
    # load but a bug.
    if counts["slow"] > REQUESTS // 100:
        problems.append(f"{counts['slow']} correct answers timed out")
    return problems, counts


def expected_trailers(n: int, fault: Fault) -> lowhaio.Headers:
    return (trailer(n),) if fault.framing == "chunked" and fault.trailers else ()


def summary(run: Run, counts: Counter[str], outside: tuple[dict[int, str], dict[int, str]]) -> str:
    failures = {
        name: count
        for name, count in sorted(counts.items())
        if name.startswith("Http") or name == "untyped"
    }
    conns = run.connections
    return (
        f"soak seed={run.seed} loop={os.environ.get('LOWHAIO_TEST_LOOP', 'asyncio')}"
        f" requests={len(run.outcomes)} successes={counts['success']} failures={failures}"
        f" (of which slow correct answers: {counts['slow']})"
        f" cancelled={counts['cancelled']} abandoned={counts['abandoned']}"
        f" dropped={counts['dropped']} server_faults={run.server_faults}"
        f" connections_opened={conns.opened} most_open={conns.most_open}"
        f" closed={dict(conns.reasons)}"
        f" descriptors={len(run.descriptors[0])}->{len(run.descriptors[1])}"
        f" (outside the loop {len(outside[0])}->{len(outside[1])})"
        f" tasks={run.tasks[0]}->{run.tasks[1]} elapsed={run.elapsed:.1f}s"
    )


def test_soak(capsys: pytest.CaptureFixture[str]) -> None:
    seed = int(os.environ.get("LOWHAIO_SOAK_SEED") or random.SystemRandom().getrandbits(32))
    with capsys.disabled():
        print(f"\nsoak seed={seed} (LOWHAIO_SOAK_SEED={seed} to replay)", flush=True)
    start = time.monotonic()
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(asyncio.sleep(0))  # uvloop opens a pipe for the process at its first loop
    gc.collect()
    outside_before = descriptors()
    server = ServerProcess(seed)

    async def bounded() -> Run:
        # The load is bounded by TIME_LIMIT inside; this bounds closing and counting too.
        async with asyncio.timeout(TIME_LIMIT + 30):
            return await soak(seed, server.port)

    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            run = runner.run(bounded())
    finally:
        server.stop()
    gc.collect()
    outside = (outside_before, descriptors())
    elapsed = time.monotonic() - start
    problems, counts = check(run)
    with capsys.disabled():
        print(summary(run, counts, outside), flush=True)

    assert not run.timed_out, f"seed {seed}: not done within {TIME_LIMIT} s"
    assert elapsed < TIME_LIMIT, f"seed {seed}: {elapsed:.1f} s"
    assert not problems, f"seed {seed}: {len(problems)} problems:\n" + "\n".join(problems[:20])
    conns = run.connections
    # Before close(): every connection still open was idle (its socket still open), and
    # close() closed exactly those, none with a request using it.
    assert run.idle[0] == run.idle[1], f"seed {seed}: sockets, connections: {run.idle}"
    assert run.closed_by_close == run.idle[1]
    assert conns.in_use(seed) == []
    assert conns.opened == conns.closed
    assert conns.most_open <= MAX_CONNECTIONS
    assert run.server_open == 0
    assert run.tasks[1] == run.tasks[0]
    assert changed(*run.descriptors) == {}
    assert changed(*outside) == {}
    # The load was what it claims: faults of every kind met, callers cancelled and abandoned.
    assert sum(run.seen.values()) >= REQUESTS * 0.95
    assert all(run.server_faults.get(kind, 0) > 0 for kind in EXPECTED)
    assert counts["cancelled"] > 0
    assert counts["abandoned"] > 0
    assert counts["dropped"] > 0
