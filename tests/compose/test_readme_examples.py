"""Every Python example of the READMEs, run as a user would run it (see `readme_examples`),
against `example_site.Site` on 127.0.0.1 in place of https://example.com (and of the proxy and
the Unix socket they name): all but those that
name an S3 endpoint, which `tests/s3/test_s3_seaweedfs.py` runs against SeaweedFS."""

from __future__ import annotations

import pathlib

import pytest
from conftest import serve
from example_site import Site
from proxies_scripted import unix_server
from readme_examples import ROOT, Example, examples, run

LOCAL = [example for example in examples() if not example.uses_s3]


@pytest.mark.parametrize("example", LOCAL, ids=[example.name for example in LOCAL])
async def test_readme_example(example: Example, tmp_path: pathlib.Path) -> None:
    socket_path = str(tmp_path / "app.sock")
    async with (
        serve(Site().handle) as server,
        serve(Site().handle) as proxy,
        unix_server(Site().handle, socket_path),
    ):
        origins = {
            "https://example.com": server.url(""),
            "proxy.example:3128": f"127.0.0.1:{proxy.port}",
            "/run/app.sock": socket_path,
        }
        await run(example, origins, tmp_path)


def test_the_root_and_every_package_readme_have_examples_run_here() -> None:
    readmes = {example.path.relative_to(ROOT).as_posix() for example in LOCAL}
    assert readmes >= {
        "README.md",
        "lowhaio/README.md",
        "lowhaio_redirect/README.md",
        "lowhaio_retry/README.md",
        "lowhaio_chunked/README.md",
        "lowhaio_decompress/README.md",
    }
