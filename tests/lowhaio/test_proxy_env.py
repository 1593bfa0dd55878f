"""`proxy_from_env()`: curl's proxy variables (libcurl-env(3), CURLOPT_NOPROXY(3) and curl's
lib/noproxy.c), as tables of environments and origins; and a pool that follows its choice,
against a recording proxy and origin on 127.0.0.1 (nothing else is contacted, not even DNS)."""

from __future__ import annotations

import pytest
from conftest import get, pool, recording, serve

import lowhaio
from lowhaio import HttpInvalidRequestError, proxy_from_env

PROXY = "http://proxy.test:3128"
OTHER = "http://other.test:8080"


def chosen(env: dict[str, str], scheme: str, host: str = "example.com") -> str | None:
    """What `proxy_from_env(env)` chooses for `scheme://host`."""
    choose = proxy_from_env(env)
    assert choose is not None
    return choose(scheme, host, 443 if scheme == "https" else 80)


@pytest.mark.parametrize(
    ("env", "scheme", "expected"),
    [
        ({"http_proxy": PROXY}, "http", PROXY),
        ({"http_proxy": PROXY}, "https", None),
        ({"https_proxy": PROXY}, "https", PROXY),
        ({"https_proxy": PROXY}, "http", None),
        ({"HTTPS_PROXY": PROXY}, "https", PROXY),
        ({"https_proxy": PROXY, "HTTPS_PROXY": OTHER}, "https", PROXY),
        ({"https_proxy": "", "HTTPS_PROXY": OTHER}, "https", OTHER),
        # HTTP_PROXY is never read (httpoxy): all_proxy answers for http:// instead.
        ({"HTTP_PROXY": OTHER, "all_proxy": PROXY}, "http", PROXY),
        ({"HTTP_PROXY": OTHER, "https_proxy": PROXY}, "http", None),
        ({"all_proxy": PROXY}, "http", PROXY),
        ({"all_proxy": PROXY}, "https", PROXY),
        ({"ALL_PROXY": PROXY}, "https", PROXY),
        ({"all_proxy": PROXY, "ALL_PROXY": OTHER}, "http", PROXY),
        ({"all_proxy": "", "ALL_PROXY": OTHER}, "http", OTHER),
        ({"http_proxy": PROXY, "all_proxy": OTHER}, "http", PROXY),
        ({"http_proxy": PROXY, "all_proxy": OTHER}, "https", OTHER),
        ({"https_proxy": PROXY, "ALL_PROXY": OTHER}, "http", OTHER),
        ({"http_proxy": "", "all_proxy": OTHER}, "http", OTHER),
        # Without a scheme, an http:// proxy, as curl takes it.
        ({"http_proxy": "proxy.test:3128"}, "http", "http://proxy.test:3128"),
        ({"http_proxy": "proxy.test"}, "http", "http://proxy.test"),
        ({"http_proxy": "u:p@proxy.test:3128"}, "http", "http://u:p@proxy.test:3128"),
        ({"http_proxy": "[::1]:3128"}, "http", "http://[::1]:3128"),
        ({"https_proxy": "https://proxy.test"}, "https", "https://proxy.test"),
        ({"https_proxy": "HTTP://proxy.test:1"}, "https", "HTTP://proxy.test:1"),
        ({"all_proxy": "socks5h://proxy.test:1080"}, "https", "socks5h://proxy.test:1080"),
        ({"all_proxy": "socks5://u:p@127.0.0.1"}, "http", "socks5://u:p@127.0.0.1"),
        ({"all_proxy": PROXY}, "ftp", None),  # not an origin lowhaio has
    ],
)
def test_the_variable_of_the_origins_scheme_names_its_proxy(
    env: dict[str, str], scheme: str, expected: str | None
) -> None:
    assert chosen(env, scheme) == expected


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"HTTP_PROXY": PROXY},  # ignored: the only http one is http_proxy
        {"HTTP_PROXY": "not a url at all://"},  # ignored, so not checked either
        {"http_proxy": "", "https_proxy": "", "HTTPS_PROXY": "", "all_proxy": "", "ALL_PROXY": ""},
        {"no_proxy": "example.com", "NO_PROXY": "*"},
        {"http_proxy": PROXY, "no_proxy": "*"},
        {"all_proxy": PROXY, "NO_PROXY": "*"},
        {"all_proxy": PROXY, "no_proxy": " * "},
        {"all_proxy": PROXY, "no_proxy": "", "NO_PROXY": "*"},
        {"Http_Proxy": PROXY, "all_PROXY": PROXY},  # neither curl's spelling
    ],
)
def test_no_proxy_at_all_is_none_so_the_pool_goes_direct_at_no_cost(env: dict[str, str]) -> None:
    assert proxy_from_env(env) is None


