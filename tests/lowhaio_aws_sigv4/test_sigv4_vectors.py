"""Known answers: the AWS SigV4 test suite, the S3 documentation's worked examples and its
presigned URL, reproduced by driving `signed` (or `presigned_url`) with a fake `request`.

The data is in `vectors/` (see its README for where it comes from and under which licence)."""

from __future__ import annotations

import hashlib
import hmac
import json
import pathlib
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from sigv4_fakes import Recorder, authorization_parts

from lowhaio import streamed, target_of
from lowhaio_aws_sigv4 import (
    S3_SERVICES,
    Credentials,
    canonical_request,
    presigned_url,
    signed,
    signing_key,
    static_credentials,
    string_to_sign,
)

VECTORS = pathlib.Path(__file__).parent / "vectors"

# The generic suite's parameters (not stated in its files; see vectors/README.md).
SUITE_KEY_ID = "AKIDEXAMPLE"
SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_DATE = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)

# The S3 documentation's parameters, shared by its single-chunk, presigned and streaming examples.
S3_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
S3_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
S3_DATE = datetime(2013, 5, 24, tzinfo=UTC)

# All 34 cases of the generic suite, reproduced with service "service", signed by the generic
# rules: the path normalised ("/example/.." and "//" sign as "/"), and the path as sent encoded
# again. Notes on some of them:
# - get-space and get-utf8: their request lines hold a raw space and raw UTF-8, which cannot go
#   on the wire as they are; the core sends them percent-encoded ("/example%20space/"), and that
#   path, encoded again, is what is signed ("/example%2520space/"): RAW_PATHS below.
# - get-header-value-multiline: its value has obs-fold line breaks, which the core refuses to
#   send (test_sigv4_server.py checks that refusal leaks nothing): signed, never sent.
# - post-sts-token/post-sts-header-after: the token is added to the request after signing,
#   unsigned, as some services want; this signer always signs x-amz-security-token (S3 wants
#   every x-amz-* header signed). The case's request holds no token, and is signed as it is.
GENERIC_CASES = [
    "get-header-key-duplicate",
    "get-header-value-multiline",
    "get-header-value-order",
    "get-header-value-trim",
    "get-unreserved",
    "get-utf8",
    "get-vanilla",
    "get-vanilla-empty-query-key",
    "get-vanilla-query",
    "get-vanilla-query-order-encoded",
    "get-vanilla-query-order-key",
    "get-vanilla-query-order-key-case",
    "get-vanilla-query-order-value",
    "get-vanilla-query-unreserved",
    "get-vanilla-utf8-query",
    "get-vanilla-with-session-token",
    "normalize-path/get-relative",
    "normalize-path/get-relative-relative",
    "normalize-path/get-slash",
    "normalize-path/get-slash-dot-slash",
    "normalize-path/get-slash-pointless-dot",
    "normalize-path/get-slashes",
    "normalize-path/get-space",
    "normalize-path/get-special-character",
    "post-header-key-case",
    "post-header-key-sort",
    "post-header-value-case",
    "post-sts-token/post-sts-header-after",
    "post-sts-token/post-sts-header-before",
    "post-vanilla",
    "post-vanilla-empty-query-value",
    "post-vanilla-query",
    "post-x-www-form-urlencoded",
    "post-x-www-form-urlencoded-parameters",
]
# The path each of those cases signs, where its .creq has another: the path sent, encoded again.
RAW_PATHS = {
    "normalize-path/get-space": b"/example%2520space/",
    "get-utf8": b"/%25E1%2588%25B4",
}
# get-vanilla-with-session-token's token is only in the suite's .sreq (not copied), not its .req.
SESSION_TOKENS = {
    "get-vanilla-with-session-token": "6e86291e8372ff2a2260956d9b8aae1d"
    "763fbf315fa00fa31553b73ebf194267"
}


def parse_req(raw: bytes) -> tuple[bytes, str, list[tuple[bytes, bytes]], bytes]:
    """A suite .req file (an HTTP/1.1 request with LF line ends): method, target, headers as
    written (values untrimmed, obs-fold lines kept with their LF) and body."""
    head, _, body = raw.partition(b"\n\n")
    request_line, *lines = head.rstrip(b"\n").split(b"\n")
    method, _, rest = request_line.partition(b" ")
    target = rest.rpartition(b" ")[0]  # may hold spaces: "GET /example space/ HTTP/1.1"
    headers: list[tuple[bytes, bytes]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):  # obs-fold: continues the previous value
            name, value = headers.pop()
            headers.append((name, value + b"\n" + line))
        else:
            name, _, value = line.partition(b":")
            headers.append((name, value))
    return method, target.decode(), headers, body


