"""Retry lowhaio requests when that is safe, with backoff.

from lowhaio import Pool
from lowhaio_retry import retry

request, close = Pool()
retriable_request = retry(request, statuses=(b"429", b"503"))
code, headers, body = await retriable_request(b"GET", "https://example.com/path")
"""

from ._retry import (
    IDEMPOTENT_METHODS,
    NOT_PROCESSED_STATUSES,
    HttpDeadlineExceeded,
    retry,
    retry_after,
)

__version__ = "0.1.0"

__all__ = [
    "IDEMPOTENT_METHODS",
    "NOT_PROCESSED_STATUSES",
    "HttpDeadlineExceeded",
    "retry",
    "retry_after",
]
