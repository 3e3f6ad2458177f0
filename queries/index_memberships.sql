-- Which indices hold PETR4, as B3's GetStockIndex listing says on the latest date it was captured.
SELECT "date", ticker, company, spotlight, "index", period_year, period_start_month, period_end_month
FROM index_members
WHERE ticker = 'PETR4'
  AND "date" = (SELECT max("date") FROM index_members)
ORDER BY "index"
