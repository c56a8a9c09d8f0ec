"""The routes of API v1: each authenticates the key, makes one service call and shapes the answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from litesubs.api.client import client_address
from litesubs.api.v1.errors import REPLAYED_HEADER, REPLAYED_HEADER_DOC, responses
from litesubs.api.v1.rate_limit import api_limits
from litesubs.api.v1.schemas import (
    CaptureRequest,
    CreditRequest,
    CustomerDetail,
    CustomerList,
    DebitRequest,
    EventList,
    EventType,
    HoldList,
    HoldPublic,
    HoldRequest,
    HoldTransaction,
    PackList,
    PackPublic,
    TransactionList,
    TransactionPublic,
)
from litesubs.models import ApiKey
from litesubs.services import api_keys, holds, ledger, webhooks
from litesubs.services.cursors import CURSOR_PATTERN
from litesubs.services.customer_accounts import customer_account, page_customers
from litesubs.services.customers import customer_id_of
from litesubs.services.errors import Unauthorized
from litesubs.services.idempotency import MAX_KEY_LENGTH
from litesubs.services.packs import list_packs

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from the dashboard's API keys page: `Authorization: Bearer ls_...`.",
)


async def authenticated_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> ApiKey:
    """The live API key of the request, within its rate limit; a client that failed too often is refused."""
    client, limits = client_address(request), api_limits()
    try:
        key = await live_key(credentials.credentials if credentials else None)
    except Unauthorized:
        await within_limits(lambda: limits.failed(client=client))
        raise
    await within_limits(lambda: limits.admit(client=client, key_id=key.id))
    return key


async def within_limits(take: Callable[[], None]) -> None:
    """Take from the rate limits' buckets: in a worker thread when they are in Redis."""
    if api_limits().limits.in_memory:
        take()
    else:
        await blocking(take)


async def live_key(secret: str | None) -> ApiKey:
    """The key whose secret this is (`Unauthorized` if none is live). One this process read within the last second
    needs no database (`api_keys.remembered_key`): most requests authenticate on the event loop."""
    return api_keys.remembered_key(secret=secret) or await blocking(lambda: api_keys.authenticate(secret=secret))


CurrentKey = Annotated[ApiKey, Depends(authenticated_key)]
CustomerRef = Annotated[
    str,
    Path(
        min_length=1,
        max_length=320,
        description="The customer's id, or the buyer's email address.",
        examples=["42", "buyer@example.com"],
    ),
]
Limit = Annotated[int, Query(ge=1, le=ledger.MAX_PAGE_SIZE, description="Items per page, 1 to 100.")]
Cursor = Annotated[
    str | None,
    Query(
        pattern=CURSOR_PATTERN,
        description="`next_cursor` of the previous page, unchanged; omit for the first page. Opaque: any value of "
        "this shape (a whole number from 1 written in decimal) is a valid position, and the page holds what "
        "comes after it.",
        examples=["1042"],
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description="Any unique string, such as a UUID. Retrying with the same key and body returns the first "
        "response again (with `Idempotent-Replayed: true`) and changes nothing; with another body: 409. "
        "Kept at least 24 hours.",
    ),
]
HoldId = Annotated[
    str, Path(min_length=1, max_length=40, description="The hold's id, as placing it answered.", examples=["hold_42"])
]


def _links_to_customer(ref: str, *operation_ids: str) -> dict[str, dict[str, Any]]:
    """OpenAPI links from a response to operations on the customer it names (`ref`: a runtime expression)."""
    return {operation_id: {"operationId": operation_id, "parameters": {"ref": ref}} for operation_id in operation_ids}


def _links_to_hold(hold_id: str, *operation_ids: str) -> dict[str, dict[str, Any]]:
    """OpenAPI links from a response to operations on the hold it names (`hold_id`: a runtime expression)."""
    return {
        operation_id: {"operationId": operation_id, "parameters": {"hold_id": hold_id}}
        for operation_id in operation_ids
    }


