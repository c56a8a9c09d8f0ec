"""The routes of API v1: each authenticates the key, makes one service call and shapes the answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Path, Query, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from litesubs.api.v1.errors import REPLAYED_HEADER, REPLAYED_HEADER_DOC, responses
from litesubs.api.v1.rate_limit import API_KEY_LIMITS
from litesubs.api.v1.schemas import (
    CreditRequest,
    CustomerDetail,
    CustomerList,
    DebitRequest,
    EventList,
    EventType,
    PackList,
    PackPublic,
    TransactionList,
    TransactionPublic,
)
from litesubs.models import ApiKey
from litesubs.services import api_keys, ledger, webhooks
from litesubs.services.customer_accounts import customer_account, page_customers
from litesubs.services.customers import customer_id_of
from litesubs.services.idempotency import MAX_KEY_LENGTH
from litesubs.services.packs import list_packs

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from the dashboard's API keys page: `Authorization: Bearer ls_...`.",
)


def authenticated_key(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> ApiKey:
    """The live API key of the request, within its rate limit."""
    key = api_keys.authenticate(secret=credentials.credentials if credentials else None)
    API_KEY_LIMITS.take(key.id)
    return key


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
    str | None, Query(max_length=100, description="`next_cursor` of the previous page; omit for the first page.")
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
_CHANGE_RESPONSES = {
    200: {"description": "The change, as the ledger recorded it.", "headers": REPLAYED_HEADER_DOC},
    **responses(401, 403, 404, 409, 422, 429, replayable=(403, 409)),
}

router = APIRouter(tags=["API v1"])
T = TypeVar("T")


@router.get("/customers", response_model=CustomerList, responses=responses(401, 422, 429))
async def list_customers(
    key: CurrentKey,
    email: Annotated[str | None, Query(max_length=320, description="Only the customer with this buyer email.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> CustomerList:
    """Your customers with their balances, newest first."""
    page = await _blocking(lambda: page_customers(creator_id=key.creator_id, email=email, limit=limit, cursor=cursor))
    return CustomerList.of(page)


@router.get("/customers/{ref}", response_model=CustomerDetail, responses=responses(401, 404, 422, 429))
async def get_customer(ref: CustomerRef, key: CurrentKey) -> CustomerDetail:
    """One customer: balance, status and unexpired credit lots."""
    return CustomerDetail.of(await _blocking(lambda: customer_account(creator_id=key.creator_id, ref=ref)))


@router.post("/customers/{ref}/debit", response_model=TransactionPublic, responses=_CHANGE_RESPONSES)
async def debit_customer(
    ref: CustomerRef, body: DebitRequest, key: CurrentKey, response: Response, idempotency_key: IdempotencyKey = None
) -> TransactionPublic:
    """Spend credits: all of `amount` or, when the balance is lower (409) or the customer suspended (403), none."""

    def spend() -> ledger.LedgerResult:
        return ledger.debit(**_change_by(key, ref=ref, idempotency_key=idempotency_key), **body.model_dump())

    return _change(await _blocking(spend), reason=body.reason, response=response)


@router.post("/customers/{ref}/credit", response_model=TransactionPublic, responses=_CHANGE_RESPONSES)
async def credit_customer(
    ref: CustomerRef, body: CreditRequest, key: CurrentKey, response: Response, idempotency_key: IdempotencyKey = None
) -> TransactionPublic:
    """Grant free credits (kept apart from paid ones), optionally expiring at `expires_at`."""

    def give() -> ledger.LedgerResult:
        return ledger.grant(**_change_by(key, ref=ref, idempotency_key=idempotency_key), **body.model_dump())

    return _change(await _blocking(give), reason=body.reason, response=response)


@router.get("/customers/{ref}/transactions", response_model=TransactionList, responses=responses(401, 404, 422, 429))
async def list_transactions(
    ref: CustomerRef, key: CurrentKey, limit: Limit = 50, cursor: Cursor = None
) -> TransactionList:
    """The customer's ledger, newest first: every change of credits, who made it and why."""

    def entries() -> ledger.LedgerPage:
        customer_id = customer_id_of(creator_id=key.creator_id, ref=ref)
        return ledger.list_entries(creator_id=key.creator_id, customer_id=customer_id, limit=limit, cursor=cursor)

    page = await _blocking(entries)
    return TransactionList(
        data=[TransactionPublic.of_entry(entry) for entry in page.entries], next_cursor=page.next_cursor
    )


@router.get("/packs", response_model=PackList, responses=responses(401, 429), summary="List packs")
async def list_your_packs(key: CurrentKey) -> PackList:
    """Your packs, newest first, with their links."""
    packs = await _blocking(lambda: list_packs(creator_id=key.creator_id))
    return PackList(data=[PackPublic.of(summary) for summary in packs])


@router.get("/events", response_model=EventList, responses=responses(401, 422, 429))
async def list_events(
    key: CurrentKey,
    event_type: Annotated[EventType | None, Query(alias="type", description="Only events of this type.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> EventList:
    """Your events, newest first: what webhooks deliver, for a receiver that was down and catches up."""
    page = await _blocking(
        lambda: webhooks.list_events(creator_id=key.creator_id, event_type=event_type, limit=limit, cursor=cursor)
    )
    return EventList.of(page)


async def _blocking(call: Callable[[], T]) -> T:
    """Run a service call, which waits on the database, in a worker thread.

    The routes themselves are `async`: FastAPI then checks and serialises their answers in place, where
    for a sync route it takes another trip to a worker thread (~15 % of a debit's cost under load).
    """
    return await run_in_threadpool(call)


def _change_by(key: ApiKey, *, ref: str, idempotency_key: str | None) -> dict[str, Any]:
    """The ledger arguments that say whose credits change and who changes them: the key's creator's customer."""
    return {
        "creator_id": key.creator_id,
        "customer_id": customer_id_of(creator_id=key.creator_id, ref=ref),
        "actor": ledger.Actor("api_key", key.id),
        "idempotency_key": idempotency_key,
    }


def _change(result: ledger.LedgerResult, *, reason: str, response: Response) -> TransactionPublic:
    if result.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return TransactionPublic.of_result(result, reason=reason)
