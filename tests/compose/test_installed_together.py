"""Every package installed at once: the core is the local one, not the old releases on the
package index, and it still serves requests."""

import importlib.metadata

from conftest import respond_with, serve

import lowhaio

WRAPPERS = [
    "lowhaio-redirect",
    "lowhaio-retry",
    "lowhaio-chunked",
    "lowhaio-aws-sigv4",
    "lowhaio-decompress",
    "lowhaio-s3",
]


def test_wrappers_resolve_to_the_local_core() -> None:
    assert importlib.metadata.version("lowhaio") == lowhaio.__version__ == "0.1.0"
    for wrapper in WRAPPERS:
        assert importlib.metadata.version(wrapper) == "0.1.0"


async def test_core_serves_requests_with_every_wrapper_installed() -> None:
    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    async with serve(respond_with(ok)) as server:
        request, close = lowhaio.Pool()
        code, _, body = await request(b"GET", server.url())
        assert (code, await lowhaio.buffered(body)) == (b"200", b"ok")
        await close()