def _files(case: pathlib.Path) -> dict[str, bytes]:
    return {ext: (case / f"{case.name}.{ext}").read_bytes() for ext in ("req", "creq", "sts")}


@pytest.mark.parametrize("case", GENERIC_CASES)
async def test_generic_suite_case_is_reproduced(case: str) -> None:
    folder = VECTORS / case
    files = _files(folder)
    method, target, headers, body = parse_req(files["req"])
    given = {name.lower(): value for name, value in headers}
    token = given.get(b"x-amz-security-token", b"").decode() or SESSION_TOKENS.get(case)
    # The signer adds host (through the core), x-amz-date and the token itself.
    added = (b"host", b"x-amz-date", b"x-amz-security-token")
    passed = [(name, value) for name, value in headers if name.lower() not in added]
    url = "https://example.amazonaws.com" + target
    recorder = Recorder()
    credentials = static_credentials(SUITE_KEY_ID, SUITE_SECRET, token)
    request = signed(recorder, credentials, "service", "us-east-1", clock=lambda: SUITE_DATE)

    await request(method, url, headers=passed, body=streamed(body))

    sent = recorder.last
    assert (sent.method, sent.url, sent.params, sent.body) == (method, url, (), body)
    host, sent_target = target_of(url)
    assert host == given[b"host"]
    assert sent.header(b"x-amz-date") == given[b"x-amz-date"]
    # Service "service" with a signed payload: no x-amz-content-sha256 (the suite has none).
    assert sent.names() == [
        *(name.lower() for name, _ in passed),
        b"x-amz-date",
        *([b"x-amz-security-token"] if token else []),
        b"authorization",
    ]
    if token:
        assert sent.header(b"x-amz-security-token") == token.encode()

    signed_headers = (*sent.headers[:-1], (b"host", host))
    payload_hash = hashlib.sha256(body).hexdigest().encode()
    creq = canonical_request(method, sent_target, signed_headers, payload_hash, "service")
    expected_creq = files["creq"]
    if case in RAW_PATHS:
        lines = expected_creq.split(b"\n")
        assert sent_target == lines[1]  # the path the .creq signs is the one sent
        expected_creq = b"\n".join((lines[0], RAW_PATHS[case], *lines[2:]))
    assert creq == expected_creq
    credential_scope = "20150830/us-east-1/service/aws4_request"
    sts = string_to_sign(SUITE_DATE, credential_scope, creq)
    expected_sts = files["sts"]
    if case in RAW_PATHS:
        expected_sts = b"\n".join(
            (*expected_sts.split(b"\n")[:3], hashlib.sha256(expected_creq).hexdigest().encode())
        )
    assert sts == expected_sts
    key = signing_key(SUITE_SECRET, SUITE_DATE, "us-east-1", "service")
    expected = authorization_parts((folder / f"{folder.name}.authz").read_text())
    if case in RAW_PATHS:
        expected["Signature"] = hmac.new(key, sts, hashlib.sha256).hexdigest()
    else:
        assert hmac.new(key, files["sts"], hashlib.sha256).hexdigest() == expected["Signature"]
    assert sent.authorization() == expected


@pytest.mark.parametrize(
    "path",
    [
        "/example/..",
        "/example1/example2/../..",
        "//",
        "/./",
        "/./example",
        "//example//",
        "/my-object//example//photo.user",
    ],
)
@pytest.mark.parametrize("service", sorted(S3_SERVICES))
def test_s3_paths_are_not_normalised(path: str, service: str) -> None:
    """What the generic suite's normalize-path cases sign as "/" or "/example/", S3 signs as
    sent: "you do not normalize URI paths for requests to Amazon S3"."""
    _, target = target_of("https://examplebucket.s3.amazonaws.com" + path)
    assert target == path.encode()
    creq = canonical_request(b"GET", target, (), b"UNSIGNED-PAYLOAD", service)
    assert creq.split(b"\n")[1] == path.encode()


