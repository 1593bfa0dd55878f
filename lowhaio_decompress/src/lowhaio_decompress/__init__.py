"""Decode compressed lowhaio response bodies as they are read, in bounded memory.

from lowhaio import Pool
from lowhaio_decompress import decompressed

request, close = Pool()
decompressing_request = decompressed(request)
code, headers, body = await decompressing_request(b"GET", "https://example.com/")
async for chunk in body:  # decoded, at most 256 KiB at a time
    ...
"""

from ._codings import HttpContentEncodingError, HttpDecompressionError
from ._decompress import (
    AVAILABLE_CODINGS,
    CHUNK_BYTES,
    DECODED_LIMIT_BYTES,
    MAX_CODINGS,
    MAX_RATIO,
    ORIGINAL_CONTENT_ENCODING,
    ORIGINAL_CONTENT_LENGTH,
    RATIO_ALLOWANCE_BYTES,
    UNTOUCHED_CODES,
    DecodedBody,
    HttpDecodedTooLong,
    HttpDecompressionRatioError,
    decompressed,
)

__version__ = "0.1.0"

__all__ = [
    "AVAILABLE_CODINGS",
    "CHUNK_BYTES",
    "DECODED_LIMIT_BYTES",
    "MAX_CODINGS",
    "MAX_RATIO",
    "ORIGINAL_CONTENT_ENCODING",
    "ORIGINAL_CONTENT_LENGTH",
    "RATIO_ALLOWANCE_BYTES",
    "UNTOUCHED_CODES",
    "DecodedBody",
    "HttpContentEncodingError",
    "HttpDecodedTooLong",
    "HttpDecompressionError",
    "HttpDecompressionRatioError",
    "decompressed",
]
