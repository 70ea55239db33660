-- generations: every scored generation of every finished evaluate step, plus `step` = its folder's hash.
CREATE VIEW generations AS
SELECT * EXCLUDE (filename),
       regexp_extract(filename, '/evaluate/([0-9a-f]+)/[^/]+$', 1) AS step
FROM {source};
