"""ledger_debit: the debit's fast path on PostgreSQL as one server-side call

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 18:00:00

`ledger.postgres.debit_in_one_call` calls it in autocommit: the key's claim, the customer's lock, the lots,
the balance, the ledger entry, its `credits.debited` event and the key's outcome in one round trip and one
transaction. It follows `ledger.rules` (spending order, the one lot named, refusals) and leaves every rare
case to the general path: it returns verdict 'general' having written nothing, or, once it has claimed a key,
raises SQLSTATE LS001 so that the claim is rolled back. Its steps are functions of their own, which holds' fast
paths (0015) share: `ledger_claim`, `ledger_lock_for_spending`, `ledger_take_from_lots`,
`ledger_debited_subscribed`. tests/test_ledger_paths.py runs the same random operations through it and through
the general path and compares the books. SQLite has no such functions.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEAVE = """
CREATE FUNCTION ledger_debit_leave(claimed boolean) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF claimed THEN  -- roll the claim back with everything else: the general path claims the key again
        RAISE EXCEPTION 'left to the general path' USING ERRCODE = 'LS001';
    END IF;
    RETURN 'general';
END $$
"""

# The steps the fast paths share (this debit, and holds' in 0015), each written once.
CLAIM = """
CREATE FUNCTION ledger_claim(p_creator_id integer, p_key text, p_request_hash text, p_now timestamptz)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN  -- true once the key is claimed (or there is none); false when it was used before: a replay or a conflict
    IF p_key IS NULL THEN
        RETURN true;
    END IF;
    INSERT INTO idempotency_record (creator_id, key, request_hash, outcome, created_at)
    VALUES (p_creator_id, p_key, p_request_hash, '', p_now)
    ON CONFLICT (creator_id, key) DO NOTHING;
    RETURN FOUND;
END $$
"""

LOCK_FOR_SPENDING = """
CREATE FUNCTION ledger_lock_for_spending(
    p_creator_id integer,
    p_customer_id integer,
    p_amount bigint,
    p_claimed boolean,
    p_now timestamptz,
    OUT o_verdict text,
    OUT o_balance bigint,
    OUT o_status text
) LANGUAGE plpgsql AS $$
DECLARE
    locked record;
    threshold bigint;
BEGIN  -- lock the customer; 'spend' when taking p_amount is for the fast path, else 'refused' or 'general'
    SELECT balance, status, next_expiry_at INTO locked
    FROM customer WHERE id = p_customer_id AND creator_id = p_creator_id FOR UPDATE;
    IF NOT FOUND OR locked.next_expiry_at <= p_now THEN  -- no such customer, or a lot or hold may be due
        o_verdict := ledger_debit_leave(p_claimed);
        RETURN;
    END IF;
    o_balance := locked.balance;
    o_status := locked.status;
    IF locked.status = 'suspended' OR locked.balance < p_amount THEN
        IF p_claimed THEN  -- the general path stores the refusal for the key
            PERFORM ledger_debit_leave(true);
        END IF;
        o_verdict := 'refused';  -- refused whole: nothing written
        RETURN;
    END IF;
    threshold := (SELECT credits_low_threshold FROM webhook_settings WHERE creator_id = p_creator_id);
    IF locked.balance = p_amount OR (locked.balance - p_amount < threshold AND threshold <= locked.balance) THEN
        o_verdict := ledger_debit_leave(p_claimed);  -- credits.depleted or credits.low: the general path
        RETURN;
    END IF;
    o_verdict := 'spend';
END $$
"""

TAKE_FROM_LOTS = """
CREATE FUNCTION ledger_take_from_lots(
    p_customer_id integer, p_amount bigint, OUT o_lots jsonb, OUT o_single_lot integer
) LANGUAGE plpgsql AS $$
DECLARE
    lot record;
    still_needed bigint := p_amount;
    taken bigint;
    lots_taken integer := 0;
