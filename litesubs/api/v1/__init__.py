"""HTTP API v1: a FastAPI app of its own, mounted at /api/v1, with its OpenAPI document and docs.

Its own app (not a router of the outer one) so that `/api/v1/openapi.json` describes exactly this
API, its error handlers answer only here, and the docs page works offline: Swagger UI's files come
from the `fastapi-offline` package instead of a CDN.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from litesubs.api.v1.endpoints import router
from litesubs.api.v1.errors import install_error_handlers

PREFIX = "/api/v1"
DESCRIPTION = """
Check and spend your customers' credits from your own software.

**Authentication.** Create a key on the dashboard's *API keys* page and send it on every request:
`Authorization: Bearer ls_...`.

**Customers** are addressed by their id or by the buyer's email address. Another creator's
customers answer 404, like ones that do not exist.

**Retries.** Send an `Idempotency-Key` header (a UUID, say) with every POST. Repeating the request
with the same key and body returns the first response again, with `Idempotent-Replayed: true`,
and changes nothing; the same key with another body answers 409 `idempotency_conflict`. Keys are
kept at least 24 hours. Malformed requests (422) are not remembered, so a corrected retry may
reuse the key.

**Holds** reserve credits before work whose cost is known only at its end: `POST
/customers/{ref}/holds` takes them out of `balance` (the customer's `held` counts them), then
`POST /holds/{id}/capture` spends what the work cost and gives the rest back, or `POST
/holds/{id}/release` gives everything back. A hold neither captured nor released by its
`expires_at` gives its credits back on its own. A hold ends once: ending it again is 409 `hold_closed`.

**Errors** are `{"error": {"code": "...", "message": "..."}}` with a stable `code`.

**Pages.** Lists return `next_cursor`; pass it as `cursor` to get the next page.

**Rate limit.** 100 requests a second per key by default (the server's `LITESUBS_API_RATE_LIMIT`),
with bursts up to twice that; beyond that, 429 with `Retry-After`. Failed authentications are
limited per client address too.
"""


def create_v1_app() -> FastAPI:
    app = FastAPIOffline(
        title="Litesubs API",
        version="1",
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        static_url="/docs-assets",
        swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": True},
    )
    app.include_router(router)
    install_error_handlers(app, routes=router.routes)
    return app
