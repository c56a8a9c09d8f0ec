"""The FastAPI app mounted in front of Reflex (rx.App(api_transformer=...))."""

import re

from fastapi import FastAPI
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from litesubs.api import exports, health, stripe_webhook
from litesubs.api.v1 import PREFIX, create_v1_app
from litesubs.api.v1.hot import HotRoutes


def create_api() -> FastAPI:
    api = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    api.include_router(health.router)
    api.include_router(exports.router)
    api.include_router(stripe_webhook.router)
    api.router.routes.append(_mount_all_below(PREFIX, HotRoutes(create_v1_app())))
    return api


def _mount_all_below(prefix: str, app: ASGIApp) -> Mount:
    """A mount that takes every path below `prefix`, so API v1 answers all of them in its own error format.

    Starlette's pattern for a mount stops at a newline (an encoded %0A in a customer reference, say).
    """
    mount = Mount(prefix, app=app)
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)
    return mount


def mounted_api_v1(api: FastAPI) -> ASGIApp:
    """API v1's own app, as `create_api` mounted it."""
    return next(route.app for route in api.routes if isinstance(route, Mount) and route.path == PREFIX)


class ApiV1Direct:
    """ASGI: requests below /api/v1/ go straight to API v1's app, everything else to `app`.

    Reflex serves the mounted API through its own Starlette app and middleware (its CORS, its contexts for
    state), then `create_api`'s FastAPI app and its middleware, then the mount: none of that does anything for
    API v1, which has its own error handling (and its own CORS, `ApiV1Cors`), and it cost ~15 % of a debit's
    CPU. The scope API v1 sees is the one the mount would give it.
    """

    def __init__(self, app: ASGIApp, api_v1: ASGIApp) -> None:
        self.app, self.api_v1 = app, api_v1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("root_path") or not scope["path"].startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        await self.api_v1({**scope, "root_path": PREFIX, "app_root_path": ""}, receive, send)
