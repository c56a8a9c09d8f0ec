"""`POST /api/stripe/webhook`: Stripe's events, verified by signature, each applied once."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from litesubs.payments.events import handle_event
from litesubs.payments.stripe_gateway import verify_event
from litesubs.services.errors import InvalidSignature, MalformedEvent, PayloadTooLarge

router = APIRouter()

MAX_BODY_BYTES = 1024 * 1024  # Stripe's events are a few kilobytes


@router.post("/api/stripe/webhook", include_in_schema=False)
async def stripe_webhook(request: Request) -> JSONResponse:
    """400 and no change for a bad, missing or stale signature or a malformed event; 413 over 1 MB; 200 once the
    event is applied (or ignored).

    Any other failure (the database or Stripe unreachable) is a 500 with nothing committed, so Stripe
    delivers the event again.
    """
    try:
        payload = await _body(request)
        event = verify_event(payload=payload, signature=request.headers.get("stripe-signature"))
        outcome = await run_in_threadpool(handle_event, event)
    except (InvalidSignature, MalformedEvent, PayloadTooLarge) as error:
        return JSONResponse({"error": {"code": error.code, "message": error.message}}, status_code=error.status)
    return JSONResponse({"received": True, "outcome": outcome})


async def _body(request: Request) -> bytes:
    """The body, read no further than MAX_BODY_BYTES (whatever Content-Length claims)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge("A Stripe event is at most 1 MB.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge("A Stripe event is at most 1 MB.")
    return bytes(body)
