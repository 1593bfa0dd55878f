"""Signed requests keep their secrets: with every logger at DEBUG (`caplog` on the root) and a
plugin recording the arguments of every lowhaio hook, a request signed in the Authorization
header (signed, unsigned and streaming payloads) or by a presigned URL, whether it succeeds or
fails, never shows the secret access key nor the signing key derived from it, in any log
record, hook argument, exception or `repr()` of the credentials. The session token and the
signature go only where AWS needs them: the request's header, or the presigned URL's query.
A scripted server on 127.0.0.1 records the bytes it receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import unquote

import pytest
from conftest import Recorder, Server, read_request, serve
from sigv4_fakes import authorization_parts

import lowhaio
from lowhaio import streamed
from lowhaio_aws_sigv4 import (
    Credentials,
    Payload,
    presigned_url,
    signed,
    signing_key,
    static_credentials,
)

KEY_ID = "AKIDSAFETYEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYSAFETYKEY"
TOKEN = "FwoGZXIvYXdzSAFETYTOKEN//with+reserved="
DATE = datetime(2013, 5, 24, tzinfo=UTC)
REGION = "us-east-1"
KEY = signing_key(SECRET, DATE, REGION, "s3")
DATA = bytes(range(256)) * 80  # 20480 bytes: three aws-chunked chunks of 8 KiB at most

# Every form in which the secret or the signing key could be written out.
SECRETS = {
    "secret access key": SECRET,
    "signing key, hex": KEY.hex(),
    "signing key, repr": repr(KEY)[2:-1],
    "signing key, latin-1": KEY.decode("latin-1"),
}


def leaked(text: str, *more: str) -> list[str]:
    """The secrets (and `more`) that `text` shows."""
    return [name for name, value in SECRETS.items() if value in text] + [
        value for value in more if value in text
    ]


# What is observed ---------------------------------------------------------------------------


def hook_text(plugin: Recorder) -> str:
    """Every hook call's arguments, and every exception among them as `exception_text` shows it."""
    parts = [repr(plugin.events)]
    for _, arguments in plugin.events:
        for value in arguments.values():
            if isinstance(value, BaseException):
                parts.append(exception_text(value))
    return "\n".join(parts)


def exception_text(exc: BaseException) -> str:
    """An exception as a traceback shows it, and the repr of it and its chain."""
    text = "".join(traceback.format_exception(exc))
    cause: BaseException | None = exc
    while cause is not None:
        text += repr(cause) + repr(cause.args) + str(cause)
        cause = cause.__cause__ or cause.__context__
    return text


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every record as formatted, its message, its arguments and all its attributes."""
    formatter = logging.Formatter()
    parts = [caplog.text]
    for record in caplog.records:
        parts += [record.getMessage(), repr(record.args), repr(vars(record))]
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
    return "\n".join(parts)


def assert_lowhaio_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The debug log is on and says something: a check that it is looked at, not an empty one."""
    messages = [r.getMessage() for r in caplog.records if r.name == "lowhaio"]
    assert any("head sent" in message for message in messages)


class Wire:
    """A scripted server's handler: records each request's raw bytes, answers 200, or if
    `close` aborts the connection after reading the request."""

    def __init__(self, close: bool = False) -> None:
        self.close = close
        self.requests: list[tuple[bytes, bytes]] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            self.requests.append(await read_request(reader))
            if self.close:
                writer.transport.abort()
                return
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nx-amz-request-id: 1\r\n\r\ndone")
            await writer.drain()

    @property
    def raw(self) -> bytes:
        ((head, body),) = self.requests
        return head + body

    def header(self, name: bytes) -> list[bytes]:
        ((head, _),) = self.requests
        lines = head.split(b"\r\n")[1:]
        return [line.split(b":", 1)[1].strip() for line in lines if line.lower().startswith(name)]


@contextlib.asynccontextmanager
async def setup(
    caplog: pytest.LogCaptureFixture, close: bool = False
) -> AsyncIterator[tuple[Wire, Server, Recorder, lowhaio.Request]]:
    caplog.set_level(logging.DEBUG)  # the root logger: every logger's records
    wire = Wire(close)
    plugin = Recorder()
    async with serve(wire) as server:
        request, close_pool = lowhaio.Pool(plugins=(plugin,))
        try:
            yield wire, server, plugin, request
        finally:
            await close_pool()


def s3(request: lowhaio.Request, payload: Payload, token: str | None = TOKEN) -> lowhaio.Request:
    credentials = static_credentials(KEY_ID, SECRET, token)
    return signed(
        request, credentials, "s3", REGION, payload=payload, chunk_bytes=8192, clock=lambda: DATE
    )


SIZED = ((b"content-length", b"%d" % len(DATA)),)
MODES = ["signed", "unsigned", "streaming"]


# Signed in the Authorization header ---------------------------------------------------------


