-- The ledger's history: every journal entry of every shard, copied from the Redis streams by the archiver
-- (switch/history/archiver.ts), and where each shard's copy has reached.
--
-- One row per journal entry, keyed by its shard and stream id (ms, seq): the archiver inserts with
-- ON CONFLICT DO NOTHING on that key, so a batch written twice (a crash between COMMIT and the next read)
-- adds nothing. Partitioned by month of the stream id (UTC), so an old month can be detached
-- (ALTER TABLE journal DETACH PARTITION journal_y2025m01) and kept or dumped on its own. The archiver
-- creates each month's partition before it inserts into it, and the next month's ahead of time.
CREATE TABLE journal (
  shard integer NOT NULL CHECK (shard >= 0),
  stream_ms bigint NOT NULL CHECK (stream_ms >= 0),
  stream_seq bigint NOT NULL CHECK (stream_seq >= 0),
  kind text NOT NULL,
  card_no text NOT NULL,
  amount_fen bigint NOT NULL CHECK (amount_fen > 0),
  from_party text NOT NULL,
  to_party text NOT NULL,
  balance_after_fen bigint NOT NULL,
  wallet_after_fen bigint,
  version bigint NOT NULL,
  terminal_id text NOT NULL,
  sequence text NOT NULL,
  -- The switch's decision time (`ts`): the statement line's time and the settlement day.
  at_ms bigint NOT NULL,
  -- Fields beyond the documented ones (`r`, `ot`, `ct`, ...), as name, value pairs in stream order.
  extra text[] NOT NULL DEFAULT '{}',
  -- The merchant the entry pays or refunds, for the merchant + day index.
  merchant text GENERATED ALWAYS AS (
    CASE WHEN to_party LIKE 'm:%' THEN substr(to_party, 3) WHEN from_party LIKE 'm:%' THEN substr(from_party, 3) END
  ) STORED,
  PRIMARY KEY (shard, stream_ms, stream_seq)
) PARTITION BY RANGE (stream_ms);

-- A card's statement, newest first.
CREATE INDEX journal_card_time ON journal (card_no, at_ms DESC);
-- A merchant's takings of a day.
CREATE INDEX journal_merchant_day ON journal (merchant, at_ms) WHERE merchant IS NOT NULL;

-- Where each shard's copy has reached: the last stream id archived. Written in the same transaction as
-- the rows it covers.
CREATE TABLE archive_position (
  shard integer PRIMARY KEY CHECK (shard >= 0),
  stream_ms bigint NOT NULL,
  stream_seq bigint NOT NULL,
  entries bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- The ledger this database archives (prefix, shard count): an archiver pointed at another ledger stops.
CREATE TABLE archive_ledger (
  key_prefix text PRIMARY KEY,
  shard_count integer NOT NULL
);
