-- probe_metrics: one row per (checkpoint, test set, task, layer, baseline, slice) of every finished probe step
-- (physlm.tables.PROBE_METRICS): test_set = test_id | test_seen (files written before the column existed:
-- test_id, the only test set probes had); slice = all | positive | negative | unnecessary | t=1..t=8 (nece
-- only); accuracy, mcc (null where undefined), majority_accuracy (train-majority class scored on the slice);
-- plus `step`, `ended_at` (its step.json's, ISO time; NULL without one) and `latest`: true on the rows of the
-- newest probe step (the analyze step's own probe input first) that measured this checkpoint's task on this
-- test set — all its layers, baselines and slices, so one figure's row never mixes probe steps; the per-layer
-- distance slices (t=1..8, E10) are chosen apart. What the canned queries read: a root that keeps an older
-- probe step of the same model reports the newer one.
CREATE VIEW probe_metrics AS
WITH r AS (
    SELECT * EXCLUDE (filename, test_set), coalesce(test_set, 'test_id') AS test_set,
           regexp_extract(filename, '/probe/([0-9a-f]+)/[^/]+$', 1) AS step
    FROM (FROM {source} UNION ALL BY NAME SELECT NULL::VARCHAR AS test_set WHERE false)
)
SELECT r.*, s.ended_at,
       s.step_order = max(s.step_order) OVER (PARTITION BY checkpoint_id, test_set, task, slice LIKE 't=%')
           AS latest
FROM r LEFT JOIN _probe_steps s USING (step);
