"""The API's two busiest requests, a debit and a customer's balance, served without FastAPI's per-request work.

FastAPI resolves dependencies, validates parameters one by one, checks the answer against its model and runs
its middleware: for these two routes that cost more than the service call itself. `HotRoutes` sits in front
of API v1's FastAPI app and serves a request itself only when it is plainly well formed: the expected method
and path, a live `Authorization: Bearer` key, a JSON body that the route's own model accepts, at most one
Idempotency-Key of a valid length. It reads the body, finds the key, and in one worker-thread trip takes
the limits (one Redis round trip) and makes the same service call as the route in `endpoints`; it answers
with the route's own response model and error format. Every other request, and every one it cannot serve
(a malformed body, a missing or refused key: whatever FastAPI answers with an error of the request's own
making), goes to FastAPI unchanged, with the body already read, so the rules and the OpenAPI document keep
one meaning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from fastapi import FastAPI
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from litesubs.api.client import client_address
from litesubs.api.v1.endpoints import blocking, change_by, live_key
from litesubs.api.v1.errors import REPLAYED_HEADER, domain_error, unexpected_error
from litesubs.api.v1.rate_limit import api_limits
from litesubs.api.v1.schemas import CustomerDetail, DebitRequest, TransactionPublic
from litesubs.models import ApiKey
from litesubs.services import ledger
from litesubs.services.customer_accounts import CustomerAccount, customer_account
from litesubs.services.errors import DomainError, Unauthorized
from litesubs.services.idempotency import MAX_KEY_LENGTH

_DEBIT = re.compile(r"/customers/([^/]{1,320})/debit", re.DOTALL)
_CUSTOMER = re.compile(r"/customers/([^/]{1,320})", re.DOTALL)
_BEARER = b"bearer "
_SERVED_HEADERS = (b"authorization", b"idempotency-key", b"content-type")
MAX_BODY_BYTES = 64 * 1024  # far more than any debit's body; a longer one goes to FastAPI


class HotRoutes:
    """ASGI: serves `POST /customers/{ref}/debit` and `GET /customers/{ref}` of API v1 when it can, else `app`."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"].removeprefix(scope.get("root_path", ""))
            if scope["method"] == "POST" and (match := _DEBIT.fullmatch(path)):
                await self._debit(match[1], scope, receive, send)
                return
            if scope["method"] == "GET" and (match := _CUSTOMER.fullmatch(path)):
                await self._customer(match[1], scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _debit(self, ref: str, scope: Scope, receive: Receive, send: Send) -> None:
        body, receive = await _read_body(receive)
        headers = _headers(scope)
        request = None if body is None else _debit_request(body, headers)
        idempotency_key = headers.get(b"idempotency-key") if headers else None
        if request is None or (idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_KEY_LENGTH):
            await self.app(scope, receive, send)
            return

        def spend(key: ApiKey) -> ledger.LedgerResult:
            return ledger.debit(**change_by(key, ref=ref, idempotency_key=idempotency_key), **request.model_dump())

        def answer(result: ledger.LedgerResult) -> tuple[BaseModel, dict[str, str]]:
            replayed = {REPLAYED_HEADER: "true"} if result.replayed else {}
            return TransactionPublic.of_result(result, reason=request.reason), replayed

        await self._serve(scope, receive, send, headers, spend, answer)

    async def _customer(self, ref: str, scope: Scope, receive: Receive, send: Send) -> None:
        def account(key: ApiKey) -> CustomerAccount:
            return customer_account(creator_id=key.creator_id, ref=ref)

        await self._serve(scope, receive, send, _headers(scope), account, lambda found: (CustomerDetail.of(found), {}))

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, str] | None,
        call: Callable[[ApiKey], object],
        answer: Callable[[object], tuple[BaseModel, dict[str, str]]],
    ) -> None:
        """Find the key (else FastAPI answers); in one worker-thread trip, take the limits and `call(key)`."""
        secret = _secret(headers)
        try:
            key = None if secret is None else await live_key(secret)
        except Unauthorized:
            key = None
        except Exception as error:  # noqa: BLE001 - answered as the FastAPI app answers it: logged, 500
            await unexpected_error(None, error)(scope, receive, send)
            return
        if key is None:
            await self.app(scope, receive, send)
            return
        client = client_address(Request(scope))

        def admitted() -> object:
            api_limits().admit(client=client, key_id=key.id)
            return call(key)

        try:
            model, extra_headers = answer(await blocking(admitted))
            response = Response(model.model_dump_json(), media_type="application/json", headers=extra_headers)
        except DomainError as error:
            response = domain_error(None, error)
        except Exception as error:  # noqa: BLE001 - as above
            response = unexpected_error(None, error)
        await response(scope, receive, send)


def _headers(scope: Scope) -> dict[bytes, str] | None:
    """The request headers this module reads, by lower-case name; None if one of them comes twice."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in _SERVED_HEADERS:
            if name in found:
                return None
            found[name] = value.decode("latin-1")
    return found


def _secret(headers: dict[bytes, str] | None) -> str | None:
    """The key of a plain `Authorization: Bearer ls_...` header, else None (FastAPI answers what is unusual)."""
    authorization = (headers or {}).get(b"authorization", "")
    if not authorization.encode("latin-1").lower().startswith(_BEARER):
        return None
    secret = authorization[len(_BEARER) :]
    return secret if secret and secret.strip() == secret and " " not in secret else None


def _debit_request(body: bytes, headers: dict[bytes, str] | None) -> DebitRequest | None:
    """The body as FastAPI reads it for the route (stdlib JSON, then the model), or None for anything else."""
    if headers is None or headers.get(b"content-type", "application/json").lower() != "application/json":
        return None
    try:
        return DebitRequest.model_validate(json.loads(body))
    except (ValueError, ValidationError):
        return None


async def _read_body(receive: Receive) -> tuple[bytes | None, Receive]:
    """The request body (None if it is longer than any debit's), and a `receive` that hands over what was read
    again, then the rest (to FastAPI, when it takes the request)."""
    messages: list[Message] = []
    size = 0
    while size <= MAX_BODY_BYTES:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    complete = messages[-1]["type"] == "http.request" and not messages[-1].get("more_body", False)
    body = b"".join(message.get("body", b"") for message in messages) if complete and size <= MAX_BODY_BYTES else None

    async def again() -> Message:
        return messages.pop(0) if messages else await receive()

    return body, again
