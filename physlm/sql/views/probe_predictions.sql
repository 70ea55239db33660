-- probe_predictions: one row per probe test example of every finished probe step (physlm.tables.PROBE_PREDICTIONS):
-- checkpoint_id, test_set (the problem's set: test_id | test_seen for the probes' own test rows, a re-ask set
-- for E7, the generation's set for E8), task, layer (-1 = final LN), baseline (vprobe | random_init | linear),
-- problem_id, state (solution sentences written; 0 for nece/dep), param_a, param_b (dep), param_a_necessary,
-- distance, label, prediction, probability; `source` (the probe stage's: probe_test | reask_all_params (E7) |
-- first_wrong (E8)); plus `step`, `ended_at` (its step.json's, ISO time; NULL without one) and `latest`: true on
-- the rows of the newest probe step (the analyze step's own probe input first) that probed this checkpoint's
-- task on a test set's probe samples (source probe_test, per test set), or on the E7/E8 rows (any other source,
-- a missing one included, all together) — what the canned queries read. Files written before a column existed
-- read it as NULL (the UNION BY NAME with an empty relation makes it exist either way); test_set then reads
-- 'test_id' for the rows marked probe_test, the only test set probes had, and stays NULL for the others.
CREATE VIEW probe_predictions AS
WITH r AS (
    SELECT * EXCLUDE (filename, test_set),
           coalesce(test_set, CASE WHEN source = 'probe_test' THEN 'test_id' END) AS test_set,
           regexp_extract(filename, '/probe/([0-9a-f]+)/[^/]+$', 1) AS step
    FROM (FROM {source} UNION ALL BY NAME SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS test_set WHERE false)
)
SELECT r.*, s.ended_at,
       s.step_order = max(s.step_order) OVER (
           PARTITION BY checkpoint_id, task, CASE WHEN source = 'probe_test' THEN test_set ELSE '(E7/E8)' END
       ) AS latest
FROM r LEFT JOIN _probe_steps s USING (step);
