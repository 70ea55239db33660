-- unnecessary — E3, paper Fig. 4 (Result 3; spec C.4).
-- Paper: on the standard test sets the model almost never computes an unnecessary parameter (it finds the
-- shortest solution, a "level-1" skill); on re-ask data about 0.5 unnecessary parameters per correct
-- solution even at op = 32. Beam 1 shown (beam 4 nearly identical).
-- Over fully-correct solutions only; one row per (model, checkpoint, test set, op, decoding); op = -1
-- pools the test set's ops. Generations counted once per (checkpoint, problem, test set, decoding).
-- Columns: model, checkpoint_id, test_set, op, decoding, n_correct, mean_unnecessary,
--          share_with_unnecessary (solutions with >= 1 unnecessary parameter), max_unnecessary.
WITH g AS (
    SELECT DISTINCT ON (checkpoint_id, problem_id, test_set, decoding)
           checkpoint_id, test_set, op, decoding, n_unnecessary
    FROM generations
    WHERE correct
    ORDER BY checkpoint_id, problem_id, test_set, decoding, step
), agg AS (
    SELECT checkpoint_id, test_set, coalesce(op, -1)::INTEGER AS op, decoding,
           count(*) AS n_correct,
           avg(n_unnecessary) AS mean_unnecessary,
           avg(CASE WHEN n_unnecessary > 0 THEN 1.0 ELSE 0.0 END) AS share_with_unnecessary,
           max(n_unnecessary)::INTEGER AS max_unnecessary
    FROM g
    GROUP BY GROUPING SETS ((checkpoint_id, test_set, op, decoding), (checkpoint_id, test_set, decoding))
)
SELECT coalesce(c.model, a.checkpoint_id) AS model, a.*
FROM agg a LEFT JOIN (SELECT DISTINCT checkpoint_id, model FROM checkpoints) c USING (checkpoint_id)
ORDER BY model, a.checkpoint_id, test_set, op, decoding;
