"""Cross-origin rules: the site's own origin with cookies everywhere; API v1 open to any origin, without cookies.

Reflex's CORS middleware (configured in rxconfig.py with `cors_allowed_origins`) lets only
`LITESUBS_BASE_URL`'s origin read answers with credentials: the pages, the exports and the websocket
rely on the session cookie, so no other site may use a visitor's. API v1 authenticates with a bearer
key, never a cookie, so any origin may call it — without credentials. `ApiV1Cors` wraps the whole app,
outside Reflex's middleware, and answers for API v1 itself: Reflex's middleware never sees an `Origin`
on those requests, so it neither refuses them nor allows credentials on them.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_V1_PREFIX = "/api/v1"
_ALLOWED_METHODS = "GET, POST, OPTIONS"
_ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key"
_EXPOSED_HEADERS = "Retry-After, Idempotent-Replayed"
_PREFLIGHT_MAX_AGE = "600"


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL: what a browser sends as `Origin`."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


class ApiV1Cors:
    """ASGI middleware: any origin may call API v1, without credentials; other paths pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_V1_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if "origin" not in headers:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await _preflight(scope, receive, send)
            return
        scope = {**scope, "headers": [(name, value) for name, value in scope["headers"] if name != b"origin"]}

        async def open_to_all(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers["Access-Control-Allow-Origin"] = "*"
                response_headers["Access-Control-Expose-Headers"] = _EXPOSED_HEADERS
                del response_headers["Access-Control-Allow-Credentials"]
            await send(message)

        await self.app(scope, receive, open_to_all)


async def _preflight(scope: Scope, receive: Receive, send: Send) -> None:
    response = Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Allow-Methods": _ALLOWED_METHODS,
            "Access-Control-Allow-Headers": _ALLOWED_HEADERS,
            "Access-Control-Max-Age": _PREFLIGHT_MAX_AGE,
        },
    )
    await response(scope, receive, send)
