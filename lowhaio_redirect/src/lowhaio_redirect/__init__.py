"""Follow HTTP redirects around a lowhaio request.

from lowhaio import Pool
from lowhaio_redirect import redirectable

request, close = Pool()
redirectable_request = redirectable(request)
code, headers, body = await redirectable_request(b"GET", "https://example.com/path")
"""

from ._redirect import (
    BODY_HEADERS,
    ORIGIN_BOUND_HEADERS,
    REDIRECT_CODES,
    HttpRedirectRefused,
    HttpTooManyRedirects,
    redirectable,
)

__version__ = "0.1.0"

__all__ = [
    "BODY_HEADERS",
    "ORIGIN_BOUND_HEADERS",
    "REDIRECT_CODES",
    "HttpRedirectRefused",
    "HttpTooManyRedirects",
    "redirectable",
]