_CHANGE_RESPONSES = {
    200: {
        "description": "The change, as the ledger recorded it.",
        "headers": REPLAYED_HEADER_DOC,
        "links": _links_to_customer("$response.body#/customer_id", "get_customer", "list_transactions"),
    },
    **responses(401, 403, 404, 409, 422, 429, replayable=(403, 409)),
}
_ON_HOLD = ("get_hold", "capture_hold", "release_hold")
_HOLD_RESPONSES = {
    201: {
        "description": "The hold, active until captured, released or expired.",
        "headers": REPLAYED_HEADER_DOC,
        "links": _links_to_hold("$response.body#/id", *_ON_HOLD),
    },
    **responses(401, 403, 404, 409, 422, 429, replayable=(403, 409)),
}
_HOLD_NOT_FOUND = "`not_found`: no such hold of yours (another creator's holds are not found either)."
_HOLD_ENDING_RESPONSES = {
    200: {"description": "The ledger entry that ended the hold, with the hold.", "headers": REPLAYED_HEADER_DOC},
    **responses(
        401,
        404,
        409,
        422,
        429,
        replayable=(409,),
        described={
            404: _HOLD_NOT_FOUND,
            409: "`hold_closed`: the hold was already captured, released or expired; `hold_exceeded`: the capture "
            "is larger than the hold (nothing changed); `idempotency_conflict`: this Idempotency-Key came with a "
            "different request.",
        },
    ),
}
_ON_CUSTOMER = (
    "get_customer",
    "debit_customer",
    "credit_customer",
    "list_transactions",
    "place_hold",
    "list_customer_holds",
)

router = APIRouter(tags=["API v1"])
T = TypeVar("T")
# Service calls wait on the database in these: as many as the engine's pool has connections with its overflow
# (20 + 20), and as `run_in_threadpool` allowed.
_THREADS = ThreadPoolExecutor(max_workers=40, thread_name_prefix="api-v1")


