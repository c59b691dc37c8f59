-- Which Redis ledger this database archives, beyond its KEY_PREFIX: the id the ledger keeps in its meta
-- hash (ledger/meta.ts ledgerIdentity). Two deployments with the default KEY_PREFIX given one DATABASE_URL
-- had the same prefix; the second took the first one's positions as its own. NULL until a ledger claims it
-- (an archive made before this column: its ledger claims it at its next start).
ALTER TABLE archive_ledger ADD COLUMN ledger_id text;
