-- error_not_ready — E8, paper Fig. 8b (Result 6; spec C.6b).
-- Paper: for wrong (greedy) solutions, take the first wrong parameter A, restricted to A whose true label
-- can_next(A) (or nece_next(A)) is false just before its sentence; how often does the probe also say
-- false? Low = the model believed A was ready (computable) when it was not: mistakes are systematic and
-- predictable from the hidden state. Part 2.2: the can_next probe says false for ~60% of first wrong A.
-- Generations: greedy, not correct, first_wrong_param set; A = first_wrong_param, located by its
-- "Define A as" sentence in the output (not found: counted in n_wrong, never matched).
-- Probe state (APPROXIMATION): probe rows are matched on (checkpoint_id, problem_id, param_a = A, task in
-- (can_next, nece_next), V-probe, layer -1, label = 0) and a state, preferring
--   1. exact: state = k, the number of sentences the model wrote before A's sentence (retry "BACK"
--      sentences not counted), from a row probed at the model's OWN prefix (probe stage source
--      'first_wrong', or a row without a source);
--   2. else approximate: state = k - u, u = the unnecessary parameters among those k sentences, from the
--      gold-solution probe samples (any other source): the gold state with the same number of correct
--      (necessary) sentences written. The gold prefix holds as many necessary steps, but not necessarily
--      the same parameters, so its label and hidden state only approximate those at the model's prefix.
-- Probe rows of the newest probe step that probed them (probe_predictions.latest: the E8 rows and each test
-- set's samples chosen apart); a pair probed several times there: majority of the predictions.
-- Columns: model, checkpoint_id, task, test_set ('all' = pooled), n_wrong, n_located, n_matched (label
--          false and probed), n_exact_state, n_probe_false, share_probe_false, ci_low, ci_high (Wilson 95%).
WITH w AS (
    SELECT DISTINCT ON (checkpoint_id, problem_id, test_set)
           checkpoint_id, problem_id, test_set, first_wrong_param AS param_a, unnecessary,
           output[1:strpos(output, 'Define ' || first_wrong_param || ' as') - 1] AS before,
           strpos(output, 'Define ' || first_wrong_param || ' as') > 0 AS located
    FROM generations
    WHERE decoding = 'greedy' AND NOT correct AND first_wrong_param IS NOT NULL
    ORDER BY checkpoint_id, problem_id, test_set, step
), k AS (
    SELECT *,
           CASE WHEN located THEN (len(string_split(before, 'Define ')) - 1)
                                  - (len(string_split(before, ' as BACK')) - 1) END AS k_state,
           CASE WHEN located THEN len(list_filter(coalesce(unnecessary, []),
                                                  lambda u: strpos(before, 'Define ' || u || ' as') > 0)) END AS u
    FROM w
), p AS (
    SELECT checkpoint_id, problem_id, param_a, task, state, coalesce(source = 'first_wrong', true) AS own_prefix,
           coalesce(source <> 'first_wrong', true) AS gold_prefix, avg(prediction::DOUBLE) < 0.5 AS probe_false
    FROM probe_predictions
    WHERE task IN ('can_next', 'nece_next') AND baseline = 'vprobe' AND layer = -1 AND label = 0 AND latest
    GROUP BY ALL
), m AS (  -- every (wrong solution, task) with its best matching probe row (exact state first)
    SELECT k.checkpoint_id, k.problem_id, k.test_set, t.task, k.located,
           min(p.how) AS how, arg_min(p.probe_false, p.how) AS probe_false
    FROM k CROSS JOIN (VALUES ('can_next'), ('nece_next')) t(task)
    LEFT JOIN (SELECT p.*, k2.checkpoint_id AS k_ck, k2.problem_id AS k_pid, k2.test_set AS k_ts,
                      CASE WHEN p.own_prefix AND p.state = k2.k_state THEN 1
                           WHEN p.gold_prefix AND p.state = k2.k_state - k2.u THEN 2 END AS how
               FROM p JOIN k k2 ON p.checkpoint_id = k2.checkpoint_id AND p.problem_id = k2.problem_id
                               AND p.param_a = k2.param_a) p
           ON p.k_ck = k.checkpoint_id AND p.k_pid = k.problem_id AND p.k_ts = k.test_set
              AND p.task = t.task AND p.how IS NOT NULL
    GROUP BY ALL
), agg AS (
    SELECT checkpoint_id, task, coalesce(test_set, 'all') AS test_set,
           count(*) AS n_wrong,
           count(*) FILTER (WHERE located) AS n_located,
           count(how) AS n_matched,
           count(*) FILTER (WHERE how = 1) AS n_exact_state,
           count(*) FILTER (WHERE how IS NOT NULL AND probe_false) AS n_probe_false
    FROM m
    GROUP BY GROUPING SETS ((checkpoint_id, task, test_set), (checkpoint_id, task))
), s AS (
    SELECT *, CASE WHEN n_matched > 0 THEN n_probe_false / n_matched END AS share_probe_false
    FROM agg
)
SELECT coalesce(c.model, s.checkpoint_id) AS model, s.checkpoint_id, task, test_set, n_wrong, n_located,
       n_matched, n_exact_state, n_probe_false, share_probe_false,
       wilson_low(n_probe_false, n_matched) AS ci_low, wilson_high(n_probe_false, n_matched) AS ci_high
FROM s LEFT JOIN (SELECT DISTINCT checkpoint_id, model FROM checkpoints) c USING (checkpoint_id)
ORDER BY model, s.checkpoint_id, task, test_set = 'all' DESC, test_set;
