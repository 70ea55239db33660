-- probe_metrics: one row per (checkpoint, task, layer, baseline, slice) of every finished probe step
-- (physlm.tables.PROBE_METRICS): slice = all | positive | negative | unnecessary | t=1..t=8 (nece only); accuracy,
-- mcc (null where undefined), majority_accuracy (train-majority class scored on the slice); plus `step`.
CREATE VIEW probe_metrics AS
SELECT * EXCLUDE (filename),
       regexp_extract(filename, '/probe/([0-9a-f]+)/[^/]+$', 1) AS step
FROM {source};
