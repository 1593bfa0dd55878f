"""The seed's example, pointed at a small echo server on 127.0.0.1 that this script starts.

Run from the repository root: `python3 -m pip install ./lowhaio && python3 examples/quickstart.py`
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from lowhaio import Pool, buffered, streamed


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer each request with its own body: just enough HTTP/1.1 for the example."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:  # the client closed the connection
            writer.close()
            return
        length = 0
        for line in head.lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))


async def main() -> None:
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/post"
    request, close = Pool()

    async def request_body() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"bc"

    code, headers, response_body = await request(
        b"POST",
        url,
        headers=((b"content-length", b"3"), (b"content-type", b"text/plain")),
        body=request_body,
    )
    async for chunk in response_body:
        print(code, headers, chunk)

    code, headers, response_body = await request(
        b"POST", url, headers=((b"content-length", b"9"),), body=streamed(b"some-data")
    )
    print(code, await buffered(response_body))

    await close()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
