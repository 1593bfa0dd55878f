"""Trace hooks: observe-only, synchronous, registered per pool with `Pool(plugins=(...))`.

A plugin is any object with methods named after these hooks and marked with `hookimpl`; it may
implement any subset, and a misspelt name is refused when the pool is built. Every hook gets
the pool's `request_id` of the request concerned (None for a connection closed while idle), and
plain immutable values, never a socket. A hook that raises is logged and otherwise ignored:
observers cannot change or break a request.

    from lowhaio import Pool, hookimpl

    class Timings:
        @hookimpl
        def lowhaio_response_head_received(self, request_id, code, headers):
            print(request_id, code)

    request, close = Pool(plugins=(Timings(),))
"""

from __future__ import annotations

import pluggy

from ._http11 import Headers

hookspec = pluggy.HookspecMarker("lowhaio")
hookimpl = pluggy.HookimplMarker("lowhaio")

# DNS ------------------------------------------------------------------------------------------


@hookspec
def lowhaio_dns_resolved(request_id: int, host: str, addresses: tuple[str, ...]) -> None:
    """`host` resolved to `addresses`, in the order they will be tried."""


# Connections ----------------------------------------------------------------------------------


@hookspec
def lowhaio_connection_opened(
    request_id: int, scheme: str, host: str, port: int, address: str, via: str | None
) -> None:
    """A new connection to `address` (TCP, and TLS for https) is ready for the request. `via`
    is None for a direct connection, else the proxy it goes through (`http://proxy:3128`,
    never its credentials; `address` is then the proxy's) or `unix:` and the socket path."""


@hookspec
def lowhaio_connection_reused(
    request_id: int, scheme: str, host: str, port: int, address: str, via: str | None
) -> None:
    """An idle pooled connection was taken for the request (`via` as for opened)."""


@hookspec
def lowhaio_connection_closed(
    request_id: int | None,
    scheme: str,
    host: str,
    port: int,
    address: str,
    via: str | None,
    reason: str,
) -> None:
    """A connection was closed; `reason` is a short phrase such as "expired", "dns changed",
    "server closed", "not reusable", "error" or "pool closed"."""


# Requests and responses -------------------------------------------------------------------


@hookspec
def lowhaio_request_head_sent(
    request_id: int, method: bytes, scheme: str, host: str, port: int, path: bytes
) -> None:
    """The request head was written. `path` is without the query, which may hold secrets."""


@hookspec
def lowhaio_request_body_sent(request_id: int, size: int) -> None:
    """The whole request body (`size` bytes, as the factory yielded them) was written."""


@hookspec
def lowhaio_response_head_received(request_id: int, code: bytes, headers: Headers) -> None:
    """The final response head arrived (interim 1xx responses are skipped)."""


@hookspec
def lowhaio_response_body_received(request_id: int, size: int, trailers: Headers) -> None:
    """The whole response body (`size` bytes) was read, and its trailers if chunked."""


@hookspec
def lowhaio_request_failed(request_id: int, error: BaseException) -> None:
    """The request, or reading its response body, failed with `error` (which is then raised)."""
