"""The credit ledger: how a customer's credits are granted, spent, adjusted, refunded and expire.

Credits live in lots (one per purchase or grant). The rules, from DESIGN.md:

- Every change of credits is one transaction that locks the customer (a row lock on PostgreSQL;
  on SQLite the write transaction holds the database lock), first expires the lots whose time has
  passed, then writes the lots, the cached balance and exactly one ledger entry together. So at
  every commit: balance == sum of unexpired lots' remaining == sum of ledger deltas >= 0.
- Spending takes from the soonest-expiring lot first, never-expiring lots last, older lots first
  on ties. A debit larger than the balance is refused whole and changes nothing.
- A suspended customer cannot spend or buy; the creator can still adjust credits by hand.
- A lot expires when its `expires_at` is not in the future; its remaining credits leave with one
  `expiry` entry. This happens lazily whenever the customer is read or written, and for the whole
  database through `expire_due_credits` (`python -m litesubs expire-credits`).
- An operation carrying an idempotency key runs at most once per creator (see `idempotency`).
- Holds (`services.holds`) reserve credits: a hold takes them from the lots like a spend (so the balance is
  what can be spent or held now, and `held` counts the rest apart) and gives what it does not spend back to
  the same lots. A hold past its expiry is released like a lot expires: lazily, and by a sweep.

The map, in the order a newcomer reads it:

- `model`: the words (`Actor`, `Cause`, `LedgerResult`, `CustomerBalance`, ...) and the checks of input.
- `rules`: the rules written once: spending order, which lots a spend takes, what is due, what is refused.
- `operations`: `grant`, `debit`, `adjust`, `expire_due_credits`, and the same work in the caller's
  transaction for payments (`lock_customer`, `grant_in_session`, `take_back_lot`, ...).
- `reads`: `get_balance` and `list_entries`.
- `transaction`: the general path every change takes (`change_credits`) and the steps a change is made of;
  `services.holds` builds on these.
- `postgres`: the debit's fast path on PostgreSQL, the same rules in one round trip (the server-side
  function `ledger_debit` of migration 0014; tests/test_ledger_paths.py holds it to the general path).
- `batching`: debits of one customer arriving together, run in one transaction (the `Coalescer`).

Callers import the package (`from litesubs.services import ledger`; `ledger.debit(...)`); what is exported
here is the ledger's interface.
"""

from litesubs.services.ledger.model import (
    ACTOR_TYPES,
    MAX_AMOUNT,
    MAX_PAGE_SIZE,
    MAX_REASON_LENGTH,
    SYSTEM,
    Actor,
    CustomerBalance,
    ExpirySummary,
    LedgerPage,
    LedgerResult,
    LotSummary,
    parse_credits,
)
from litesubs.services.ledger.operations import (
    adjust,
    debit,
    expire_due_credits,
    give_back_disputed,
    grant,
    grant_in_session,
    take_back_lot,
    take_back_returned,
)
from litesubs.services.ledger.reads import get_balance, list_entries
from litesubs.services.ledger.transaction import expire_due_lots, lock_customer

__all__ = [
    "ACTOR_TYPES",
    "MAX_AMOUNT",
    "MAX_PAGE_SIZE",
    "MAX_REASON_LENGTH",
    "SYSTEM",
    "Actor",
    "CustomerBalance",
    "ExpirySummary",
    "LedgerPage",
    "LedgerResult",
    "LotSummary",
    "adjust",
    "debit",
    "expire_due_credits",
    "expire_due_lots",
    "get_balance",
    "give_back_disputed",
    "grant",
    "grant_in_session",
    "list_entries",
    "lock_customer",
    "parse_credits",
    "take_back_lot",
    "take_back_returned",
]
