-- Escalations (督办), their webhook, and erasable rating comments.
--
-- Alerts gain `ref` (what raised the alert, when one task may raise several of a kind: an
-- escalation's transition id; '' for the scheduler's alerts, still once per task and kind),
-- `recipients` (JSON array of principal ids an escalation is addressed to) and `note` (the
-- supervisor's). SQLite cannot change a UNIQUE constraint in place: the table is rebuilt,
-- keeping every seq (the stream's cursor) and the AUTOINCREMENT counter.
CREATE TABLE alerts_v9 (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    decision_id  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    item_code    TEXT NOT NULL,
    department   TEXT NOT NULL,
    jurisdiction TEXT NOT NULL,
    due_on       TEXT NOT NULL,
    raised_at    TEXT NOT NULL,
    ref          TEXT NOT NULL DEFAULT '',
    recipients   TEXT NOT NULL DEFAULT '[]',
    note         TEXT NOT NULL DEFAULT '',
    UNIQUE (decision_id, kind, ref)
);
INSERT INTO alerts_v9 (seq, decision_id, kind, item_code, department, jurisdiction, due_on,
                       raised_at)
    SELECT seq, decision_id, kind, item_code, department, jurisdiction, due_on, raised_at
    FROM alerts ORDER BY seq;
-- The counter goes on from the highest seq ever given (even of alerts no longer there).
DELETE FROM sqlite_sequence WHERE name = 'alerts_v9';
INSERT INTO sqlite_sequence (name, seq) SELECT 'alerts_v9', seq FROM sqlite_sequence
    WHERE name = 'alerts';
DROP TABLE alerts;
ALTER TABLE alerts_v9 RENAME TO alerts;
CREATE INDEX alerts_scope ON alerts (jurisdiction, seq);
-- The webhook's durable outbox: one row per notification, inserted in the transaction of the
-- alert it carries (so a crash never loses one), delivered at least once. A process takes a
-- row by setting its lease (lease_owner, lease_until) in a write transaction, so with
-- --workers N one process sends it; a lease that runs out (its holder died) is taken again.
-- A failure sets next_at (exponential backoff) and last_error; success sets delivered_at.
CREATE TABLE webhook_outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_seq    INTEGER NOT NULL UNIQUE,
    body         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      TEXT NOT NULL,
    lease_owner  TEXT NOT NULL DEFAULT '',
    lease_until  TEXT NOT NULL DEFAULT '',
    delivered_at TEXT NOT NULL DEFAULT '',
    last_error   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (delivered_at, next_at);
-- A citizen's rating comment is personal data: kept here, outside the sealed record, which
-- holds only its salted digest (comment_digest), so a purge can erase it with the case.
CREATE TABLE rating_comments (
    decision_id TEXT PRIMARY KEY,
    seq         INTEGER NOT NULL,
    salt        TEXT NOT NULL,
    comment     TEXT NOT NULL
);
