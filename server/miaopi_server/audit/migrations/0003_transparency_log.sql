-- The trail as a transparency log (RFC 9162): a Merkle tree over the records and one signed
-- tree head per group commit. tree_nodes holds every perfect subtree above the leaves
-- (level >= 1; a leaf is SHA-256(0x00 || record hash) and is not stored); tree_heads holds
-- every signed head. `kind` tells decisions from the trail's own events (purge, re-anchor).
CREATE TABLE tree_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE tree_heads (
    tree_size INTEGER PRIMARY KEY,
    root_hash TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    key_id    TEXT NOT NULL,
    signature BLOB NOT NULL
);
ALTER TABLE records ADD COLUMN kind TEXT NOT NULL DEFAULT 'decision';
