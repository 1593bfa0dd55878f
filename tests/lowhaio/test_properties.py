"""Property tests of the response side, with hypothesis, and a differential test against h11.

- The sans-IO `ResponseReader` (and so `find_head_end`, `parse_head`, `response_framing` and the
  body readers) is driven by `parse` as `_response.py` drives it, from a buffer that keeps the
  contract as the connection does (stale bytes past `end`, compaction, reset when all is
  consumed). Fed
  anything, split anyhow, they raise nothing but `HttpProtocolError` (and its subclasses), give
  the same answer however the input is split, and never consume a byte past the response.
- A few properties run through a real scripted server, checking the pool stays usable.
- h11 is a test-only oracle: generated valid and near-valid responses go to both, and every
  disagreement is either a lowhaio bug or listed in `KNOWN_DIFFERENCES`, with the RFC section
  that justifies lowhaio's answer; the differential test skips exactly the shapes listed there.

Every test is reproducible (`derandomize=True`, no example database).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import NamedTuple

import h11
import pytest
from conftest import get, new_event_loop, pool, read_request, serve
from hypothesis import given, settings
from hypothesis import strategies as st
from lowhaio._http11 import Headers, ResponseLimits, ResponseReader, body_reader

import lowhaio

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

# The sans-IO driver ---------------------------------------------------------------------------

# What stale bytes past `end` look like: the end of a chunked body and a whole head, so that a
# reader that looked past `end` would misparse.
_STALE = b"\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"


class Buffer:
    """The connection's buffer, as `_connection.Connection` keeps it: bytes land at `end`;
    when they do not fit, the unconsumed ones move to the front (stale bytes stay behind
    them), else it grows; consuming everything sends `start` and `end` back to 0."""

    def __init__(self, capacity: int) -> None:
        self.buf = bytearray((_STALE * (capacity // len(_STALE) + 1))[:capacity])
        self.start = self.end = 0

    def feed(self, data: bytes) -> None:
        if self.end + len(data) > len(self.buf) and self.start:
            size = self.end - self.start
            self.buf[:size] = self.buf[self.start : self.end]
            self.start, self.end = 0, size
        while self.end + len(data) > len(self.buf):
            self.buf += _STALE * (len(self.buf) // len(_STALE) + 1)
        self.buf[self.end : self.end + len(data)] = data
        self.end += len(data)

    def consume(self, end: int) -> None:
        assert self.start <= end <= self.end
        if end == self.end:
            self.start = self.end = 0
        else:
            self.start = end


class Outcome(NamedTuple):
    """What reading one response from some bytes came to."""

    kind: str  # "ok"; "error" (an HttpProtocolError); "incomplete" (the bytes ended first)
    status: int = 0
    headers: Headers = ()
    body: bytes = b""
    trailers: Headers = ()
    leftover: bytes = b""  # the bytes after the response, unconsumed
    error: type[Exception] | None = None


class Limits(NamedTuple):
    max_head: int = 64 * 1024
    max_headers: int = 100
    max_line: int = 8 * 1024
    capacity: int = 32  # the buffer's initial size


DEFAULT_LIMITS = Limits()


def parse(
    pieces: Sequence[bytes], method: bytes = b"GET", limits: Limits = DEFAULT_LIMITS
) -> Outcome:
    """Read one response from `pieces`, arriving one after the other, then the end of the
    input: the real `ResponseReader`, driven as `_response.py` drives it."""
    conn = Buffer(limits.capacity)
    waiting = [piece for piece in reversed(pieces) if piece]

    def more() -> bool:
        if not waiting:
            return False
        conn.feed(waiting.pop())
        return True

    reader_limits = ResponseLimits(limits.max_head, limits.max_headers, limits.max_line)
    reader = ResponseReader(method, reader_limits)
    try:
        head = None
        while head is None or head.status < 200:  # as _response.read_head
            head, consumed = reader.next_head(conn.buf, conn.start, conn.end)
            if head is not None:
                assert conn.start + 4 <= consumed <= conn.end, "read outside"
                conn.consume(consumed)
            elif not more():
                return Outcome("incomplete")  # a close now: HttpConnectionClosedError
        assert reader.framing is not None
        body = body_reader(reader.framing, reader_limits)
        payload = bytearray()
        while not body.done:  # as _response.ResponseBody._next
            start, end, consumed = body.read(conn.buf, conn.start, conn.end)
            assert conn.start <= start <= end <= consumed <= conn.end, "read outside"
            payload += conn.buf[start:end]
            conn.consume(consumed)
            if start == end and not body.done and not more() and body.closed() is not None:
                return Outcome("incomplete")  # the close is a HttpConnectionClosedError
    except lowhaio.HttpProtocolError as exc:
        return Outcome("error", error=type(exc))
    leftover = bytes(conn.buf[conn.start : conn.end]) + b"".join(reversed(waiting))
    return Outcome("ok", head.status, head.headers, bytes(payload), body.trailers, leftover)


def cut(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({0, len(data), *(at % (len(data) + 1) for at in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def split_of(data: bytes, bytewise: bool = True) -> st.SearchStrategy[list[bytes]]:
    """`data` cut anywhere, or (if `bytewise`) one byte at a time."""
    cuts = st.lists(st.integers(0, len(data)), max_size=8).map(lambda at: cut(data, at))
    if not bytewise:
        return cuts
    return st.one_of(cuts, st.just([data[i : i + 1] for i in range(len(data))]))


def agree(whole: Outcome, split: Outcome) -> None:
    """Two readings of the same bytes agree, refusals included, by class: since a lone LF
    ends a line like CRLF (RFC 9112 2.2), no check depends on where the bytes were cut."""
    assert split == whole


# Strategies: response soup --------------------------------------------------------------------

_SOUP_TOKENS = [
    b"HTTP/1.1 ",
    b"HTTP/1.0 ",
    b"200",
    b"204",
    b"304",
    b"100",
    b"101",
    b"103",
    b" OK",
    b"\r\n",
    b"\r\n",
    b"\r\n\r\n",
    b"\n",
    b"\r",
    b"Content-Length: ",
    b"content-length:",
    b"Transfer-Encoding: ",
    b"chunked",
    b"gzip",
    b"Connection: close",
    b"X: y",
    b" folded",
    b",",
    b" ",
    b"\t",
    b":",
    b";",
    b"=",
    b'"',
    b"\\",
    b"0",
    b"1",
    b"5",
    b"a",
    b"F",
    b"ffffffffffffffff",
    b"0000000000000000",
    b"hello",
    b"\x00",
    b"\x01",
    b"\x7f",
    b"\xff",
]
_SOUP_HEADS = [
    b"",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n",
]
_soup_bytes = st.lists(
    st.one_of(st.sampled_from(_SOUP_TOKENS), st.binary(max_size=3)), max_size=30
).map(b"".join)

soup = st.one_of(
    st.binary(max_size=64),
    st.tuples(st.sampled_from(_SOUP_HEADS), _soup_bytes).map(b"".join),
)
methods = st.sampled_from([b"GET", b"HEAD"])


# Strategies: valid responses, with what they must parse to ------------------------------------


class Case(NamedTuple):
    data: bytes  # the response, then `tail`
    method: bytes
    expected: Outcome
    frame: int  # len(data) - len(tail)
    until_close: bool  # the body runs until the server closes
    reusable: bool  # lowhaio may reuse the connection after it


_NAMES = [b"X-A", b"Content-Type", b"Set-Cookie", b"Vary", b"ETag", b"!#$%&'*+-.^_`|~09"]
_SEPS = [b":", b": ", b":\t", b": \t "]
_VALUES = [b"", b"v", b"a b", b"a\tb", b"caf\xe9", b'x=1; y="2"', b"a  ,  b", b"\x80\xff"]
_OWS = [b"", b" ", b"\t", b" \t "]
_RWS = [b" ", b"\t", b" \t"]
_HEX = [b"%x", b"%X", b"%04x", b"%016X"]
_EXTS = [b"", b";a", b";a=b", b';a="q \\" s"', b" ; a = b", b"\t;a;b=c"]


def fold(previous: bytes, value: bytes) -> bytes:
    """A field value and the value of a continuation line: RFC 9112 5.2 replaces the obs-fold
    with SP; RFC 9110 5.5 a field value has no leading or trailing whitespace."""
    return previous + b" " + value if previous and value else previous or value


def cased(draw: st.DrawFn, name: bytes) -> bytes:
    return draw(st.sampled_from([name, name.lower(), name.upper()]))


@st.composite
def valid_fields(draw: st.DrawFn) -> tuple[bytes, tuple[bytes, bytes]]:
    """A field line (and continuation lines) and the (name, value) it must parse to."""
    name = cased(draw, draw(st.sampled_from(_NAMES)))
    value = draw(st.sampled_from(_VALUES))
    raw = name + draw(st.sampled_from(_SEPS)) + value + draw(st.sampled_from(_OWS)) + b"\r\n"
    for part in draw(st.lists(st.sampled_from(_VALUES), max_size=2)):
        raw += draw(st.sampled_from(_RWS)) + part + draw(st.sampled_from(_OWS)) + b"\r\n"
        value = fold(value, part)
    return raw, (name.lower(), value)


def framing_field(name: bytes, value: bytes) -> tuple[bytes, tuple[bytes, bytes]]:
    return name + b": " + value + b"\r\n", (name.lower(), value)


@st.composite
def valid_responses(draw: st.DrawFn) -> Case:
    method = draw(methods)
    minor = draw(st.sampled_from([1, 0]))
    interim = draw(
        st.lists(
            st.sampled_from(
                [
                    b"HTTP/1.1 100 Continue\r\n\r\n",
                    b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
                    b"HTTP/1.0 102\r\n\r\n",
                ]
            ),
            max_size=2,
        )
    )
    status = draw(st.sampled_from([200, 201, 204, 206, 301, 304, 404, 418, 500, 599]))
    reason = draw(st.sampled_from([b" OK", b"", b" ", b" Not Found", b" caf\xe9\tx "]))
    fields = draw(st.lists(valid_fields(), max_size=4))
    framing = draw(
        st.sampled_from(["length", "chunked", "close"] if minor else ["length", "close"])
    )
    content = draw(st.binary(max_size=40))
    no_body = method == b"HEAD" or status in (204, 304)
    size = len(content)
    if framing == "length":
        value = draw(st.sampled_from([b"%d", b"0%d", b"%d, %d", b"%d,%d,\t%d"]))
        length = value.replace(b"%d", b"%d" % size)
        fields += [framing_field(cased(draw, b"Content-Length"), length)] * draw(st.integers(1, 2))
    elif framing == "chunked":
        coding = draw(st.sampled_from([b"chunked", b"Chunked", b"chunked,", b", chunked"]))
        fields.append(framing_field(cased(draw, b"Transfer-Encoding"), coding))
    connection = draw(st.sampled_from([None, b"close", b"keep-alive", b"Keep-Alive, x"]))
    if connection is not None:
        fields.append(framing_field(b"Connection", connection))
    fields = draw(st.permutations(fields))
    head = b"HTTP/1.%d %d%s\r\n%s\r\n" % (minor, status, reason, b"".join(f[0] for f in fields))

    trailers: tuple[tuple[bytes, bytes], ...] = ()
    if no_body:
        wire, body = b"", b""
    elif framing == "chunked":
        points = sorted(set(draw(st.lists(st.integers(1, max(size, 1)), max_size=3))))
        pieces = cut(content, points)
        wire = b""
        for piece in pieces:
            if piece:
                size_line = draw(st.sampled_from(_HEX)) % len(piece) + draw(st.sampled_from(_EXTS))
                wire += size_line + b"\r\n" + piece + b"\r\n"
        last = draw(st.sampled_from([b"0", b"000"])) + draw(st.sampled_from(_EXTS)) + b"\r\n"
        trailer_fields = draw(st.lists(valid_fields(), max_size=2))
        trailers = tuple(f[1] for f in trailer_fields)
        wire += last + b"".join(f[0] for f in trailer_fields) + b"\r\n"
        body = content
    else:
        wire = body = content
    until_close = framing == "close" and not no_body
    tail = (
        b"" if until_close else draw(st.sampled_from([b"", b"", b"HTTP/1.1 200 OK\r\n\r\n", b"x"]))
    )
    tokens = [t.strip() for t in (connection or b"").lower().split(b",")]
    keep_alive = b"close" not in tokens and (minor == 1 or b"keep-alive" in tokens)
    data = b"".join(interim) + head + wire + tail
    return Case(
        data,
        method,
        Outcome("ok", status, tuple(f[1] for f in fields), body, trailers, tail),
        len(data) - len(tail),
        until_close,
        keep_alive and not until_close and not tail,
    )


# Sans-IO properties ---------------------------------------------------------------------------


@settings(deadline=None, derandomize=True, database=None, max_examples=400)
@given(data=soup, method=methods, st_data=st.data())
def test_any_bytes_split_anyhow_raise_only_typed_errors(
    data: bytes, method: bytes, st_data: st.DataObject
) -> None:
    whole = parse([data], method)  # anything but an HttpProtocolError escapes parse()
    agree(whole, parse(st_data.draw(split_of(data)), method))
    if whole.kind == "ok":
        # The response is the bytes before `leftover`; read alone, it reads the same.
        frame = data[: len(data) - len(whole.leftover)]
        assert data.endswith(whole.leftover)
        assert parse([frame], method) == whole._replace(leftover=b"")


@settings(deadline=None, derandomize=True, database=None, max_examples=300)
@given(
    data=soup,
    limits=st.builds(
        Limits,
        max_head=st.integers(8, 64),
        max_headers=st.integers(0, 4),
        max_line=st.integers(1, 16),
        capacity=st.integers(1, 16),
    ),
    st_data=st.data(),
)
def test_small_limits_raise_only_typed_errors(
    data: bytes, limits: Limits, st_data: st.DataObject
) -> None:
    whole = parse([data], limits=limits)
    agree(whole, parse(st_data.draw(split_of(data)), limits=limits))


@settings(deadline=None, derandomize=True, database=None, max_examples=300)
@given(case=valid_responses(), st_data=st.data())
def test_valid_responses_read_as_generated_and_leave_what_follows(
    case: Case, st_data: st.DataObject
) -> None:
    assert parse([case.data], case.method) == case.expected
    assert parse(st_data.draw(split_of(case.data)), case.method) == case.expected
    if not case.until_close:
        # Nothing after the response was needed to read it, and all of it was.
        frame = case.data[: case.frame]
        assert parse([frame], case.method) == case.expected._replace(leftover=b"")
        assert parse([frame[:-1]], case.method).kind == "incomplete"


@settings(deadline=None, derandomize=True, database=None, max_examples=200)
@given(
    case=valid_responses().filter(lambda case: not case.until_close),
    garbage=st.binary(max_size=12),
    st_data=st.data(),
)
def test_bytes_after_a_framed_response_stay_unconsumed(
    case: Case, garbage: bytes, st_data: st.DataObject
) -> None:
    # After a chunked body's last CRLF, or content-length bytes, or a head without a body,
    # whatever comes is left for the connection to judge.
    data = case.data[: case.frame] + garbage
    pieces = st_data.draw(split_of(data))
    assert parse(pieces, case.method) == case.expected._replace(leftover=garbage)


# End to end through a real server -------------------------------------------------------------


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run one example on a fresh event loop (hypothesis calls the test once per example)."""

    async def bounded() -> None:
        async with asyncio.timeout(10):
            await scenario()

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(bounded())


