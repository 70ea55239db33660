-- accuracy_by_op — E2, paper Fig. 3 (Result 2; spec C.3).
-- Paper: fully-correct accuracy is ~99% in distribution and degrades with op, to about 80% at the largest
-- out-of-distribution op; beam 4 (sampling) is no better than greedy.
-- One row per (model, checkpoint, test set, op, decoding); op = -1 pools every op of the test set.
-- Generations are counted once per (checkpoint, problem, test set, decoding), however many evaluate steps
-- scored them. CI: Wilson 95% interval.
-- Columns: model, checkpoint_id, test_set, op, decoding, n, correct, accuracy, ci_low, ci_high.
WITH g AS (
    SELECT DISTINCT ON (checkpoint_id, problem_id, test_set, decoding) checkpoint_id, test_set, op, decoding, correct
    FROM generations
    ORDER BY checkpoint_id, problem_id, test_set, decoding, step
), counts AS (
    SELECT checkpoint_id, test_set, coalesce(op, -1)::INTEGER AS op, decoding,
           count(*) AS n, count(*) FILTER (WHERE correct) AS correct
    FROM g
    GROUP BY GROUPING SETS ((checkpoint_id, test_set, op, decoding), (checkpoint_id, test_set, decoding))
), p AS (
    SELECT *, correct / n AS accuracy FROM counts
)
SELECT coalesce(c.model, p.checkpoint_id) AS model, p.checkpoint_id, test_set, op, decoding, n, correct, accuracy,
       wilson_low(correct, n) AS ci_low, wilson_high(correct, n) AS ci_high
FROM p LEFT JOIN (SELECT DISTINCT checkpoint_id, model FROM checkpoints) c USING (checkpoint_id)
ORDER BY model, p.checkpoint_id, test_set, op, decoding;
