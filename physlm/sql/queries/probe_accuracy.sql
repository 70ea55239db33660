-- probe_accuracy — E4, paper Fig. 7a (Result 4; spec C.5).
-- Paper: the V-probe is highly accurate on all six tasks (nece, dep, known, value, can_next, nece_next),
-- far above both baselines, the majority guess (all-false: 83% on dep, 92% on nece_next) and the same
-- probe on a randomly initialised model; can_next ~99% (Part 2.2).
-- Slice "all", the paper's probe site (layer -1: the last layer, after the final LayerNorm); baselines
-- side by side, per test set (test_id: the paper's unseen templates; test_seen: fresh problems of the training
-- templates). Each row (V-probe and baselines alike) from one probe step, the newest that measured the checkpoint's
-- task on that test set (probe_metrics.latest): never pooled across probe steps of other recipes or seeds.
-- Columns: model, checkpoint_id, test_set, task, n, vprobe, random_init, linear, majority, vprobe_mcc,
-- random_init_mcc, probe_step (the hash of the probe step the row comes from).
WITH m AS (
    SELECT checkpoint_id, test_set, task, baseline,
           sum(n)::BIGINT AS n, sum(accuracy * n) / sum(n) AS accuracy,
           sum(majority_accuracy * n) / sum(n) AS majority, avg(mcc) AS mcc, max(step) AS probe_step
    FROM probe_metrics
    WHERE slice = 'all' AND layer = -1 AND latest
    GROUP BY ALL
)
SELECT coalesce(c.model, m.checkpoint_id) AS model, m.checkpoint_id, test_set, task,
       max(n) FILTER (WHERE baseline = 'vprobe') AS n,
       max(accuracy) FILTER (WHERE baseline = 'vprobe') AS vprobe,
       max(accuracy) FILTER (WHERE baseline = 'random_init') AS random_init,
       max(accuracy) FILTER (WHERE baseline = 'linear') AS linear,
       coalesce(max(majority) FILTER (WHERE baseline = 'vprobe'), max(majority)) AS majority,
       max(mcc) FILTER (WHERE baseline = 'vprobe') AS vprobe_mcc,
       max(mcc) FILTER (WHERE baseline = 'random_init') AS random_init_mcc,
       max(probe_step) AS probe_step
FROM m LEFT JOIN (SELECT DISTINCT checkpoint_id, model FROM checkpoints) c USING (checkpoint_id)
GROUP BY 1, 2, 3, 4
ORDER BY model, m.checkpoint_id, test_set, list_position(['nece', 'dep', 'known', 'value', 'can_next', 'nece_next'], task);