@pytest.mark.parametrize(
    ("path", "s3", "other"),
    [
        ("/a%2Fb/c%7ed", b"/a%2Fb/c~d", b"/a%252Fb/c%257ed"),
        ("/example space/ключ", b"/example%20space/%D0%BA%D0%BB%D1%8E%D1%87", None),
        ("/100%25/$x/", b"/100%25/%24x/", b"/100%2525/%24x/"),
        ("/a/./b/../../c//d/", b"/a/./b/../../c//d/", b"/c/d/"),
        ("/..", b"/..", b"/"),
        ("", b"/", b"/"),
    ],
)
def test_s3_encodes_the_path_once_and_other_services_twice(
    path: str, s3: bytes, other: bytes | None
) -> None:
    """S3 decodes each segment and encodes it once; every other service normalises the path as
    sent (already percent-encoded once) and encodes it again, so that "%" becomes "%25"."""
    _, target = target_of("https://example.amazonaws.com" + path)
    assert canonical_request(b"GET", target, (), b"", "s3").split(b"\n")[1] == s3
    sent = target.partition(b"?")[0]
    expected = other if other is not None else sent.replace(b"%", b"%25")
    assert canonical_request(b"GET", target, (), b"", "execute-api").split(b"\n")[1] == expected


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"/a%2fb/c%7Ed?x=%7e&y=a%2Bb", b"/a%2Fb/c~d", b"x=~&y=a%2Bb"),
        (b"/a+b$?k=a+b&k=$", b"/a%2Bb%24", b"k=%24&k=a%2Bb"),
        (b"/%E1%88%B4?%e1%88%b4=%c3%a9", b"/%E1%88%B4", b"%E1%88%B4=%C3%A9"),
        # Bytes that are not UTF-8: AWS's UriEncode encodes every byte as it is.
        (b"/k%FF?p=%FF%FE", b"/k%FF", b"p=%FF%FE"),
    ],
    ids=["hex-case", "reserved", "utf8", "not-utf8"],
)
def test_canonical_path_and_query(target: bytes, path: bytes, query: bytes) -> None:
    """AWS's UriEncode: every byte but A-Z a-z 0-9 - . _ ~ as %XX with capital hex digits; the
    query sorted by name, then value."""
    creq = canonical_request(b"GET", target, (), b"UNSIGNED-PAYLOAD")
    assert creq.split(b"\n")[1:3] == [path, query]


S3_DOC = json.loads((VECTORS / "s3_doc_examples" / "s3_doc_examples.json").read_text())
S3_ADDED = ("host", "x-amz-date", "x-amz-content-sha256")  # what the signer adds itself


def _query(params: list[list[str]]) -> str:
    return "&".join(f"{name}={value}" if value else name for name, value in params)


@pytest.mark.parametrize("case", S3_DOC["cases"], ids=[case["name"] for case in S3_DOC["cases"]])
@pytest.mark.parametrize("query_in", ["params", "url"])
async def test_s3_documentation_example(case: dict[str, Any], query_in: str) -> None:
    """S3 API Reference, "Signature Calculations for the Authorization Header: Transferring
    Payload in a Single Chunk": GET object with Range, PUT object with "$" in its key, GET
    ?lifecycle and GET ?max-keys=2&prefix=J. The query comes as `params` or in the URL
    ("?lifecycle", as the documentation writes it)."""
    assert (S3_DOC["access_key_id"], S3_DOC["secret_access_key"]) == (S3_KEY_ID, S3_SECRET)
    assert S3_DOC["x_amz_date"] == f"{S3_DATE:%Y%m%dT%H%M%SZ}"
    given = dict(case["headers"])
    headers = [(n.encode(), v.encode()) for n, v in case["headers"] if n not in S3_ADDED]
    url = f"https://{given['host']}{case['path']}"
    params = [tuple(pair) for pair in case["params"]]
    if query_in == "url" and params:
        url, params = f"{url}?{_query(case['params'])}", []
    body = case["body"].encode()
    recorder = Recorder()
    request = signed(
        recorder,
        static_credentials(S3_KEY_ID, S3_SECRET),
        "s3",
        "us-east-1",
        checksum=None,  # the documentation's examples send none
        clock=lambda: S3_DATE,
    )

    await request(case["method"].encode(), url, params, headers, streamed(body))

    sent = recorder.last
    assert sent.body == body
    assert sent.header(b"x-amz-content-sha256") == case["payload_sha256"].encode()
    assert sent.header(b"x-amz-date") == given["x-amz-date"].encode()
    assert sent.authorization() == authorization_parts(case["authorization"])
    assert sent.authorization()["Signature"] == case["signature"]
    folder = VECTORS / "s3_doc_examples" / case["name"]
    authz = (folder / f"{case['name']}.authz").read_text()
    assert sent.authorization() == authorization_parts(authz)
    host, target = target_of(url, params)
    assert target.split(b"?")[0] == case["path"].encode()  # "$" sent as is, signed as %24
    creq = canonical_request(
        sent.method, target, (*sent.headers[:-1], (b"host", host)), case["payload_sha256"].encode()
    )
    assert creq == (folder / f"{case['name']}.creq").read_bytes()
    credential_scope = "20130524/us-east-1/s3/aws4_request"
    assert (
        string_to_sign(S3_DATE, credential_scope, creq)
        == (folder / f"{case['name']}.sts").read_bytes()
    )


