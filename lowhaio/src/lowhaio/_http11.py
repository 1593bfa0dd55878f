"""HTTP/1.1 as plain functions over bytes: no sockets, no event loop.

Strategy (after h11's `_readers.py`): the connection owns one buffer and feeds it here. Each
reader answers either with a result or with "need more data", and never looks again at bytes
it has already judged, so work stays linear however the bytes are split. `ResponseReader` is
the whole sequence of reading a response (heads, interim ones, framing, the body), over the
buffer contract stated under "Reading a response" below. Everything a server
sends is checked strictly against RFC 9112; the few tolerances are named where they are made.

The request side validates what the caller gives before a byte is sent: a URL, a method or a
header that could smuggle a second request (CR, LF, NUL) is refused with
`HttpInvalidRequestError`.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote, urlsplit

from ._exceptions import (
    HttpConnectionClosedError,
    HttpError,
    HttpHeaderTooLong,
    HttpInvalidRequestError,
    HttpProtocolError,
    HttpTooManyHeaders,
)

Headers = tuple[tuple[bytes, bytes], ...]
_T = TypeVar("_T")

# RFC 9110 5.6.2: a token, the syntax of methods and field names.
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_token = re.compile(_TOKEN)
# RFC 9110 5.5: field values are VCHAR, obs-text, SP and HTAB; anything else (CR, LF, NUL and
# the other controls) is refused in both directions.
_bad_value_byte = re.compile(rb"[^\t\x20-\x7e\x80-\xff]")
_digits = re.compile(rb"[0-9]{1,18}")

# RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]. Tolerated, as
# h11 and curl do: a missing SP when there is no reason phrase. Codes are 100-599 (RFC 9110 15).
_status_line = re.compile(rb"HTTP/1\.([01]) ([1-5][0-9][0-9])(?: [\t\x20-\x7e\x80-\xff]*)?")
# RFC 9112 5: field-line = field-name ":" OWS field-value OWS, with no whitespace before ":".
_field_line = re.compile(rb"(" + _TOKEN + rb"):[ \t]*([\t\x20-\x7e\x80-\xff]*?)[ \t]*")
# Status and field lines already parsed: a server sends the same ones again and again (the
# status line, server, content-type, connection...; only some, like date, change), and looking
# one up costs a tenth of a regular expression's pass over it. Bounded: short lines only, each
# dictionary emptied when full. What a line parses to depends on its bytes alone, so what is
# kept is never stale.
_known_statuses: dict[bytes, tuple[int, int, bytes]] = {}
_known_fields: dict[bytes, tuple[bytes, bytes]] = {}
_KNOWN_LINES = 512
_KNOWN_LINE_BYTES = 256


def _known(known: dict[bytes, _T], line: bytes, parsed: _T) -> _T:
    """Keep what `line` parsed to, if it is short enough to keep."""
    if len(line) <= _KNOWN_LINE_BYTES:
        if len(known) >= _KNOWN_LINES:
            known.clear()
        known[line] = parsed
    return parsed


# RFC 9112 7.1: chunk-size [ chunk-ext ] CRLF, chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS
# value ] ). 16 hex digits is a size of up to 16 EiB: more is refused, not wrapped.
_chunk_line = re.compile(
    rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[ \t]*"
    + _TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + _TOKEN
    + rb"|"
    + _QUOTED
    + rb"))?)*"
)
# The common case, a size line without extensions, matched in place in the caller's buffer;
# and the same after the CRLF that ends the previous chunk's data.
_plain_chunk_line = re.compile(rb"([0-9A-Fa-f]{1,16})\r?\n")
_following_chunk_line = re.compile(rb"\r?\n([0-9A-Fa-f]{1,16})\r?\n")
# RFC 9112 2.2: a line ends with LF, a CR just before it being part of the ending.
_line_ending = re.compile(rb"\r?\n")
_empty_line = re.compile(rb"\n\r?\n")  # the end of a line, then an empty one
_keep_alive_timeout = re.compile(rb"(?:^|[ \t,])timeout[ \t]*=[ \t]*([0-9]{1,9})(?:$|[ \t,])")

# RFC 3986 2.2 and 3.3-3.4: what may stand unencoded in a path and a query. '%' is kept so that
# a caller's percent-encoding is not encoded twice.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"
_PARAM_SAFE = "-._~"  # parameters: everything but RFC 3986 unreserved is encoded
_DEFAULT_PORTS = {"http": 80, "https": 443}
_url_control = re.compile(r"[\x00-\x1f\x7f]")
_surrogate = re.compile("[\ud800-\udfff]")
_stray_percent = re.compile(r"%(?![0-9A-Fa-f]{2})")
_host_name = re.compile(r"[a-z0-9_\-.]+")
_bracketed_host = re.compile(r"\[[0-9A-Fa-f:.]+\](?::[0-9]*)?")


def _truncated(data: bytes, limit: int = 80) -> str:
    """A printable, bounded excerpt of what a server sent, for error messages."""
    return repr(data[:limit]) + ("..." if len(data) > limit else "")


# Requests ------------------------------------------------------------------------------------


class Origin(NamedTuple):
    """Where a request goes: the pool's key for reusing connections."""

    scheme: str
    host: str  # ASCII: IDNA-encoded name, or IP literal without brackets
    port: int

    def __str__(self) -> str:
        """`scheme://host:port`, as error messages name it (an IPv6 host in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


class Target(NamedTuple):
    """A parsed URL: where to connect and what to put in the request line and `host`."""

    origin: Origin
    host_header: bytes
    path_query: bytes  # origin-form request target, without the caller's `params`
    has_query: bool
    is_ip: bool  # the host is an IP literal: no DNS

    def safe_url(self) -> str:
        """The URL without userinfo, query or fragment, which may hold secrets: for errors."""
        return f"{self.origin}{self.path_query.partition(b'?')[0].decode('ascii')}"


def parse_url(url: str) -> Target:
    """Parse and validate an absolute http or https URL; the fragment and userinfo are dropped."""
    if not isinstance(url, str):
        raise HttpInvalidRequestError(f"url must be a str, not {type(url).__name__}")
    return _parse_url(url)


@functools.lru_cache(maxsize=512)
def _parse_url(url: str) -> Target:
    # Error messages name the part that is wrong, never the URL's query: it may hold secrets.
    if control := _url_control.search(url):
        raise HttpInvalidRequestError(
            f"url contains a control character (CR, LF, NUL...) at {control.start()}"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise HttpInvalidRequestError(f"url is invalid: {exc}") from exc
    scheme = parts.scheme
    if scheme not in _DEFAULT_PORTS:
        raise HttpInvalidRequestError(f"url scheme must be http or https, not {scheme[:20]!r}")
    if "\\" in parts.netloc:
        # RFC 3986 3.2: no backslash in an authority. WHATWG parsers (browsers, many proxies and
        # allow-lists) read it as "/", and would see another host than this request goes to.
        raise HttpInvalidRequestError("url authority contains a backslash")
    host = parts.hostname
    if not host:
        raise HttpInvalidRequestError("url has no host")
    if "@" in parts.netloc:
        # Credentials in a URL end up in logs, histories and Referer headers, and which server
        # they are for blurs across redirects: they are refused, not dropped silently nor sent.
        raise HttpInvalidRequestError(
            "url has userinfo (user:password@): lowhaio sends no credentials from a URL; give"
            " them as a header, for example headers=(lowhaio.basic_auth(user, password),)"
        )
    if parts.netloc.startswith("["):
        # RFC 3986 3.2.2: an IP literal is "[" IPv6address "]", then nothing or ":" port.
        # IPvFuture and zone identifiers are refused.
        try:
            if not _bracketed_host.fullmatch(parts.netloc):
                raise ValueError("not [IPv6address] optionally followed by :port")
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise HttpInvalidRequestError(f"url host is not an IPv6 address: {host!r}") from exc
        authority = f"[{host}]"
        is_ip = True
    else:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise HttpInvalidRequestError(f"url host is not a valid name: {host!r}") from exc
        if not _host_name.fullmatch(host):
            raise HttpInvalidRequestError(f"url host is not a valid name: {host!r}")
        authority = host
        is_ip = _is_ipv4(host)
    default_port = _DEFAULT_PORTS[scheme]
    if port == 0:
        raise HttpInvalidRequestError("url port must be 1-65535")
    if port is None or port == default_port:
        port = default_port
    else:
        authority = f"{authority}:{port}"
    if _surrogate.search(parts.path) or _surrogate.search(parts.query):
        # No UTF-8 for it, so no percent-encoding: refused rather than quote()'s own error.
        raise HttpInvalidRequestError("url path or query contains a lone surrogate")
    path = quote(_stray_percent.sub("%25", parts.path), safe=_PATH_SAFE) or "/"
    query = quote(_stray_percent.sub("%25", parts.query), safe=_QUERY_SAFE)
    path_query = f"{path}?{query}" if query else path
    return Target(
        Origin(scheme, host, port),
        authority.encode("ascii"),
        path_query.encode("ascii"),
        bool(query),
        is_ip,
    )


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def basic_auth(user: str | bytes, password: str | bytes) -> tuple[bytes, bytes]:
    """An `authorization` header for HTTP Basic authentication (RFC 7617): the credentials in
    UTF-8, base64-encoded. Sent over plain http, anyone on the way can read them."""
    user_bytes = user.encode() if isinstance(user, str) else user
    password_bytes = password.encode() if isinstance(password, str) else password
    if b":" in user_bytes or _bad_value_byte.search(user_bytes + password_bytes):
        # RFC 7617 2: a user-id with a colon is ambiguous; control bytes are refused anywhere.
        raise HttpInvalidRequestError("basic_auth: the user has a colon or a control byte")
    return b"authorization", b"Basic " + base64.b64encode(user_bytes + b":" + password_bytes)


def request_target(target: Target, params: Iterable[tuple[str | bytes, str | bytes]]) -> bytes:
    """The request target: the URL's path and query, then `params` encoded after them."""
    if not params:
        return target.path_query
    try:
        encoded = "&".join(
            quote(name, safe=_PARAM_SAFE) + "=" + quote(value, safe=_PARAM_SAFE)
            for name, value in map(_pair, params)
        )
    except (TypeError, ValueError) as exc:
        raise HttpInvalidRequestError("params must be (name, value) pairs of str or bytes") from exc
    return target.path_query + (b"&" if target.has_query else b"?") + encoded.encode("ascii")