def scripted(pieces: list[bytes], close: bool) -> Callable[..., Awaitable[None]]:
    """A server whose first request gets `pieces`, written one at a time, and every later
    one, on whichever connection, `OK`."""
    first = [True]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            if not first[0]:
                writer.write(OK)
                continue
            first[0] = False
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.001)
            if close:
                writer.close()
                return

    return handler


@settings(deadline=None, derandomize=True, database=None, max_examples=40)
@given(case=valid_responses(), st_data=st.data())
def test_generated_responses_through_a_server_and_the_pool_stays_usable(
    case: Case, st_data: st.DataObject
) -> None:
    pieces = st_data.draw(split_of(case.data[: case.frame], bytewise=False))
    # The bytes after the response come with its last ones: whether they arrive before the
    # next request is sent would otherwise be a race.
    pieces = [*pieces[:-1], pieces[-1] + case.data[case.frame :]] if pieces else [case.data]

    async def scenario() -> None:
        async with serve(scripted(pieces, case.until_close)) as server, pool() as request:
            code, headers, body = await request(case.method, server.url("/generated"))
            content = await lowhaio.buffered(body)
            assert (int(code), headers, content, body.trailers) == case.expected[1:5]
            assert await get(request, server.url("/next")) == b"ok"
            assert server.connections == (1 if case.reusable else 2)

    run(scenario)


