-- Our debit, statement for statement as the ledger issues it, straight in SQL (pgbench custom script):
-- the database's own limit for our workload. Variables: creator, lo, hi (customer ids).
\set cid random(:lo, :hi)
\set nonce random(1, 1000000000000)
BEGIN;
SAVEPOINT claim;
INSERT INTO idempotency_record (creator_id, key, request_hash, outcome, created_at)
  VALUES (:creator, 'pgbench-' || :client_id || '-' || :nonce, 'bench', '', now());
RELEASE SAVEPOINT claim;
SELECT id, balance, status FROM customer WHERE id = :cid AND creator_id = :creator FOR UPDATE;
SELECT id, remaining FROM credit_lot WHERE customer_id = :cid AND remaining > 0 AND expires_at <= now();
SELECT id AS lot FROM credit_lot WHERE customer_id = :cid AND remaining > 0
  ORDER BY expires_at ASC NULLS LAST, created_at, id LIMIT 1 \gset
UPDATE credit_lot SET remaining = remaining - 1 WHERE id = :lot;
UPDATE customer SET balance = balance - 1, updated_at = now() WHERE id = :cid RETURNING balance AS after \gset
INSERT INTO ledger_entry (creator_id, customer_id, lot_id, delta, balance_after, kind, reason, actor_type, actor_id,
  idempotency_key, created_at)
  VALUES (:creator, :cid, :lot, -1, :after, 'debit', 'bench', 'api_key', '1', 'pgbench-' || :client_id || '-' || :nonce, now());
UPDATE idempotency_record SET outcome = '{}' WHERE creator_id = :creator AND key = 'pgbench-' || :client_id || '-' || :nonce;
END;