def _pair(item: tuple[str | bytes, str | bytes]) -> tuple[str | bytes, str | bytes]:
    # A str of two characters unpacks as a pair too: only real pairs are taken.
    if not isinstance(item, tuple | list):
        raise TypeError("not a pair")
    return item


class RequestFraming(NamedTuple):
    """How the request declares its body (RFC 9112 6.2-6.3)."""

    length: int | None  # content-length, or None when the request declares no length
    chunked: bool  # transfer-encoding: the body factory yields already-encoded chunks
    close: bool  # the caller sent `connection: close`
    expect_continue: bool = False  # the caller sent `expect: 100-continue`


_NO_FRAMING = RequestFraming(None, False, False)
# The fields that request_head looks into; the others are only validated and copied.
_REQUEST_FRAMING_FIELDS = frozenset(
    (b"host", b"content-length", b"transfer-encoding", b"connection", b"expect")
)


# Methods that define a meaning for enclosed content (RFC 9110 9.3.3, 9.3.4; RFC 5789).
_CONTENT_METHODS = frozenset((b"POST", b"PUT", b"PATCH"))
# The usual methods, known to be tokens: a set lookup rather than a regular expression's match.
_METHODS = frozenset((b"GET", b"HEAD", b"DELETE", b"OPTIONS", *_CONTENT_METHODS))


