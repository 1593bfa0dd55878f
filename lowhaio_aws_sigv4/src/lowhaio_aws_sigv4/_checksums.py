"""S3's flexible checksums: CRC32, CRC32C and CRC64NVME of a body, as the `x-amz-checksum-*`
headers and trailers carry them (the CRC's bytes, big-endian, in base64), and the check of a
downloaded body against the checksum its response names.

The CRCs are anycrc's, a small compiled package with no dependencies: about 8 GB/s on 64 KiB
pieces, for CRC32 too, where `zlib.crc32` gives 3 GB/s, and the standard library has neither
CRC32C nor CRC64NVME.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Literal, get_args

import anycrc

from lowhaio import Headers

ChecksumAlgorithm = Literal["crc32", "crc32c", "crc64nvme"]
CHECKSUM_ALGORITHMS: tuple[ChecksumAlgorithm, ...] = get_args(ChecksumAlgorithm)

_Data = bytes | bytearray | memoryview

# anycrc's models: `calc(data, crc)` extends `crc` (a final value, 0 to start) and keeps no
# state, so one model serves every checksum; `combine(crc1, crc2, length2)` joins two.
_MODELS = {
    "crc32": anycrc.Model("CRC32-ISO-HDLC"),
    "crc32c": anycrc.Model("CRC32-ISCSI"),
    "crc64nvme": anycrc.Model("CRC64-NVME"),
}
# CRC32 is anycrc's too: 3 times zlib.crc32's speed (9 GB/s against 3 GB/s, measured).
_UPDATE: dict[str, Callable[[_Data, int], int]] = {
    name: model.calc for name, model in _MODELS.items()
}
_BYTES = {"crc32": 4, "crc32c": 4, "crc64nvme": 8}


def _algorithm(name: object) -> ChecksumAlgorithm:
    for algorithm in CHECKSUM_ALGORITHMS:
        if name == algorithm:
            return algorithm
    raise ValueError(
        f"checksum algorithm must be one of {', '.join(CHECKSUM_ALGORITHMS)}: {name!r}"
    )


class Checksum:
    """A running checksum of a body: `update(data)` with each piece, then `b64digest()` or
    `header_value()`, the value of the `x-amz-checksum-<algorithm>` header (`header_name`).

    >>> Checksum("crc32", b"123456789").header_value()
    b'y/Q5Jg=='
    """

    __slots__ = ("_update", "_value", "algorithm", "length")

    def __init__(self, algorithm: ChecksumAlgorithm, data: _Data = b"") -> None:
        self.algorithm = _algorithm(algorithm)
        self._update = _UPDATE[self.algorithm]
        self._value = 0
        self.length = 0  # bytes checksummed so far
        self.update(data)

    def update(self, data: _Data) -> None:
        self._value = self._update(data, self._value)
        self.length += memoryview(data).nbytes

    @property
    def value(self) -> int:
        """The CRC as an unsigned integer."""
        return self._value

    def digest(self) -> bytes:
        return self._value.to_bytes(_BYTES[self.algorithm], "big")

    def b64digest(self) -> str:
        return base64.b64encode(self.digest()).decode()

    def header_value(self) -> bytes:
        return base64.b64encode(self.digest())

    @property
    def header_name(self) -> bytes:
        """`x-amz-checksum-crc32`, `x-amz-checksum-crc32c` or `x-amz-checksum-crc64nvme`."""
        return b"x-amz-checksum-" + self.algorithm.encode()

    @property
    def sdk_algorithm(self) -> bytes:
        """The value of `x-amz-sdk-checksum-algorithm` (and of `x-amz-checksum-algorithm`):
        `CRC32`, `CRC32C` or `CRC64NVME`."""
        return self.algorithm.upper().encode()

    def copy(self) -> Checksum:
        other = Checksum(self.algorithm)
        other._value, other.length = self._value, self.length
        return other

    def combined(self, then: Checksum) -> Checksum:
        """The checksum of this one's bytes followed by `then`'s, from the two values alone
        (for a whole object from its parts' checksums, computed apart)."""
        if then.algorithm != self.algorithm:
            raise ValueError(f"cannot combine {self.algorithm} with {then.algorithm}")
        joined = Checksum(self.algorithm)
        joined._value = _MODELS[self.algorithm].combine(self._value, then._value, then.length)
        joined.length = self.length + then.length
        return joined

    def __repr__(self) -> str:
        return f"<Checksum {self.algorithm} {self.b64digest()} of {self.length} bytes>"


def trailer_length(algorithm: ChecksumAlgorithm) -> int:
    """The length of the trailer line `x-amz-checksum-<algorithm>:<base64>\\r\\n`."""
    return len(b"x-amz-checksum-:\r\n") + len(algorithm) + 4 * -(-_BYTES[algorithm] // 3)


# Verifying a download ---------------------------------------------------------------------


class ChecksumError(Exception):
    """A response body's checksum cannot be verified (`checksum_verified(required=True)`)."""


class ChecksumMismatchError(ChecksumError):
    """A response body does not match the checksum its response names: `algorithm`, the
    `expected` value (base64, from the header) and the `actual` value of the bytes read."""

    def __init__(self, algorithm: ChecksumAlgorithm, expected: bytes, actual: bytes) -> None:
        super().__init__(
            f"the body read does not match its x-amz-checksum-{algorithm}: the response says"
            f" {expected.decode(errors='replace')}, the bytes give {actual.decode()}"
        )
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual


# A composite checksum, of a multipart upload's parts' checksums, ends with "-<parts>".
_COMPOSITE = re.compile(rb"-\d+\Z")


def response_checksum(headers: Headers) -> tuple[ChecksumAlgorithm, bytes] | None:
    """The full-object checksum a response names, as (algorithm, base64 value), or None: none
    named (a GET without `x-amz-checksum-mode: ENABLED`, an object stored without one), only a
    composite one (a multipart object's, `...-N`: a checksum of its parts' checksums, which the
    bytes alone cannot give), or a partial response (`content-range`)."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        found.setdefault(name.lower(), value.strip())
    if b"content-range" in found or found.get(b"x-amz-checksum-type", b"").upper() == b"COMPOSITE":
        return None
    for algorithm in ("crc64nvme", "crc32c", "crc32"):
        named = found.get(b"x-amz-checksum-" + algorithm.encode())
        if named is not None and not _COMPOSITE.search(named):
            return _algorithm(algorithm), named
    return None


def checksum_verified(
    headers: Headers, body: AsyncIterable[bytes], *, required: bool = True
) -> AsyncIterator[bytes]:
    """`body`'s chunks, checksummed as they are read; at its end, compared with the full-object
    checksum that `headers` name (`x-amz-checksum-crc64nvme`, `-crc32c` or `-crc32`, as S3
    answers a GET sent with `x-amz-checksum-mode: ENABLED`): `ChecksumMismatchError` if they
    differ. Without such a checksum (see `response_checksum`), `ChecksumError` is raised here,
    before anything is read (the body is left as it is: discard or close it), or with
    `required=False` the body is passed through unverified."""
    named = response_checksum(headers)
    if named is None:
        if required:
            raise ChecksumError(
                "the response has no full-object x-amz-checksum-crc32, -crc32c or -crc64nvme to"
                " verify (was the GET sent with x-amz-checksum-mode: ENABLED? a multipart"
                " object's composite checksum, ending in -N, and a range cannot be verified)"
            )
        return aiter(body)
    return _verifying(body, Checksum(named[0]), named[1])


async def _verifying(
    body: AsyncIterable[bytes], checksum: Checksum, expected: bytes
) -> AsyncIterator[bytes]:
    async for chunk in body:
        checksum.update(chunk)
        yield chunk
    actual = checksum.header_value()
    if actual != expected:
        raise ChecksumMismatchError(checksum.algorithm, expected, actual)
