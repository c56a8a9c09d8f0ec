"""Which URLs the server may send requests to on a creator's behalf: no private networks (SSRF).

A webhook URL is the creator's input, and our server makes the request: without these checks a
creator could make it reach the machine's own services, the cloud metadata endpoint
(169.254.169.254) or the private network behind it. So a URL must be https, and every address its
host resolves to must be public. The check runs when the URL is saved and again before each request,
and the request then goes to the very address that was checked (`SafeTarget.address`), so a DNS
answer that changes in between (rebinding) cannot slip a private address in.

`allow_local` (LITESUBS_ALLOW_HTTP_WEBHOOKS=1, for tests and `make run`) additionally allows plain
http and the loopback addresses, and nothing else private.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from litesubs.services.errors import InvalidRequest

MAX_URL_LENGTH = 2000
_IP = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(InvalidRequest):
    """A URL we refuse to send requests to; `message` says why in words."""

    def __init__(self, message: str) -> None:
        super().__init__("url", message)


@dataclass(frozen=True)
class SafeTarget:
    """A checked URL and the public address (of those its host resolved to) to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    address: str

    def pinned_url(self) -> str:
        """The URL with its host replaced by the checked address (send `host` as Host header and TLS name)."""
        parts = urlsplit(self.url)
        address = f"[{self.address}]" if ":" in self.address else self.address
        return parts._replace(netloc=f"{address}:{self.port}").geturl()


def check_url_form(url: str, *, allow_local: bool) -> str:
    """The URL, trimmed, if its form is acceptable (https, a host, no credentials); `UnsafeUrl` otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise UnsafeUrl("Enter the URL that should receive events, such as https://example.com/webhooks.")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH or any(ord(character) < 33 for character in url):
        raise UnsafeUrl("Enter a URL of at most 2,000 characters, without spaces.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise UnsafeUrl("This is not a valid URL.") from None
    allowed = ("https", "http") if allow_local else ("https",)
    if parts.scheme.lower() not in allowed:
        raise UnsafeUrl("The URL must start with https://.")
    if not parts.hostname:
        raise UnsafeUrl("The URL must name a host, such as https://example.com/webhooks.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("Leave credentials out of the URL; check the webhook signature instead.")
    return url


def resolve_safe(url: str, *, allow_local: bool) -> SafeTarget:
    """Check the URL's form and resolve its host: `UnsafeUrl` unless every address is public.

    With `allow_local`, plain http is accepted, and loopback addresses are; nothing else private is.
    """
    url = check_url_form(url, allow_local=allow_local)
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    port = parts.port or (443 if scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeUrl(f"The host {host} could not be found.") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not addresses:
        raise UnsafeUrl(f"The host {host} could not be found.")
    for address in addresses:
        problem = _why_not_public(address, allow_local=allow_local)
        if problem is not None:
            raise UnsafeUrl(f"The host {host} resolves to {address}, {problem}; use a public address.")
    if scheme == "http" and not all(_effective(address).is_loopback for address in addresses):
        raise UnsafeUrl("The URL must start with https:// (plain http is allowed only for localhost).")
    return SafeTarget(url=url, scheme=scheme, host=host, port=port, address=str(addresses[0]))


def _effective(address: _IP) -> _IP:
    """The IPv4 address inside an IPv4-mapped or 6to4/NAT64-style IPv6 address, else the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in ipaddress.ip_network("64:ff9b::/96"):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _why_not_public(address: _IP, *, allow_local: bool) -> str | None:
    address = _effective(address)
    if address.is_loopback:
        return None if allow_local else "a loopback address (this machine)"
    if address.is_link_local:
        return "a link-local address (such as the cloud metadata service)"
    if address.is_private:
        return "a private network address"
    if address.is_multicast or address.is_reserved or address.is_unspecified or not address.is_global:
        return "not a public address"
    return None
