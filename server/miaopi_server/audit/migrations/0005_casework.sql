-- Casework (办件): the task a decision opened (MANUAL_REVIEW: a review; APPROVE with deferred
-- materials: a supplement), inserted in the commit of its decision and kept current by
-- transitions, each a record of kind 'transition' in the chain. A case the rules closed at
-- once has no row: its decision record is the whole case. `task` is the whole task as JSON
-- (casework/codec.py); the other columns are copies for the queue's queries.
CREATE TABLE tasks (
    decision_id  TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    item_code    TEXT NOT NULL,
    department   TEXT NOT NULL,
    jurisdiction TEXT NOT NULL,
    window_id    TEXT NOT NULL,
    opened_at    TEXT NOT NULL,
    assignee     TEXT NOT NULL DEFAULT '',
    last_seq     INTEGER NOT NULL,
    task         TEXT NOT NULL
);
CREATE INDEX tasks_queue ON tasks (department, state, opened_at);
CREATE INDEX tasks_item ON tasks (item_code, opened_at);
