"""Which error a failed request raises, and so whether it is safe to retry: `request_error`,
the one rule, as a table (the exchanges that reach each row are in `test_reuse_and_continue.py`
and the adversarial suites)."""

from __future__ import annotations

import ssl

import pytest
from lowhaio._exceptions import request_error

import lowhaio

RESET = ConnectionResetError("reset")
CLOSED = lowhaio.HttpConnectionClosedError("closed before the head")
PROTOCOL = lowhaio.HttpProtocolError("bad head")

# exc, sent, whole, reused, answered -> the class raised
ROWS = [
    # A reused connection gone before the request was whole, without a word: stale, so the
    # server did not process it, whatever the method (RFC 9112 9.3.1).
    (RESET, True, False, True, False, lowhaio.HttpStaleConnectionError),
    (CLOSED, True, False, True, False, lowhaio.HttpStaleConnectionError),
    (RESET, False, False, True, False, lowhaio.HttpStaleConnectionError),
    # ... but not once the request was whole: the server may have processed it.
    (RESET, True, True, True, False, lowhaio.HttpConnectionClosedError),
    (CLOSED, True, True, True, False, lowhaio.HttpConnectionClosedError),
    # ... nor once a response began.
    (RESET, True, False, True, True, lowhaio.HttpConnectionClosedError),
    (CLOSED, True, False, True, True, lowhaio.HttpConnectionClosedError),
    # A new connection is never stale: nothing sent is safe, anything sent is not.
    (RESET, False, False, False, False, lowhaio.HttpConnectionError),
    (RESET, True, False, False, False, lowhaio.HttpConnectionClosedError),
    (CLOSED, True, True, False, False, lowhaio.HttpConnectionClosedError),
    # Errors that are not a close keep their meaning, reused or not.
    (PROTOCOL, True, False, True, False, lowhaio.HttpProtocolError),
    (PROTOCOL, True, True, False, True, lowhaio.HttpProtocolError),
    (TimeoutError(), False, False, True, False, lowhaio.HttpConnectTimeoutError),
    (TimeoutError(), True, False, True, False, lowhaio.HttpDataTimeoutError),
    (ssl.SSLError("bad record"), False, False, False, False, lowhaio.HttpTlsError),
    (OSError("no route"), False, False, False, False, lowhaio.HttpConnectionError),
    (OSError("no route"), True, True, False, False, lowhaio.HttpDataError),
    (EOFError(), True, True, False, False, lowhaio.HttpConnectionClosedError),
]


@pytest.mark.parametrize(("exc", "sent", "whole", "reused", "answered", "raised"), ROWS)
def test_request_error(
    exc: Exception, sent: bool, whole: bool, reused: bool, answered: bool, raised: type
) -> None:
    error = request_error(
        exc, "http://a:80", sent=sent, whole=whole, reused=reused, answered=answered
    )
    assert type(error) is raised
    if isinstance(exc, lowhaio.HttpError) and raised is type(exc):
        assert error is exc  # raised as it is, its cause untouched
    else:
        assert str(error).startswith("http://a:80: ")  # names the origin
    # Safe to retry whatever the method exactly when nothing was sent, or it was stale.
    safe = issubclass(raised, lowhaio.HttpConnectionError)
    assert safe == (not sent or raised is lowhaio.HttpStaleConnectionError)


def test_an_error_is_located_once_by_the_innermost_request_that_knows() -> None:
    # A wrapper's request that re-raises an error of the request it wrapped keeps the
    # wrapped request's place, not its own.
    error = lowhaio.HttpProtocolError("bad head")
    error.located(b"GET", "http://a:80/p", "http://a:80")
    error.located(b"POST", "http://b:80/q", "http://b:80")
    assert (str(error), error.method, error.url) == (
        "http://a:80: bad head",
        b"GET",
        "http://a:80/p",
    )
    named = lowhaio.HttpDataTimeoutError("http://a:80: no progress")
    named.located(b"GET", "http://a:80/p", "http://a:80")
    assert str(named) == "http://a:80: no progress"  # named already: not twice
