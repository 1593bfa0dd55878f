"""lowhaio: a lightweight, streaming-first asyncio HTTP/1.1 client.

request, close = Pool()
code, headers, body = await request(b"GET", "https://example.com/")
async for chunk in body:
    ...
await close()
"""

from ._body import DISCARD_LIMIT_BYTES, buffered, discard, streamed
from ._dns import Nameservers, default_dns_resolver
from ._exceptions import (
    HttpConnectionClosedError,
    HttpConnectionError,
    HttpConnectTimeoutError,
    HttpDataError,
    HttpDataTimeoutError,
    HttpDnsError,
    HttpDnsTimeoutError,
    HttpError,
    HttpHeaderTooLong,
    HttpInvalidRequestError,
    HttpPoolClosedError,
    HttpPoolLoopError,
    HttpPoolTimeoutError,
    HttpProtocolError,
    HttpProxyError,
    HttpProxyTimeoutError,
    HttpStaleConnectionError,
    HttpTimeoutError,
    HttpTlsError,
    HttpTooManyHeaders,
)
from ._helpers import (
    JSON_LIMIT_BYTES,
    HttpBodyTooLong,
    JsonBody,
    header_values,
    json_body,
    read_json,
)
from ._http11 import Headers, basic_auth
from ._pool import (
    BodyFactory,
    Close,
    Params,
    Pool,
    PoolFunctions,
    ProxyChooser,
    Request,
    RequestHeaders,
    Response,
    default_ssl_context,
    empty_body,
    target_of,
)
from ._proxy_env import proxy_from_env
from ._response import ResponseBody
from .hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "DISCARD_LIMIT_BYTES",
    "JSON_LIMIT_BYTES",
    "BodyFactory",
    "Close",
    "Headers",
    "Nameservers",
    "Params",
    "HttpConnectTimeoutError",
    "HttpConnectionClosedError",
    "HttpConnectionError",
    "HttpDataError",
    "HttpDataTimeoutError",
    "HttpBodyTooLong",
    "HttpDnsError",
    "HttpDnsTimeoutError",
    "HttpError",
    "HttpHeaderTooLong",
    "HttpInvalidRequestError",
    "HttpPoolClosedError",
    "HttpPoolLoopError",
    "HttpPoolTimeoutError",
    "HttpProtocolError",
    "HttpProxyError",
    "HttpProxyTimeoutError",
    "HttpStaleConnectionError",
    "HttpTimeoutError",
    "HttpTlsError",
    "HttpTooManyHeaders",
    "JsonBody",
    "Pool",
    "PoolFunctions",
    "ProxyChooser",
    "Request",
    "RequestHeaders",
    "Response",
    "ResponseBody",
    "basic_auth",
    "buffered",
    "default_dns_resolver",
    "default_ssl_context",
    "discard",
    "empty_body",
    "header_values",
    "hookimpl",
    "json_body",
    "proxy_from_env",
    "read_json",
    "streamed",
    "target_of",
]
