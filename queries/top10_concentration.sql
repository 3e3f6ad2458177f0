-- Concentration of an index over time: top-5 and top-10 weight and the Herfindahl–Hirschman
-- index (Σ weight², weights in %), with the number of components the index would need at equal
-- weights to be as concentrated. Change the index in the WHERE clause.
SELECT
    "date",
    components,
    top5_weight,
    top10_weight,
    hhi,
    ROUND(10000 / CAST(hhi AS DOUBLE), 1) AS equivalent_components
FROM gold_index_summary
WHERE "index" = 'IBOV'
ORDER BY "date"
