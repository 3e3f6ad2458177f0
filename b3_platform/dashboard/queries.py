"""The questions the dashboard asks the catalog, one SELECT each.

Written in the SQL DuckDB and Athena (Trino) both accept — `"date"` and `"index"` quoted, `DATE
'YYYY-MM-DD'` literals — so the same dashboard builds from the local catalog or from Glue + Athena.
Each answer is already aggregated to what a chart draws (top N tickers and the rest, one row per
sector, one row per date and index), so the rows fetched grow with dates × indices, not with
every component of every date (Athena pages its results 1,000 rows at a time).

`before`, when given, limits every question to dates before it: gold's picture of the date it is
building asks for the history before that date and adds the date from the tables it has just built.
`since`, when given, keeps only dates from it on: the picture draws a trailing window, and a plain
`"date" >=` predicate lets DuckDB skip the older rows' row groups and Athena the older partitions, so
the picture costs the same whatever the lake's age.

`daily`, when given (the page asks with `DAILY_DATES`), bounds the history the answers hold: each
index's newest dates day by day, older ones one point per calendar month (see `DAILY_DATES`). The
thinning is in the SQL, so neither DuckDB nor Athena hands Python more than that bounded set of rows
whatever the lake's age; the top-N ranking still sums the whole history (an aggregate, a row per
ticker).
"""

from __future__ import annotations

import datetime as dt

#: Tickers drawn one by one in the weights chart; the rest of the index is one "Others" band.
DEFAULT_TOP_N = 10
OTHERS = "Others"
#: The page's history is bounded: each index's dates are shown day by day from the first of the month
#: of its DAILY_DATES-th newest date in the lake (about a year of trading days, as gold's picture
#: window), and before that as one point per calendar month, the month's last date the lake holds
#: for the index. Why: the page embeds its data, so a page of every date grew ~260 KB of the
#: dashboard's memory and ~18 KB of page per date at 34 indices (~1.3 GB at 5,000 dates, a page no
#: browser opens comfortably); bounded, both stay flat beyond a year. The daily part starts on a
#: month's first day so no month is split between the two resolutions; every date stays queryable
#: through the catalog (`python -m b3_platform query`).
DAILY_DATES = 250


def _dates(before: dt.date | None, since: dt.date | None, column: str = '"date"') -> str:
    """The date predicate: `since` <= date < `before`, either bound left out when not given."""
    bounds = [f"{column} >= DATE '{since.isoformat()}'"] if since else []
    bounds += [f"{column} < DATE '{before.isoformat()}'"] if before else []
    return " AND ".join(bounds) or "TRUE"


def _points(daily: int, before: dt.date | None, since: dt.date | None) -> str:
    """CTEs naming the point each held (date, index) belongs to, under `DAILY_DATES`' rule:
    `points` has every held date with `daily` (it is shown day by day), `month_no` (year × 12 + month)
    and `from_month_end` (1: the month's last date the lake holds for the index); `shown` keeps the
    dates drawn: the daily ones and, before them, each month's last."""
    return f"""numbered AS (
    SELECT "date", "index", YEAR("date") * 12 + MONTH("date") AS month_no,
        ROW_NUMBER() OVER (PARTITION BY "index" ORDER BY "date" DESC) AS recency
    FROM gold_index_summary
    WHERE {_dates(before, since)}
),
daily_from AS (
    SELECT "index", MIN(month_no) AS month_no FROM numbered WHERE recency <= {int(daily)} GROUP BY "index"
),
points AS (
    SELECT n."date", n."index", n.month_no, n.month_no >= d.month_no AS daily,
        ROW_NUMBER() OVER (PARTITION BY n."index", n.month_no ORDER BY n."date" DESC) AS from_month_end
    FROM numbered AS n
    JOIN daily_from AS d ON d."index" = n."index"
),
shown AS (
    SELECT "date", "index" FROM points WHERE daily OR from_month_end = 1
)"""


#: A point's dates: one date when shown daily, else every date of its month (the window partition).
_POINT = """PARTITION BY g."index", p.month_no, CASE WHEN p.daily THEN g."date" END"""


