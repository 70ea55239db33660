-- problems: every row of every finished generate step, plus `step` = the hash of its folder.
-- {source} is filled in by physlm.sql.warehouse: read_parquet([...files of finished steps...], filename = true).
CREATE VIEW problems AS
SELECT * EXCLUDE (filename),
       regexp_extract(filename, '/generate/([0-9a-f]+)/[^/]+$', 1) AS step
FROM {source};
