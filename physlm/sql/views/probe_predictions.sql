-- probe_predictions: one row per probe test example of every finished probe step (physlm.tables.PROBE_PREDICTIONS):
-- checkpoint_id, task, layer (-1 = final LN), baseline (vprobe | random_init | linear), problem_id, state
-- (solution sentences written; 0 for nece/dep), param_a, param_b (dep), param_a_necessary, distance,
-- label, prediction, probability; `source` (the probe stage's: probe_test | reask_all_params (E7) |
-- first_wrong (E8); NULL for files written without it: the UNION BY NAME with an empty relation makes the
-- column exist either way); plus `step`.
CREATE VIEW probe_predictions AS
SELECT * EXCLUDE (filename),
       regexp_extract(filename, '/probe/([0-9a-f]+)/[^/]+$', 1) AS step
FROM (FROM {source} UNION ALL BY NAME SELECT NULL::VARCHAR AS source WHERE false);