def summary(before: dt.date | None = None, since: dt.date | None = None, daily: int | None = None) -> str:
    """Per (date, index): size, concentration and the day-over-day comparison's outcome.

    With `daily`, one row per point (`DAILY_DATES`), and what the dates it stands for add up to, so
    the page's counts stay those of the lake: `resolution` ('day' or 'month'), `dates` (lake dates
    the point stands for), `first_date` (the first of them), `compared` (how many of them follow
    their previous trading day in the lake: `previous_in_lake`), `first_compared` (whether the first
    of them does: a gap before the point) and `with_sectors` (how many carry sectors)."""
    if daily is not None:
        return f"""WITH {_points(daily, before, since)},
counted AS (
    SELECT g."date", g."index", g.components, g.top5_weight, g.top10_weight, g.hhi, g.has_sector,
        g.previous_in_lake, g.entries, g.exits,
        CASE WHEN p.daily THEN 'day' ELSE 'month' END AS resolution,
        ROW_NUMBER() OVER ({_POINT} ORDER BY g."date" DESC) AS from_point_end,
        COUNT(*) OVER ({_POINT}) AS dates,
        MIN(g."date") OVER ({_POINT}) AS first_date,
        SUM(CASE WHEN g.previous_in_lake THEN 1 ELSE 0 END) OVER ({_POINT}) AS compared,
        FIRST_VALUE(g.previous_in_lake) OVER ({_POINT} ORDER BY g."date"
            ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS first_compared,
        SUM(CASE WHEN g.has_sector THEN 1 ELSE 0 END) OVER ({_POINT}) AS with_sectors
    FROM gold_index_summary AS g
    JOIN points AS p ON p."index" = g."index" AND p."date" = g."date"
    WHERE {_dates(before, since, 'g."date"')}
)
SELECT "date", "index", components, top5_weight, top10_weight, hhi, has_sector, previous_in_lake,
    entries, exits, resolution, dates, first_date, compared, first_compared, with_sectors
FROM counted
WHERE from_point_end = 1
ORDER BY "index", "date\""""
    return f"""SELECT "date", "index", components, top5_weight, top10_weight, hhi, has_sector,
    previous_in_lake, entries, exits
FROM gold_index_summary
WHERE {_dates(before, since)}
ORDER BY "index", "date\""""


def _only_shown(daily: int | None, alias: str) -> str:
    """The join keeping `alias`'s rows of the dates shown (nothing without `daily`)."""
    if daily is None:
        return ""
    return f'JOIN shown AS s ON s."index" = {alias}."index" AND s."date" = {alias}."date"'


def _with(daily: int | None, before: dt.date | None, since: dt.date | None) -> str:
    """The `_points` CTEs followed by a comma, when `daily` is given."""
    return f"{_points(daily, before, since)},\n" if daily is not None else ""


def weights(
    top_n: int = DEFAULT_TOP_N,
    before: dt.date | None = None,
    since: dt.date | None = None,
    daily: int | None = None,
) -> str:
    """Per (date, index): the weight of each of the index's top-N tickers and of the rest.

    The top N are the tickers with the largest weight summed over every date asked for (a ticker
    that was heavy for years ranks above one heavy for a week), also when `daily` keeps only the
    dates shown; `rank` orders the bands, with the rest last.

    Only the top N of each index (`top`) are joined to the components, a LEFT JOIN (a ticker not in
    it is the rest): joined to every ranked ticker, DuckDB's join order built one hash table of
    every ranked ticker times every date shown (~800,000 rows at 34 indices), the largest
    allocation of the page's build."""
    return f"""WITH {_with(daily, before, since)}ranked AS (
    SELECT "index", ticker,
        ROW_NUMBER() OVER (PARTITION BY "index" ORDER BY SUM(weight) DESC, ticker) AS rank
    FROM silver_assets
    WHERE {_dates(before, since)}
    GROUP BY "index", ticker
),
top AS (
    SELECT "index", ticker, rank FROM ranked WHERE rank <= {int(top_n)}
)
SELECT a."date", a."index",
    COALESCE(t.ticker, '{OTHERS}') AS series,
    MIN(COALESCE(t.rank, {int(top_n) + 1})) AS rank,
    SUM(a.weight) AS weight,
    COUNT(*) AS components
FROM silver_assets AS a
{_only_shown(daily, "a")}
LEFT JOIN top AS t ON t."index" = a."index" AND t.ticker = a.ticker
WHERE {_dates(before, since, 'a."date"')}
GROUP BY a."date", a."index", COALESCE(t.ticker, '{OTHERS}')
ORDER BY a."index", a."date", rank"""


