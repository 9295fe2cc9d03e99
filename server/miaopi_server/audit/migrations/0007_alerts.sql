-- Alerts (实时提醒) raised from the stored tasks by the scheduler (casework/alerts.py): one
-- row per (task, kind), so a scheduler restarted, or one of several `--workers`, never raises
-- an alert twice (INSERT OR IGNORE). `seq` is the cursor WatchAlerts resumes from.
CREATE TABLE alerts (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    decision_id  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    item_code    TEXT NOT NULL,
    department   TEXT NOT NULL,
    jurisdiction TEXT NOT NULL,
    due_on       TEXT NOT NULL,
    raised_at    TEXT NOT NULL,
    UNIQUE (decision_id, kind)
);
CREATE INDEX alerts_scope ON alerts (jurisdiction, seq);
