-- accuracy: accuracy per (checkpoint, test set, op, decoding) with a Wilson 95% interval; op = -1 pools ops.
CREATE VIEW accuracy AS
SELECT * EXCLUDE (filename),
       regexp_extract(filename, '/evaluate/([0-9a-f]+)/[^/]+$', 1) AS step
FROM {source};
