-- Our debit, statement for statement as the ledger's hot path issues it, straight in SQL (pgbench custom
-- script): the database's own limit for our workload. Variables: creator, lo, hi (customer ids).
-- 1. Claim the idempotency key and lock the customer; 2. take from the lots in spending order, move the
-- balance, write the ledger entry and store the key's outcome, all in one statement; then commit.
\set cid random(:lo, :hi)
\set nonce random(1, 1000000000000)
BEGIN;
WITH claim AS (
  INSERT INTO idempotency_record (creator_id, key, request_hash, outcome, created_at)
  VALUES (:creator, 'pgbench-' || :client_id || '-' || :nonce, 'bench', '', now())
  ON CONFLICT (creator_id, key) DO NOTHING RETURNING id)
SELECT balance FROM customer
  WHERE id = :cid AND creator_id = :creator AND EXISTS (SELECT id FROM claim) FOR UPDATE \gset
WITH taken AS (
  SELECT id, CASE WHEN remaining < 1 - earlier THEN remaining ELSE 1 - earlier END AS take
  FROM (SELECT id, remaining, coalesce(sum(remaining) OVER (ORDER BY expires_at ASC NULLS LAST, created_at, id
          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS earlier
        FROM credit_lot WHERE customer_id = :cid AND remaining > 0) AS open_lots
  WHERE earlier < 1 ORDER BY earlier),
spent AS (
  UPDATE credit_lot SET remaining = credit_lot.remaining - taken.take FROM taken
  WHERE credit_lot.id = taken.id RETURNING credit_lot.id),
moved AS (UPDATE customer SET balance = :balance - 1, updated_at = now() WHERE id = :cid RETURNING id),
entry AS (
  INSERT INTO ledger_entry (creator_id, customer_id, lot_id, delta, balance_after, kind, reason, actor_type,
    actor_id, idempotency_key, created_at)
  VALUES (:creator, :cid, (SELECT CASE WHEN count(*) = 1 THEN min(id) END FROM taken), -1, :balance - 1, 'debit',
    'bench', 'api_key', '1', 'pgbench-' || :client_id || '-' || :nonce, now())
  RETURNING id, lot_id, customer_id, kind, delta, balance_after),
remembered AS (
  UPDATE idempotency_record SET outcome = (SELECT json_build_object('result', json_build_object('entry_id', id,
    'lot_id', lot_id, 'customer_id', customer_id, 'kind', kind, 'delta', delta, 'balance_after', balance_after,
    'created_at', now()::text))::text FROM entry)
  WHERE creator_id = :creator AND key = 'pgbench-' || :client_id || '-' || :nonce)
SELECT id, lot_id FROM entry;
END;
