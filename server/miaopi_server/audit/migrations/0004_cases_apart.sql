-- The case as received (facts: names, ID numbers) is stored apart from its record, so that it
-- can be erased after the retention period (`miaopi audit purge`) while the record, which
-- commits to the case's digest, still verifies. A record without its case row is purged only
-- if a purge event later in the chain covers it; otherwise verification reports it broken.
CREATE TABLE cases (
    seq       INTEGER PRIMARY KEY,
    case_json TEXT NOT NULL
);
INSERT INTO cases (seq, case_json) SELECT seq, case_json FROM records WHERE kind = 'decision';
ALTER TABLE records DROP COLUMN case_json;