def request_head(
    method: bytes,
    target: bytes,
    host: bytes,
    headers: Iterable[tuple[bytes, bytes]],
    *,
    body: bool = True,
) -> tuple[bytes, RequestFraming]:
    """Serialise and validate a request head. `host` is added unless the caller gives one;
    `content-length: 0` too, for a POST, PUT or PATCH that has no `body` and no framing of its
    own (RFC 9110 8.6: a user agent SHOULD send it; some servers answer 411 without it)."""
    if type(method) is not bytes or (method not in _METHODS and not _token.fullmatch(method)):
        raise HttpInvalidRequestError(f"method must be a token as bytes: {method!r}")
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    length = None
    chunked = close = has_host = expect_continue = False
    framed = False  # a field that request_head looks into was given
    for field in headers:
        try:
            name, value = field
            valid = _token.fullmatch(name) is not None and not _bad_value_byte.search(value)
        except (TypeError, ValueError) as exc:
            raise HttpInvalidRequestError(
                f"headers must be (name, value) pairs of bytes, not {type(field).__name__}"
            ) from exc
        if not valid or type(name) is not bytes or type(value) is not bytes:
            # The value is not shown: it may be a credential.
            raise HttpInvalidRequestError(
                f"header {name!r} is not a token with a value of bytes without CR, LF, NUL"
                " or other control bytes"
            )
        lines += (name, b": ", value, b"\r\n")
        lname = name.lower()
        if lname not in _REQUEST_FRAMING_FIELDS:
            continue
        framed = True
        if lname == b"host":
            if has_host:
                raise HttpInvalidRequestError("more than one host header")  # RFC 9112 3.2
            has_host = True
        elif lname == b"content-length":
            if length is not None or not _digits.fullmatch(value):
                raise HttpInvalidRequestError(f"content-length is invalid: {value!r}")
            length = int(value)
        elif lname == b"transfer-encoding":
            if _list_tokens(value)[-1:] != [b"chunked"]:
                raise HttpInvalidRequestError(f"transfer-encoding must end with chunked: {value!r}")
            chunked = True
        elif lname == b"connection":
            close = close or b"close" in _list_tokens(value)
        else:
            expect_continue = value.lower() == b"100-continue"
    if not has_host:
        lines[4:4] = (b"host: ", host, b"\r\n")
    if not body and length is None and not chunked and method in _CONTENT_METHODS:
        lines.append(b"content-length: 0\r\n")
        length = 0
    elif not framed:
        lines.append(b"\r\n")
        return b"".join(lines), _NO_FRAMING
    lines.append(b"\r\n")
    if length is not None and chunked:
        raise HttpInvalidRequestError("content-length and transfer-encoding are both given")
    return b"".join(lines), RequestFraming(length, chunked, close, expect_continue)