@pytest.mark.parametrize(
    ("no_proxy", "host", "direct"),
    [
        # A name matches itself and its subdomains, on a label boundary.
        ("example.com", "example.com", True),
        ("example.com", "a.example.com", True),
        ("example.com", "a.b.example.com", True),
        ("example.com", "badexample.com", False),
        ("example.com", "example.com.evil.test", False),
        ("example.com", "com", False),
        ("a.example.com", "example.com", False),
        ("com", "example.com", True),
        # A leading dot is dropped, as curl drops it: the domain itself matches too.
        (".example.com", "example.com", True),
        (".example.com", "a.example.com", True),
        (".example.com", "badexample.com", False),
        # Without case, and without a final dot on either side.
        ("EXAMPLE.com", "example.com", True),
        ("example.com", "A.Example.COM", True),
        ("example.com.", "a.example.com", True),
        ("example.com", "example.com.", True),
        (".example.com.", "a.example.com.", True),
        (".", "example.com", False),
        # Commas, blanks around entries, empty entries.
        (" a.test , example.com ,", "example.com", True),
        ("a.test,,example.com", "example.com", True),
        ("a.test,,example.com", "b.test", False),
        (" , ", "example.com", False),
        # `*` only as the whole value; no other wildcard.
        ("*,a.test", "example.com", False),
        ("*.example.com", "a.example.com", False),
        # No ports in entries (curl has none): such an entry matches nothing.
        ("example.com:8080", "example.com", False),
        ("[::1]:8080", "::1", False),
        # IP addresses, literally; IPv6 with or without brackets, in any spelling.
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.2", False),
        ("127.0.0.1", "localhost", False),
        ("localhost", "127.0.0.1", False),  # no DNS, nor /etc/hosts
        ("::1", "::1", True),
        ("[::1]", "::1", True),
        ("0:0::1", "::1", True),
        ("::1", "0:0:0:0:0:0:0:1", True),
        ("::1", "::2", False),
        ("FD00::1", "fd00::1", True),
        # A name ending in a dot is not an address; as in curl, it is compared as text.
        ("1.2.3.4", "1.2.3.4.", True),
        # CIDR ranges match IP literals in them, never names.
        ("10.0.0.0/8", "10.255.0.1", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("10.0.0.0/8", "internal.test", False),
        ("10.0.0.0/8", "10.0.0.0", True),
        ("10.1.2.3/8", "10.9.9.9", True),  # the address's host bits do not matter
        ("192.168.1.0/24", "192.168.1.77", True),
        ("192.168.1.0/24", "192.168.2.1", False),
        ("fd00::/8", "fd12:3456::1", True),
        ("fd00::/8", "fe80::1", False),
        ("[fd00::]/8", "fd00::1", True),
        ("fd00::/8", "10.0.0.1", False),
        ("10.0.0.0/8", "fd00::1", False),
        ("10.0.0.0/8", "::ffff:10.0.0.1", False),  # an IPv6 address, as curl sees it too
        ("10.0.0.0/33", "10.0.0.1", False),  # not a range: matches nothing
        ("0.0.0.0/0", "10.1.2.3", True),  # every IPv4 address (curl: 0.0.0.0 alone)
        ("0.0.0.0/0", "::1", False),
        ("example.com/8", "example.com", False),
        ("10.0.0.0/8", "10.0.0.1.", False),  # a name: CIDR never matches names
        ("10.0.0.0/8", "web10", False),
        ("web10", "web10", True),  # a name that ends in a digit is still a name
        # A non-ASCII entry is compared IDNA-encoded, as the host is; one IDNA refuses, never.
        ("bücher.example", "xn--bcher-kva.example", True),
        ("BÜCHER.example", "a.xn--bcher-kva.example", True),
        ("ü" * 64 + ".example", "example", False),
    ],
)
def test_no_proxy_entries_match_as_curl_matches_them(
    no_proxy: str, host: str, direct: bool
) -> None:
    expected = None if direct else PROXY
    assert chosen({"http_proxy": PROXY, "no_proxy": no_proxy}, "http", host) == expected
    assert chosen({"https_proxy": PROXY, "NO_PROXY": no_proxy}, "https", host) == expected


@pytest.mark.parametrize(
    ("env", "direct"),
    [
        ({"no_proxy": "example.com", "NO_PROXY": "other.test"}, True),
        ({"no_proxy": "other.test", "NO_PROXY": "example.com"}, False),  # lower case wins
        ({"no_proxy": "", "NO_PROXY": "example.com"}, True),  # empty: not set
        ({"NO_PROXY": "example.com"}, True),
        ({"No_Proxy": "example.com"}, False),
    ],
)
def test_no_proxy_in_lower_case_wins(env: dict[str, str], direct: bool) -> None:
    assert chosen({"all_proxy": PROXY, **env}, "https") == (None if direct else PROXY)


def test_the_choice_is_the_same_on_every_port_and_every_call() -> None:
    choose = proxy_from_env({"all_proxy": PROXY, "no_proxy": "direct.test"})
    assert choose is not None
    for _ in range(3):  # computed once, then remembered
        assert choose("https", "example.com", 443) == PROXY
        assert choose("https", "example.com", 8443) == PROXY
        assert choose("http", "direct.test", 80) is None
        assert choose("http", "a.direct.test", 8080) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("http://alice:s3cret@proxy.test:port", "Port could not be cast"),
        ("http://alice:s3cret@proxy.test:99999", "Port out of range"),
        ("http://alice:s3c/ret@proxy.test:3128", "user:password@ part is invalid"),
        ("http://alice:s3c#ret@proxy.test:3128", "user:password@ part is invalid"),
        ("http://alice:s3cret\uff20x@proxy.test", "user:password@ part is invalid"),  # NFKC @
        ("http://al%3Aice:s3cret@proxy.test", "user:password@ part is invalid"),  # colon in user
        ("ftp://alice:s3cret@proxy.test", "scheme must be"),
        ("socks4://alice:s3cret@proxy.test:1080", "scheme must be"),
        ("http://alice:s3cret@", "must be scheme://[user:password@]host[:port]"),
        ("http://alice:s3cret@proxy.test:3128/path", "must be scheme://"),
        ("http://proxy.test:3128/?q", "must be scheme://"),
        ("alice:s3cret@proxy.test:port", "Port could not be cast"),  # http:// added
    ],
)
def test_an_invalid_proxy_url_is_refused_at_once_without_its_credentials(
    value: str, reason: str
) -> None:
    with pytest.raises(HttpInvalidRequestError) as raised:
        proxy_from_env({"https_proxy": value})
    message = str(raised.value)
    assert message.startswith("https_proxy is not a usable proxy URL: ")
    assert reason in message
    for shown in (message, repr(raised.value)):
        assert "s3c" not in shown
        assert "alice" not in shown
        assert "al%3Aice" not in shown
    # Nor kept in a context or cause, where a traceback would show it.
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"all_proxy": "ftp://proxy.test"}, "all_proxy"),  # used for both schemes
        ({"http_proxy": PROXY, "all_proxy": "ftp://proxy.test"}, "all_proxy"),  # for https
        ({"https_proxy": PROXY, "ALL_PROXY": "ftp://proxy.test"}, "ALL_PROXY"),  # for http
        ({"http_proxy": "ftp://proxy.test", "all_proxy": PROXY}, "http_proxy"),
    ],
)
def test_the_variable_used_for_a_scheme_is_checked(env: dict[str, str], name: str) -> None:
    with pytest.raises(HttpInvalidRequestError) as raised:
        proxy_from_env(env)
    assert str(raised.value).startswith(f"{name} is not a usable proxy URL: ")