@pytest.mark.parametrize("payload", MODES)
async def test_a_signed_request_shows_no_secret_in_logs_or_hooks(
    payload: Payload, caplog: pytest.LogCaptureFixture
) -> None:
    async with setup(caplog) as (wire, server, plugin, request):
        code, _, body = await s3(request, payload)(
            b"PUT", server.url("/bucket/key?acl=x"), headers=SIZED, body=streamed(DATA)
        )
        assert (code, await lowhaio.buffered(body)) == (b"200", b"done")
    assert "request_body_sent" in plugin.names()
    assert "response_body_received" in plugin.names()
    assert_lowhaio_logged(caplog)
    (authorization,) = wire.header(b"authorization")
    signature = authorization_parts(authorization.decode())["Signature"]
    assert leaked(log_text(caplog), TOKEN, signature) == []
    assert leaked(hook_text(plugin), TOKEN, signature) == []


@pytest.mark.parametrize("payload", MODES)
async def test_the_secret_never_goes_on_the_wire_and_the_token_only_in_its_header(
    payload: Payload, caplog: pytest.LogCaptureFixture
) -> None:
    async with setup(caplog) as (wire, server, _, request):
        code, _, body = await s3(request, payload)(
            b"PUT", server.url("/bucket/key"), headers=SIZED, body=streamed(DATA)
        )
        assert (code, await lowhaio.buffered(body)) == (b"200", b"done")
    assert leaked(wire.raw.decode("latin-1")) == []
    assert wire.header(b"x-amz-security-token") == [TOKEN.encode()]
    assert wire.raw.count(TOKEN.encode()) == 1


@pytest.mark.parametrize("payload", ["signed", "streaming"])
async def test_a_signed_request_that_fails_shows_no_secret(
    payload: Payload, caplog: pytest.LogCaptureFixture
) -> None:
    async with setup(caplog, close=True) as (wire, server, plugin, request):
        with pytest.raises(lowhaio.HttpConnectionClosedError) as raised:
            await s3(request, payload)(
                b"PUT", server.url("/bucket/key"), headers=SIZED, body=streamed(DATA)
            )
    assert "request_failed" in plugin.names()
    assert_lowhaio_logged(caplog)
    (authorization,) = wire.header(b"authorization")
    signature = authorization_parts(authorization.decode())["Signature"]
    assert leaked(exception_text(raised.value), TOKEN, signature) == []
    assert leaked(log_text(caplog), TOKEN, signature) == []
    assert leaked(hook_text(plugin), TOKEN, signature) == []


async def test_a_session_token_the_core_refuses_shows_no_secret_in_logs_or_hooks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad_token = "PRIVATE-TOKEN\r\nx-injected: 1"
    async with setup(caplog) as (wire, server, plugin, request):
        with pytest.raises(lowhaio.HttpInvalidRequestError) as raised:
            await s3(request, "signed", bad_token)(b"GET", server.url("/bucket/key"))
    assert wire.requests == []
    assert "request_failed" in plugin.names()
    for text in (exception_text(raised.value), log_text(caplog), hook_text(plugin)):
        assert leaked(text, "PRIVATE-TOKEN", "x-injected") == []


# Presigned URLs ---------------------------------------------------------------------------------


def presign(server: Server) -> str:
    credentials = Credentials(KEY_ID, SECRET, TOKEN)
    return presigned_url(
        credentials, b"GET", server.url("/bucket/key"), "s3", REGION, clock=lambda: DATE
    )


def query_of(url: str) -> dict[str, str]:
    query = url.partition("?")[2]
    return {
        unquote(k): unquote(v) for k, _, v in (item.partition("=") for item in query.split("&"))
    }


async def test_a_presigned_url_shows_no_secret_and_its_query_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with setup(caplog) as (wire, server, plugin, request):
        url = presign(server)
        code, _, body = await request(b"GET", url)
        assert (code, await lowhaio.buffered(body)) == (b"200", b"done")
    query = query_of(url)
    assert query["X-Amz-Security-Token"] == TOKEN  # where AWS needs it: in the query
    assert leaked(url) == []
    assert leaked(wire.raw.decode("latin-1")) == []
    assert wire.header(b"x-amz-security-token") == []
    assert_lowhaio_logged(caplog)
    hidden = (TOKEN, url.partition("?")[2], query["X-Amz-Signature"])
    assert leaked(log_text(caplog), *hidden) == []
    assert leaked(hook_text(plugin), *hidden) == []


async def test_a_presigned_url_that_fails_shows_no_signature_or_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with setup(caplog, close=True) as (_, server, plugin, request):
        url = presign(server)
        with pytest.raises(lowhaio.HttpConnectionClosedError) as raised:
            await request(b"GET", url)
    assert "request_failed" in plugin.names()
    query = query_of(url)
    hidden = (TOKEN, url.partition("?")[2], query["X-Amz-Signature"])
    for text in (exception_text(raised.value), log_text(caplog), hook_text(plugin)):
        assert leaked(text, *hidden) == []


# The credentials object ---------------------------------------------------------------------


async def test_the_credentials_repr_shows_neither_the_secret_nor_the_token() -> None:
    given = await static_credentials(KEY_ID, SECRET, TOKEN)()
    for credentials in (Credentials(KEY_ID, SECRET, TOKEN), given):
        for text in (repr(credentials), str(credentials), f"{credentials}"):
            assert leaked(text, TOKEN) == []
