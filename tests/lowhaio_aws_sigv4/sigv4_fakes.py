"""Shared by the lowhaio_aws_sigv4 tests: a fake `request` that records what the signer passes
on (and reads the body it would send), and the parts of an Authorization header."""

from __future__ import annotations

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
