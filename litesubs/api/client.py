"""Who is calling: the client's address, as the outermost trusted proxy saw it."""

from __future__ import annotations

from starlette.requests import Request

from litesubs.settings import get_settings


def client_address(request: Request) -> str:
    """The client's address: the connection's peer, or behind LITESUBS_TRUSTED_PROXIES proxies the address the
    outermost of them put in X-Forwarded-For (each proxy appends the address it received from). The same rule
    as Reflex's `trusted_proxy_hops`, which the pages use."""
    peer = request.client.host if request.client else ""
    hops = get_settings().trusted_proxies
    if not hops:
        return peer
    forwarded = [part.strip() for part in request.headers.get("x-forwarded-for", "").split(",") if part.strip()]
    return forwarded[-hops] if len(forwarded) >= hops else peer