# Responses -----------------------------------------------------------------------------------


def find_head_end(buf: bytearray, start: int, end: int, *, searched: int, max_bytes: int) -> int:
    """Where the head that starts at `buf[start]` ends (just past the empty line that ends it),
    or -1 for "need more". `searched` is how many bytes after `start` were already searched
    without success.

    A line ends with LF, and a CR just before it is part of the line ending: RFC 9112 2.2 lets
    a recipient take a lone LF as a line terminator, as old embedded servers send, so the empty
    line is the first LF CR LF or LF LF. A CR anywhere else is refused by the line's parser.
    """
    resume = start + max(searched - 2, 0)  # an empty line may straddle the old end
    empty_line = _empty_line.search(buf, resume, end)  # one pass, in C: the earliest of both
    if empty_line is None:
        if end - start > max_bytes:
            raise HttpHeaderTooLong(f"response head is longer than {max_bytes} bytes")
        return -1
    head_end = empty_line.end()
    if head_end - start > max_bytes:
        raise HttpHeaderTooLong(f"response head is longer than {max_bytes} bytes")
    return head_end


class ResponseHead(NamedTuple):
    version_minor: int  # 1 for HTTP/1.1, 0 for HTTP/1.0
    status: int
    code: bytes
    headers: Headers


# A NamedTuple's own constructor is a function in Python: made this way, one made per response
# costs a third less.
_new_head: Callable[[tuple[int, int, bytes, Headers]], ResponseHead] = functools.partial(
    tuple.__new__, ResponseHead
)


