"""Shared by the lowhaio_aws_sigv4 tests: a fake `request` that records what the signer passes
on (and reads the body it would send), and the parts of an Authorization header."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple, cast

from lowhaio import BodyFactory, Params, RequestHeaders, Response, empty_body

_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


class Sent(NamedTuple):
    """One call the signer made to the `request` it wraps."""

    method: bytes
    url: str
    params: tuple[tuple[str | bytes, str | bytes], ...]
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes  # everything the body factory yielded, joined

    def header(self, name: bytes) -> bytes:
        """The value of the one header called `name` (any case)."""
        (value,) = [v for n, v in self.headers if n.lower() == name]
        return value

    def names(self) -> list[bytes]:
        return [name.lower() for name, _ in self.headers]

    def authorization(self) -> dict[str, str]:
        return authorization_parts(self.header(b"authorization").decode())


class Recorder:
    """A fake `request`: records each call, reading the body factory as the core would."""

    def __init__(self) -> None:
        self.calls: list[Sent] = []

    async def __call__(
        self,
        method: bytes,
        url: str,
        params: Params = (),
        headers: RequestHeaders = (),
        body: BodyFactory = empty_body,
        body_args: tuple[Any, ...] = (),
        body_kwargs: Mapping[str, Any] = _NO_KWARGS,
    ) -> Response:
        data = b"".join([bytes(chunk) async for chunk in body(*body_args, **body_kwargs)])
        self.calls.append(Sent(method, url, tuple(params), tuple(headers), data))
        return cast(Response, (b"200", (), None))

    @property
    def last(self) -> Sent:
        return self.calls[-1]


def authorization_parts(value: str) -> dict[str, str]:
    """The algorithm, Credential, SignedHeaders and Signature of an Authorization value, whether
    its parts are separated by "," (S3's documentation) or ", " (the generic suite)."""
    algorithm, _, rest = value.partition(" ")
    parts = dict(part.strip().split("=", 1) for part in rest.split(","))
    return {"algorithm": algorithm, **parts}


# An oracle for S3's checksums, sharing nothing with the package: reflected CRCs, a byte at a
# time from a table (slow, for test data only). Polynomials reversed, as reflected CRCs use
# them; each starts from all ones and ends xored with all ones.
_POLYNOMIALS = {
    "crc32": (0xEDB88320, 32),  # CRC-32/ISO-HDLC, zlib's
    "crc32c": (0x82F63B78, 32),  # CRC-32/ISCSI, Castagnoli
    "crc64nvme": (0x9A6C9329AC4BC9B5, 64),  # CRC-64/NVME
}


def _table(polynomial: int) -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ polynomial if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLES = {name: _table(polynomial) for name, (polynomial, _) in _POLYNOMIALS.items()}


def crc(algorithm: str, data: bytes) -> int:
    """The CRC of `data` by `algorithm` ("crc32", "crc32c" or "crc64nvme")."""
    table, ones = _TABLES[algorithm], (1 << _POLYNOMIALS[algorithm][1]) - 1
    value = ones
    for byte in data:
        value = table[(value ^ byte) & 0xFF] ^ (value >> 8)
    return value ^ ones


def crc_header_value(algorithm: str, data: bytes) -> bytes:
    """The value of x-amz-checksum-<algorithm> for `data`: the CRC's bytes, big-endian, in
    base64."""
    size = _POLYNOMIALS[algorithm][1] // 8
    return base64.b64encode(crc(algorithm, data).to_bytes(size, "big"))
