-- probe_unnecessary — E5, paper Fig. 7b (Result 5; spec C.5).
-- Paper: dep(A, B) and can_next(A) stay accurate when A is an UNNECESSARY parameter (not in the
-- solution): the model computes the all-pair dependency graph before the question, a "level-2" skill the
-- training data never requires.
-- probe_metrics slice "unnecessary" (A not in the solution), tasks dep and can_next, layer -1; baselines
-- side by side, per test set, each from the newest probe step that measured it (latest).
-- Columns: model, checkpoint_id, test_set, task, n, vprobe, random_init, linear, majority, probe_step.
WITH m AS (
    SELECT checkpoint_id, test_set, task, baseline,
           sum(n)::BIGINT AS n, sum(accuracy * n) / sum(n) AS accuracy,
           sum(majority_accuracy * n) / sum(n) AS majority, max(step) AS probe_step
    FROM probe_metrics
    WHERE slice = 'unnecessary' AND layer = -1 AND task IN ('dep', 'can_next') AND latest
    GROUP BY ALL
)
SELECT coalesce(c.model, m.checkpoint_id) AS model, m.checkpoint_id, test_set, task,
       max(n) FILTER (WHERE baseline = 'vprobe') AS n,
       max(accuracy) FILTER (WHERE baseline = 'vprobe') AS vprobe,
       max(accuracy) FILTER (WHERE baseline = 'random_init') AS random_init,
       max(accuracy) FILTER (WHERE baseline = 'linear') AS linear,
       coalesce(max(majority) FILTER (WHERE baseline = 'vprobe'), max(majority)) AS majority,
       max(probe_step) AS probe_step
FROM m LEFT JOIN (SELECT DISTINCT checkpoint_id, model FROM checkpoints) c USING (checkpoint_id)
GROUP BY 1, 2, 3, 4
ORDER BY model, m.checkpoint_id, test_set, task;
