"""Real proxies for the interop tests, as subprocesses on 127.0.0.1 (standard library only).

- `proxy_py(basic_auth=None, tls=False)` runs proxy.py (an HTTP proxy: forwards http:// requests,
  tunnels CONNECT), with `--basic-auth user:password` if given, and listening in TLS with the
  test certificates (`tests/certs`) if `tls`.
- `pproxy(auth=None)` runs pproxy as a SOCKS5 server, with RFC 1929 credentials if given; with
  `-v` it logs each target it is asked for (`socks5 127.0.0.1:PORT -> HOST:PORT`), which
  `RunningProxy.asked()` reads back.

Each listens on a port the system chooses (port 0) and says which one: proxy.py in its
`--port-file`, pproxy on its output ("Serving on ... 127.0.0.1:PORT"); no port is picked
beforehand, so none can be taken in between. Readiness is polled until a deadline (the error
then carries the tail of the server's output). Each runs in a session of its own (proxy.py
forks acceptor processes), and its whole process group is stopped at the end of the block:
SIGTERM, then SIGKILL for whatever is left.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

HOST = "127.0.0.1"
CERTS = pathlib.Path(__file__).parent.parent / "certs"
START_TIMEOUT = 30.0  # seconds for a proxy to come up
STOP_TIMEOUT = 5.0  # seconds for a proxy to exit after SIGTERM, before SIGKILL
POLL_INTERVAL = 0.02
LOG_TAIL_CHARS = 4000


class ProxyStartError(RuntimeError):
    """A proxy did not come up: the message carries its command line and output."""


@dataclass
class RunningProxy:
    """A proxy process listening on 127.0.0.1:`port`, its output going to `log_path`."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    log_path: pathlib.Path
    port: int = 0

    def url(self, scheme: str, credentials: str = "") -> str:
        """This proxy's URL: `scheme://[credentials@]127.0.0.1:port`."""
        userinfo = f"{credentials}@" if credentials else ""
        return f"{scheme}://{userinfo}{HOST}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace")

    def asked(self) -> list[str]:
        """The targets (`host:port`) that pproxy was asked to connect to, in order."""
        return re.findall(r"^socks5 \S+ -> (\S+)$", self.log(), re.MULTILINE)

    def failure(self, why: str) -> ProxyStartError:
        return ProxyStartError(
            f"{self.name} {why}\ncommand: {' '.join(self.argv)}\n"
            f"--- last output ---\n{self.log()[-LOG_TAIL_CHARS:]}"
        )

    def exited(self) -> bool:
        """Whether the process has exited, without reaping it: until it is reaped its id, the
        id of its process group, cannot be given to another process."""
        return os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

    def wait_until(self, ready: Callable[[], bool]) -> None:
        """Poll `ready()` until it is true; raise with the output if the process exits or
        `START_TIMEOUT` passes first."""
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if self.exited():
                raise self.failure("exited while starting")
            if time.monotonic() > deadline:
                raise self.failure(f"not ready after {START_TIMEOUT:.0f} s")
            time.sleep(POLL_INTERVAL)

    def stop(self) -> None:
        """SIGTERM to the process group, then, once the process has exited or after
        `STOP_TIMEOUT`, SIGKILL to whatever is left of the group; then reap the process."""
        group = self.popen.pid  # the leader of a session of its own: the group's id
        _signal_group(group, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while not self.exited() and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)
        _signal_group(group, signal.SIGKILL)  # its children that outlived it, or it
        self.popen.wait()


def _signal_group(group: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


@contextlib.contextmanager
def running(name: str, argv: list[str], directory: pathlib.Path) -> Iterator[RunningProxy]:
    """Run `argv` in `directory` for the duration of the block, in a session of its own, its
    output in `directory`/output.log; the process group is always stopped at the end."""
    log_path = directory / "output.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
    process = RunningProxy(name, argv, popen, log_path)
    try:
        yield process
    finally:
        process.stop()


def _console_script(name: str) -> str:
    """A console script of this Python's environment (the virtualenv's bin/)."""
    return str(pathlib.Path(sys.executable).parent / name)


# proxy.py -------------------------------------------------------------------------------------


def _answers_http(port: int, tls: bool) -> bool:
    """Whether an HTTP proxy on `port` answers a CONNECT (to a port nobody listens on) with an
    HTTP status line: it accepts, parses and answers, whatever it says."""
    try:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(socket.create_connection((HOST, port), timeout=1.0))
            if tls:
                context = ssl.create_default_context(cafile=CERTS / "ca.pem")
                sock = stack.enter_context(context.wrap_socket(sock, server_hostname=HOST))
            sock.sendall(b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nhost: 127.0.0.1:1\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.")
    except OSError:
        return False


@contextlib.contextmanager
def proxy_py(basic_auth: str | None = None, tls: bool = False) -> Iterator[RunningProxy]:
    """proxy.py on a port of 127.0.0.1 it chooses, with one acceptor."""
    with tempfile.TemporaryDirectory(prefix="lowhaio-proxy.py-") as tmp:
        directory = pathlib.Path(tmp)
        port_file = directory / "port"
        argv = [
            _console_script("proxy"),
            "--hostname",
            HOST,
            "--port",
            "0",
            f"--port-file={port_file}",
            "--num-acceptors=1",
            "--num-workers=1",
            f"--data-dir={directory / 'data'}",
            f"--pid-file={directory / 'pid'}",
            "--log-level=INFO",
        ]
        if basic_auth is not None:
            argv.append(f"--basic-auth={basic_auth}")
        if tls:
            argv += [f"--cert-file={CERTS / 'server.pem'}", f"--key-file={CERTS / 'server.key'}"]
        with running("proxy.py", argv, directory) as process:

            def ready() -> bool:
                try:
                    written = port_file.read_text()
                except FileNotFoundError:
                    return False
                if not written.endswith("\n"):
                    return False  # still being written
                process.port = int(written.split()[0])
                return _answers_http(process.port, tls)

            process.wait_until(ready)
            yield process


# pproxy ---------------------------------------------------------------------------------------

_SERVING = re.compile(r"^Serving on \S+ 127\.0\.0\.1:(\d+) by socks5", re.MULTILINE)

# pproxy's `main()`, run on asyncio's own loop, set as the current one: pproxy would install
# uvloop where it can import it, then call `asyncio.get_event_loop()`, which uvloop >= 0.22 (and
# asyncio itself on Python >= 3.14) refuses when no loop is set.
_RUN_PPROXY = """
import asyncio, sys
sys.modules["uvloop"] = None
asyncio.set_event_loop(asyncio.new_event_loop())
from pproxy.server import main
sys.exit(main())
"""


@contextlib.contextmanager
def pproxy(auth: str | None = None) -> Iterator[RunningProxy]:
    """pproxy as a SOCKS5 server on a port of 127.0.0.1 it chooses, logging each target.

    `--auth=-1`: every connection authenticates. pproxy otherwise lets a client IP that once
    gave the right credentials in without any for a month (its `--auth` interval)."""
    listen = f"socks5://{HOST}:0" + (f"#{auth}" if auth is not None else "")
    argv = [sys.executable, "-c", _RUN_PPROXY, "-l", listen, "--auth=-1", "-v"]
    with (
        tempfile.TemporaryDirectory(prefix="lowhaio-pproxy-") as tmp,
        running("pproxy", argv, pathlib.Path(tmp)) as process,
    ):

        def ready() -> bool:
            serving = _SERVING.search(process.log())
            if serving is not None:
                process.port = int(serving[1])
            return serving is not None

        process.wait_until(ready)
        yield process
