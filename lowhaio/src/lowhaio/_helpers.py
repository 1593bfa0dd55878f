"""The everyday call in a line: a JSON request body with its headers, a response body read as
JSON within a bound, and the values of a header by name. Small functions over the core's own
types, not a session object: the core stays a `request` and its bodies.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Iterable
from typing import Any, TypedDict

from ._body import discard, streamed
from ._exceptions import HttpDataError
from ._pool import BodyFactory, RequestHeaders

# What `read_json` reads by default before it gives up: larger than any everyday API answer,
# small enough that a server cannot fill the caller's memory.
JSON_LIMIT_BYTES = 16 * 1024 * 1024


class HttpBodyTooLong(HttpDataError):
    """A response body was longer than the caller allowed (`read_json`'s `max_bytes`); the
    body was dropped (`discard`), so its connection is reused or closed, never held."""


class JsonBody(TypedDict):
    """The `headers` and `body` keyword arguments of a request with a JSON body."""

    headers: tuple[tuple[bytes, bytes], ...]
    body: BodyFactory


def json_body(value: object, headers: RequestHeaders = ()) -> JsonBody:
    """`value` as a JSON request body, with the fields that describe it, as keyword arguments:
    `await request(b"POST", url, **json_body({"a": 1}))`.

    The caller's own `headers` go in here (`**json_body(value, headers=...)`), since a call
    cannot take `headers=` twice: they come first, then `content-type: application/json`
    (unless they name a content-type themselves) and the `content-length`. The value is
    encoded now, so an error in it is raised here and the body can be replayed (by redirect and
    retry wrappers). NaN and infinities are refused (`ValueError`): they are not JSON.
    """
    data = json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    given = tuple(headers)
    described: tuple[tuple[bytes, bytes], ...] = ((b"content-length", b"%d" % len(data)),)
    if not any(name.lower() == b"content-type" for name, _ in given):
        described = ((b"content-type", b"application/json"), *described)
    return {"headers": (*given, *described), "body": streamed(data)}


async def read_json(body: AsyncIterable[bytes], *, max_bytes: int = JSON_LIMIT_BYTES) -> Any:
    """Read a whole response body and parse it as JSON (UTF-8, -16 or -32). Once more than
    `max_bytes` have come, the body is dropped (`discard`) and `HttpBodyTooLong` raised; text
    that is not JSON raises `json.JSONDecodeError` (a `ValueError`)."""
    data = bytearray()
    chunks = aiter(body)
    async for chunk in chunks:
        data += chunk
        if len(data) > max_bytes:
            await discard(chunks)
            raise HttpBodyTooLong(f"response body is longer than {max_bytes} bytes")
    return json.loads(data)


def header_values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> tuple[bytes, ...]:
    """The value of every field named `name`, compared without case, in the order they came: a
    field sent more than once (`set-cookie`, say) keeps each of its values; none is ()."""
    name = name.lower()
    return tuple(value for field, value in headers if field.lower() == name)
