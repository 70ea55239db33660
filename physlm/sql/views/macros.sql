-- macros: SQL helpers every canned query may use, defined on each warehouse connection before the views.
-- wilson_low(k, n) / wilson_high(k, n): the Wilson 95% score interval of k successes out of n (NULL when
-- n = 0), computed exactly as physlm.model.scoring.wilson does (z = 1.96 as a double, the same operations in
-- the same order), so SQL and Python intervals agree to the last bit.
CREATE MACRO wilson_centre(k, n) AS
    ((k / n) + 1.96::DOUBLE * 1.96::DOUBLE / (2 * n)) / (1 + 1.96::DOUBLE * 1.96::DOUBLE / n);
CREATE MACRO wilson_half(k, n) AS
    1.96::DOUBLE * sqrt((k / n) * (1 - (k / n)) / n + 1.96::DOUBLE * 1.96::DOUBLE / (4 * n * n))
    / (1 + 1.96::DOUBLE * 1.96::DOUBLE / n);
CREATE MACRO wilson_low(k, n) AS CASE WHEN n > 0 THEN greatest(0.0, wilson_centre(k, n) - wilson_half(k, n)) END;
CREATE MACRO wilson_high(k, n) AS CASE WHEN n > 0 THEN least(1.0, wilson_centre(k, n) + wilson_half(k, n)) END;
