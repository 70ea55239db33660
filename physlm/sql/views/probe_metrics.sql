-- probe_metrics: one row per (checkpoint, test set, task, layer, baseline, slice) of every finished probe step
-- (physlm.tables.PROBE_METRICS): test_set = test_id | test_seen (files written before the column existed:
-- test_id, the only test set probes had); slice = all | positive | negative | unnecessary | t=1..t=8 (nece
-- only); accuracy, mcc (null where undefined), majority_accuracy (train-majority class scored on the slice);
-- plus `step`.
CREATE VIEW probe_metrics AS
SELECT * EXCLUDE (filename, test_set), coalesce(test_set, 'test_id') AS test_set,
       regexp_extract(filename, '/probe/([0-9a-f]+)/[^/]+$', 1) AS step
FROM (FROM {source} UNION ALL BY NAME SELECT NULL::VARCHAR AS test_set WHERE false);
