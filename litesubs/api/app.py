"""The FastAPI app mounted in front of Reflex (rx.App(api_transformer=...))."""

from fastapi import FastAPI

from litesubs.api import exports, health, stripe_webhook


def create_api() -> FastAPI:
    api = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    api.include_router(health.router)
    api.include_router(exports.router)
    api.include_router(stripe_webhook.router)
    return api