def sectors(before: dt.date | None = None, since: dt.date | None = None, daily: int | None = None) -> str:
    """Per (date, index, sector): Σ weight, only where the capture carried sectors (segment 2);
    with `daily`, of the dates shown only."""
    prefix = f"WITH {_points(daily, before, since)}\n" if daily is not None else ""
    return f"""{prefix}SELECT c."date", c."index", c.group_name AS sector,
    ROW_NUMBER() OVER (PARTITION BY c."date", c."index" ORDER BY c.weight DESC, c.group_name) AS rank,
    c.weight, c.components
FROM gold_composition AS c
{_only_shown(daily, "c")}
WHERE c.dimension = 'sector' AND c.group_name IS NOT NULL AND {_dates(before, since, 'c."date"')}
ORDER BY c."index", c."date", c.weight DESC, c.group_name"""


def events(before: dt.date | None = None, since: dt.date | None = None) -> str:
    """Every entry and exit, against the previous trading day (dates not compared have none)."""
    return f"""SELECT "date", "index", membership, ticker, company,
    COALESCE(weight, previous_weight) AS weight
FROM gold_changes
WHERE membership IN ('entered', 'exited') AND {_dates(before, since)}
ORDER BY "index", "date", membership, ticker"""


def held() -> str:
    """The lake's dates, whatever the page shows of them: how many, the first and the last."""
    return """SELECT COUNT(DISTINCT "date") AS dates, MIN("date") AS first_date, MAX("date") AS last_date
FROM gold_index_summary"""


def latest_composition() -> str:
    """Each index on its newest date: every component, with the change from the previous trading
    day where that day is in the lake, and the tickers that left that day."""
    return """WITH latest AS (
    SELECT "index", MAX("date") AS "date" FROM silver_header GROUP BY "index"
)
SELECT a."date", a."index", a.ticker, a.company, a.sector, a.weight, c.previous_weight,
    c.weight_change_pp, COALESCE(c.membership, 'not compared') AS membership
FROM silver_assets AS a
JOIN latest AS l ON l."index" = a."index" AND l."date" = a."date"
LEFT JOIN gold_changes AS c ON c."date" = a."date" AND c."index" = a."index" AND c.ticker = a.ticker
UNION ALL
SELECT c."date", c."index", c.ticker, c.company, NULL, c.weight, c.previous_weight,
    c.weight_change_pp, c.membership
FROM gold_changes AS c
JOIN latest AS l ON l."index" = c."index" AND l."date" = c."date"
WHERE c.membership = 'exited'
ORDER BY 2, 6 DESC NULLS LAST, 3"""


