-- layer_distance — E10, paper Figs. 10 and 14 (Result 8; spec C.7).
-- Paper: nece(A) probed from each layer's hidden state, for necessary A binned by their distance t = 1..8
-- from the query: shallow layers get small t right; larger t need deeper layers (the model's depth bounds
-- the reasoning length it can plan in one pass).
-- probe_metrics slices "t=1".."t=8" of task nece, V-probe, every layer (-1 = after the final LayerNorm,
-- i.e. the last layer), per test set; each from the newest probe step that measured it (latest).
-- Columns: model, checkpoint_id, test_set, layer, t, n, accuracy, majority.
WITH m AS (
    SELECT checkpoint_id, test_set, layer::INTEGER AS layer, CAST(substr(slice, 3) AS INTEGER) AS t,
           sum(n)::BIGINT AS n, sum(accuracy * n) / sum(n) AS accuracy,
           sum(majority_accuracy * n) / sum(n) AS majority
    FROM probe_metrics
    WHERE task = 'nece' AND baseline = 'vprobe' AND slice LIKE 't=%' AND latest
    GROUP BY ALL
)
SELECT coalesce(c.model, m.checkpoint_id) AS model, m.*
FROM m LEFT JOIN (SELECT DISTINCT checkpoint_id, model FROM checkpoints) c USING (checkpoint_id)
ORDER BY model, m.checkpoint_id, test_set, layer = -1, layer, t;
