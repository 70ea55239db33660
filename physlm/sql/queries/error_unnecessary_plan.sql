-- error_unnecessary_plan — E7, paper Fig. 8a (Result 6; spec C.6a).
-- Paper: on re-ask data, in correct solutions that compute unnecessary parameters A, the nece(A) probe
-- at the end of the question is "often" wrongly true: the extra steps come from a planning error already
-- made before the solution starts (no number given; high share = planning error).
-- Generations: re-ask test sets (test_set contains 'reask'), greedy, fully correct, with unnecessary
-- parameters; each unnecessary A (unnest of generations.unnecessary) is joined to probe_predictions of
-- task 'nece' on (checkpoint_id, problem_id, param_a), V-probe at layer -1, from the newest probe step that
-- probed them (probe_predictions.latest; a pair probed several times there: majority of its predictions). Only probed pairs enter the share; the probe step must probe
-- these pairs (probe.make_example) for n_probed to be large: random probe samples rarely hit them.
-- Columns: model, checkpoint_id, test_set, n_solutions, n_unnecessary (pairs), n_probed, n_probe_true,
--          share_probe_true, ci_low, ci_high (Wilson 95%).
WITH g AS (
    SELECT DISTINCT checkpoint_id, test_set, problem_id, unnest(unnecessary) AS param_a
    FROM generations
    WHERE test_set LIKE '%reask%' AND decoding = 'greedy' AND correct AND n_unnecessary > 0
), p AS (
    SELECT checkpoint_id, problem_id, param_a, avg(prediction::DOUBLE) >= 0.5 AS probe_true
    FROM probe_predictions
    WHERE task = 'nece' AND baseline = 'vprobe' AND layer = -1 AND latest
    GROUP BY ALL
), j AS (
    SELECT g.checkpoint_id, g.test_set,
           count(DISTINCT g.problem_id) AS n_solutions,
           count(*) AS n_unnecessary,
           count(p.probe_true) AS n_probed,
           count(*) FILTER (WHERE p.probe_true) AS n_probe_true
    FROM g LEFT JOIN p USING (checkpoint_id, problem_id, param_a)
    GROUP BY ALL
), s AS (
    SELECT *, CASE WHEN n_probed > 0 THEN n_probe_true / n_probed END AS share_probe_true
    FROM j
)
SELECT coalesce(c.model, s.checkpoint_id) AS model, s.checkpoint_id, test_set, n_solutions, n_unnecessary,
       n_probed, n_probe_true, share_probe_true,
       wilson_low(n_probe_true, n_probed) AS ci_low, wilson_high(n_probe_true, n_probed) AS ci_high
FROM s LEFT JOIN (SELECT DISTINCT checkpoint_id, model FROM checkpoints) c USING (checkpoint_id)
ORDER BY model, s.checkpoint_id, test_set;
