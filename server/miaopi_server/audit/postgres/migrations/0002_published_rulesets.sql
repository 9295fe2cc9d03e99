-- Published rule sets, archived content-addressed (SQLite migration 0008; docs/AUDIT.md):
-- every set that went live, its full text, once per digest, written in the commit of its
-- "ruleset_published" event; never updated or deleted.
CREATE TABLE published_rulesets (
    set_digest         TEXT PRIMARY KEY,
    files              TEXT NOT NULL,  -- JSON array of {"path", "content"}, by path
    first_published_at TEXT COLLATE "C" NOT NULL
);
-- Each item version of a set, so a decision's RulesetRef.digest finds the set it came from.
CREATE TABLE published_items (
    item_digest TEXT NOT NULL,
    label       TEXT NOT NULL,  -- "CODE@VERSION"
    set_digest  TEXT NOT NULL REFERENCES published_rulesets (set_digest),
    PRIMARY KEY (item_digest, set_digest)
);
