-- macros: SQL helpers every canned query may use, defined on each warehouse connection before the views.
-- wilson_low(k, n) / wilson_high(k, n): the Wilson 95% score interval of k successes out of n (NULL when
-- n = 0), the SQL twin of physlm.model.scoring.wilson (z = 1.96).
CREATE MACRO wilson_low(k, n) AS CASE WHEN n > 0 THEN greatest(0.0,
    ((k / n) + 1.96 * 1.96 / (2 * n) - sqrt(1.96 * 1.96) * sqrt((k / n) * (1 - (k / n)) / n + 1.96 * 1.96 / (4 * n * n)))
    / (1 + 1.96 * 1.96 / n)) END;
CREATE MACRO wilson_high(k, n) AS CASE WHEN n > 0 THEN least(1.0,
    ((k / n) + 1.96 * 1.96 / (2 * n) + sqrt(1.96 * 1.96) * sqrt((k / n) * (1 - (k / n)) / n + 1.96 * 1.96 / (4 * n * n)))
    / (1 + 1.96 * 1.96 / n)) END;