@settings(deadline=None, derandomize=True, database=None, max_examples=40)
@given(data=soup, method=methods, st_data=st.data())
def test_garbage_responses_through_a_server_raise_typed_errors_and_free_the_slot(
    data: bytes, method: bytes, st_data: st.DataObject
) -> None:
    pieces = st_data.draw(split_of(data, bytewise=False)) or [b""]
    expected = parse([data], method)

    async def scenario() -> None:
        # One connection at most: a slot the failed request kept would block the next one.
        async with (
            serve(scripted(pieces, close=True)) as bad,
            serve(scripted([OK], close=False)) as good,
            pool(max_connections=1, pool_timeout=1.0, read_timeout=2.0) as request,
        ):
            try:
                code, _, body = await request(method, bad.url())
                content = await lowhaio.buffered(body)
            except lowhaio.HttpProtocolError:
                assert expected.kind == "error"
            except lowhaio.HttpConnectionClosedError:
                assert expected.kind == "incomplete"
            else:
                assert expected.kind == "ok"
                assert (int(code), content) == (expected.status, expected.body)
            assert await get(request, good.url()) == b"ok"

    run(scenario)


# Differential test against h11 ----------------------------------------------------------------

# Each shape where lowhaio and h11 disagree, with the RFC section that justifies lowhaio's
# answer; "rejects" and "accepts" are lowhaio's answers (h11 gives the other, or, for
# fold-whitespace, the same field with other whitespace).
KNOWN_DIFFERENCES: dict[str, tuple[str, str, str]] = {
    "data-lf": (
        "RFC 9112 2.2",
        "accepts",
        "A chunk's data followed by a lone LF: a recipient may take a lone LF as a line "
        "terminator, and lowhaio does wherever a line ends (head, chunk lines, the end of chunk "
        "data, trailers), consistently; h11 takes it in lines but wants CRLF after chunk data.",
    ),
    "control": (
        "RFC 9110 5.5; RFC 9112 4",
        "rejects",
        "Control bytes other than NUL and whitespace (0x01-0x08, 0x0e-0x1f, 0x7f) in a field "
        "value or the reason phrase: not field-vchar nor reason-phrase; h11 allows them on "
        "purpose.",
    ),
    "version": (
        "RFC 9110 2.5; RFC 9112 2.3",
        "rejects",
        "HTTP-version other than 1.0 and 1.1 (1.2, 2.0, 0.9...): h11 takes any DIGIT.DIGIT. "
        "lowhaio reads only the HTTP/1.x it implements (for 1.2, 2.5's 'SHOULD process as "
        "1.1' is a SHOULD).",
    ),
    "status-range": (
        "RFC 9110 15",
        "rejects",
        "Status codes 600-999: 'Values outside the range 100-599 are invalid' (15 also says "
        "a client SHOULD process them as 5xx: lowhaio refuses instead, a SHOULD).",
    ),
    "te-http10": (
        "RFC 9112 6.1",
        "rejects",
        "Transfer-Encoding in an HTTP/1.0 response: the framing MUST be treated as faulty.",
    ),
    "te-and-cl": (
        "RFC 9112 6.3 rule 3",
        "rejects",
        "Transfer-Encoding and Content-Length together 'ought to be handled as an error' (the "
        "shape of response splitting); h11 lets Transfer-Encoding win.",
    ),
    "te-empty-elements": (
        "RFC 9110 5.6.1",
        "accepts",
        "'Transfer-Encoding: chunked,': empty list elements MUST be ignored; h11 compares the "
        "whole value to 'chunked'.",
    ),
    "cl-spelling": (
        "RFC 9110 8.6",
        "accepts",
        "Content-Length values that are the same decimal number spelled differently ('5, 05', "
        "or lines '5' and '005'): one value; h11 compares them as strings.",
    ),
    "cl-digits": (
        "RFC 9110 8.6",
        "rejects",
        "A Content-Length of 19 or 20 digits: beyond lowhaio's 18-digit bound, which 8.6 asks "
        "for ('prevent ... integer conversion overflows'); h11 allows 20.",
    ),
    "chunk-digits": (
        "RFC 9112 7.1",
        "rejects",
        "A chunk-size of 17-20 hex digits (leading zeros): beyond lowhaio's 16-digit bound "
        "against overflow, which 7.1 asks for; h11 allows 20.",
    ),
    "chunk-ext-bws": (
        "RFC 9112 7.1.1",
        "accepts",
        "BWS before the ';' of a chunk extension ('5 ;a'): in the chunk-ext grammar; h11 "
        "refuses it.",
    ),
    "chunk-ext-lenient": (
        "RFC 9112 7.1.1",
        "rejects",
        "A chunk-size line whose extension is not chunk-ext (';' alone, 'a b', 'a=', NUL), or "
        "with whitespace after the size and no ';': h11 skips anything after ';' and "
        "trailing whitespace.",
    ),
    "fold-whitespace": (
        "RFC 9112 5.2",
        "accepts",
        "obs-fold is OWS CRLF RWS, replaced with SP (in a head or trailers): lowhaio joins "
        "the lines with one SP; h11 keeps the whitespace before the CRLF (a tab stays a tab), "
        "and each whitespace-only continuation line adds a SP.",
    ),
    "interim-framing": (
        "RFC 9110 15.2",
        "accepts",
        "A 1xx response with a Content-Length or Transfer-Encoding h11 finds invalid: a 1xx "
        "ends with its header section, so lowhaio does not interpret them.",
    ),
    "trailer-framing": (
        "RFC 9110 6.5.1",
        "accepts",
        "A trailer Content-Length or Transfer-Encoding h11 finds invalid: trailers cannot "
        "frame a message, so lowhaio passes them on as fields; h11 validates them.",
    ),
}
_REJECTS = frozenset(
    tag for tag, (_, answer, _) in KNOWN_DIFFERENCES.items() if answer == "rejects"
)

