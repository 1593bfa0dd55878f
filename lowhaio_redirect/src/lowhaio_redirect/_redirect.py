"""`redirectable`: a `request` that follows redirects (RFC 9110 15.4).

Strategy: the wrapper is a loop in the caller's task around the wrapped `request`. Each hop
decides the next method, headers and body from the status code alone, resolves `Location`
against the current URL (RFC 3986 5), refuses what would be unsafe to follow (another scheme,
https to http, credentials to another origin), and drops the intermediate response's body with
`lowhaio.discard`, so the pool keeps or closes its connection. The hops followed are written on
the final response's body (`url`, `history`), so the `(code, headers, body)` shape that every
wrapper composes on stays as it is. The policy is fixed when the request is wrapped; per-call
state stays in the loop.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

from lowhaio import (
    DISCARD_LIMIT_BYTES,
    BodyFactory,
    HttpError,
    Params,
    Request,
    RequestHeaders,
    Response,
    discard,
    empty_body,
    target_of,
)

REDIRECT_CODES = frozenset((b"301", b"302", b"303", b"307", b"308"))

# Sent only to the origin the caller chose (RFC 9110 15.4: a user agent should not forward
# credentials to another origin). `host` too: the caller's host header names the first origin.
ORIGIN_BOUND_HEADERS = frozenset((b"authorization", b"cookie", b"proxy-authorization", b"host"))

# Describe a body that is not sent once a redirect turns the request into a GET.
BODY_HEADERS = frozenset(
    (
        b"content-length",
        b"content-type",
        b"content-encoding",
        b"content-language",
        b"content-location",
        b"transfer-encoding",
        b"expect",
        b"trailer",
    )
)

_control = re.compile(r"[\x00-\x1f\x7f]")
_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


class HttpTooManyRedirects(HttpError):
    """More redirects than `max_redirects`; `urls` is the chain, the request's URL first."""

    def __init__(self, message: str, urls: tuple[str, ...]) -> None:
        super().__init__(message)
        self.urls = urls


class HttpRedirectRefused(HttpError):
    """A redirect that is not followed: its `Location` is not an http(s) URL, or it would go
    from https to http (allowed with `allow_insecure=True`)."""

    def __init__(self, message: str, url: str, location: str) -> None:
        super().__init__(message)
        self.url = url  # the URL that answered with the redirect
        self.location = location  # where it pointed, as sent (decoded)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, parts.hostname, parts.port or default


def _without_userinfo(url: str) -> str:
    """`url` without the credentials a server may put in a Location: never sent (the core
    refuses them), the request goes where the host after the last "@" says. A backslash in
    the authority is left for the core to refuse: parsers disagree on where such a host is."""
    parts = urlsplit(url)
    if "@" not in parts.netloc or "\\" in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _next_url(url: str, location: str, allow_insecure: bool) -> str:
    """The absolute URL that `location` points to from `url`, or HttpRedirectRefused."""
    try:
        next_url = _without_userinfo(urldefrag(urljoin(url, location.strip()))[0])
        scheme = urlsplit(next_url).scheme
        _origin(next_url)  # a port that does not parse
        if scheme in ("http", "https"):
            target_of(next_url)  # what the core would refuse (HttpInvalidRequestError)
    except ValueError as exc:
        raise HttpRedirectRefused(f"redirect to an invalid URL: {exc}", url, location) from exc
    if _control.search(location) or scheme not in ("http", "https"):
        raise HttpRedirectRefused(
            f"redirect to a URL that is not http(s): {location!r}", url, location
        )
    if scheme == "http" and urlsplit(url).scheme == "https" and not allow_insecure:
        raise HttpRedirectRefused(
            "redirect from https to http (allow_insecure=True follows it)", url, location
        )
    return next_url


def _requested(url: str, params: Params) -> str:
    """The URL as requested, `params` in its query: what `Location` is resolved against
    (RFC 9110 10.2.2), so that a reference without a query keeps it (RFC 3986 5.2.2)."""
    host, target = target_of(url, params)
    return f"{urlsplit(url).scheme}://{host.decode()}{target.decode()}"


def redirectable(
    request: Request,
    *,
    max_redirects: int = 10,
    allow_insecure: bool = False,
    discard_limit: int = DISCARD_LIMIT_BYTES,
) -> Request:
    """Wrap `request` so that it follows up to `max_redirects` redirects.

    301 and 302 turn a POST into a GET without its body; 303 turns anything but HEAD into a
    GET without body; 307 and 308 keep the method, headers and body (the body factory is called
    again). Credentials (`authorization`, `cookie`, `proxy-authorization`) and a `host` header
    are dropped when the origin changes. A redirect without `Location` is returned as it is.
    The final response's body has `url`, the URL it answers (the last one followed), and
    `history`, each redirect followed as `(code, URL that answered with it)`, oldest first.
    Raises `HttpTooManyRedirects` past `max_redirects`, and `HttpRedirectRefused` for a
    `Location` that is not http(s), or that goes from https to http unless `allow_insecure`.
    Each intermediate body is read and dropped if at most `discard_limit` bytes, else its
    connection is closed.
    """

    async def redirectable_request(
        method: bytes,
        url: str,
        params: Params = (),
        headers: RequestHeaders = (),
        body: BodyFactory = empty_body,
        body_args: tuple[Any, ...] = (),
        body_kwargs: Mapping[str, Any] = _NO_KWARGS,
    ) -> Response:
        params, headers = tuple(params), tuple(headers)
        history: list[tuple[bytes, str]] = []  # (code, the URL that answered it) of each hop
        location = ""
        while True:
            code, response_headers, response_body = await request(
                method, url, params, headers, body, body_args, body_kwargs
            )
            location_header = next((v for k, v in response_headers if k == b"location"), None)
            if code not in REDIRECT_CODES or location_header is None:
                # With no hop followed here, the body stays as the layer below made it (which
                # may be another redirectable that followed some).
                if history:
                    response_body.url, response_body.history = url, tuple(history)
                return code, response_headers, response_body
            await discard(response_body, discard_limit)
            location = location_header.decode("utf-8", "replace")
            next_url = _next_url(_requested(url, params), location, allow_insecure)
            history.append((code, url))
            if len(history) > max_redirects:
                urls = (*(hop_url for _, hop_url in history), next_url)
                raise HttpTooManyRedirects(f"more than {max_redirects} redirects", urls)
            if (code == b"303" and method != b"HEAD") or (
                code in (b"301", b"302") and method == b"POST"
            ):
                method, body, body_args, body_kwargs = b"GET", empty_body, (), _NO_KWARGS
                headers = tuple((k, v) for k, v in headers if k.lower() not in BODY_HEADERS)
            if _origin(next_url) != _origin(url):
                headers = tuple((k, v) for k, v in headers if k.lower() not in ORIGIN_BOUND_HEADERS)
            # The query of the new URL is the server's: the caller's params went into the first.
            url, params = next_url, ()

    return redirectable_request