def parse_head(head: bytes, max_headers: int) -> ResponseHead:
    """Parse a complete response head, given without its final CRLF CRLF."""
    # The common case: CRLF line endings, no obs-fold, and no more lines than allowed. Each
    # line is looked up first (in C, all at once), and only those not known are parsed.
    lines = head.split(b"\r\n")
    status = _known_statuses.get(lines[0])
    if status is None and (match := _status_line.fullmatch(lines[0])):
        status = _known(_known_statuses, lines[0], (int(match[1]), int(match[2]), match[2]))
    if status is not None and len(lines) - 1 <= max_headers:
        del lines[0]
        fields: list[Any] = list(map(_known_fields.get, lines))  # None: not known
        if None not in fields or _parse_fields_not_known(lines, fields):
            return _new_head((*status, tuple(fields)))
    # Anything else (bare LF line endings, obs-fold, or an error to name precisely) line by
    # line.
    lines = _line_ending.split(head)
    status_line = _status_line.fullmatch(lines[0])
    if status_line is None:
        raise HttpProtocolError(f"response status line is invalid: {_truncated(lines[0])}")
    if len(lines) - 1 > max_headers:
        raise HttpTooManyHeaders(f"response has more than {max_headers} header lines")
    code = status_line[2]
    return ResponseHead(int(status_line[1]), int(code), code, tuple(_parse_fields(lines[1:])))


def _parse_fields_not_known(lines: list[bytes], fields: list[Any]) -> bool:
    """Fill in the fields that were not known, parsing their lines; False if one is not a
    plain field line (a bare LF, obs-fold, or an error)."""
    for at, field in enumerate(fields):
        if field is None:
            match = _field_line.fullmatch(lines[at])  # no CR, LF or other control byte in it
            if match is None:
                return False
            fields[at] = _known(_known_fields, lines[at], (match[1].lower(), match[2]))
    return True


