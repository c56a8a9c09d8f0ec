"""Every failure of API v1 as `{"error": {"code": ..., "message": ...}}` with its HTTP status.

Domain errors carry their code and status; FastAPI's validation errors (a bad field, malformed
JSON) become 422 `invalid_request` naming the field; unknown paths and methods keep their 404/405.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match

from litesubs.api.v1.schemas import ErrorBody
from litesubs.services.errors import DomainError, InvalidRequest, RateLimited, Unauthorized

REPLAYED_HEADER = "Idempotent-Replayed"
logger = logging.getLogger(__name__)

DESCRIPTIONS = {
    401: "`unauthorized`: the API key is missing, malformed, unknown or revoked.",
    403: "`customer_suspended`: the creator suspended this customer, who cannot spend credits.",
    404: "`not_found`: no such customer of yours (another creator's customers are not found either).",
    409: "`insufficient_credits`: the balance is lower than the amount and nothing was spent; "
    "`idempotency_conflict`: this Idempotency-Key came with a different request.",
    422: "`invalid_request`: a field is missing, malformed or out of range; `field` names it.",
    429: "`rate_limited`: more requests a second with this key than the server allows (100 by default, bursts "
    "up to twice that), or too many failed authentications from this address; see Retry-After.",
}
_HEADERS = {
    401: {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}},
}
REPLAYED_HEADER_DOC = {
    REPLAYED_HEADER: {
        "description": "`true` when this is the stored response to an earlier request with the same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
# FastAPI reports a header field by its lower-case alias; clients know it by its usual spelling.
_HEADER_FIELDS = {"idempotency-key": "Idempotency-Key"}
_HTTP_ERRORS = {
    404: ("not_found", "There is no such endpoint; see /api/v1/docs."),
    405: ("method_not_allowed", "This endpoint does not take this method; see the Allow header."),
}


def responses(
    *statuses: int, replayable: tuple[int, ...] = (), described: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The documented error responses of an operation; `replayable` ones may carry Idempotent-Replayed;
    `described` replaces the usual descriptions of some statuses."""
    descriptions = {**DESCRIPTIONS, **(described or {})}
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        headers = {**_HEADERS.get(status, {}), **(REPLAYED_HEADER_DOC if status in replayable else {})}
        documented[status] = {"model": ErrorBody, "description": descriptions[status], "headers": headers}
    return documented


def install_error_handlers(app: FastAPI, *, routes: Sequence[BaseRoute] = ()) -> None:
    """The handlers; `routes` are the API's own (included without a prefix), whose methods a 405 lists in `Allow`."""

    def http_error(request: Request, error: HTTPException) -> JSONResponse:
        if error.status_code == 405:
            error = HTTPException(
                405, error.detail, headers={**(error.headers or {}), "Allow": _allowed(request, routes)}
            )
        return _http_error(request, error)

    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)


def error_response(
    status: int, code: str, message: str, *, field: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    detail: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        detail["field"] = field
    return JSONResponse({"error": detail}, status_code=status, headers=headers)


def domain_error(_request: Request, error: DomainError) -> JSONResponse:
    headers: dict[str, str] = {}
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if error.replayed:
        headers[REPLAYED_HEADER] = "true"
    field = error.field if isinstance(error, InvalidRequest) else None
    return error_response(error.status, error.code, error.message, field=field, headers=headers)


def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
    """422 naming the first offending field: `amount`, `limit`, `Idempotency-Key`, or `body` for the body itself."""
    first = error.errors()[0]
    location = [str(part) for part in first.get("loc", ())]
    if first.get("type") == "json_invalid":
        return error_response(422, InvalidRequest.code, "The body is not valid JSON.", field="body")
    field = _HEADER_FIELDS.get(location[-1], location[-1]) if len(location) > 1 else "body"
    return error_response(422, InvalidRequest.code, f"{field}: {first.get('msg', 'is not valid')}.", field=field)


def _http_error(_request: Request, error: HTTPException) -> JSONResponse:
    if error.status_code == 400:  # FastAPI's answer to a body it cannot decode at all (not UTF-8, say)
        return error_response(422, InvalidRequest.code, "The body could not be read: send UTF-8 JSON.", field="body")
    code, message = _HTTP_ERRORS.get(error.status_code, ("error", str(error.detail)))
    return error_response(error.status_code, code, message, headers=error.headers)


def _allowed(request: Request, routes: Sequence[BaseRoute]) -> str:
    """Every method the routes take at the request's path: Starlette's 405 names only the first route's, and a
    path such as `/customers/{ref}/holds` has one route per method."""
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, APIRoute) and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


def unexpected_error(_request: Request, error: Exception) -> JSONResponse:
    logger.error("API v1 request failed", exc_info=error)
    return error_response(500, "internal_error", "Something went wrong on our side. Try again shortly.")
