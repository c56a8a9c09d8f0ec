-- Our debit as the ledger's fast path issues it, straight in SQL (pgbench custom script): the database's own
-- limit for our workload. Variables: creator, lo, hi (customer ids). One statement in autocommit, as
-- `ledger.postgres.debit_in_one_call` sends it: the function `ledger_debit` (migration 0014) claims the
-- idempotency key, locks the customer, takes from the lots in spending order, moves the balance, writes the
-- ledger entry (and a credits.debited event when subscribed) and stores the key's outcome.
\set cid random(:lo, :hi)
\set nonce random(1, 1000000000000)
SELECT * FROM ledger_debit(:creator, :cid, 1, 'bench', 'api_key', '1', 'pgbench-' || :client_id || '-' || :nonce,
  'bench', now(), now()::text, '{"customer_id":' || :cid || ',"delta":-1,"balance_after":',
  ',"reason":"bench","actor":{"type":"api_key","id":"1"}}');
