"""Chunked transfer encoding of lowhaio request bodies.

from lowhaio import Pool
from lowhaio_chunked import HEADER, chunked

request, close = Pool()
code, headers, body = await request(
    b"POST", "https://example.com/upload", headers=(HEADER,), body=chunked(file_chunks)
)
"""

from ._chunked import HEADER, chunked

__version__ = "0.1.0"

__all__ = ["HEADER", "chunked"]