def overlap() -> str:
    """Each ordered pair of indices on the newest date both are in the lake: members of the first,
    how many of them are also in the second, and the first's weight in those shared tickers.

    `members` keeps the components of those (date, index) pairs only, joined before the pairs are
    compared: joined to `silver_assets` directly, the second side of the LEFT JOIN was every row of
    the table (DuckDB built its hash table from the whole history: ~230 KB of the page build's peak
    memory per date at 34 indices); a pair's date is in `pairs` on both sides (it is symmetric), so
    `index_a`'s dates cover `index_b`'s."""
    return """WITH held AS (
    SELECT DISTINCT "date", "index" FROM silver_header
),
pairs AS (
    SELECT a."index" AS index_a, b."index" AS index_b, MAX(a."date") AS "date"
    FROM held AS a JOIN held AS b ON a."date" = b."date"
    GROUP BY a."index", b."index"
),
members AS (
    SELECT s."date", s."index", s.ticker, s.weight
    FROM silver_assets AS s
    JOIN (SELECT DISTINCT "date", index_a AS "index" FROM pairs) AS w
        ON w."date" = s."date" AND w."index" = s."index"
)
SELECT p."date", p.index_a, p.index_b, COUNT(*) AS members_a, COUNT(b.ticker) AS shared,
    SUM(CASE WHEN b.ticker IS NULL THEN 0 ELSE a.weight END) AS shared_weight_a
FROM pairs AS p
JOIN members AS a ON a."date" = p."date" AND a."index" = p.index_a
LEFT JOIN members AS b ON b."date" = p."date" AND b."index" = p.index_b AND b.ticker = a.ticker
GROUP BY p."date", p.index_a, p.index_b
ORDER BY p.index_a, p.index_b"""


# ------------------------------------------------------- the next rebalance (announced portfolios)

#: The newest capture date of each index in an announced table (a preview's changes, or a rebalance
#: date's accuracy): the panel shows what the latest preview says, and the latest rebalance's match.
_NEWEST_OF = """WITH newest AS (
    SELECT "index", MAX("date") AS "date" FROM {table} GROUP BY "index"
)"""


def rebalance_preview() -> str:
    """Per index, the latest captured preview: when it was captured, the rebalance it announces and
    how many tickers enter, leave, stay, and stay with another weight (one row per index, so an
    index whose preview changes nothing still shows as captured)."""
    return f"""{_NEWEST_OF.format(table="announced_changes")}
SELECT c."date" AS captured_on, c."index", c.rebalance_date, c.preview_capture_id,
    SUM(CASE WHEN c.change = 'entering' THEN 1 ELSE 0 END) AS entering,
    SUM(CASE WHEN c.change = 'leaving' THEN 1 ELSE 0 END) AS leaving,
    SUM(CASE WHEN c.change = 'staying' THEN 1 ELSE 0 END) AS staying,
    SUM(CASE WHEN c.change = 'staying' AND c.weight_change_pp <> 0 THEN 1 ELSE 0 END) AS reweighted
FROM announced_changes AS c
JOIN newest AS n ON n."index" = c."index" AND n."date" = c."date"
GROUP BY c."date", c."index", c.rebalance_date, c.preview_capture_id
ORDER BY c."index\""""


def rebalance_changes() -> str:
    """The latest preview's changes per index: every ticker entering or leaving, and every staying
    ticker whose weight is expected to change, largest change first."""
    return f"""{_NEWEST_OF.format(table="announced_changes")}
SELECT c."date" AS captured_on, c."index", c.ticker, c.company, c.change, c.current_weight,
    c.preview_weight, c.weight_change_pp
FROM announced_changes AS c
JOIN newest AS n ON n."index" = c."index" AND n."date" = c."date"
WHERE c.change <> 'staying' OR c.weight_change_pp <> 0
ORDER BY c."index", CASE c.change WHEN 'entering' THEN 0 WHEN 'leaving' THEN 1 ELSE 2 END,
    ABS(c.weight_change_pp) DESC, c.ticker"""


def rebalance_accuracy() -> str:
    """Per index, its latest rebalance date in announced_accuracy: how the day portfolio of that
    date matched each preview captured before it."""
    return f"""{_NEWEST_OF.format(table="announced_accuracy")}
SELECT a."date" AS rebalance_date, a."index", a.preview_date, a.trading_days_before,
    a.predicted_components, a.actual_components, a.tickers_matched, a.missing_tickers,
    a.unexpected_tickers, a.quantities_equal, a.weight_max_abs_error_pp, a."exact",
    a.tickers_stable_since, a.quantities_stable_since
FROM announced_accuracy AS a
JOIN newest AS n ON n."index" = a."index" AND n."date" = a."date"
ORDER BY a."index", a.preview_date"""
