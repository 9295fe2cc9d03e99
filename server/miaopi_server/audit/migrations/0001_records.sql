-- The audit trail as the server created it before schema versions (commit ebea569): a
-- database holding `records` and no `schema_version` table is taken to be at version 1.
CREATE TABLE records (
    seq         INTEGER PRIMARY KEY,
    decision_id TEXT NOT NULL UNIQUE,
    request_id  TEXT UNIQUE,
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
CREATE INDEX records_item ON records (item_code, seq);
CREATE INDEX records_window ON records (window_id, seq);
CREATE INDEX records_time ON records (decided_at);