Tagged = tuple[bytes, frozenset[str]]
Variants = Sequence[bytes | tuple[bytes, str]]
_NONE: frozenset[str] = frozenset()


class Rates(NamedTuple):
    """How often, in a hundred, each kind of part is near-valid."""

    focus: str  # this kind: often
    base: int  # the others

    def __call__(self, category: str) -> int:
        return 40 if category == self.focus else self.base


CATEGORIES = [
    *("version", "code", "reason", "name", "sep", "value", "ending", "cl", "te", "hex", "ext"),
    *("data-end", "interim", "fold", "framing", "truncate", "none", "none"),
]


# The framings where a focus can show.
_FRAMINGS = {
    "cl": ["length"],
    "te": ["chunked"],
    "hex": ["chunked"],
    "ext": ["chunked"],
    "data-end": ["chunked"],
    "fold": ["length", "chunked"],
}


def pick(draw: st.DrawFn, rate: int, valid: Variants, near: Variants = ()) -> Tagged:
    """One of `valid`, or, `rate` times in a hundred, one of `near`: a variant h11 or lowhaio
    (or both) refuse, or that they read differently, named by its known-difference tag."""
    variants = near if near and draw(st.integers(0, 99)) < rate else valid
    variant = draw(st.sampled_from(variants))
    if isinstance(variant, bytes):
        return variant, _NONE
    return variant[0], frozenset({variant[1]})


