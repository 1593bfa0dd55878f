"""Instructions per small GET that lowhaio's client process executes, counted by valgrind's
callgrind: repeatable to a few hundred instructions on the same machine and Python, whatever
else runs, unlike a timing. For A/B comparisons of the per-request path on a noisy machine.

    python bench/instructions.py               # 64 concurrent tasks, as S2
    python bench/instructions.py --tasks 1     # sequential, as S1

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


async def client(port: int, requests: int, tasks: int) -> None:
    import lowhaio

    request, close = lowhaio.Pool()  # as any version of lowhaio takes it, for A/B runs
    url = f"http://127.0.0.1:{port}/small"

    async def worker() -> None:
        for _ in range(requests // tasks):
            _, _, body = await request(b"GET", url)
            async for _ in body:
                pass

    await asyncio.gather(*(worker() for _ in range(tasks)))
    await close()


def instructions(port: int, requests: int, tasks: int) -> int:
    run = [sys.executable, __file__, "--client", str(port), str(requests), str(tasks)]
    valgrind = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *run]
    output = subprocess.run(valgrind, capture_output=True, text=True, check=True).stderr
    found = re.search(r"Collected : (\d+)", output)
    assert found, output
    return int(found[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--requests", type=int, default=1280, help="N (then 4N)")
    parser.add_argument("--client", nargs=3, type=int, help=argparse.SUPPRESS)
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
    port, _ = ours.recv()
    try:
        few = instructions(port, args.requests, args.tasks)
        many = instructions(port, 4 * args.requests, args.tasks)
    finally:
        server.terminate()
    per_request = (many - few) / (3 * args.requests)
    print(f"{per_request:,.0f} instructions per request ({args.tasks} tasks)")


if __name__ == "__main__":
    main()
