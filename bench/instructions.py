"""Instructions per small GET that lowhaio's client process executes, counted by valgrind's
callgrind: repeatable to a few hundred instructions on the same machine and Python, whatever
else runs, unlike a timing. For A/B comparisons of the per-request path on a noisy machine.

    python bench/instructions.py               # 64 concurrent tasks, as S2
    python bench/instructions.py --tasks 1     # sequential, as S1
    python bench/instructions.py --tasks 1 --tls   # sequential over TLS, as S6a

It starts bench.py's server in its own process, then runs the client under callgrind twice
(N and 4N requests) and prints the difference per request, so that start-up and imports
cancel out. Needs valgrind (`apt install valgrind`) and lowhaio installed.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import pathlib
import re
import subprocess
import sys

HERE = pathlib.Path(__file__).parent


async def client(port: int, requests: int, tasks: int, tls: int) -> None:
    import lowhaio

    if tls:  # as bench.py's lowhaio client: the test CA, verified, and https URLs
        sys.path.insert(0, str(HERE))
        import bench

        request, close = lowhaio.Pool(get_ssl_context=bench.client_ssl_context)
    else:
        request, close = lowhaio.Pool()  # as any version of lowhaio takes it, for A/B runs
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/small"

    async def worker() -> None:
        for _ in range(requests // tasks):
            _, _, body = await request(b"GET", url)
            async for _ in body:
                pass

    await asyncio.gather(*(worker() for _ in range(tasks)))
    await close()


def instructions(port: int, requests: int, tasks: int, tls: bool) -> int:
    run = [sys.executable, __file__, "--client", str(port), str(requests), str(tasks), str(+tls)]
    valgrind = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *run]
    output = subprocess.run(valgrind, capture_output=True, text=True, check=True).stderr
    found = re.search(r"Collected : (\d+)", output)
    assert found, output
    return int(found[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--requests", type=int, default=1280, help="N (then 4N)")
    parser.add_argument("--tls", action="store_true", help="over TLS (bench.py's TLS port)")
    parser.add_argument("--client", nargs=4, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(client(*args.client))
        return
    sys.path.insert(0, str(HERE))
    import bench

    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    server = context.Process(target=bench.serve, args=(100, None, theirs), daemon=True)
    server.start()
    plain, tls, *_ = ours.recv()  # the plain, TLS and proxy ports
    port = tls if args.tls else plain
    try:
        few = instructions(port, args.requests, args.tasks, args.tls)
        many = instructions(port, 4 * args.requests, args.tasks, args.tls)
    finally:
        server.terminate()
    per_request = (many - few) / (3 * args.requests)
    over = ", TLS" if args.tls else ""
    print(f"{per_request:,.0f} instructions per request ({args.tasks} tasks{over})")


if __name__ == "__main__":
    main()
