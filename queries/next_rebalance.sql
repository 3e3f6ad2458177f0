-- The next rebalance per index, as the latest captured preview announces it: how many tickers
-- enter and leave, the weight they carry, and the largest expected weight change.
-- Written for both DuckDB and Athena (Trino): quoted "date"/"index", no engine-specific functions.
WITH latest AS (
    SELECT "index", MAX("date") AS captured_on
    FROM announced_changes
    GROUP BY "index"
)
SELECT
    c."index",
    l.captured_on,
    c.rebalance_date,
    date_diff('day', l.captured_on, c.rebalance_date) AS days_to_go,
    SUM(CASE WHEN c.change = 'entering' THEN 1 ELSE 0 END) AS entering,
    SUM(CASE WHEN c.change = 'leaving' THEN 1 ELSE 0 END) AS leaving,
    SUM(CASE WHEN c.change = 'entering' THEN c.preview_weight ELSE 0 END) AS entering_weight,
    SUM(CASE WHEN c.change = 'leaving' THEN c.current_weight ELSE 0 END) AS leaving_weight,
    MAX(ABS(c.weight_change_pp)) AS largest_weight_change_pp
FROM announced_changes AS c
JOIN latest AS l ON l."index" = c."index" AND l.captured_on = c."date"
GROUP BY c."index", l.captured_on, c.rebalance_date
ORDER BY c."index"
