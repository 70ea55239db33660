-- checkpoints: the checkpoint registry, one row per registered (periodic or final) checkpoint.
CREATE VIEW checkpoints AS
SELECT * EXCLUDE (filename) FROM {source};