_D_VERSIONS: Variants = [b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]
_D_NEAR_VERSIONS: Variants = [
    (b"HTTP/1.2", "version"),
    (b"HTTP/2.0", "version"),
    (b"HTTP/0.9", "version"),
    b"http/1.1",
    b"HTTP/11",
    b"HTTP/1.1 ",
]
_D_CODES: Variants = [b"200", b"200", b"201", b"204", b"206", b"304", b"404", b"500", b"599"]
_D_NEAR_CODES: Variants = [
    (b"600", "status-range"),
    (b"999", "status-range"),
    b"101",
    b"099",
    b"20",
    b"2000",
    b"2x0",
    b"100",  # an interim response where the final one was due
]
_D_INTERIM: Variants = [b"100", b"102", b"103", b"199"]
_D_REASONS: Variants = [b" OK", b"", b" ", b" Not Found", b" caf\xe9\tx "]
_D_NEAR_REASONS: Variants = [
    (b" O\x01K", "control"),
    (b" \x7f", "control"),
    b" O\x00K",
    b"OK",
    b" O\rK",
]
_D_NAMES: Variants = [b"X-A", b"Content-Type", b"Set-Cookie", b"Vary", b"!#$%&'*+-.^_`|~09"]
_D_NEAR_NAMES: Variants = [b"X A", b"X(", b"", b"X\xe9", b"X\x00"]
_D_SEPS: Variants = [b":", b": ", b":\t", b": \t "]
_D_NEAR_SEPS: Variants = [b" :", b"\t:", b""]
_D_VALUES: Variants = [b"", b"v", b"a b", b"a\tb", b"caf\xe9", b'x=1; y="2"', b"a  ,  b"]
_D_NEAR_VALUES: Variants = [
    (b"a\x01b", "control"),
    (b"\x1f", "control"),
    (b"a\x7f", "control"),
    b"a\x00b",
    b"a\x0bb",
    b"a\x0cb",
    b"a\rb",
]
_D_ENDINGS: Variants = [b"\r\n", b"\n"]  # RFC 9112 2.2: a lone LF ends a line too
_D_NEAR_ENDINGS: Variants = [b"\r", b"\r\r\n"]
_D_CL: Variants = [b"%d", b"%d", b"0%d", b"%d, %d", b"%d,%d"]
_D_NEAR_CL: Variants = [
    b"%019d",  # 18 digits or more: tagged by cl_fields
    b"%d, 0%d",  # the same value spelled differently: tagged by differential_responses
    b"%020d",
    b"%d, %d1",  # differing values
    b"%018d",
    b"%021d",
    b"%d1",  # longer than the body
    b"abc",
    b"-1",
    b"+%d",
    b"",
    b"%d,",
]
_D_TE: Variants = [b"chunked", b"chunked", b"Chunked", b"CHUNKED"]
_D_NEAR_TE: Variants = [
    (b"chunked,", "te-empty-elements"),
    (b", chunked", "te-empty-elements"),
    b"gzip, chunked",
    b"gzip",
    b"identity",
    b"chunked, chunked",
    b"chunked;q=1",
    b"",
]
_D_HEX: Variants = [b"%x", b"%X", b"%04x", b"%016x"]
_D_NEAR_HEX: Variants = [(b"%017x", "chunk-digits"), (b"%020X", "chunk-digits"), b"%021x", b" %x"]
_D_EXTS: Variants = [b"", b"", b";a", b";a=b", b';a="q \\" s"', b";a=b;c", b"; a = b"]
_D_NEAR_EXTS: Variants = [
    (b" ;a", "chunk-ext-bws"),
    (b"\t; a = b", "chunk-ext-bws"),
    (b";", "chunk-ext-lenient"),
    (b";a b", "chunk-ext-lenient"),
    (b";a=", "chunk-ext-lenient"),
    (b" ", "chunk-ext-lenient"),
    (b"\t", "chunk-ext-lenient"),
    (b";\x00", "chunk-ext-lenient"),
    (b';a="x', "chunk-ext-lenient"),
    b"x",
    b" x",
]
_D_DATA_ENDS: Variants = [b"\r\n"]
_D_NEAR_DATA_ENDS: Variants = [(b"\n", "data-lf"), b"XX", b"\r", b""]
_D_TAILS = [b"", b"", b"HTTP/1.1 200 OK\r\n\r\n", b"\r\n", b"x"]