def _parse_fields(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    fields: list[tuple[bytes, bytes]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and fields:
            # RFC 9112 5.2: a user agent replaces obs-fold with SP (in trailers too).
            value = line.strip(b" \t")
            if _bad_value_byte.search(value):
                raise HttpProtocolError(f"response header is invalid: {_truncated(line)}")
            name, previous = fields[-1]
            fields[-1] = (
                name,
                previous + b" " + value if previous and value else previous or value,
            )
            continue
        field = _field_line.fullmatch(line)
        if field is None:
            raise HttpProtocolError(f"response header is invalid: {_truncated(line)}")
        fields.append((field[1].lower(), field[2]))
    return fields


def _list_tokens(value: bytes) -> list[bytes]:
    """The elements of a comma-separated list field, lowercased, empty elements skipped."""
    return [
        token
        for token in value.lower().replace(b"\t", b" ").replace(b" ", b"").split(b",")
        if token
    ]


class ResponseFraming(NamedTuple):
    """How the response body is delimited (RFC 9112 6.3) and whether the connection persists."""

    length: int | None  # content-length (0: no body); None: chunked or until close
    chunked: bool
    keep_alive: bool
    keep_alive_timeout: float | None  # the server's `Keep-Alive: timeout=`, if any


_new_framing: Callable[[tuple[int | None, bool, bool, float | None]], ResponseFraming] = (
    functools.partial(tuple.__new__, ResponseFraming)  # as `_new_head`
)


# The fields that response_framing looks into, and the usual values of `connection`, as
# `_list_tokens` reads them.
_RESPONSE_FRAMING_FIELDS = frozenset(
    (b"content-length", b"transfer-encoding", b"connection", b"keep-alive")
)
_CONNECTION_TOKENS = {
    value: (value.lower(),) for value in (b"keep-alive", b"Keep-Alive", b"close", b"Close")
}


def response_framing(head: ResponseHead, request_method: bytes) -> ResponseFraming:
    """Decide the framing of a final (non-1xx) response to a request with `request_method`."""
    length = None
    codings: list[bytes] | None = None
    connection: list[bytes] = []
    timeout = None
    for name, value in head.headers:
        if name not in _RESPONSE_FRAMING_FIELDS:
            continue
        if name == b"content-length":
            if length is None and _digits.fullmatch(value):
                length = int(value)
                continue
            # RFC 9110 8.6: a list of identical values is one value; differing values are fatal.
            for part in value.split(b","):
                part = part.strip(b" \t")
                if not _digits.fullmatch(part):
                    raise HttpProtocolError(f"content-length is invalid: {_truncated(value)}")
                if length is not None and int(part) != length:
                    raise HttpProtocolError(f"content-length values differ: {_truncated(value)}")
                length = int(part)
        elif name == b"transfer-encoding":
            codings = (codings or []) + _list_tokens(value)
        elif name == b"connection":
            connection += _CONNECTION_TOKENS.get(value) or _list_tokens(value)
        else:
            found = _keep_alive_timeout.search(value.lower())
            if found:
                timeout = float(found[1])
    keep_alive = b"close" not in connection and (
        head.version_minor == 1 or b"keep-alive" in connection
    )
    if codings is not None:
        # RFC 9112 6.1 and 6.3: transfer-encoding in HTTP/1.0, or beside content-length, is
        # faulty framing (the shape of request smuggling); only chunked is decoded here.
        if head.version_minor == 0:
            raise HttpProtocolError("transfer-encoding in an HTTP/1.0 response")
        if length is not None:
            raise HttpProtocolError("response has both transfer-encoding and content-length")
        if codings != [b"chunked"]:
            raise HttpProtocolError(f"transfer-encoding is not supported: {codings!r}")
    if request_method == b"HEAD" or head.status in (204, 304):
        return _new_framing((0, False, keep_alive, timeout))
    if codings is not None:
        return _new_framing((None, True, keep_alive, timeout))
    if length is not None:
        return _new_framing((length, False, keep_alive, timeout))
    # RFC 9112 6.3 rule 8: the body runs until the server closes the connection.
    return _new_framing((None, False, False, timeout))


# Reading a response --------------------------------------------------------------------------
#
# The buffer contract, which `_connection.Connection` meets and the readers below rely on: the
# unread bytes are `buf[start:end]`, and a reader looks at nothing outside them. Each call
# returns how far it consumed (`consumed`, from `start` to `end`), and the caller drops
# `buf[start:consumed]` before the next call. Between calls the caller may append bytes at `end`
# and move the unread ones within `buf` (compaction): a reader keeps only counts relative to
# `start`, never positions, and so it never rescans bytes it has already judged.
#
# A body reader's `read(buf, start, end)` returns `(a, b, consumed)`: the payload is `buf[a:b]`,
# and everything before `consumed` is consumed. `a == b` means no payload is ready: the body is
# complete if `done`, else more bytes are needed. `closed()`, asked of a body not yet `done`,
# is what the server closing the connection now means: the error to raise, or None if the
# close ends the body.

# 1xx responses skipped before a final one: a few 103 Early Hints are normal, an endless stream
# of them is a server holding the request forever.
MAX_INTERIM_RESPONSES = 16


class ResponseLimits(NamedTuple):
    """How large the parts of a response may be."""

    max_head_bytes: int = 64 * 1024
    max_headers: int = 2000  # header lines in a head; trailer lines
    max_line_bytes: int = 8 * 1024  # a chunk-size or trailer line


class ResponseReader:
    """Reads one response from a buffer its caller owns, and answers "need more" (as h11's
    `Connection.next_event` does) rather than waiting: the sequence that `_response.py` drives
    with the connection's bytes, and the tests with any bytes they like.

    `next_head` until it returns a final head: it returns interim (1xx) heads too, at most
    `MAX_INTERIM_RESPONSES` of them, and refuses 101 (nobody asked to switch protocols). The
    final head fixes `framing`; `body_reader(framing, limits)` then reads the body.
    """

    __slots__ = ("_interim", "_limits", "_method", "_searched", "framing", "head")

    def __init__(self, method: bytes, limits: ResponseLimits) -> None:
        self._method = method
        self._limits = limits
        self._searched = 0  # bytes after start already searched for the end of a head
        self._interim = 0  # interim heads read so far
        self.head: ResponseHead | None = None  # the final head, once read
        self.framing: ResponseFraming | None = None  # ... and how its body is framed

    def next_head(self, buf: bytearray, start: int, end: int) -> tuple[ResponseHead | None, int]:
        """The next head, interim or final, and where it ends; or `(None, start)`: need more."""
        limits = self._limits
        at = find_head_end(
            buf, start, end, searched=self._searched, max_bytes=limits.max_head_bytes
        )
        if at < 0:
            self._searched = end - start
            return None, start
        self._searched = 0
        # The head without the empty line and the last line's ending, each LF or CR LF:
        # written out here, not called, on the path of every response.
        end = at - 1  # the empty line's LF
        if buf[end - 1] == 13:  # ... and its CR (a byte of the head: the LF before it is)
            end -= 1
        end -= 1  # the LF that ends the last line
        if end > start and buf[end - 1] == 13:
            end -= 1
        head = parse_head(bytes(buf[start:end]), limits.max_headers)
        if head.status >= 200:
            self.head = head
            self.framing = response_framing(head, self._method)
        elif head.status == 101:
            raise HttpProtocolError("101 Switching Protocols, but no upgrade was asked for")
        else:
            self._interim += 1
            if self._interim > MAX_INTERIM_RESPONSES:
                raise HttpProtocolError(
                    f"more than {MAX_INTERIM_RESPONSES} interim (1xx) responses"
                )
        return head, at

    @staticmethod
    def closed(unread: int) -> HttpError:
        """The error when the server closes the connection before the final head is whole,
        with `unread` bytes of it received."""
        return HttpConnectionClosedError(
            f"connection closed before the response head was complete ({unread} bytes of it"
            " received)"
        )


def body_reader(framing: ResponseFraming, limits: ResponseLimits) -> BodyReader:
    """The reader for a body framed as `framing` says (RFC 9112 6.3)."""
    if framing.chunked:
        return ChunkedDecoder(
            limits.max_line_bytes, limits.max_headers, max_bytes=limits.max_head_bytes
        )
    if framing.length is None:
        return BodyUntilClose()
    return SizedBody(framing.length)


class SizedBody:
    """A body of `content-length` bytes (or none: HEAD, 204, 304)."""

    __slots__ = ("remaining",)
    framing = False  # never waits for framing, only for payload
    trailers: Headers = ()

    def __init__(self, length: int) -> None:
        self.remaining = length  # bytes of the body not yet read

    @property
    def done(self) -> bool:
        return not self.remaining

    def read(self, buf: bytearray, start: int, end: int) -> tuple[int, int, int]:
        stop = start + min(self.remaining, end - start)
        self.remaining -= stop - start
        return start, stop, stop

    def closed(self) -> HttpError | None:
        return HttpConnectionClosedError(
            f"connection closed with {self.remaining} bytes of the body unread"
        )


class BodyUntilClose:
    """A body that the server ends by closing the connection (RFC 9112 6.3 rule 8)."""

    __slots__ = ("done",)
    framing = False
    trailers: Headers = ()

    def __init__(self) -> None:
        self.done = False

    def read(self, buf: bytearray, start: int, end: int) -> tuple[int, int, int]:
        return start, end, end

    def closed(self) -> HttpError | None:
        self.done = True
        return None


# States of a chunked body, in the order they come:
#   _SIZE      a chunk-size line (with any extensions) up to its CRLF
#   _DATA      the chunk's payload, `_remaining` bytes of it
#   _DATA_END  the line ending (CRLF, or a lone LF) after the payload
#   _TRAILER   trailer lines, after the last (zero-size) chunk, up to an empty line
#   _DONE      the body is complete
_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class ChunkedDecoder:
    """Decodes a chunked body (RFC 9112 7.1): a body reader. Trailers end up in `trailers`.

    Two fast paths, for the common case of size lines without extensions, matched in place in
    the caller's buffer without copying a line: in `_SIZE`, `_plain_chunk_line`; and at the end
    of a chunk's payload, `_following_chunk_line` takes the payload's CRLF and the next size line
    in the same call, so that a body of many chunks costs one call per chunk, not three. Any
    other line (extensions, an error to name, one split across reads) takes the general path:
    find its CRLF, resuming where the last search stopped, and parse it whole.
    """

    __slots__ = (
        "_max_bytes",
        "_max_fields",
        "_max_line",
        "_remaining",
        "_scanned",
        "_state",
        "_trailer_bytes",
        "_trailer_lines",
        "trailers",
    )

    def __init__(self, max_line: int, max_fields: int, *, max_bytes: int = 64 * 1024) -> None:
        self._state = _SIZE
        self._remaining = 0
        self._scanned = 0  # bytes of the current line already searched for its end
        self._max_line = max_line
        self._max_fields = max_fields
        self._max_bytes = max_bytes  # of all the trailer lines, as of a head
        self._trailer_lines: list[bytes] = []
        self._trailer_bytes = 0
        self.trailers: Headers = ()

    @property
    def done(self) -> bool:
        return self._state == _DONE

    @property
    def framing(self) -> bool:
        """Whether more bytes are needed for framing (a size line, CRLF, trailers), not payload."""
        return self._state != _DATA

    def read(self, buf: bytearray, start: int, end: int) -> tuple[int, int, int]:
        while True:
            state = self._state
            if state == _DATA:
                size = min(self._remaining, end - start)
                self._remaining -= size
                stop = start + size
                if self._remaining:
                    return start, stop, stop
                # The chunk's CRLF and a plain size line after it, if already here, are taken
                # in the same call: one call per chunk.
                following = _following_chunk_line.match(buf, stop, end)
                if following is not None:
                    digits = following[1]
                    if len(digits) <= self._max_line:
                        self._remaining = int(digits, 16)
                        self._state = _DATA if self._remaining else _TRAILER
                        return start, stop, following.end()
                self._state = _DATA_END
                return start, stop, stop
            if state == _DONE:
                return start, start, start
            if state == _DATA_END:
                # The payload's line ending: CRLF, or a lone LF (RFC 9112 2.2).
                ending = buf[start : min(start + 2, end)]
                if ending[:1] == b"\n":
                    start += 1
                elif ending == b"\r\n":
                    start += 2
                elif not ending or ending == b"\r":  # the rest of the ending is to come
                    return start, start, start
                else:
                    raise HttpProtocolError("chunk data is not followed by CRLF")
                self._state = state = _SIZE
            if state == _SIZE:
                plain = _plain_chunk_line.match(buf, start, end)
                if plain is not None and len(plain[1]) <= self._max_line:
                    start = plain.end()
                    self._scanned = 0
                    self._remaining = int(plain[1], 16)
                    self._state = _DATA if self._remaining else _TRAILER
                    continue
            # Any other line: up to its LF, a CR before it being part of the line ending.
            at = buf.find(b"\n", start + self._scanned, end)
            line_end = at - 1 if at > start and buf[at - 1] == 13 else at
            if line_end - start > self._max_line or (
                at < 0 and end - start > self._max_line + 1  # + 1: a CR whose LF is to come
            ):
                what = "chunk-size" if state == _SIZE else "trailer"
                raise HttpHeaderTooLong(f"{what} line is longer than {self._max_line} bytes")
            if at < 0:
                self._scanned = end - start
                return start, start, start
            self._scanned = 0
            line = bytes(buf[start:line_end])
            start = at + 1
            if state == _SIZE:
                size_line = _chunk_line.fullmatch(line)
                if size_line is None:
                    raise HttpProtocolError(f"chunk-size line is invalid: {_truncated(line)}")
                self._remaining = int(size_line[1], 16)
                self._state = _DATA if self._remaining else _TRAILER
            elif line:
                if len(self._trailer_lines) >= self._max_fields:
                    raise HttpTooManyHeaders(f"more than {self._max_fields} trailer lines")
                self._trailer_bytes += len(line)
                if self._trailer_bytes > self._max_bytes:
                    raise HttpHeaderTooLong(f"trailers are longer than {self._max_bytes} bytes")
                self._trailer_lines.append(line)
            else:
                self.trailers = tuple(_parse_fields(self._trailer_lines))
                self._state = _DONE

    def closed(self) -> HttpError:
        return HttpConnectionClosedError("connection closed inside the chunked body")


BodyReader = ChunkedDecoder | SizedBody | BodyUntilClose
