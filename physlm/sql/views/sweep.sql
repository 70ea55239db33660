-- sweep: one row per (sweep cell, model shape, seed, test set, decoding) of every finished sweep step
-- (physlm.tables.SWEEP): accuracy, and best = the best of the cell's seeds x decodings; plus `step`.
CREATE VIEW sweep AS
SELECT * EXCLUDE (filename),
       regexp_extract(filename, '/sweep/([0-9a-f]+)/[^/]+$', 1) AS step
FROM {source};
