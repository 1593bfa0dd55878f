"""Opening a TCP connection to the first of several addresses that answers, with no task.

Happy Eyeballs (RFC 8305 section 5): attempts start in the order given, a new one every
`CONNECTION_ATTEMPT_DELAY` while earlier ones are still pending, or at once when one fails; the
first to connect wins and the others are closed. Each attempt is a non-blocking socket whose
writability the event loop watches (`add_writer`), so the caller's task is the only one.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Sequence

CONNECTION_ATTEMPT_DELAY = 0.25  # seconds: RFC 8305's recommended default


async def connect_first(
    loop: asyncio.AbstractEventLoop,
    addresses: Sequence[str],
    port: int,
    delay: float = CONNECTION_ATTEMPT_DELAY,
) -> socket.socket:
    """A connected non-blocking socket to the first address that accepts; else the last error."""
    winner: asyncio.Future[socket.socket] = loop.create_future()
    queue = list(addresses)
    attempts: dict[int, socket.socket] = {}  # pending attempts by file descriptor
    errors: list[OSError] = []
    stagger: asyncio.TimerHandle | None = None

    def start_next() -> None:
        nonlocal stagger
        stagger = None
        while queue:
            address = queue.pop(0)
            try:
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            except OSError as exc:  # out of file descriptors, or no IPv6 here
                errors.append(exc)
                continue
            # Requests are written whole: Nagle's algorithm would only hold back a head or the
            # last piece of a body. (asyncio sets this itself only for sockets it creates.)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            try:
                sock.connect((address, port))
            except BlockingIOError:
                pass  # in progress: the loop says when it is writable
            except OSError as exc:  # refused or unreachable at once: try the next now
                sock.close()
                errors.append(exc)
                continue
            attempts[sock.fileno()] = sock
            loop.add_writer(sock.fileno(), attempted, sock.fileno())
            if queue:
                stagger = loop.call_later(delay, start_next)
            return
        if not attempts and not winner.done():
            winner.set_exception(errors[-1])

    def attempted(fd: int) -> None:
        loop.remove_writer(fd)
        sock = attempts.pop(fd)
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if not error and not winner.done():  # done: the caller gave up in this same turn
            winner.set_result(sock)
            return
        sock.close()
        errors.append(OSError(error, os.strerror(error)))  # the subclass that errno names
        if stagger is not None:
            stagger.cancel()
        start_next()

    start_next()
    try:
        return await winner
    except BaseException:
        if winner.done() and not winner.cancelled() and winner.exception() is None:
            winner.result().close()  # connected just as the caller gave up
        raise
    finally:
        if stagger is not None:
            stagger.cancel()
        for fd, sock in attempts.items():
            loop.remove_writer(fd)
            sock.close()
