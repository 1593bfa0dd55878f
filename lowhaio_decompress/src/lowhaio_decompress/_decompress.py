"""`decompressed`: a `request` whose response bodies are decoded as they are read.

Strategy: the wrapper asks for the codings it can decode (`accept-encoding`, unless the caller
sent one), and wraps a response whose `content-encoding` it can undo in a `DecodedBody`. Nothing
is decoded until the caller reads, and each read decodes at most `chunk_bytes`: a pull pipeline
of decoders (`_Decoding`), one per coding, where each is fed only when it has nothing left to
hand out, so memory stays bounded whatever the compression ratio. Every decoder's output is
counted against a total (`max_bytes`) and a ratio to the bytes received (`max_ratio`). The
body names the one it reads in `wrapped`, so `lowhaio.discard` (a redirect or a retry dropping
it) drains that one, undecoded. Anything else (an unknown coding, HEAD, 204, 206, 304) is
returned untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from lowhaio import (
    BodyFactory,
    Headers,
    HttpBodyTooLong,
    HttpConnectionClosedError,
    HttpError,
    Params,
    Request,
    RequestHeaders,
    Response,
    ResponseBody,
    empty_body,
)

from ._codings import Decoder, HttpContentEncodingError, HttpDecompressionError, decoders

# What one read of a decoded body yields at most, whatever the compression ratio: what one read
# of a lowhaio body yields at most with its default buffer (`Pool(read_buffer_bytes=...)`).
CHUNK_BYTES = 256 * 1024
# The most that a body may decode to (each coding's output, in a stack of them).
DECODED_LIMIT_BYTES = 1024 * 1024 * 1024
# How many times the bytes received a body may decode to, once past RATIO_ALLOWANCE_BYTES.
MAX_RATIO = 100.0
RATIO_ALLOWANCE_BYTES = 1024 * 1024
# How many codings, one applied over another, are undone (gzip, gzip is 2).
MAX_CODINGS = 2

# What the headers of a decoded response say was done: the content-encoding and content-length
# as they came (those fields are removed: they described the bytes received).
ORIGINAL_CONTENT_ENCODING = b"lowhaio-original-content-encoding"
ORIGINAL_CONTENT_LENGTH = b"lowhaio-original-content-length"

# Responses without content (RFC 9110 6.4.1), and a 206, whose part of a coded body cannot be
# decoded on its own: returned untouched.
UNTOUCHED_CODES = frozenset((b"204", b"206", b"304"))

_DESCRIBED = frozenset(
    (b"content-encoding", b"content-length", ORIGINAL_CONTENT_ENCODING, ORIGINAL_CONTENT_LENGTH)
)
_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})
_DECODERS = decoders()

# The codings this installation can decode, in the order offered: gzip and deflate always, br
# with `lowhaio-decompress[br]`, zstd with `lowhaio-decompress[zstd]` (or Python 3.14).
AVAILABLE_CODINGS: tuple[str, ...] = tuple(_DECODERS)


class HttpDecodedTooLong(HttpDecompressionError, HttpBodyTooLong):
    """A body decoded to more than `max_bytes`."""


class HttpDecompressionRatioError(HttpDecompressionError):
    """A body decoded to more than `max_ratio` times the bytes received (past an allowance):
    most likely a decompression bomb."""


class _Decoding:
    """The decoders of one body, the first fed by what the server sends, each next one by the
    one before; what the last hands out is the body. Synchronous: `pull` says when it needs
    bytes from the server (None), and the body awaits them."""

    __slots__ = (
        "_allowance",
        "_chunk",
        "_decoders",
        "_ended",
        "_max_bytes",
        "_max_ratio",
        "_produced",
        "_refusal",
        "received",
    )

    def __init__(
        self,
        decoders: list[Decoder],
        chunk: int,
        max_bytes: int | None,
        max_ratio: float | None,
        allowance: int,
        refusal: str | None = None,
    ) -> None:
        self._decoders = decoders
        self._chunk = chunk
        self._max_bytes = max_bytes
        self._max_ratio = max_ratio
        self._allowance = allowance
        self._produced = [0] * len(decoders)  # bytes each decoder handed out so far
        self._ended = False  # the server's bytes have all been fed
        self._refusal = refusal  # why the body is not decoded at all (coded too many times)
        self.received = 0

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        self._decoders[0].feed(data)

    def end(self) -> None:
        self._ended = True

    def pull(self) -> bytes | None:
        """At most `chunk` bytes of the body; b"" at its end, None until more is fed."""
        if self._refusal is not None:
            raise HttpContentEncodingError(self._refusal)
        return self._pull(len(self._decoders) - 1)

    def _pull(self, index: int) -> bytes | None:
        decoder = self._decoders[index]
        while True:
            out = decoder.read(self._chunk)
            if out:
                self._count(index, decoder, len(out))
                return out
            if index:
                data = self._pull(index - 1)
                if data is None:
                    return None
            elif self._ended:
                data = b""
            else:
                return None
            if not data:
                decoder.finish()
                return b""
            decoder.feed(data)

    def _count(self, index: int, decoder: Decoder, size: int) -> None:
        produced = self._produced[index] = self._produced[index] + size
        if self._max_bytes is not None and produced > self._max_bytes:
            raise HttpDecodedTooLong(
                f"the {decoder.coding} body decodes to more than {self._max_bytes} bytes"
                " (decompressed(..., max_bytes=...) sets the limit)"
            )
        ratio = self._max_ratio
        if ratio is not None and produced > self._allowance and produced > ratio * self.received:
            raise HttpDecompressionRatioError(
                f"the {decoder.coding} body decodes to more than {ratio:g} times the"
                f" {self.received} bytes received: a decompression bomb?"
                " (decompressed(..., max_ratio=...) sets the limit)"
            )


class DecodedBody(ResponseBody):
    """A response body decoded as it is read: an async iterator of at most `chunk_bytes` bytes
    at a time, like the body it reads (`wrapped`), whose `url`, `history` and `trailers` it
    shows. Left before its end (a `break`, `aclose()`, the end of `async with`, an error), it
    closes `wrapped`, and so its connection. A subclass of `ResponseBody` for the `Response`
    type only: it reads through `wrapped`'s public interface, and owns no connection."""

    __slots__ = ("_decoding", "_direct", "_failed", "_method", "wrapped")

    def __init__(self, wrapped: ResponseBody, decoding: _Decoding, method: bytes) -> None:
        # Not ResponseBody.__init__: this body has no connection. `_conn` is what
        # ResponseBody.__del__ looks at.
        self._conn = None
        self.wrapped = wrapped  # what `lowhaio.discard` reads instead, undecoded
        self._decoding: _Decoding | None = decoding  # None once ended, failed or closed
        self._direct: AsyncIterator[bytes] | None = None  # `wrapped`'s, for bare __anext__
        self._failed = False  # left before its end: reading again raises
        self._method = method

    @property  # a slot in ResponseBody; here, `wrapped`'s
    def url(self) -> str:
        return self.wrapped.url

    @url.setter
    def url(self, url: str) -> None:
        self.wrapped.url = url

    @property
    def history(self) -> tuple[tuple[bytes, str], ...]:
        return self.wrapped.history

    @history.setter
    def history(self, history: tuple[tuple[bytes, str], ...]) -> None:
        self.wrapped.history = history

    @property
    def trailers(self) -> Headers:
        return self.wrapped.trailers

    def __aiter__(self) -> _Reading:  # type: ignore[override]
        # A reading of its own for each loop, holding `wrapped`'s: when the loop ends early
        # (a `break`), it goes, and with it `wrapped`'s, which closes the connection, as a
        # loop over a lowhaio body does.
        return _Reading(self, aiter(self.wrapped))

    async def __anext__(self) -> bytes:
        if self._direct is None:
            self._direct = aiter(self.wrapped)
        return await self._decode(self._direct)

    async def __aenter__(self) -> DecodedBody:
        return self

    async def aclose(self) -> None:
        """Stop reading: `wrapped` is closed (its connection too, unless it was read to its
        end), with nothing more decoded."""
        if self._decoding is not None:
            self._decoding = None
            self._failed = True
        await self.wrapped.aclose()

    async def _decode(self, source: AsyncIterator[bytes]) -> bytes:
        decoding = self._decoding
        if decoding is None:
            if self._failed:
                raise self._located(
                    HttpConnectionClosedError(
                        "the decoded body was closed before its end: its connection is closed"
                    )
                )
            raise StopAsyncIteration
        try:
            while (piece := decoding.pull()) is None:
                try:
                    chunk = await anext(source)
                except StopAsyncIteration:
                    decoding.end()
                except BaseException:
                    self._decoding, self._failed = None, True
                    raise  # `wrapped`'s own error: it has closed itself
                else:
                    decoding.feed(chunk)
        except HttpDecompressionError as error:
            self._decoding, self._failed = None, True
            await self.wrapped.aclose()
            self._located(error)
            raise
        if not piece:
            self._decoding = None
            raise StopAsyncIteration
        return piece

    def _located(self, error: HttpError) -> HttpError:
        """`error`, saying where the request went, as lowhaio's own errors do: the URL without
        userinfo, query or fragment, and its origin."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        port = parts.port or (443 if parts.scheme == "https" else 80)
        origin = f"{parts.scheme}://{host}:{port}"
        error.located(self._method, f"{origin}{parts.path}", origin)
        return error


class _Reading:
    """One `async for` over a `DecodedBody`: holds `wrapped`'s own iteration, and lets it go
    when the loop ends (see `DecodedBody.__aiter__`)."""

    __slots__ = ("_body", "wrapped")

    def __init__(self, body: DecodedBody, wrapped: AsyncIterator[bytes]) -> None:
        self._body = body
        self.wrapped = wrapped  # what `lowhaio.discard` reads instead, undecoded

    def __aiter__(self) -> _Reading:
        return self

    def __anext__(self) -> Awaitable[bytes]:
        return self._body._decode(self.wrapped)

    async def aclose(self) -> None:
        await self._body.aclose()


def _codings(headers: Headers) -> list[str]:
    """The codings of `content-encoding`, in the order they were applied (RFC 9110 8.4), every
    field of that name taken in turn; `identity` and empty list elements left out."""
    names: list[str] = []
    for name, value in headers:
        if name == b"content-encoding":
            for coding in value.decode("latin-1").split(","):
                coding = coding.strip(" \t").lower()
                if coding and coding != "identity":
                    names.append("gzip" if coding == "x-gzip" else coding)
    return names


def decompressed(
    request: Request,
    *,
    codings: Collection[str] = AVAILABLE_CODINGS,
    max_bytes: int | None = DECODED_LIMIT_BYTES,
    max_ratio: float | None = MAX_RATIO,
    ratio_allowance: int = RATIO_ALLOWANCE_BYTES,
    chunk_bytes: int = CHUNK_BYTES,
    max_codings: int = MAX_CODINGS,
    skip: Callable[[bytes, str], bool] | None = None,
) -> Request:
    """Wrap `request` so that a response body with a `content-encoding` it can undo is decoded
    as it is read.

    `accept-encoding` offers `codings` (by default every one installed: `AVAILABLE_CODINGS`),
    unless the caller sent that field; a response coded with them (or with `x-gzip`, gzip's old
    name) has its body decoded, its `content-encoding` and `content-length` fields moved to
    `lowhaio-original-content-encoding` and `lowhaio-original-content-length`. A response with
    any other coding, to a HEAD, or with status 204, 206 or 304 is returned untouched; so is
    every response to a request for which `skip(method, url)` is true (and no accept-encoding
    is sent for it).

    Each read yields at most `chunk_bytes` decoded bytes. Reading raises
    `HttpContentEncodingError` for a body that is not what its content-encoding says (cut short,
    corrupt, data after its end) or that is coded more than `max_codings` times,
    `HttpDecodedTooLong` once a coding decodes to more than `max_bytes`, and
    `HttpDecompressionRatioError` once it decodes to more than `ratio_allowance` bytes and
    `max_ratio` times the bytes received (None: no limit). Each closes the body.
    """
    if isinstance(codings, str):  # a str is a collection of one-letter names
        raise TypeError(f"codings must be a collection of names, such as ({codings!r},)")
    unknown = [coding for coding in codings if coding not in _DECODERS]
    if unknown:
        raise ValueError(
            f"cannot decode {', '.join(unknown)}: the codings available are"
            f" {', '.join(AVAILABLE_CODINGS)} (br comes with lowhaio-decompress[br], zstd with"
            " lowhaio-decompress[zstd])"
        )
    if chunk_bytes < 1 or max_codings < 1:
        raise ValueError("chunk_bytes and max_codings must be at least 1")
    offered = tuple(dict.fromkeys(codings))
    accept = (b"accept-encoding", ", ".join(offered).encode())

    def decoded(method: bytes, response: Response) -> Response:
        code, headers, body = response
        if method == b"HEAD" or code in UNTOUCHED_CODES:
            return response
        names = _codings(headers)
        if not names or any(name not in offered for name in names):
            return response  # nothing to undo, or a coding the caller may know: theirs
        refusal = None
        if len(names) > max_codings:
            refusal = (
                f"the body is coded {len(names)} times ({', '.join(names)}), more than"
                f" {max_codings} (decompressed(..., max_codings=...) sets the limit)"
            )
            names = []
        chain = [_DECODERS[name]() for name in reversed(names)]  # the last applied, first
        decoding = _Decoding(chain, chunk_bytes, max_bytes, max_ratio, ratio_allowance, refusal)
        described = [(name, value) for name, value in headers if name not in _DESCRIBED]
        for name, original in (
            (b"content-encoding", ORIGINAL_CONTENT_ENCODING),
            (b"content-length", ORIGINAL_CONTENT_LENGTH),
        ):
            described += [(original, value) for field, value in headers if field == name]
        return code, tuple(described), DecodedBody(body, decoding, method)

    async def decompressing_request(
        method: bytes,
        url: str,
        params: Params = (),
        headers: RequestHeaders = (),
        body: BodyFactory = empty_body,
        body_args: tuple[Any, ...] = (),
        body_kwargs: Mapping[str, Any] = _NO_KWARGS,
    ) -> Response:
        if skip is not None and skip(method, url):
            return await request(method, url, params, headers, body, body_args, body_kwargs)
        headers = tuple(headers)
        if not any(name.lower() == b"accept-encoding" for name, _ in headers):
            headers = (*headers, accept)
        response = await request(method, url, params, headers, body, body_args, body_kwargs)
        return decoded(method, response)

    return decompressing_request
