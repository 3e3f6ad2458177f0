-- Weight history of one ticker in one index: every date the lake holds, with the day-over-day
-- change in percentage points where the previous trading day is in the lake.
-- Change the ticker and index in the WHERE clause.
SELECT
    a."date",
    a.ticker,
    a.weight,
    c.weight_change_pp,
    a.theoretical_quantity
FROM silver_assets AS a
LEFT JOIN gold_changes AS c
    ON c."date" = a."date" AND c."index" = a."index" AND c.ticker = a.ticker
WHERE a."index" = 'IBOV' AND a.ticker = 'PETR4'
ORDER BY a."date"
