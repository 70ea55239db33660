-- depth_width — E9, paper Fig. 9 (Result 7; spec C.7).
-- Paper: each cell is the best of 2 seeds x beam {1, 4}; 4-layer models underperform even at 1920 dims
-- (~2x the parameters), 20-layer 576-dim does very well: accuracy tracks depth, not size.
-- One row per (model shape, test set) over every finished sweep step: best = max accuracy over seeds and
-- decodings (the sweep's own `best` flag marks the same row), with the seed and decoding that reached it.
-- Columns: model, n_layer, n_head, width, params, test_set, best_accuracy, best_seed, best_decoding, n_runs.
SELECT model, n_layer, n_head, width, max(params) AS params, test_set,
       max(accuracy) AS best_accuracy,
       arg_max(seed, accuracy) AS best_seed,
       arg_max(decoding, accuracy) AS best_decoding,
       count(*) AS n_runs
FROM sweep
GROUP BY model, n_layer, n_head, width, test_set
ORDER BY n_layer, width, test_set;
