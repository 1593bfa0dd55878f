"""`proxy_from_env()`: the proxy for each origin, from the variables curl reads (libcurl-env(3),
CURLOPT_PROXY(3), CURLOPT_NOPROXY(3), and curl's lib/noproxy.c for the details they leave out).

Everything is read, checked and parsed once, when `proxy_from_env()` is called; the chooser it
returns looks a host up in precomputed sets and networks, and remembers its last answers.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import re
from collections.abc import Mapping
from typing import NamedTuple

from ._exceptions import HttpInvalidRequestError
from ._pool import ProxyChooser
from ._proxy import parse_proxy

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Which variables name the proxy of an origin's scheme, first set (and not empty) first. Not
# HTTP_PROXY: a CGI program is given a request's `Proxy:` header as HTTP_PROXY ("httpoxy").
_VARIABLES = {
    "http": ("http_proxy", "all_proxy", "ALL_PROXY"),
    "https": ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"),
}
_NO_PROXY_VARIABLES = ("no_proxy", "NO_PROXY")
_HAS_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_BRACKETED = re.compile(r"\[([^\]]*)\](/.*)?")


def proxy_from_env(environ: Mapping[str, str] | None = None) -> ProxyChooser | None:
    """The proxy for each origin as curl chooses it from the environment, for
    `Pool(proxy=proxy_from_env())`: a function of an origin's (scheme, host, port) that returns
    a proxy URL, or None to go direct; or None when no proxy variable is set (or NO_PROXY is
    `*`), so that the pool goes direct at no cost.

    `environ` (`os.environ` by default) is read only now, when this is called, never by the
    pool nor later: a change to the environment afterwards takes a new call.

    - http:// origins: `http_proxy`, in lower case only. `HTTP_PROXY` is ignored, as curl
      ignores it: a CGI program is given each request's `Proxy:` header as the variable
      `HTTP_PROXY`, so a client could choose the proxy of the server's own requests
      ("httpoxy"). (Where the environment ignores case, as on Windows, `HTTP_PROXY` is
      `http_proxy`.)
    - https:// origins: `https_proxy`, else `HTTPS_PROXY`.
    - Either, when its own is not set: `all_proxy`, else `ALL_PROXY`.
    - A variable set to the empty string is not set (the next one is read). A value without a
      scheme (`proxy:3128`) is an http:// proxy (`http://proxy:3128`). A value that is not a
      proxy URL lowhaio can use (`http://`, `https://`, `socks5://`, `socks5h://`, optional
      `user:password@`) raises `HttpInvalidRequestError` here, naming the variable but never
      the credentials. A proxy URL without a port has its scheme's default port (80 for
      http://), where curl would take 1080.
    - `no_proxy`, else `NO_PROXY`: the hosts to reach directly, separated by commas (blanks
      around entries trimmed, empty entries ignored). `*` as the whole value: every host. A
      name matches itself and its subdomains (`example.com` matches `example.com` and
      `a.example.com`, not `badexample.com`); a leading dot is ignored, as curl ignores it
      (`.example.com` matches `example.com` too); names are compared without case or a final
      dot, a non-ASCII one after IDNA encoding. An IP address (IPv6 with or without brackets)
      matches that address, and a CIDR range (`10.0.0.0/8`, `fd00::/8`) the addresses in it,
      when the URL's host is an IP literal: a name is never resolved to be compared with
      them. (`/0` is every address of its family, where curl takes it as `/32` or `/128`.)
      An entry with a port (`example.com:8080`) matches nothing, as in curl, which
      supports no ports there; so does an entry that is not a name nor an address or range.
    """
    env = os.environ if environ is None else environ
    proxies: dict[str, str] = {}
    for scheme, names in _VARIABLES.items():
        found = _first_set(env, names)
        if found is not None:
            proxies[scheme] = _checked_proxy_url(*found)
    if not proxies:
        return None
    found = _first_set(env, _NO_PROXY_VARIABLES)
    if found is None:
        return lambda scheme, host, port: proxies.get(scheme)
    no_proxy = NoProxy.parse(found[1])
    if no_proxy.everything:
        return None

    @functools.lru_cache(maxsize=512)
    def choose(scheme: str, host: str, port: int) -> str | None:
        return None if no_proxy.matches(host) else proxies.get(scheme)

    return choose


def _first_set(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    """The first of the variables `names` set to a value that is not empty, and its value."""
    for name in names:
        value = env.get(name)
        if value:
            return name, value
    return None


def _checked_proxy_url(name: str, value: str) -> str:
    """The proxy URL that the variable `name` gives, `http://` if it names no scheme; checked
    with `parse_proxy`, whose refusals never repeat the credentials."""
    url = value if _HAS_SCHEME.match(value) else f"http://{value}"
    try:
        parse_proxy(url)
    except HttpInvalidRequestError as exc:
        reason = str(exc).removeprefix("proxy url ")
    else:
        return url
    # Raised outside the `except`: no traceback shows the refusal twice.
    raise HttpInvalidRequestError(f"{name} is not a usable proxy URL: {reason}")


class NoProxy(NamedTuple):
    """NO_PROXY's entries, parsed: which hosts go direct."""

    everything: bool  # `*`
    names: frozenset[str]  # every entry as a name: lowercased, without its outer dots
    addresses: frozenset[IPAddress]
    networks: tuple[IPNetwork, ...]  # the CIDR ranges

    @classmethod
    def parse(cls, value: str) -> NoProxy:
        if value.strip() == "*":
            return cls(True, frozenset(), frozenset(), ())
        names: set[str] = set()
        addresses: set[IPAddress] = set()
        networks: list[IPNetwork] = []
        for entry in value.split(","):
            entry = entry.strip()
            bracketed = _BRACKETED.fullmatch(entry)
            if bracketed:
                entry = bracketed[1] + (bracketed[2] or "")
            if "/" in entry:  # a CIDR range, else an entry that matches nothing
                with contextlib.suppress(ValueError):
                    networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            with contextlib.suppress(ValueError):
                addresses.add(ipaddress.ip_address(entry))
            name = _name(entry)  # an address too, as curl compares it with a name's text
            if name:
                names.add(name)
        return cls(False, frozenset(names), frozenset(addresses), tuple(networks))

    def matches(self, host: str) -> bool:
        """Whether `host` (a name, or an IP literal without brackets) goes direct."""
        host = host.lower()
        if ":" in host or host[-1:].isdigit():  # an IP literal, maybe
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                pass
            else:
                return address in self.addresses or any(
                    address in network for network in self.networks
                )
        name = host[:-1] if host.endswith(".") else host
        names = self.names
        while True:
            if name in names:
                return True
            _, dot, name = name.partition(".")
            if not dot:
                return False


def _name(entry: str) -> str:
    """An entry as a name to compare: lowercased, its final then its leading dot dropped (as
    curl does), IDNA-encoded; empty if it is none."""
    entry = entry.lower()
    if entry.endswith("."):
        entry = entry[:-1]
    if entry.startswith("."):
        entry = entry[1:]
    if entry.isascii():
        return entry
    try:
        return entry.encode("idna").decode("ascii")
    except UnicodeError:
        return ""
