"""Client-side helpers shared by the tests against real S3 servers: a pool per test, bodies
streamed in odd-sized pieces, reading answers, and ways to spoil a signature on the wire."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlencode

from conftest import pool as pool  # re-exported: the tests take it from here

import lowhaio
from lowhaio import BodyFactory, Request, RequestHeaders, Response

REGION = "us-east-1"
KIB = 1024
MIB = 1024 * KIB
PIECE_BYTES = 7919  # a prime: the caller's pieces never line up with the signer's 64 KiB chunks

_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def in_pieces(data: bytes, piece_bytes: int = PIECE_BYTES) -> BodyFactory:
    """A replayable body factory that yields `data` in pieces of `piece_bytes`."""

    async def body() -> AsyncIterator[memoryview]:
        view = memoryview(data)
        for start in range(0, len(data), piece_bytes):
            yield view[start : start + piece_bytes]

    return body


def content_length(data: bytes) -> tuple[tuple[bytes, bytes], ...]:
    return ((b"content-length", b"%d" % len(data)),)


def unique_bucket() -> str:
    return f"lowhaio-{uuid.uuid4().hex[:16]}"


async def read(response: Response) -> tuple[int, bytes]:
    """The status code and the whole body of a response."""
    code, _, body = response
    return int(code), await lowhaio.buffered(body)


def error_code(body: bytes) -> str | None:
    """The <Code> of an S3 or AWS Query API error document."""
    match = re.search(rb"<Code>([^<]*)</Code>", body)
    return match.group(1).decode() if match else None


async def query_api(
    request: Request, url: str, action: str, version: str, **params: str
) -> tuple[int, bytes]:
    """One call of an AWS Query API (IAM, STS): a form-encoded POST."""
    form = urlencode({"Action": action, "Version": version, **params}).encode()
    headers = ((b"content-type", b"application/x-www-form-urlencoded; charset=utf-8"),)
    return await read(
        await request(
            b"POST", url, headers=headers + content_length(form), body=lowhaio.streamed(form)
        )
    )


def flip_hex_digit(digit: str) -> str:
    """Another hex digit."""
    return "1" if digit == "0" else "0"


# Spoiling an aws-chunked body on the wire ---------------------------------------------------

SIGNATURE_MARKER = b";chunk-signature="


def chunk_signature_offsets(encoded: bytes) -> list[int]:
    """Where each chunk signature of an aws-chunked body starts, walking its framing:
    `hex-size;chunk-signature=<64 hex>\\r\\n<data>\\r\\n`, up to the final empty chunk."""
    offsets, position = [], 0
    while True:
        head_end = encoded.index(b"\r\n", position)
        size_hex, marker, _ = encoded[position:head_end].partition(SIGNATURE_MARKER)
        assert marker, "not an aws-chunked chunk head"
        offsets.append(position + len(size_hex) + len(marker))
        position = head_end + 2 + int(size_hex, 16) + 2
        if int(size_hex, 16) == 0:
            assert position == len(encoded), "bytes after the final chunk"
            return offsets


def tampering_chunk_signature(request: Request, index: int | None) -> Request:
    """A wrapper to put between `signed(..., payload="streaming")` and the real `request`: it
    changes one hex digit of the `index`-th chunk signature (-1: the final, empty chunk's) of the
    aws-chunked body, keeping its length; `None` changes nothing (the control)."""

    async def tampering_request(
        method: bytes,
        url: str,
        params: lowhaio.Params = (),
        headers: RequestHeaders = (),
        body: BodyFactory = lowhaio.empty_body,
        body_args: tuple[Any, ...] = (),
        body_kwargs: Mapping[str, Any] = _NO_KWARGS,
    ) -> Response:
        encoded = b"".join([bytes(chunk) async for chunk in body(*body_args, **body_kwargs)])
        offsets = chunk_signature_offsets(encoded)
        if index is not None:
            at = offsets[index]
            digit = flip_hex_digit(encoded[at : at + 1].decode()).encode()
            encoded = encoded[:at] + digit + encoded[at + 1 :]
        return await request(method, url, params, headers, in_pieces(encoded))

    return tampering_request


def replacing_in_body(request: Request, old: bytes, new: bytes) -> Request:
    """A wrapper to put between the signer and the real `request`: it replaces the first `old`
    in the body it sends (encoded already: aws-chunked, trailers and all) with `new`, of the
    same length, as a man in the middle would."""
    assert len(old) == len(new)

    async def replacing_request(
        method: bytes,
        url: str,
        params: lowhaio.Params = (),
        headers: RequestHeaders = (),
        body: BodyFactory = lowhaio.empty_body,
        body_args: tuple[Any, ...] = (),
        body_kwargs: Mapping[str, Any] = _NO_KWARGS,
    ) -> Response:
        encoded = b"".join([bytes(chunk) async for chunk in body(*body_args, **body_kwargs)])
        assert old in encoded
        return await request(method, url, params, headers, in_pieces(encoded.replace(old, new, 1)))

    return replacing_request


def adding_headers(request: Request, *added: tuple[bytes, bytes]) -> Request:
    """A wrapper to put between the signer and the real `request`: it sends `added` before the
    signer's headers, as a signer that let a caller's own through beside its own would."""

    async def adding_request(
        method: bytes,
        url: str,
        params: lowhaio.Params = (),
        headers: RequestHeaders = (),
        *rest: Any,
    ) -> Response:
        return await request(method, url, params, (*added, *headers), *rest)

    return adding_request


def checksum_mode(*headers: tuple[bytes, bytes]) -> tuple[tuple[bytes, bytes], ...]:
    """A GET's headers asking S3 for the object's checksum."""
    return ((b"x-amz-checksum-mode", b"ENABLED"), *headers)


def amz_checksums(headers: lowhaio.Headers) -> dict[bytes, bytes]:
    return {name: value for name, value in headers if name.startswith(b"x-amz-checksum-")}
