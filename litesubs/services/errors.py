"""Domain errors: one class per failure kind, each with a stable code and the HTTP status the API uses.

The UI shows `message`; the API turns any `DomainError` into
`{"error": {"code": ..., "message": ...}}` with `status`.
"""

from __future__ import annotations


class DomainError(Exception):
    code: str = "error"
    status: int = 400
    default_message: str = "The request could not be completed."
    # True when an idempotency key returned this stored refusal again rather than deciding it now.
    replayed: bool = False

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidRequest(DomainError):
    """Input that breaks a rule; `field` names the offending field (forms show the message next to it)."""

    code = "invalid_request"
    status = 422

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class Unauthorized(DomainError):
    code = "unauthorized"
    status = 401
    default_message = "Sign in or send a valid API key."


class NotFound(DomainError):
    """Missing, or belonging to someone else: both look the same from outside."""

    code = "not_found"
    status = 404
    default_message = "Not found."


class CustomerSuspended(DomainError):
    code = "customer_suspended"
    status = 403
    default_message = "This customer is suspended."


class InsufficientCredits(DomainError):
    code = "insufficient_credits"
    status = 409
    default_message = "The customer does not have enough credits."


class HoldClosed(DomainError):
    """The hold was already captured, released or expired: a hold ends once."""

    code = "hold_closed"
    status = 409
    default_message = "This hold has already ended."


class HoldExceeded(DomainError):
    """A capture of more credits than the hold holds; nothing changed."""

    code = "hold_exceeded"
    status = 409
    default_message = "The capture is larger than the hold."


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"
    status = 409
    default_message = "This Idempotency-Key was already used with a different request."


class RateLimited(DomainError):
    code = "rate_limited"
    status = 429
    default_message = "Too many requests. Try again shortly."

    def __init__(self, message: str | None = None, *, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class InvalidCredentials(DomainError):
    """Unknown email, wrong password or inactive account: one message, so a caller cannot tell which."""

    code = "invalid_credentials"
    status = 401
    default_message = "Wrong email or password."


class PackUnavailable(DomainError):
    """The pack exists but cannot be bought now (disabled or expired); the message says which."""

    code = "pack_unavailable"
    status = 409
    default_message = "This pack is not on sale right now."


class OwnPack(DomainError):
    code = "own_pack"
    status = 403
    default_message = "This is your own pack."


class PaymentUnavailable(DomainError):
    """Stripe could not be reached or refused the request; nothing was charged."""

    code = "payment_unavailable"
    status = 503
    default_message = "Payments are unavailable right now. Try again in a minute."


class InvalidSignature(DomainError):
    """A Stripe webhook whose signature is missing, wrong or too old (or webhooks are not configured)."""

    code = "invalid_signature"
    status = 400
    default_message = "The Stripe-Signature header is missing, wrong or too old."


class ConnectUnavailable(DomainError):
    """Stripe refused or did not answer a Connect request (connecting, onboarding, the Express dashboard)."""

    code = "connect_unavailable"
    status = 503
    default_message = "Stripe could not be reached. Nothing changed; try again in a minute."


class MalformedEvent(DomainError):
    """A correctly signed Stripe event that does not have the shape its type promises: acknowledged with 400, logged."""

    code = "malformed_event"
    status = 400
    default_message = "The event does not have the shape of a Stripe event."


class PayloadTooLarge(DomainError):
    """A request body over the size the endpoint accepts."""

    code = "payload_too_large"
    status = 413
    default_message = "The request body is too large."
