"""Stripe through the official SDK: Checkout Sessions, refunds, Connect accounts and webhook signatures, nothing else.

Everything returned is plain data (dicts), so fulfilment never depends on SDK object types.
`STRIPE_API_BASE`, when set, points the client at another Stripe-compatible server (the tests' one).
In platform mode a creator's Checkout Sessions live on their connected account: the calls take
`stripe_account`, which the SDK sends as the `Stripe-Account` header (None: the instance's own account).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import stripe

from litesubs.services.errors import ConnectUnavailable, InvalidSignature, MalformedEvent, NotFound, PaymentUnavailable
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
    stripe_account: str | None = None,
    application_fee_amount: int | None = None,
) -> dict[str, Any]:
    """A one-off payment Checkout Session for one pack; the pack and buyer travel in its metadata.

    With `stripe_account`, a direct charge on that connected account, the platform taking
    `application_fee_amount` (minor units) of it when given.
    """
    params: dict[str, Any] = {
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
    if application_fee_amount:
        params["payment_intent_data"] = {"application_fee_amount": application_fee_amount}
    try:
        return stripe_client().v1.checkout.sessions.create(params, _on(stripe_account)).to_dict()
    except stripe.StripeError as error:
        raise PaymentUnavailable() from error


def retrieve_checkout_session(session_id: str, *, stripe_account: str | None = None) -> dict[str, Any]:
    """The session as Stripe has it now, read from the account it was created on; `NotFound` if Stripe lacks it."""
    try:
        return stripe_client().v1.checkout.sessions.retrieve(session_id, None, _on(stripe_account)).to_dict()
    except stripe.InvalidRequestError as error:
        if error.code == "resource_missing":
            raise NotFound("This checkout does not exist.") from error
        raise PaymentUnavailable() from error
    except stripe.StripeError as error:
        raise PaymentUnavailable() from error


def _on(stripe_account: str | None) -> stripe.RequestOptions:
    """Request options addressing a connected account (the `Stripe-Account` header), or the platform itself."""
    return {"stripe_account": stripe_account} if stripe_account else {}


# --- Connect (platform mode) ------------------------------------------------------------------


def create_express_account(*, email: str, creator_id: int) -> dict[str, Any]:
    """A new Express connected account for a creator, able to take card payments and receive payouts."""
    params = {
        "type": "express",
        "email": email,
        "capabilities": {"card_payments": {"requested": True}, "transfers": {"requested": True}},
        "metadata": {"litesubs_creator_id": str(creator_id)},
    }
    return _connect_call(lambda client: client.v1.accounts.create(params))


def retrieve_account(stripe_account: str) -> dict[str, Any]:
    """The connected account as Stripe describes it now."""
    return _connect_call(lambda client: client.v1.accounts.retrieve(stripe_account))


def create_onboarding_link(*, stripe_account: str, refresh_url: str, return_url: str) -> str:
    """The URL of Stripe's hosted onboarding for the account (single use, valid for a few minutes)."""
    params = {
        "account": stripe_account,
        "type": "account_onboarding",
        "refresh_url": refresh_url,
        "return_url": return_url,
    }
    return _connect_call(lambda client: client.v1.account_links.create(params))["url"]


def create_dashboard_link(stripe_account: str) -> str:
    """A single-use sign-in URL for the creator's Stripe Express dashboard."""
    return _connect_call(lambda client: client.v1.accounts.login_links.create(stripe_account))["url"]


def _connect_call(call: Callable[[stripe.StripeClient], stripe.StripeObject]) -> dict[str, Any]:
    """Run one Connect request; Stripe's refusal or silence becomes `ConnectUnavailable` with Stripe's reason."""
    try:
        return call(stripe_client()).to_dict()
    except stripe.StripeError as error:
        reason = error.user_message or (error.error.message if error.error else None) or "Stripe did not answer"
        reason = reason.rstrip(".")
        raise ConnectUnavailable(f"Stripe could not complete this: {reason}. Nothing changed; try again.") from error


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


def checkout_session_of_payment(payment_intent_id: str, *, stripe_account: str | None = None) -> dict[str, Any] | None:
    """The Checkout Session on `stripe_account` that created this PaymentIntent, or None when no session did."""
    try:
        params = {"payment_intent": payment_intent_id, "limit": 1}
        found = stripe_client().v1.checkout.sessions.list(params, _on(stripe_account))
    except stripe.StripeError as error:
        raise PaymentUnavailable() from error
    return found.data[0].to_dict() if found.data else None


def refund_payment(
    payment_intent_id: str, *, idempotency_key: str, stripe_account: str | None = None
) -> dict[str, Any]:
    """Refund the whole payment, on the account it was charged on. The same `idempotency_key` never refunds twice:
    Stripe returns the first refund."""
    options: stripe.RequestOptions = {"idempotency_key": idempotency_key, **_on(stripe_account)}
    try:
        return stripe_client().v1.refunds.create({"payment_intent": payment_intent_id}, options).to_dict()
    except stripe.StripeError as error:
        raise PaymentUnavailable() from error