@pytest.mark.parametrize(
    "env",
    [
        {"https_proxy": PROXY, "HTTPS_PROXY": "ftp://proxy.test"},
        {"http_proxy": PROXY, "https_proxy": PROXY, "all_proxy": "ftp://proxy.test"},
        {"http_proxy": PROXY, "HTTP_PROXY": "ftp://proxy.test"},
    ],
)
def test_a_variable_shadowed_by_another_is_not_read(env: dict[str, str]) -> None:
    assert proxy_from_env(env) is not None


def test_the_environment_is_read_when_called_and_never_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert proxy_from_env() is None
    monkeypatch.setenv("https_proxy", PROXY)
    monkeypatch.setenv("no_proxy", "direct.test")
    choose = proxy_from_env()
    assert choose is not None
    monkeypatch.setenv("https_proxy", OTHER)
    monkeypatch.setenv("no_proxy", "example.com")
    assert choose("https", "example.com", 443) == PROXY
    assert choose("https", "direct.test", 443) is None


def test_it_is_exported() -> None:
    assert lowhaio.proxy_from_env is proxy_from_env
    assert "proxy_from_env" in lowhaio.__all__


def _no_dns() -> tuple[object, object]:
    raise AssertionError("nothing here is resolved: the proxy and origin are IP literals")


async def test_a_pool_sends_through_the_proxy_it_chooses_and_direct_to_no_proxy() -> None:
    proxy_heads: list[bytes] = []
    origin_heads: list[bytes] = []
    async with serve(recording(proxy_heads)) as proxy, serve(recording(origin_heads)) as origin:
        choose = proxy_from_env(
            {
                "http_proxy": f"http://127.0.0.1:{proxy.port}",
                "HTTP_PROXY": "http://192.0.2.1:9",  # never read, never contacted
                "no_proxy": "localhost, 127.0.0.1",
            }
        )
        async with pool(proxy=choose, get_dns_resolver=_no_dns) as request:
            assert await get(request, "http://example.invalid/x") == b"ok"
            assert await get(request, origin.url("/y")) == b"ok"
    assert [head.split(b"\r\n")[0] for head in proxy_heads] == [
        b"GET http://example.invalid/x HTTP/1.1"
    ]
    assert b"\r\nhost: example.invalid\r\n" in proxy_heads[0]
    assert [head.split(b"\r\n")[0] for head in origin_heads] == [b"GET /y HTTP/1.1"]
