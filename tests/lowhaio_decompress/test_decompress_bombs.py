"""Decompression bombs: 256 MiB of zeros in each coding (260 KB of gzip, 8 KB of zstd, 405 bytes
of br). Memory is measured in a fresh process that only reads (this one built the bombs), as
the kernel counts it: its peak resident set, reset before each measurement, so that what the
C decoders allocate (brotli's and zstd's windows) counts too."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from coded import BOMB_BYTES, MiB, bomb, coded, response
from conftest import respond_with, serve

from lowhaio_decompress import CHUNK_BYTES

# Runs in its own process: reads one bomb three times, with each set of limits, and says how
# far each raised the peak RSS above what it was with the response head received.
READER = r"""
import asyncio, json, sys

from lowhaio import Pool
from lowhaio_decompress import HttpDecompressionError, decompressed

def peak():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

def reset_peak():
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")

async def main(url, runs):
    results = []
    async with Pool() as request:
        for limits in runs:
            wrapped = decompressed(request, **limits)
            _, _, small = await wrapped(b"GET", url + "/small")  # lazy imports, the connection
            async for _ in small:
                pass
            _, _, body = await wrapped(b"GET", url + "/bomb")
            reset_peak()
            before = peak()
            first = await anext(body)
            first_read = peak() - before
            decoded, largest, error = len(first), len(first), None
            try:
                async for piece in body:
                    decoded += len(piece)
                    largest = max(largest, len(piece))
            except HttpDecompressionError as exc:
                error = type(exc).__name__
            results.append(
                {"first_read": first_read, "whole_read": peak() - before, "decoded": decoded,
                 "largest": largest, "error": error}
            )
    print(json.dumps(results))

asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
"""

RUNS = [
    {},  # the defaults: the ratio stops it
    {"max_ratio": None, "max_bytes": 64 * MiB},  # the total stops it
    {"max_ratio": None, "max_bytes": None},  # nothing stops it: read whole, still bounded
]


async def read_in_a_fresh_process(coding: str) -> list[dict[str, int | str | None]]:
    bombed = response(bomb(coding), b"content-encoding: " + coding.encode())
    small = coded(coding, b"small")
    # Each run asks for /small, then the bomb, on one connection.
    async with serve(respond_with(*[small, bombed] * len(RUNS))) as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            READER,
            server.url(""),
            json.dumps(RUNS),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await process.communicate()
    assert process.returncode == 0
    results: list[dict[str, int | str | None]] = json.loads(out)
    return results


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
async def test_a_bomb_grows_memory_by_a_few_mib_at_most_and_its_limits_stop_it(
    coding: str,
) -> None:
    defaults, total, unbounded = await read_in_a_fresh_process(coding)
    print(coding, defaults, total, unbounded)  # the numbers, with pytest -s
    for run in (defaults, total, unbounded):
        assert run["largest"] == CHUNK_BYTES  # every read: at most that, however it expands
        # brotli and zstd's windows (4 MiB for this br, at most 8 MiB for zstd), the pieces.
        assert isinstance(run["first_read"], int)
        assert run["first_read"] <= 10 * MiB, run
        assert run["whole_read"] == run["first_read"] or run["whole_read"] <= 10 * MiB, run
    assert defaults["error"] == "HttpDecompressionRatioError"
    assert total["error"] == "HttpDecodedTooLong"
    assert isinstance(total["decoded"], int)
    assert 64 * MiB - CHUNK_BYTES < total["decoded"] <= 64 * MiB  # the piece past it not given
    assert (unbounded["error"], unbounded["decoded"]) == (None, BOMB_BYTES)
