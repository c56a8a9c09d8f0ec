"""The FastAPI app mounted in front of Reflex (rx.App(api_transformer=...))."""

import re

from fastapi import FastAPI
from starlette.routing import Mount

from litesubs.api import exports, health, stripe_webhook
from litesubs.api.v1 import PREFIX, create_v1_app


def create_api() -> FastAPI:
    api = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    api.include_router(health.router)
    api.include_router(exports.router)
    api.include_router(stripe_webhook.router)
    api.router.routes.append(_mount_all_below(PREFIX, create_v1_app()))
    return api


def _mount_all_below(prefix: str, app: FastAPI) -> Mount:
    """A mount that takes every path below `prefix`, so API v1 answers all of them in its own error format.

    Starlette's pattern for a mount stops at a newline (an encoded %0A in a customer reference, say).
    """
    mount = Mount(prefix, app=app)
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)
    return mount
