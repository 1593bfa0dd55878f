"""S3's flexible checksums as this package uses them, through a small interface: an algorithm's
name and a factory of running checksums (`update(data)`, then `b64digest()`). CRC32 is here,
from the standard library; any other algorithm (CRC32C, CRC64NVME) plugs in as a `ChecksumSpec`
of its own, say `ChecksumSpec("crc32c", lambda: Checksum("crc32c"))` with lowhaio_aws_sigv4's.
"""

from __future__ import annotations

import base64
import re
import zlib
from collections.abc import Callable
from typing import NamedTuple, Protocol

Data = bytes | bytearray | memoryview

_NAME = re.compile(r"[a-z0-9]+\Z")


class RunningChecksum(Protocol):
    """A checksum being computed: `update` with each piece of the data, in order, then
    `b64digest()`: the checksum's bytes, big-endian, in base64, as S3's `x-amz-checksum-*`
    headers carry them."""

    def update(self, data: Data, /) -> object: ...

    def b64digest(self) -> str: ...


class ChecksumSpec(NamedTuple):
    """An S3 checksum algorithm: `name` as in its header (`crc32` for `x-amz-checksum-crc32`)
    and `new`, a factory of `RunningChecksum`s."""

    name: str
    new: Callable[[], RunningChecksum]

    @property
    def header(self) -> bytes:
        """`x-amz-checksum-<name>`: a part's or an object's checksum."""
        return b"x-amz-checksum-" + self.name.encode()

    @property
    def s3_name(self) -> str:
        """`CRC32`: the value of `x-amz-checksum-algorithm`; `Checksum` + it names the XML
        element of a part's checksum in CompleteMultipartUpload and ListParts."""
        return self.name.upper()


def checked(spec: ChecksumSpec) -> ChecksumSpec:
    """`spec`, if its name can be sent as a header name and an XML element's."""
    if not isinstance(spec, ChecksumSpec) or not _NAME.match(spec.name):
        raise ValueError(
            f"a checksum is a ChecksumSpec with a lowercase alphanumeric name: {spec!r}"
        )
    return spec


class Crc32:
    """CRC32 (ISO-HDLC, as `zlib.crc32`): S3's `x-amz-checksum-crc32`."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: Data, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")

    def b64digest(self) -> str:
        return base64.b64encode(self.digest()).decode()


CRC32 = ChecksumSpec("crc32", Crc32)