BEGIN  -- what each lot gave ([{lot_id, amount}]) and the one lot, or NULL for several
    o_lots := '[]';
    FOR lot IN
        SELECT id, remaining FROM credit_lot WHERE customer_id = p_customer_id AND remaining > 0
        ORDER BY expires_at ASC NULLS LAST, created_at, id  -- ledger.rules.SPENDING_ORDER
    LOOP
        taken := least(lot.remaining, still_needed);
        UPDATE credit_lot SET remaining = remaining - taken WHERE id = lot.id;
        o_lots := o_lots || jsonb_build_object('lot_id', lot.id, 'amount', taken);
        lots_taken := lots_taken + 1;
        o_single_lot := CASE WHEN lots_taken = 1 THEN lot.id END;
        still_needed := still_needed - taken;
        EXIT WHEN still_needed = 0;
    END LOOP;
END $$
"""

DEBITED_SUBSCRIBED = """
CREATE FUNCTION ledger_debited_subscribed(p_creator_id integer) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT FROM webhook_endpoint
        WHERE creator_id = p_creator_id AND enabled AND event_types LIKE '%,credits.debited,%'
    )
$$
"""

DEBIT = """
CREATE FUNCTION ledger_debit(
    p_creator_id integer,
    p_customer_id integer,
    p_amount bigint,
    p_reason text,
    p_actor_type text,
    p_actor_id text,
    p_key text,
    p_request_hash text,
    p_now timestamptz,
    p_now_text text,
    p_event_head text,
    p_event_tail text,
    OUT o_verdict text,
    OUT o_entry_id integer,
    OUT o_lot_id integer,
    OUT o_balance bigint,
    OUT o_status text
) LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ledger_claim(p_creator_id, p_key, p_request_hash, p_now) THEN
        o_verdict := 'general';
        RETURN;
    END IF;
    SELECT spending.o_verdict, spending.o_balance, spending.o_status INTO o_verdict, o_balance, o_status
    FROM ledger_lock_for_spending(p_creator_id, p_customer_id, p_amount, p_key IS NOT NULL, p_now) AS spending;
    IF o_verdict <> 'spend' THEN
        RETURN;
    END IF;
    o_lot_id := (SELECT o_single_lot FROM ledger_take_from_lots(p_customer_id, p_amount));
    o_balance := o_balance - p_amount;
    UPDATE customer SET balance = o_balance, updated_at = p_now WHERE id = p_customer_id;
    INSERT INTO ledger_entry (
        creator_id, customer_id, lot_id, delta, balance_after, kind, reason, actor_type, actor_id,
        idempotency_key, created_at
    )
    VALUES (
        p_creator_id, p_customer_id, o_lot_id, -p_amount, o_balance, 'debit', p_reason, p_actor_type, p_actor_id,
        p_key, p_now
    )
    RETURNING id INTO o_entry_id;
    IF ledger_debited_subscribed(p_creator_id) THEN
        INSERT INTO webhook_event (creator_id, type, data, ledger_entry_id, created_at)
        VALUES (p_creator_id, 'credits.debited', p_event_head || o_balance || p_event_tail, o_entry_id, p_now);
    END IF;
    IF p_key IS NOT NULL THEN
        UPDATE idempotency_record SET outcome = json_build_object('result', json_build_object(  -- LedgerResult
            'entry_id', o_entry_id, 'customer_id', p_customer_id, 'kind', 'debit', 'delta', -p_amount,
            'balance_after', o_balance, 'lot_id', o_lot_id, 'created_at', p_now_text, 'hold_id', NULL
        ))::text
        WHERE creator_id = p_creator_id AND key = p_key;
    END IF;
    o_verdict := 'debited';
END $$
"""

STEPS = (LEAVE, CLAIM, LOCK_FOR_SPENDING, TAKE_FROM_LOTS, DEBITED_SUBSCRIBED)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for function in (*STEPS, DEBIT):
        op.execute(function)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in (
        "ledger_debit",
        "ledger_debited_subscribed",
        "ledger_take_from_lots",
        "ledger_lock_for_spending",
        "ledger_claim",
        "ledger_debit_leave",
    ):
        op.execute(f"DROP FUNCTION {name}")
