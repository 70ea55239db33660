-- probe_by_label — E6, paper Fig. 12 (spec C.5).
-- Paper: dep and nece_next are skewed (all-false scores 83% / 92%), so the accuracy is split by the true
-- label: the probe is accurate on the positives as well as on the negatives, i.e. it is no majority guess.
-- probe_metrics slices "positive" / "negative", tasks dep and nece_next, layer -1, per test set; each from the
-- newest probe step that measured it (latest).
-- Columns: model, checkpoint_id, test_set, task, label (positive | negative), n, vprobe, random_init, linear,
-- majority, probe_step.
WITH m AS (
    SELECT checkpoint_id, test_set, task, slice AS label, baseline,
           sum(n)::BIGINT AS n, sum(accuracy * n) / sum(n) AS accuracy,
           sum(majority_accuracy * n) / sum(n) AS majority, max(step) AS probe_step
    FROM probe_metrics
    WHERE slice IN ('positive', 'negative') AND layer = -1 AND task IN ('dep', 'nece_next') AND latest
    GROUP BY ALL
)
SELECT coalesce(c.model, m.checkpoint_id) AS model, m.checkpoint_id, test_set, task, label,
       max(n) FILTER (WHERE baseline = 'vprobe') AS n,
       max(accuracy) FILTER (WHERE baseline = 'vprobe') AS vprobe,
       max(accuracy) FILTER (WHERE baseline = 'random_init') AS random_init,
       max(accuracy) FILTER (WHERE baseline = 'linear') AS linear,
       coalesce(max(majority) FILTER (WHERE baseline = 'vprobe'), max(majority)) AS majority,
       max(probe_step) AS probe_step
FROM m LEFT JOIN (SELECT DISTINCT checkpoint_id, model FROM checkpoints) c USING (checkpoint_id)
GROUP BY 1, 2, 3, 4, 5
ORDER BY model, m.checkpoint_id, test_set, task, label DESC;
