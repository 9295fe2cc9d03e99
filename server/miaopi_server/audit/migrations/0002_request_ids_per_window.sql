-- Idempotency keys are scoped to the window that sent them: another window reusing a
-- request_id gets a decision of its own, never this window's (nor can it pre-claim this
-- window's future ids). SQLite cannot drop the column's UNIQUE constraint in place, so the
-- table is rebuilt with the same rows, columns and indexes.
CREATE TABLE records_v2 (
    seq         INTEGER PRIMARY KEY,
    decision_id TEXT NOT NULL UNIQUE,
    request_id  TEXT,
    item_code   TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    window_id   TEXT NOT NULL,
    decided_at  TEXT NOT NULL,
    case_digest TEXT NOT NULL,
    body        TEXT NOT NULL,
    case_json   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    signature   BLOB NOT NULL
);
INSERT INTO records_v2 SELECT * FROM records;
DROP TABLE records;
ALTER TABLE records_v2 RENAME TO records;
CREATE UNIQUE INDEX records_request ON records (window_id, request_id);
CREATE INDEX records_item ON records (item_code, seq);
CREATE INDEX records_window ON records (window_id, seq);
CREATE INDEX records_time ON records (decided_at);
