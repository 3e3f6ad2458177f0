-- Tickers that entered or left an index between two dates, against each date's previous trading
-- day (dates whose previous trading day is not in the lake are not compared: see
-- gold_index_summary.previous_in_lake). Change the index and the dates in the WHERE clause.
SELECT
    "date",
    "index",
    membership,
    ticker,
    company,
    COALESCE(weight, previous_weight) AS weight
FROM gold_changes
WHERE membership IN ('entered', 'exited')
    AND "index" = 'IBOV'
    AND "date" BETWEEN DATE '2025-06-30' AND DATE '2025-07-11'
ORDER BY "date", membership, ticker