# S3 API Reference, "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)",
# its example: GET https://examplebucket.s3.amazonaws.com/test.txt, expires 86400. The URL, the
# canonical request and the string to sign's last line are the published ones.
PRESIGNED_DOC_URL = (
    "https://examplebucket.s3.amazonaws.com/test.txt"
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20130524T000000Z"
    "&X-Amz-Expires=86400"
    "&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
)
PRESIGNED_DOC_CREQ = (
    b"GET\n/test.txt\n"
    b"X-Amz-Algorithm=AWS4-HMAC-SHA256"
    b"&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
    b"&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\n"
    b"host:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD"
)
PRESIGNED_DOC_CREQ_SHA256 = "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04"


def _presign(credentials: Credentials, url: str, **kwargs: Any) -> str:
    return presigned_url(
        credentials, b"GET", url, "s3", "us-east-1", clock=lambda: S3_DATE, **kwargs
    )


def _signature_of_query(url: str) -> tuple[str, bytes, str]:
    """Recompute a presigned URL's signature from its own query (all but X-Amz-Signature):
    the signature in the URL, the canonical request and the signature recomputed."""
    host, target = target_of(url)
    path, _, query = target.partition(b"?")
    items = query.split(b"&")
    unsigned = b"&".join(item for item in items if not item.startswith(b"X-Amz-Signature="))
    creq = canonical_request(
        b"GET", path + b"?" + unsigned, ((b"host", host),), b"UNSIGNED-PAYLOAD"
    )
    credential_scope = "20130524/us-east-1/s3/aws4_request"
    key = signing_key(S3_SECRET, S3_DATE, "us-east-1", "s3")
    recomputed = hmac.new(key, string_to_sign(S3_DATE, credential_scope, creq), hashlib.sha256)
    return dict(parse_qsl(query.decode()))["X-Amz-Signature"], creq, recomputed.hexdigest()