def h11_refuses_framing_fields(fields: Sequence[Field]) -> bool:
    """Whether h11's header validation refuses these fields: Content-Length must be one digit
    string of up to 20 digits, the same on every line; Transfer-Encoding must be 'chunked',
    on one line."""
    lengths = set()
    codings = 0
    for field in fields:
        if field.name == b"content-length":
            parts = {part.strip(b" \t") for part in field.value.split(b",")}
            if len(parts) != 1:
                return True
            (part,) = parts
            if not part.isdigit() or len(part) > 20:
                return True
            lengths.add(part)
        elif field.name == b"transfer-encoding":
            codings += 1
            if codings > 1 or field.value.lower() != b"chunked":
                return True
    return len(lengths) > 1


class Field(NamedTuple):
    raw: bytes  # the field line, and its continuation lines
    tags: frozenset[str]
    name: bytes  # lowercased
    value: bytes  # as written on the first line


@st.composite
def d_fields(draw: st.DrawFn, rate: Rates) -> Field:
    """An ordinary field line, possibly invalid, possibly folded."""
    name, tags = pick(draw, rate("name"), _D_NAMES, _D_NEAR_NAMES)
    name = cased(draw, name)
    sep, sep_tags = pick(draw, rate("sep"), _D_SEPS, _D_NEAR_SEPS)
    value, value_tags = pick(draw, rate("value"), _D_VALUES, _D_NEAR_VALUES)
    ows = draw(st.sampled_from(_OWS))
    ending, ending_tags = pick(draw, rate("ending"), _D_ENDINGS, _D_NEAR_ENDINGS)
    tags |= sep_tags | value_tags | ending_tags
    raw = name + sep + value + ows + ending
    folded, h11_value = value, value + ows
    # obs-fold, in a few per cent of the fields.
    for _ in range(draw(st.integers(1, 2)) if draw(st.integers(0, 99)) < 5 + rate("fold") else 0):
        part, part_tags = pick(draw, rate("value"), _D_VALUES, _D_NEAR_VALUES)
        rws, part_ows = draw(st.sampled_from(_RWS)), draw(st.sampled_from(_OWS))
        ending, ending_tags = pick(draw, rate("ending"), _D_ENDINGS, _D_NEAR_ENDINGS)
        raw += rws + part + part_ows + ending
        tags |= part_tags | ending_tags
        folded, h11_value = fold(folded, part), h11_value + b" " + part + part_ows
    if folded != h11_value.strip(b" \t"):
        tags |= {"fold-whitespace"}
    return Field(raw, tags, name.lower(), value)


def d_framing_field(
    draw: st.DrawFn, rate: Rates, name: bytes, value: bytes, tags: Iterable[str]
) -> Field:
    ending, ending_tags = pick(draw, rate("ending"), _D_ENDINGS, _D_NEAR_ENDINGS)
    raw = cased(draw, name) + draw(st.sampled_from([b": ", b":"])) + value + ending
    return Field(raw, frozenset(tags) | ending_tags, name.lower(), value)


@st.composite
def cl_fields(draw: st.DrawFn, rate: Rates, size: int) -> Field:
    form = pick(draw, rate("cl"), _D_CL, _D_NEAR_CL)[0]
    value = form % ((size,) * form.count(b"%"))
    parts = [part.strip(b" \t") for part in value.split(b",")]
    digits = all(part.isdigit() for part in parts)
    tags = {"cl-digits"} if digits and any(19 <= len(part) <= 20 for part in parts) else set()
    return d_framing_field(draw, rate, b"Content-Length", value, tags)


@st.composite
def te_fields(draw: st.DrawFn, rate: Rates) -> Field:
    value, tags = pick(draw, rate("te"), _D_TE, _D_NEAR_TE)
    return d_framing_field(draw, rate, b"Transfer-Encoding", value, tags)


def framing_tags(fields: Sequence[Field], in_head: bool) -> set[str]:
    """The tags of fields, but those of framing fields only in the final head: elsewhere
    lowhaio does not interpret them (h11's refusals of them are tagged as such instead)."""
    tags: set[str] = set()
    for field in fields:
        tags |= field.tags
        if not in_head and field.name in (b"content-length", b"transfer-encoding"):
            tags -= {"cl-digits", "te-empty-elements"}
    return tags


