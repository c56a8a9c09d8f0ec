"""hold_place, hold_end: a hold's fast paths on PostgreSQL as one server-side call each

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 19:00:00

`holds.place_hold` and the ending of a hold (`capture_hold`, `release_hold`) call them in autocommit, as
`ledger.postgres.debit_in_one_call` calls `ledger_debit` (0014), whose shape and step functions they share: claim
the key (`ledger_claim`), then lock the customer (the general path's order; `ledger_lock_for_spending` for a
placing), take from the lots (`ledger_take_from_lots`), then every write, the key's outcome included, in one round
trip and one transaction. They leave every rare case to the general path having written nothing, through
`ledger_debit_leave`: verdict 'general' before a key is claimed, SQLSTATE LS001 (rolling the claim back) after.
Rare cases: no such customer or hold, a key used before, something due (a lot or hold of the customer, or a lot
of the hold past its expiry), a refusal with a key, a placing that makes `credits.low` or `credits.depleted`, a
capture larger than the hold, a lot of the hold whose credits were taken back (refunded or disputed), and a
capture's `credits.debited` whose reason only the hold knows and is not plain ASCII (Python's JSON escapes it).
tests/test_hold_paths.py runs the same random operations through them and through the general path and compares
the books. SQLite has no such functions.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# `datetime.isoformat()` of an aware UTC datetime, as Python writes a hold's times in a key's outcome.
ISO = """
CREATE FUNCTION hold_iso(moment timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT to_char(
        moment AT TIME ZONE 'UTC',
        CASE WHEN date_part('microseconds', moment)::bigint % 1000000 = 0
            THEN 'YYYY-MM-DD"T"HH24:MI:SS' ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US' END
    ) || '+00:00'
$$
"""

PLACE = """
CREATE FUNCTION hold_place(
    p_creator_id integer,
    p_customer_id integer,
    p_amount bigint,
    p_reason text,
    p_actor_type text,
    p_actor_id text,
    p_key text,
    p_request_hash text,
    p_now timestamptz,
    p_expires_at timestamptz,
    p_hold_json text,
    OUT o_verdict text,
    OUT o_hold_id integer,
    OUT o_balance bigint,
    OUT o_status text
) LANGUAGE plpgsql AS $$
DECLARE
    taken record;
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
    SELECT o_lots, o_single_lot INTO taken FROM ledger_take_from_lots(p_customer_id, p_amount);
    INSERT INTO hold (creator_id, customer_id, amount, captured, status, reason, expires_at, created_at, lots)
    VALUES (p_creator_id, p_customer_id, p_amount, 0, 'active', p_reason, p_expires_at, p_now, taken.o_lots)
    RETURNING id INTO o_hold_id;
    o_balance := o_balance - p_amount;
    UPDATE customer
    SET balance = o_balance, held = held + p_amount, next_expiry_at = least(next_expiry_at, p_expires_at),
        updated_at = p_now
    WHERE id = p_customer_id;
    INSERT INTO ledger_entry (
        creator_id, customer_id, lot_id, hold_id, delta, balance_after, kind, reason, actor_type, actor_id,
        idempotency_key, created_at
    )
    VALUES (
        p_creator_id, p_customer_id, taken.o_single_lot, o_hold_id, -p_amount, o_balance, 'hold', p_reason,
        p_actor_type, p_actor_id, p_key, p_now
    );
    IF p_key IS NOT NULL THEN  -- the HoldSummary Python wrote, with its id
        UPDATE idempotency_record
        SET outcome = jsonb_build_object('result', p_hold_json::jsonb || jsonb_build_object('id', o_hold_id))::text
        WHERE creator_id = p_creator_id AND key = p_key;
    END IF;
    o_verdict := 'placed';
END $$
"""

END = """
CREATE FUNCTION hold_end(
    p_creator_id integer,
    p_hold_id integer,
    p_captured bigint,
    p_status text,
    p_reason text,
    p_reason_json text,
    p_actor_type text,
    p_actor_id text,
    p_actor_json text,
    p_key text,
    p_request_hash text,
    p_now timestamptz,
    p_now_text text,
    OUT o_verdict text,
    OUT o_customer_id integer,
    OUT o_entry_id integer,
    OUT o_delta bigint,
    OUT o_balance bigint,
    OUT o_lot_id integer,
    OUT o_amount bigint,
    OUT o_captured bigint,
    OUT o_hold_status text,
    OUT o_hold_reason text,
    OUT o_reason text,
    OUT o_expires_at timestamptz,
    OUT o_created_at timestamptz
) LANGUAGE plpgsql AS $$
DECLARE
    locked record;
    hold_row record;
    piece record;
    to_keep bigint;
    kept bigint;
    lots_back integer := 0;
    soonest_back timestamptz;
BEGIN
    IF NOT ledger_claim(p_creator_id, p_key, p_request_hash, p_now) THEN
        o_verdict := 'general';
        RETURN;
    END IF;
    o_customer_id := (SELECT customer_id FROM hold WHERE id = p_hold_id AND creator_id = p_creator_id);
    SELECT balance, next_expiry_at INTO locked FROM customer WHERE id = o_customer_id FOR UPDATE;
    IF NOT FOUND OR locked.next_expiry_at <= p_now THEN  -- no such hold, or a lot or hold may be due
        o_verdict := ledger_debit_leave(p_key IS NOT NULL);
        RETURN;
    END IF;
    -- Read after the lock, so no other change of the hold can be under way.
    SELECT amount, status, reason, expires_at, created_at, lots INTO hold_row FROM hold WHERE id = p_hold_id;
    o_amount := hold_row.amount;
    o_hold_status := hold_row.status;
    o_hold_reason := hold_row.reason;
    o_expires_at := hold_row.expires_at;
    o_created_at := hold_row.created_at;
    IF hold_row.status <> 'active' THEN
        IF p_key IS NOT NULL THEN  -- the general path stores the refusal for the key
            PERFORM ledger_debit_leave(true);
        END IF;
        o_verdict := 'closed';
        RETURN;
    END IF;
    o_captured := coalesce(p_captured, hold_row.amount);
    o_reason := coalesce(p_reason, hold_row.reason);
    IF o_captured > hold_row.amount
        OR EXISTS (
            SELECT FROM jsonb_to_recordset(hold_row.lots) AS part(lot_id integer, amount bigint)
            JOIN credit_lot ON credit_lot.id = part.lot_id
            WHERE credit_lot.taken_back IS NOT NULL OR credit_lot.expires_at <= p_now
        )
        OR (
            p_status = 'captured' AND p_reason_json IS NULL AND hold_row.reason ~ '[^\\x01-\\x7f]'
            AND ledger_debited_subscribed(p_creator_id)
        )
    THEN  -- more than it holds, a lot of it taken back or due, or an event Python must write
        o_verdict := ledger_debit_leave(p_key IS NOT NULL);
        RETURN;
    END IF;
    to_keep := o_captured;
    o_delta := 0;
    FOR piece IN
        SELECT part.lot_id, part.amount, credit_lot.expires_at
        FROM jsonb_to_recordset(hold_row.lots) AS part(lot_id integer, amount bigint)
        JOIN credit_lot ON credit_lot.id = part.lot_id
        ORDER BY credit_lot.expires_at ASC NULLS LAST, credit_lot.created_at, credit_lot.id  -- SPENDING_ORDER
    LOOP
        kept := least(piece.amount, to_keep);  -- the captured credits are the first in spending order
        to_keep := to_keep - kept;
        CONTINUE WHEN piece.amount = kept;
        UPDATE credit_lot SET remaining = remaining + (piece.amount - kept) WHERE id = piece.lot_id;
        o_delta := o_delta + (piece.amount - kept);
        lots_back := lots_back + 1;
        o_lot_id := CASE WHEN lots_back = 1 THEN piece.lot_id END;  -- the one lot, or NULL for several
        soonest_back := least(soonest_back, piece.expires_at);
    END LOOP;
    UPDATE hold SET status = p_status, captured = o_captured, ended_at = p_now WHERE id = p_hold_id;
    o_balance := locked.balance + o_delta;
    UPDATE customer
    SET balance = o_balance, held = held - hold_row.amount, next_expiry_at = least(next_expiry_at, soonest_back),
        updated_at = p_now
    WHERE id = o_customer_id;
    INSERT INTO ledger_entry (
        creator_id, customer_id, lot_id, hold_id, delta, balance_after, kind, reason, actor_type, actor_id,
        idempotency_key, created_at
    )
    VALUES (
        p_creator_id, o_customer_id, o_lot_id, p_hold_id, o_delta, o_balance,
        CASE WHEN p_status = 'captured' THEN 'capture' ELSE 'release' END, o_reason, p_actor_type, p_actor_id,
        p_key, p_now
    )
    RETURNING id INTO o_entry_id;
    IF p_status = 'captured' AND ledger_debited_subscribed(p_creator_id) THEN
        -- webhooks.credits_data of the capture, as Python's compact JSON writes it
        INSERT INTO webhook_event (creator_id, type, data, ledger_entry_id, created_at)
        VALUES (
            p_creator_id, 'credits.debited',
            '{"customer_id":' || o_customer_id || ',"delta":' || -o_captured || ',"balance_after":' || o_balance
            || ',"reason":' || coalesce(p_reason_json, to_json(hold_row.reason)::text) || ',"actor":' || p_actor_json
            || ',"hold_id":"hold_' || p_hold_id || '"}',
            o_entry_id, p_now
        );
    END IF;
    IF p_key IS NOT NULL THEN
        UPDATE idempotency_record SET outcome = json_build_object('result', json_build_object(  -- HoldEnding
            'transaction', json_build_object(
                'entry_id', o_entry_id, 'customer_id', o_customer_id,
                'kind', CASE WHEN p_status = 'captured' THEN 'capture' ELSE 'release' END, 'delta', o_delta,
                'balance_after', o_balance, 'lot_id', o_lot_id, 'created_at', p_now_text, 'hold_id', p_hold_id
            ),
            'reason', o_reason,
            'hold', json_build_object(
                'id', p_hold_id, 'customer_id', o_customer_id, 'amount', hold_row.amount, 'captured', o_captured,
                'status', p_status, 'reason', hold_row.reason, 'expires_at', hold_iso(hold_row.expires_at),
                'created_at', hold_iso(hold_row.created_at), 'ended_at', p_now_text
            )
        ))::text
        WHERE creator_id = p_creator_id AND key = p_key;
    END IF;
    o_verdict := 'ended';
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(ISO)
    op.execute(PLACE)
    op.execute(END)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION hold_end")
    op.execute("DROP FUNCTION hold_place")
    op.execute("DROP FUNCTION hold_iso")
