"""`POST /api/stripe/webhook`: Stripe's events, verified by signature, each applied once."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from litesubs.payments.events import handle_event
from litesubs.payments.stripe_gateway import verify_event
from litesubs.services.errors import InvalidSignature

router = APIRouter()


@router.post("/api/stripe/webhook", include_in_schema=False)
async def stripe_webhook(request: Request) -> JSONResponse:
    """400 and no change for a bad, missing or stale signature; 200 once the event is applied (or ignored).

    Any other failure is a 500 with nothing committed, so Stripe delivers the event again.
    """
    payload = await request.body()
    try:
        event = verify_event(payload=payload, signature=request.headers.get("stripe-signature"))
    except InvalidSignature as error:
        return JSONResponse({"error": {"code": error.code, "message": error.message}}, status_code=error.status)
    outcome = await run_in_threadpool(handle_event, event)
    return JSONResponse({"received": True, "outcome": outcome})