@st.composite
def d_chunked(draw: st.DrawFn, rate: Rates, content: bytes) -> Tagged:
    """A chunked body of `content`, possibly malformed, with trailers."""
    tags: set[str] = set()
    wire = b""
    points = draw(st.lists(st.integers(1, max(len(content), 1)), max_size=3))
    for piece in cut(content, points):
        if not piece:
            continue
        form, form_tags = pick(draw, rate("hex"), _D_HEX, _D_NEAR_HEX)
        ext, ext_tags = pick(draw, rate("ext"), _D_EXTS, _D_NEAR_EXTS)
        end, end_tags = pick(draw, rate("data-end"), _D_DATA_ENDS, _D_NEAR_DATA_ENDS)
        wire += form % len(piece) + ext + b"\r\n" + piece + end
        tags |= form_tags | ext_tags | end_tags
    ext, ext_tags = pick(draw, rate("ext"), _D_EXTS, _D_NEAR_EXTS)
    tags |= ext_tags
    wire += draw(st.sampled_from([b"0", b"000"])) + ext + b"\r\n"
    trailer = st.one_of(d_fields(rate), cl_fields(rate, len(content)), te_fields(rate))
    trailers = draw(st.lists(trailer, max_size=2))
    wire += b"".join(field.raw for field in trailers)
    tags |= framing_tags(trailers, in_head=False)
    if h11_refuses_framing_fields(trailers):
        tags.add("trailer-framing")
    ending, ending_tags = pick(draw, rate("ending"), _D_ENDINGS, _D_NEAR_ENDINGS)
    return wire + ending, frozenset(tags) | ending_tags


@st.composite
def d_interim(draw: st.DrawFn, rate: Rates) -> Tagged:
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    code, tags = pick(draw, rate("interim"), _D_INTERIM, [b"101"])
    fields = draw(
        st.lists(st.one_of(d_fields(rate), cl_fields(rate, 3), te_fields(rate)), max_size=2)
    )
    tags |= framing_tags(fields, in_head=False)
    if h11_refuses_framing_fields(fields):
        tags |= {"interim-framing"}
    raw = version + b" " + code + b" Info\r\n" + b"".join(f.raw for f in fields) + b"\r\n"
    return raw, tags


class Shape(NamedTuple):
    data: bytes
    method: bytes
    tags: frozenset[str]


@st.composite
def differential_responses(draw: st.DrawFn) -> Shape:
    """A valid or near-valid response, and the known-difference shapes it has. Each example
    has its own rates of near-valid parts: one kind of part often near-valid, the others
    seldom or never, so that most quirks are met alone."""
    rate = Rates(draw(st.sampled_from(CATEGORIES)), draw(st.sampled_from([0, 0, 0, 1, 5])))
    method = draw(methods)
    tags: set[str] = set()
    data = b""
    for raw, interim_tags in draw(st.lists(d_interim(rate), max_size=1 + (rate("interim") > 0))):
        data += raw
        tags |= interim_tags
    version, version_tags = pick(draw, rate("version"), _D_VERSIONS, _D_NEAR_VERSIONS)
    code, code_tags = pick(draw, rate("code"), _D_CODES, _D_NEAR_CODES)
    reason, reason_tags = pick(draw, rate("reason"), _D_REASONS, _D_NEAR_REASONS)
    ending, ending_tags = pick(draw, rate("ending"), _D_ENDINGS, _D_NEAR_ENDINGS)
    tags |= version_tags | code_tags | reason_tags | ending_tags
    content = draw(st.binary(max_size=12))
    framing = draw(st.sampled_from(_FRAMINGS.get(rate.focus, ["length", "chunked", "close"])))
    fields = draw(st.lists(d_fields(rate), max_size=3))
    cls, tes = (1, 0) if framing == "length" else (0, 1) if framing == "chunked" else (0, 0)
    if draw(st.integers(0, 99)) < rate("framing"):  # another Content-Length or Transfer-Encoding
        cls, tes = (cls + 1, tes) if draw(st.booleans()) else (cls, tes + 1)
    fields += [draw(cl_fields(rate, len(content))) for _ in range(cls)]
    fields += [draw(te_fields(rate)) for _ in range(tes)]
    if draw(st.booleans()):
        fields.append(d_framing_field(draw, rate, b"Connection", b"close", ()))
    fields = draw(st.permutations(fields))
    tags |= framing_tags(fields, in_head=True)
    lengths = [f.value for f in fields if f.name == b"content-length"]
    if tes and version == b"HTTP/1.0":
        tags.add("te-http10")
    if tes and lengths:
        tags.add("te-and-cl")
    parts = {part.strip(b" \t") for value in lengths for part in value.split(b",")}
    if len(parts) > 1 and all(p.isdigit() for p in parts) and len({int(p) for p in parts}) == 1:
        tags.add("cl-spelling")
    blank, blank_tags = pick(draw, rate("ending"), _D_ENDINGS, _D_NEAR_ENDINGS)
    tags |= blank_tags
    data += version + b" " + code + reason + ending + b"".join(f.raw for f in fields) + blank
    if tes and draw(st.integers(0, 99)) >= rate("framing"):
        body, body_tags = draw(d_chunked(rate, content))
        data += body
        if method != b"HEAD" and code not in (b"204", b"304"):
            tags |= body_tags  # else the body is not read: it is what follows the response
    else:
        data += content
    data += draw(st.sampled_from(_D_TAILS))
    if draw(st.integers(0, 99)) < rate("truncate"):
        data = data[: draw(st.integers(0, len(data)))]  # cut short: then the end of input
    return Shape(data, method, frozenset(tags))


