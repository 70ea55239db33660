-- training_curves — the training loss curve of every checkpoint lineage (one train step), with the accuracy of
-- each registered checkpoint wherever an evaluation of it exists (the report's "Training" section).
-- Loss: the mean training loss since the previous checkpoint (what a resumed run records identically); for a
-- train step installed from a pretrained folder, the points of its card's curve before the installed checkpoint
-- (view loss_curves: no checkpoint of this root, so no accuracy).
-- Accuracy: greedy, fully correct, all ops pooled, on the in-distribution test sets (test_id, test_seen).
-- Columns: model, train_hash, step, tokens_seen, loss, test_set, accuracy, n.
WITH r AS (
    SELECT DISTINCT ON (train_hash, step) model, train_hash, checkpoint_id, step, tokens_seen, loss
    FROM checkpoints
    ORDER BY train_hash, step, created_at
), c AS (
    SELECT * FROM r
    UNION ALL
    SELECT DISTINCT ON (train_hash, step) l.model, l.train_hash, NULL AS checkpoint_id, l.step, l.tokens_seen, l.loss
    FROM loss_curves l ANTI JOIN r USING (train_hash, step)
), a AS (
    SELECT DISTINCT ON (checkpoint_id, test_set) checkpoint_id, test_set, accuracy, n
    FROM accuracy
    WHERE op = -1 AND decoding = 'greedy' AND test_set IN ('test_id', 'test_seen')
    ORDER BY checkpoint_id, test_set, step
)
SELECT c.model, c.train_hash, c.step, c.tokens_seen, c.loss, a.test_set, a.accuracy, a.n
FROM c LEFT JOIN a USING (checkpoint_id)
ORDER BY c.model, c.train_hash, c.step, a.test_set;
