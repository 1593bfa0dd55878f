"""One decoder per content coding, each bounded at every step.

A decoder is fed compressed bytes only when it has nothing left to hand out (`read` returned
b""), and `read(limit)` hands out at most `limit` decoded bytes however much they expand: zlib's
`max_length`, zstd's `max_length`, brotli's `output_buffer_limit` (a soft bound, by blocks of up
to its size: the excess is kept for the next read). `finish` says the input has ended: a stream
cut short raises. A decoder that was never given a byte ends cleanly (an empty body).

gzip and deflate come from the standard library, br from `brotli` >= 1.2 (the first release
that can bound its output), zstd from `compression.zstd` (Python 3.14) or `backports.zstd`.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol

from lowhaio import HttpDataError

# Every window a zstd frame may ask for, at most (RFC 9659 3: 8 MB for HTTP content coding):
# a frame that asks for more is refused rather than given the memory.
ZSTD_WINDOW_LOG_MAX = 23


class HttpDecompressionError(HttpDataError):
    """A compressed response body could not be decoded within the wrapper's limits: the body
    is closed (its connection with it), and reading it again raises
    `HttpConnectionClosedError`."""


class HttpContentEncodingError(HttpDecompressionError):
    """The body is not what its `content-encoding` says: corrupt, cut short, followed by data
    after its end (but more gzip members or zstd frames), or coded more times than
    `max_codings` allows."""


class Decoder(Protocol):
    coding: str  # as named in content-encoding, for errors

    def feed(self, data: bytes) -> None:
        """More compressed input: only when `read` has just returned b"" (no output pending)."""

    def read(self, limit: int) -> bytes:
        """At most `limit` decoded bytes; b"" when nothing more comes without more input."""

    def finish(self) -> None:
        """The input has ended: raise if the stream has not."""


def _truncated(coding: str) -> HttpContentEncodingError:
    return HttpContentEncodingError(f"the {coding} body ends before its end: it was cut short")


def _after_end(coding: str) -> HttpContentEncodingError:
    return HttpContentEncodingError(f"the {coding} body goes on after its end")


def _corrupt(coding: str, exc: Exception, follows: bool = False) -> HttpContentEncodingError:
    if follows:  # what came after a whole member (gzip) or frame (zstd) does not start another
        what = "member" if coding == "gzip" else "frame"
        message = f"the {coding} body goes on after its end with what is not another {what}"
    else:
        message = f"the body is not valid {coding}"
    return HttpContentEncodingError(f"{message}: {exc}")


def _is_zlib_header(first: bytes) -> bool:
    """Whether two bytes start a zlib stream (RFC 1950 2.2): deflate with a window of at most
    32 KiB, a check that holds, and no preset dictionary."""
    cmf, flg = first[0], first[1]
    return cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf << 8 | flg) % 31 == 0 and not flg & 0x20


class _Zlib:
    """gzip (members one after the other, as RFC 1952 allows), or deflate: the zlib format that
    RFC 9110 8.4.1.2 names, or the raw deflate that some servers send instead, told apart by
    the first two bytes."""

    __slots__ = ("_follows", "_input", "_members", "_obj", "coding")

    def __init__(self, coding: str, members: bool) -> None:
        self.coding = coding
        self._members = members  # gzip: another member may follow the end of one
        self._obj: Any = None  # a zlib decompress object, made when the first bytes come
        self._input = b""  # not yet given to zlib: its unconsumed tail, or data after an end
        self._follows = False  # a member after the first, that has yet to yield a byte

    def feed(self, data: bytes) -> None:
        self._input += data

    def read(self, limit: int) -> bytes:
        while True:
            obj = self._obj
            if obj is None or obj.eof:
                if not self._input:
                    return b""
                if obj is not None and not self._members:
                    raise _after_end(self.coding)
                if self._members:
                    wbits = 31  # gzip's header and trailer
                elif len(self._input) < 2:
                    return b""  # which form: the first two bytes say
                else:
                    wbits = 15 if _is_zlib_header(self._input) else -15
                self._follows = obj is not None
                self._obj = obj = zlib.decompressobj(wbits)
            try:
                out: bytes = obj.decompress(self._input, limit)
            except zlib.error as exc:
                raise _corrupt(self.coding, exc, self._follows) from exc
            self._input = obj.unused_data if obj.eof else obj.unconsumed_tail
            if out:
                self._follows = False
                return out
            if not obj.eof:
                # Less than `limit` came out, so zlib took all the input: it needs more. (After
                # exactly `limit`, the next read asks again: zlib may hold more output.)
                return b""

    def finish(self) -> None:
        if self._input or (self._obj is not None and not self._obj.eof):
            raise _truncated(self.coding)


class _Brotli:
    """br (RFC 7932), with brotli >= 1.2: `output_buffer_limit` stops its output from growing
    past the limit (by whole blocks), and no input is given until `can_accept_more_data()`."""

    __slots__ = ("_decompressor", "_error", "_input", "_output", "_started", "coding")

    def __init__(self, module: ModuleType) -> None:
        self.coding = "br"
        self._decompressor = module.Decompressor()
        self._error: type[Exception] = module.error
        self._input = b""  # not yet given to brotli
        self._output = b""  # decoded past the last read's limit (less than one block)
        self._started = False  # given a byte: an empty body is not a br stream, but is empty

    def feed(self, data: bytes) -> None:
        self._input += data
        self._started = True

    def read(self, limit: int) -> bytes:
        if self._output:
            kept, self._output = self._output[:limit], self._output[limit:]
            return kept
        decompressor = self._decompressor
        while True:
            if decompressor.is_finished():
                if self._input:
                    raise _after_end(self.coding)
                return b""
            # Input only once it has handed out what it held: until then, empty input.
            ready = decompressor.can_accept_more_data()
            data, self._input = (self._input, b"") if ready else (b"", self._input)
            try:
                out: bytes = decompressor.process(data, output_buffer_limit=limit)
            except self._error as exc:
                raise _corrupt(self.coding, exc) from exc
            if out:
                self._output = out[limit:]  # a whole block past the limit, at most
                return out[:limit]
            if ready and not data:
                return b""  # it held nothing, and was given nothing: it needs input

    def finish(self) -> None:
        if self._started and not self._decompressor.is_finished():
            raise _truncated(self.coding)


class _Zstd:
    """zstd (RFC 8878), frames one after the other, each with a window of at most 8 MB."""

    __slots__ = ("_decompressor", "_error", "_follows", "_input", "_new", "coding")

    def __init__(self, module: ModuleType) -> None:
        self.coding = "zstd"
        options = {module.DecompressionParameter.window_log_max: ZSTD_WINDOW_LOG_MAX}
        self._new: Callable[[], Any] = lambda: module.ZstdDecompressor(options=options)
        self._decompressor: Any = None  # made when the first bytes of a frame come
        self._error: type[Exception] = module.ZstdError
        self._input = b""  # not yet given to zstd
        self._follows = False  # a frame after the first, that has yet to yield a byte

    def feed(self, data: bytes) -> None:
        self._input += data

    def read(self, limit: int) -> bytes:
        while True:
            decompressor = self._decompressor
            if decompressor is None or decompressor.eof:
                if decompressor is not None:
                    self._input = decompressor.unused_data + self._input
                    self._follows = True
                if not self._input:
                    self._decompressor = None
                    return b""
                self._decompressor = decompressor = self._new()
            # Input only once it has handed out what it held (`needs_input`).
            if decompressor.needs_input:
                data, self._input = self._input, b""
            else:
                data = b""
            try:
                out: bytes = decompressor.decompress(data, limit)
            except self._error as exc:
                raise _corrupt(self.coding, exc, self._follows) from exc
            if out:
                self._follows = False
                return out
            if decompressor.needs_input and not self._input and not decompressor.eof:
                return b""

    def finish(self) -> None:
        if self._decompressor is not None and not self._decompressor.eof:
            raise _truncated(self.coding)


def _imported(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def decoders(
    find: Callable[[str], ModuleType | None] = _imported,
) -> dict[str, Callable[[], Decoder]]:
    """Each coding that can be decoded here, by the name offered in accept-encoding, with the
    modules that `find` imports."""
    found: dict[str, Callable[[], Decoder]] = {
        "gzip": lambda: _Zlib("gzip", members=True),
        "deflate": lambda: _Zlib("deflate", members=False),
    }
    brotli = find("brotli")
    # Before 1.2, brotli decodes a whole input at once, whatever it expands to: not offered.
    if brotli is not None and hasattr(brotli.Decompressor, "can_accept_more_data"):
        found["br"] = lambda: _Brotli(brotli)
    # The standard library's from Python 3.14, else its backport.
    zstd = find("compression.zstd") or find("backports.zstd")
    if zstd is not None:
        found["zstd"] = lambda: _Zstd(zstd)
    return found