def test_presigned_url_of_the_documentation() -> None:
    url = _presign(
        Credentials(S3_KEY_ID, S3_SECRET),
        "https://examplebucket.s3.amazonaws.com/test.txt",
        expires=86400,
    )
    assert url == PRESIGNED_DOC_URL
    in_url, creq, recomputed = _signature_of_query(url)
    assert creq == PRESIGNED_DOC_CREQ
    assert hashlib.sha256(creq).hexdigest() == PRESIGNED_DOC_CREQ_SHA256
    assert (
        in_url == recomputed == "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )


def test_presigned_url_with_a_session_token_signs_the_token() -> None:
    token = "session/token+with=reserved chars"
    url = _presign(
        Credentials(S3_KEY_ID, S3_SECRET, token),
        "https://examplebucket.s3.amazonaws.com/test.txt",
        expires=86400,
    )
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["X-Amz-Security-Token"] == token
    assert query["X-Amz-SignedHeaders"] == "host"
    in_url, creq, recomputed = _signature_of_query(url)
    assert in_url == recomputed
    assert b"&X-Amz-Security-Token=session%2Ftoken%2Bwith%3Dreserved%20chars&" in creq
    assert in_url != "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    # The token is covered by the signature: another token, another signature.
    other = _presign(
        Credentials(S3_KEY_ID, S3_SECRET, token + "x"),
        "https://examplebucket.s3.amazonaws.com/test.txt",
        expires=86400,
    )
    assert _signature_of_query(other)[0] != in_url


def test_presigned_url_keeps_the_url_query_and_params_and_drops_the_fragment() -> None:
    url = _presign(
        Credentials(S3_KEY_ID, S3_SECRET),
        "https://examplebucket.s3.amazonaws.com:8443/a b/ключ$?versionId=3&x#fragment",
        params=[("response-content-type", "text/plain; charset=utf-8")],
    )
    parts = urlsplit(url)
    assert (parts.netloc, parts.path, parts.fragment) == (
        "examplebucket.s3.amazonaws.com:8443",
        "/a%20b/%D0%BA%D0%BB%D1%8E%D1%87$",
        "",
    )
    assert parts.query.startswith(
        "versionId=3&x&response-content-type=text%2Fplain%3B%20charset%3Dutf-8&X-Amz-Algorithm="
    )
    assert dict(parse_qsl(parts.query))["X-Amz-Expires"] == "3600"  # the default
    in_url, _, recomputed = _signature_of_query(url)
    assert in_url == recomputed


def test_presigned_url_default_clock_is_now_in_utc() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    url = presigned_url(
        Credentials(S3_KEY_ID, S3_SECRET), b"GET", "https://b.s3.amazonaws.com/k", "s3", "eu-west-2"
    )
    query = dict(parse_qsl(urlsplit(url).query))
    date = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before <= date <= datetime.now(UTC) + timedelta(seconds=1)
    assert query["X-Amz-Credential"] == f"{S3_KEY_ID}/{date:%Y%m%d}/eu-west-2/s3/aws4_request"


def test_presigned_url_refuses_the_credentials_callable_that_signed_takes() -> None:
    """`presigned_url` is synchronous and takes `Credentials`: given the async callable that
    `signed` takes (or a bare tuple), it says so instead of failing on an attribute."""
    url = "https://b.s3.amazonaws.com/k"
    for wrong in (static_credentials(S3_KEY_ID, S3_SECRET), (S3_KEY_ID, S3_SECRET)):
        with pytest.raises(TypeError, match=r"takes Credentials.*await credentials\(\)"):
            presigned_url(wrong, b"GET", url, "s3", "us-east-1")  # type: ignore[arg-type]


@pytest.mark.parametrize("expires", [1, 3600, 604800])
def test_presigned_url_lives_up_to_seven_days(expires: int) -> None:
    url = _presign(
        Credentials(S3_KEY_ID, S3_SECRET), "https://b.s3.amazonaws.com/k", expires=expires
    )
    assert dict(parse_qsl(urlsplit(url).query))["X-Amz-Expires"] == str(expires)


@pytest.mark.parametrize(
    ("expires", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        (604801, ValueError),
        (10**7, ValueError),
        (True, TypeError),
        (60.0, TypeError),
        ("60", TypeError),
    ],
)
def test_presigned_url_refuses_a_life_s3_would_refuse(expires: Any, error: type[Exception]) -> None:
    """S3 refuses X-Amz-Expires over 604800 (SeaweedFS: 400): refused here, with the limit."""
    with pytest.raises(error, match="expires must be"):
        _presign(Credentials(S3_KEY_ID, S3_SECRET), "https://b.s3.amazonaws.com/k", expires=expires)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pa55word@b.s3.amazonaws.com/k",
        "https://user@b.s3.amazonaws.com/k",
        "https://:pa55word@b.s3.amazonaws.com:8443/k",
    ],
)
def test_presigned_url_refuses_userinfo(url: str) -> None:
    """Whoever is handed the URL would be handed the credentials in it too."""
    with pytest.raises(ValueError, match=r"userinfo \(user:password@\)") as raised:
        _presign(Credentials(S3_KEY_ID, S3_SECRET), url)
    assert "pa55word" not in str(raised.value)


def test_presigned_url_of_another_service_signs_by_its_rule() -> None:
    """Another service than S3: the path normalised and encoded twice in the canonical request,
    sent as it was given."""
    date = S3_DATE
    url = presigned_url(
        Credentials(S3_KEY_ID, S3_SECRET),
        b"GET",
        "https://abc.execute-api.eu-west-2.amazonaws.com/prod/./a b/../x%2Fy",
        "execute-api",
        "eu-west-2",
        clock=lambda: date,
    )
    host, target = target_of(url)
    path, _, query = target.partition(b"?")
    assert path == b"/prod/./a%20b/../x%2Fy"
    pairs = [item for item in query.split(b"&") if not item.startswith(b"X-Amz-Signature=")]
    creq = canonical_request(
        b"GET",
        path + b"?" + b"&".join(pairs),
        ((b"host", host),),
        b"UNSIGNED-PAYLOAD",
        "execute-api",
    )
    assert creq.split(b"\n")[1] == b"/prod/x%252Fy"
    key = signing_key(S3_SECRET, date, "eu-west-2", "execute-api")
    scope = "20130524/eu-west-2/execute-api/aws4_request"
    signature = hmac.new(key, string_to_sign(date, scope, creq), hashlib.sha256).hexdigest()
    assert dict(parse_qsl(query.decode()))["X-Amz-Signature"] == signature
