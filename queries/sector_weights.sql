-- Weight of each sector in an index on one date (sectors come from segment-2 captures; a date
-- captured without them shows one row with a null sector and the reason in `note`).
-- Change the index and the date in the WHERE clause.
SELECT
    group_name AS sector,
    weight,
    components,
    note
FROM gold_composition
WHERE dimension = 'sector'
    AND "index" = 'IBOV'
    AND "date" = DATE '2022-12-08'
ORDER BY weight DESC, sector
