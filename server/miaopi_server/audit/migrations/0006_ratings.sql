-- Citizen ratings (好差评) of closed cases: one per case, never changed (the primary key
-- refuses a second). Each is also a record of kind 'transition' (action 'rate') in the chain;
-- this table is the copy KPIs read.
CREATE TABLE ratings (
    decision_id TEXT PRIMARY KEY,
    score       INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    rated_at    TEXT NOT NULL,
    seq         INTEGER NOT NULL
);