@router.get(
    "/customers",
    operation_id="list_customers",
    response_model=CustomerList,
    responses={
        200: {"links": _links_to_customer("$response.body#/data/0/id", *_ON_CUSTOMER)},
        **responses(401, 422, 429),
    },
)
async def list_customers(
    key: CurrentKey,
    email: Annotated[str | None, Query(max_length=320, description="Only the customer with this buyer email.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> CustomerList:
    """Your customers with their balances, newest first."""
    page = await blocking(lambda: page_customers(creator_id=key.creator_id, email=email, limit=limit, cursor=cursor))
    return CustomerList.of(page)


@router.get(
    "/customers/{ref}",
    operation_id="get_customer",
    response_model=CustomerDetail,
    responses={
        200: {"links": _links_to_customer("$response.body#/id", *_ON_CUSTOMER[1:])},
        **responses(401, 404, 422, 429),
    },
)
async def get_customer(ref: CustomerRef, key: CurrentKey) -> CustomerDetail:
    """One customer: balance, status and unexpired credit lots."""
    return CustomerDetail.of(await blocking(lambda: customer_account(creator_id=key.creator_id, ref=ref)))


@router.post(
    "/customers/{ref}/debit",
    operation_id="debit_customer",
    response_model=TransactionPublic,
    responses=_CHANGE_RESPONSES,
)
async def debit_customer(
    ref: CustomerRef, body: DebitRequest, key: CurrentKey, response: Response, idempotency_key: IdempotencyKey = None
) -> TransactionPublic:
    """Spend credits: all of `amount` or, when the balance is lower (409) or the customer suspended (403), none."""

    def spend() -> ledger.LedgerResult:
        return ledger.debit(**change_by(key, ref=ref, idempotency_key=idempotency_key), **body.model_dump())

    return _change(await blocking(spend), reason=body.reason, response=response)


@router.post(
    "/customers/{ref}/credit",
    operation_id="credit_customer",
    response_model=TransactionPublic,
    responses=_CHANGE_RESPONSES,
)
async def credit_customer(
    ref: CustomerRef, body: CreditRequest, key: CurrentKey, response: Response, idempotency_key: IdempotencyKey = None
) -> TransactionPublic:
    """Grant free credits (kept apart from paid ones), optionally expiring at `expires_at`."""

    def give() -> ledger.LedgerResult:
        return ledger.grant(**change_by(key, ref=ref, idempotency_key=idempotency_key), **body.model_dump())

    return _change(await blocking(give), reason=body.reason, response=response)


@router.get(
    "/customers/{ref}/transactions",
    operation_id="list_transactions",
    response_model=TransactionList,
    responses=responses(401, 404, 422, 429),
)
async def list_transactions(
    ref: CustomerRef, key: CurrentKey, limit: Limit = 50, cursor: Cursor = None
) -> TransactionList:
    """The customer's ledger, newest first: every change of credits, who made it and why."""

    def entries() -> ledger.LedgerPage:
        customer_id = customer_id_of(creator_id=key.creator_id, ref=ref)
        return ledger.list_entries(creator_id=key.creator_id, customer_id=customer_id, limit=limit, cursor=cursor)

    page = await blocking(entries)
    return TransactionList(
        data=[TransactionPublic.of_entry(entry) for entry in page.entries], next_cursor=page.next_cursor
    )


@router.post(
    "/customers/{ref}/holds",
    operation_id="place_hold",
    status_code=201,
    response_model=HoldPublic,
    responses=_HOLD_RESPONSES,
)
async def place_hold(
    ref: CustomerRef, body: HoldRequest, key: CurrentKey, response: Response, idempotency_key: IdempotencyKey = None
) -> HoldPublic:
    """Reserve credits before work whose cost is known only at its end: they leave `balance` (so they can be neither
    spent nor held twice) until the hold is captured, released, or expires after `expires_in` seconds. All of
    `amount` or, when the balance is lower (409) or the customer suspended (403), nothing."""

    def hold() -> holds.HoldSummary:
        return holds.place_hold(**change_by(key, ref=ref, idempotency_key=idempotency_key), **body.model_dump())

    summary = await blocking(hold)
    _mark_replayed(summary.replayed, response)
    return HoldPublic.of(summary)


@router.get(
    "/customers/{ref}/holds",
    operation_id="list_customer_holds",
    response_model=HoldList,
    responses=responses(401, 404, 422, 429),
)
async def list_customer_holds(
    ref: CustomerRef,
    key: CurrentKey,
    status: Annotated[
        Literal["active", "captured", "released", "expired"] | None, Query(description="Only holds in this status.")
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> HoldList:
    """The customer's holds, newest first."""

    def page() -> holds.HoldPage:
        customer_id = customer_id_of(creator_id=key.creator_id, ref=ref)
        return holds.list_holds(
            creator_id=key.creator_id, customer_id=customer_id, status=status, limit=limit, cursor=cursor
        )

    found = await blocking(page)
    return HoldList(data=[HoldPublic.of(summary) for summary in found.holds], next_cursor=found.next_cursor)


@router.get(
    "/holds/{hold_id}",
    operation_id="get_hold",
    response_model=HoldPublic,
    responses=responses(401, 404, 422, 429, described={404: _HOLD_NOT_FOUND}),
)
async def get_hold(hold_id: HoldId, key: CurrentKey) -> HoldPublic:
    """One hold; once past its `expires_at`, it shows as `expired` with its credits given back."""
    summary = await blocking(lambda: holds.get_hold(creator_id=key.creator_id, hold_id=holds.parse_hold_id(hold_id)))
    return HoldPublic.of(summary)


@router.post(
    "/holds/{hold_id}/capture",
    operation_id="capture_hold",
    response_model=HoldTransaction,
    responses=_HOLD_ENDING_RESPONSES,
)
async def capture_hold(
    hold_id: HoldId,
    key: CurrentKey,
    response: Response,
    body: Annotated[CaptureRequest | None, Body()] = None,
    idempotency_key: IdempotencyKey = None,
) -> HoldTransaction:
    """Spend `amount` of the hold (the whole hold by default) and give the rest back to the balance. A hold ends
    once: capturing or releasing it again is 409 `hold_closed`; more than it holds is 409 `hold_exceeded`."""
    capture = (body or CaptureRequest()).model_dump()

    def spend() -> holds.HoldEnding:
        return holds.capture_hold(**_hold_ending_by(key, hold_id=hold_id, idempotency_key=idempotency_key), **capture)

    return _ended(await blocking(spend), response=response)


@router.post(
    "/holds/{hold_id}/release",
    operation_id="release_hold",
    response_model=HoldTransaction,
    responses=_HOLD_ENDING_RESPONSES,
)
async def release_hold(
    hold_id: HoldId, key: CurrentKey, response: Response, idempotency_key: IdempotencyKey = None
) -> HoldTransaction:
    """Give all of the hold's credits back to the balance. A hold ends once: 409 `hold_closed` after that."""

    def give_back() -> holds.HoldEnding:
        return holds.release_hold(**_hold_ending_by(key, hold_id=hold_id, idempotency_key=idempotency_key))

    return _ended(await blocking(give_back), response=response)


@router.get(
    "/packs", operation_id="list_packs", response_model=PackList, responses=responses(401, 429), summary="List packs"
)
async def list_your_packs(key: CurrentKey) -> PackList:
    """Your packs, newest first, with their links."""
    packs = await blocking(lambda: list_packs(creator_id=key.creator_id))
    return PackList(data=[PackPublic.of(summary) for summary in packs])


@router.get("/events", response_model=EventList, responses=responses(401, 422, 429))
async def list_events(
    key: CurrentKey,
    event_type: Annotated[EventType | None, Query(alias="type", description="Only events of this type.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> EventList:
    """Your events, newest first: what webhooks deliver, for a receiver that was down and catches up."""
    page = await blocking(
        lambda: webhooks.list_events(creator_id=key.creator_id, event_type=event_type, limit=limit, cursor=cursor)
    )
    return EventList.of(page)


async def blocking(call: Callable[[], T]) -> T:
    """Run a service call, which waits on the database, in one of the API's worker threads.

    The routes themselves are `async`: FastAPI then checks and serialises their answers in place, where
    for a sync route it takes another trip to a worker thread (~15 % of a debit's cost under load). The
    executor's own queue is cheaper per trip than Starlette's `run_in_threadpool` (anyio's limiter, cancel
    scope and context copy).
    """
    return await asyncio.get_running_loop().run_in_executor(_THREADS, call)


def change_by(key: ApiKey, *, ref: str, idempotency_key: str | None) -> dict[str, Any]:
    """The ledger arguments that say whose credits change and who changes them: the key's creator's customer."""
    return {
        "creator_id": key.creator_id,
        "customer_id": customer_id_of(creator_id=key.creator_id, ref=ref),
        "actor": ledger.Actor("api_key", key.id),
        "idempotency_key": idempotency_key,
    }


def _hold_ending_by(key: ApiKey, *, hold_id: str, idempotency_key: str | None) -> dict[str, Any]:
    """The hold arguments that say whose hold ends and who ends it: the key's creator's hold."""
    return {
        "creator_id": key.creator_id,
        "hold_id": holds.parse_hold_id(hold_id),
        "actor": ledger.Actor("api_key", key.id),
        "idempotency_key": idempotency_key,
    }


def _change(result: ledger.LedgerResult, *, reason: str, response: Response) -> TransactionPublic:
    _mark_replayed(result.replayed, response)
    return TransactionPublic.of_result(result, reason=reason)


def _ended(ending: holds.HoldEnding, *, response: Response) -> HoldTransaction:
    _mark_replayed(ending.replayed, response)
    return HoldTransaction.of_ending(ending)


def _mark_replayed(replayed: bool, response: Response) -> None:
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
