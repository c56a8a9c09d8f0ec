"""Stripe through the official SDK: Checkout Sessions, refunds and webhook signatures, nothing else.

Everything returned is plain data (dicts), so fulfilment never depends on SDK object types.
`STRIPE_API_BASE`, when set, points the client at another Stripe-compatible server (the tests' one).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import stripe

from litesubs.services.errors import InvalidSignature, MalformedEvent, NotFound, PaymentUnavailable
from litesubs.settings import Settings, get_settings


def stripe_client(settings: Settings | None = None) -> stripe.StripeClient:
    """The SDK client for the configured key; only meaningful in Stripe mode."""
    settings = settings or get_settings()
    if settings.stripe_secret_key is None:
        raise RuntimeError("Stripe is not configured: payments run in test mode.")
    return _client(settings.stripe_secret_key, settings.stripe_api_base)


@lru_cache(maxsize=4)
def _client(api_key: str, api_base: str | None) -> stripe.StripeClient:
    return stripe.StripeClient(api_key, base_addresses={"api": api_base} if api_base else None)


def create_checkout_session(
    *,
    product_name: str,
    product_description: str,
    amount: int,
    currency: str,
    buyer_id: int,
    buyer_email: str,
    pack_public_id: str,
    success_url: str,
    cancel_url: str,
) -> dict[str, Any]:
    """A one-off payment Checkout Session for one pack; the pack and buyer travel in its metadata."""
    params = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": currency.lower(),
                    "unit_amount": amount,
                    "product_data": {"name": product_name, "description": product_description},
                },
            }
        ],
        "client_reference_id": str(buyer_id),
        "customer_email": buyer_email,
        "metadata": {"pack_public_id": pack_public_id, "buyer_id": str(buyer_id)},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    try:
        return stripe_client().v1.checkout.sessions.create(params).to_dict()
    except stripe.StripeError as error:
        raise PaymentUnavailable() from error


def retrieve_checkout_session(session_id: str) -> dict[str, Any]:
    """The session as Stripe has it now; `NotFound` when Stripe does not know it."""
    try:
        return stripe_client().v1.checkout.sessions.retrieve(session_id).to_dict()
    except stripe.InvalidRequestError as error:
        if error.code == "resource_missing":
            raise NotFound("This checkout does not exist.") from error
        raise PaymentUnavailable() from error
    except stripe.StripeError as error:
        raise PaymentUnavailable() from error


def verify_event(*, payload: bytes, signature: str | None, settings: Settings | None = None) -> dict[str, Any]:
    """The event in `payload` if `signature` proves Stripe sent it within the last 300 seconds.

    STRIPE_WEBHOOK_SECRET may list several secrets separated by commas: while a secret is being
    rolled in Stripe's dashboard, events signed with either the old or the new one are accepted.
    Raises `InvalidSignature` otherwise, and when no webhook secret is configured.
    """
    configured = (settings or get_settings()).stripe_webhook_secret
    secrets = [secret.strip() for secret in (configured or "").split(",") if secret.strip()]
    if not secrets:
        raise InvalidSignature("Stripe webhooks are not configured on this server.")
    for secret in secrets:
        try:
            return stripe.Webhook.construct_event(payload, signature, secret).to_dict()
        except stripe.SignatureVerificationError:
            continue
        except ValueError as error:
            raise InvalidSignature("The event is not valid JSON.") from error
        except (AttributeError, TypeError) as error:  # valid JSON, but not an object: the SDK cannot read it
            raise MalformedEvent("The event is not a JSON object.") from error
    raise InvalidSignature()


def checkout_session_of_payment(payment_intent_id: str) -> dict[str, Any] | None:
    """The Checkout Session that created this PaymentIntent, or None when no session did."""
    try:
        found = stripe_client().v1.checkout.sessions.list({"payment_intent": payment_intent_id, "limit": 1})
    except stripe.StripeError as error:
        raise PaymentUnavailable() from error
    return found.data[0].to_dict() if found.data else None


def refund_payment(payment_intent_id: str, *, idempotency_key: str) -> dict[str, Any]:
    """Refund the whole payment. The same `idempotency_key` never refunds twice: Stripe returns the first refund."""
    try:
        return (
            stripe_client()
            .v1.refunds.create({"payment_intent": payment_intent_id}, {"idempotency_key": idempotency_key})
            .to_dict()
        )
    except stripe.StripeError as error:
        raise PaymentUnavailable() from error