def h11_reads(data: bytes, method: bytes) -> Outcome:
    """What h11, as a client that sent `method`, reads from `data` then the end of input.
    A refusal only once the input has ended is 'incomplete'."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=1 << 20)
    conn.send(h11.Request(method=method, target="/", headers=[("host", "example")]))
    conn.send(h11.EndOfMessage())
    if data:
        conn.receive_data(data)
    status, body, ended = 0, bytearray(), False
    headers: Headers = ()
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            return Outcome("incomplete" if ended else "error")
        if event is h11.NEED_DATA:
            assert not ended
            conn.receive_data(b"")
            ended = True
        elif isinstance(event, h11.Response):
            status, headers = event.status_code, tuple(event.headers)
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            trailing = conn.trailing_data[0]
            return Outcome("ok", status, headers, bytes(body), tuple(event.headers), trailing)
        elif isinstance(event, h11.ConnectionClosed):
            return Outcome("incomplete")
        else:
            assert isinstance(event, h11.InformationalResponse), event


def as_h11_keeps(fields: Headers) -> Headers:
    """Fields as h11 represents them: the first Content-Length only, as its one value;
    Transfer-Encoding lowercased."""
    kept = []
    length_seen = False
    for name, value in fields:
        if name == b"content-length":
            if length_seen:
                continue
            length_seen = True
            value = value.split(b",")[0].strip(b" \t")
        elif name == b"transfer-encoding":
            value = value.lower()
        kept.append((name, value))
    return tuple(kept)


def compare_with_h11(data: bytes, method: bytes) -> tuple[Outcome, Outcome]:
    """lowhaio's and h11's readings, in h11's representation: accepted or not, and what."""
    ours, theirs = parse([data], method), h11_reads(data, method)
    if ours.kind == "ok":
        ours = ours._replace(
            headers=as_h11_keeps(ours.headers), trailers=as_h11_keeps(ours.trailers)
        )
    else:
        ours = Outcome("refused")
    return ours, theirs if theirs.kind == "ok" else Outcome("refused")


def test_lowhaio_reads_responses_as_h11_does() -> None:
    met: set[str] = set()

    @settings(deadline=None, derandomize=True, database=None, max_examples=1500)
    @given(shape=differential_responses())
    def differential(shape: Shape) -> None:
        ours, theirs = compare_with_h11(shape.data, shape.method)
        known = shape.tags & KNOWN_DIFFERENCES.keys()
        met.update(known)
        if known & _REJECTS:
            assert ours.kind == "refused", (known, shape)
        if known:
            return  # a known difference: see KNOWN_DIFFERENCES
        assert ours == theirs, shape

    differential()
    # The generator makes every shape the table lists: no entry is stale, and the
    # differential test met (and skipped) each of them.
    assert met == KNOWN_DIFFERENCES.keys()


_CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

# For each known difference, one response where it shows: lowhaio's answer, then h11's.
_DIFFERENCE_EXAMPLES: dict[str, tuple[bytes, bytes]] = {
    "data-lf": (b"GET", _CHUNKED + b"2\r\nok\n0\r\n\r\n"),
    "control": (b"GET", b"HTTP/1.1 200 OK\r\nX: a\x01b\r\nContent-Length: 0\r\n\r\n"),
    "version": (b"GET", b"HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n"),
    "status-range": (b"GET", b"HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n"),
    "te-http10": (b"GET", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "te-and-cl": (
        b"GET",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    "te-empty-elements": (
        b"GET",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n0\r\n\r\n",
    ),
    "cl-spelling": (b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 02\r\n\r\nok"),
    "cl-digits": (b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 0000000000000000002\r\n\r\nok"),
    "chunk-digits": (b"GET", _CHUNKED + b"00000000000000002\r\nok\r\n0\r\n\r\n"),
    "chunk-ext-bws": (b"GET", _CHUNKED + b"2 ;a\r\nok\r\n0\r\n\r\n"),
    "chunk-ext-lenient": (b"GET", _CHUNKED + b"2;\r\nok\r\n0\r\n\r\n"),
    "fold-whitespace": (b"GET", b"HTTP/1.1 200 OK\r\nX: a\t\r\n b\r\nContent-Length: 0\r\n\r\n"),
    "interim-framing": (
        b"GET",
        b"HTTP/1.1 103 Hints\r\nContent-Length: x\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    ),
    "trailer-framing": (b"GET", _CHUNKED + b"0\r\nContent-Length: x\r\n\r\n"),
}


@pytest.mark.parametrize("difference", list(KNOWN_DIFFERENCES))
def test_each_known_difference_is_real_and_lowhaio_answers_as_listed(difference: str) -> None:
    method, data = _DIFFERENCE_EXAMPLES[difference]
    ours, theirs = compare_with_h11(data, method)
    answer = KNOWN_DIFFERENCES[difference][1]
    if difference == "fold-whitespace":
        assert ours._replace(headers=()) == theirs._replace(headers=())
        assert ours.headers[0] == (b"x", b"a b")
        assert theirs.headers[0] == (b"x", b"a\t b")
    elif answer == "rejects":
        assert (ours.kind, theirs.kind) == ("refused", "ok")
    else:
        assert (ours.kind, theirs.kind) == ("ok", "refused")
