"""The schema of every lake table, declared once.

Parquet files are written with exactly these schemas; the Dagster column-schema metadata and (in the
AWS mode) the Glue table columns are generated from them. `date` is not a column of any file: it is
the Hive partition (`date=YYYY-MM-DD/`), which is how Athena/Glue want partition keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from b3_platform.lake.paths import META_SUFFIX, PARQUET_FILE, raw_prefix, table_location

WEIGHT = pa.decimal128(7, 3)  # B3 writes weights with 3 decimals, 0.000–100.000
REDUCTOR = pa.decimal128(20, 8)  # B3 writes reductors with 8 decimals
WEIGHT_CHANGE = pa.decimal128(8, 3)  # percentage points, -100.000 to +100.000
HHI = pa.decimal128(12, 6)  # Σ weight² with weights in %: 0–10,000, exact for 3-decimal weights


def _f(name: str, type_: pa.DataType, description: str, nullable: bool = False) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"description": description})


@dataclass(frozen=True)
class TableDef:
    name: str
    layer: str
    short: str
    schema: pa.Schema
    description: str
    file_format: str = "parquet"  # raw_captures reads the raw layer's JSON sidecars instead
    #: The publication unit of tables one asset writes together for a date (silver's header and
    #: assets, gold's four tables): a date of the unit is published by one manifest
    #: `<unit>/_published/date=D/manifest.json` (lake/tables.py). None: the table's file alone is
    #: its publication (one atomic write).
    published_with: str | None = None
    #: False for a table kept a file per year, `<location><YYYY>.parquet` (paths.year_file), with no
    #: `date=` partition: its `date` column's year is its file's (the catalog's coverage table,
    #: whose years each catalog refresh rewrites when they changed).
    partitioned: bool = True

    @property
    def location(self) -> str:
        if self.file_format == "json":
            return raw_prefix()
        return table_location(self.layer, self.short)

    @property
    def file_pattern(self) -> str:
        """The table's files under its location, as a glob (`date=` is the Hive partition)."""
        if self.file_format == "json":
            return f"date=*/index=*/*{META_SUFFIX}"
        return f"date=*/{PARQUET_FILE}"


BRONZE_PORTFOLIO = TableDef(
    name="bronze_portfolio",
    layer="bronze",
    short="portfolio",
    description="Header and components of the latest capture per (date, index), values as B3 wrote them.",
    schema=pa.schema(
        [
            _f("index", pa.string(), "Index code, e.g. IBOV"),
            _f("capture_id", pa.string(), "Raw capture this row comes from (<fetched_at>-<sha256>)"),
            _f("source_format", pa.string(), "json (API response) or csv (Carteira do Dia download)"),
            _f("language", pa.string(), "pt-br or en-us: how numbers and dates are written"),
            _f("total_records", pa.int32(), "page.totalRecords (null for CSV downloads)", True),
            _f("header_date", pa.string(), "header.date as written (DD/MM/YY pt-br, MM/DD/YY en-us)"),
            _f("header_text", pa.string(), "header.text"),
            _f("header_part", pa.string(), "header.part (weight total)"),
            _f("header_part_acum", pa.string(), "header.partAcum (segment 2 only)", True),
            _f("header_text_reductor", pa.string(), "header.textReductor"),
            _f("header_reductor", pa.string(), "header.reductor"),
            _f("header_theorical_qty", pa.string(), "header.theoricalQty (theoretical total)"),
            _f("row_number", pa.int32(), "1-based position of the component in the response"),
            _f("segment", pa.string(), "results[].segment: the sector when captured with segment 2", True),
            _f("cod", pa.string(), "results[].cod: ticker"),
            _f("asset", pa.string(), "results[].asset: company"),
            _f("type", pa.string(), "results[].type: share class, event flag, listing segment"),
            _f("part", pa.string(), "results[].part: weight in %"),
            _f("part_acum", pa.string(), "results[].partAcum: sector weight (segment 2 only)", True),
            _f("theorical_qty", pa.string(), "results[].theoricalQty: theoretical quantity"),
        ]
    ),
)

SILVER_HEADER = TableDef(
    name="silver_header",
    layer="silver",
    published_with="silver",
    short="header",
    description="One typed row per (date, index): the portfolio's header.",
    schema=pa.schema(
        [
            _f("index", pa.string(), "Index code"),
            _f("reference_date", pa.date32(), "header.date: the day the portfolio is for"),
            _f("theoretical_quantity_total", pa.int64(), "Total theoretical quantity"),
            _f("part_total", WEIGHT, "Sum of weights as B3 states it (100.000)"),
            _f("reductor", REDUCTOR, "Index reductor (divisor)"),
            _f("reductor_note", pa.string(), "Set when the reductor text needed the documented repair", True),
            _f("row_count", pa.int32(), "Components in the portfolio"),
            _f("total_records", pa.int32(), "page.totalRecords (null for CSV downloads)", True),
            _f("has_sector", pa.bool_(), "Captured with segment 2, so components carry their sector"),
            _f("language", pa.string(), "Locale of the source"),
            _f("source_format", pa.string(), "json or csv"),
            _f("capture_id", pa.string(), "Raw capture the row comes from"),
            _f("fetched_at", pa.timestamp("us", tz="UTC"), "When the capture was fetched or imported"),
        ]
    ),
)

SILVER_ASSETS = TableDef(
    name="silver_assets",
    layer="silver",
    published_with="silver",
    short="assets",
    description="One typed row per (date, index, ticker): the portfolio's components.",
    schema=pa.schema(
        [
            _f("index", pa.string(), "Index code"),
            _f("ticker", pa.string(), "Ticker, e.g. PETR4"),
            _f("company", pa.string(), "Company name as B3 writes it"),
            _f("share_class", pa.string(), "Share class: ON, PN, PNA, PNB, UNT, …"),
            _f(
                "event_flag",
                pa.string(),
                "Event/ex-right flag (ED, EJ, EDJ, EX, ATZ, …); changes around ex-dates",
                True,
            ),
            _f("listing_segment", pa.string(), "Listing segment (NM, N1, N2, …)", True),
            _f("sector", pa.string(), "Sector (only from segment-2 captures)", True),
            _f("sector_weight", WEIGHT, "Weight of the whole sector in % (segment 2 only)", True),
            _f("weight", WEIGHT, "Weight in the index, %"),
            _f("theoretical_quantity", pa.int64(), "Theoretical quantity"),
            _f("type_code", pa.string(), "B3's type code as written"),
            _f("row_number", pa.int32(), "Position in the response"),
            _f("capture_id", pa.string(), "Raw capture the row comes from"),
        ]
    ),
)

GOLD_COMPOSITION = TableDef(
    name="gold_composition",
    layer="gold",
    published_with="gold",
    short="composition",
    description=(
        "Weight and component count per (date, index) grouped by sector, share class, listing segment "
        "and company (share classes of one company summed). A group that the capture cannot tell "
        "(no sector outside segment-2 captures) has a null group_name and says why in `note`."
    ),
    schema=pa.schema(
        [
            _f("index", pa.string(), "Index code"),
            _f(
                "dimension",
                pa.string(),
                "What the rows group by: sector, share_class, listing_segment, company",
            ),
            _f("group_name", pa.string(), "The sector, share class, listing segment or company", True),
            _f("weight", WEIGHT, "Σ weight of the group's components, %"),
            _f("components", pa.int32(), "Components in the group"),
            _f("tickers", pa.string(), "The group's tickers, comma-separated, heaviest first"),
            _f("note", pa.string(), "Why group_name is null, when it is", True),
        ]
    ),
)

GOLD_CHANGES = TableDef(
    name="gold_changes",
    layer="gold",
    published_with="gold",
    short="changes",
    description=(
        "Day-over-day change per (date, index, ticker) against the previous trading day: membership "
        "(entered, exited, held), weight change in percentage points, theoretical-quantity change "
        "(corporate events) and reductor change. No rows for an index whose previous trading day is "
        "not in the lake: it is never compared with an older day (see gold_index_summary)."
    ),
    schema=pa.schema(
        [
            _f("index", pa.string(), "Index code"),
            _f("ticker", pa.string(), "Ticker"),
            _f("company", pa.string(), "Company (today's, or the previous day's for an exit)"),
            _f("membership", pa.string(), "entered, exited or held, versus the previous trading day"),
            _f("previous_date", pa.date32(), "The previous trading day (B3 calendar) compared with"),
            _f("weight", WEIGHT, "Weight today, % (null after an exit)", True),
            _f("previous_weight", WEIGHT, "Weight on the previous trading day, % (null for an entry)", True),
            _f(
                "weight_change_pp", WEIGHT_CHANGE, "weight − previous_weight in percentage points (null as 0)"
            ),
            _f("theoretical_quantity", pa.int64(), "Theoretical quantity today (null after an exit)", True),
            _f("previous_quantity", pa.int64(), "Theoretical quantity before (null for an entry)", True),
            _f("quantity_change", pa.int64(), "theoretical_quantity − previous_quantity (null as 0)"),
            _f(
                "quantity_changed",
                pa.bool_(),
                "A held ticker's quantity changed: a corporate event or rebalance",
            ),
            _f("reductor_changed", pa.bool_(), "The index's reductor changed from the previous trading day"),
        ]
    ),
)

GOLD_INDEX_SUMMARY = TableDef(
    name="gold_index_summary",
    layer="gold",
    published_with="gold",
    short="index_summary",
    description=(
        "One row per (date, index): concentration (top-5 and top-10 weight, Herfindahl–Hirschman "
        "index), and the day-over-day comparison's outcome (entries, exits, quantity changes, "
        "reductor change), which is null when the previous trading day is not in the lake."
    ),
    schema=pa.schema(
        [
            _f("index", pa.string(), "Index code"),
            _f("components", pa.int32(), "Components in the portfolio"),
            _f("top5_weight", WEIGHT, "Σ of the 5 largest weights, %"),
            _f("top10_weight", WEIGHT, "Σ of the 10 largest weights, %"),
            _f("hhi", HHI, "Herfindahl–Hirschman index: Σ weight² with weights in % (0–10,000)"),
            _f("reductor", REDUCTOR, "Index reductor (divisor)"),
            _f("has_sector", pa.bool_(), "Components carry their sector (segment-2 capture)"),
            _f("previous_date", pa.date32(), "The previous trading day (B3 calendar)"),
            _f("previous_in_lake", pa.bool_(), "The previous trading day of this index is in the lake"),
            _f("entries", pa.int32(), "Tickers that entered (null when not compared)", True),
            _f("exits", pa.int32(), "Tickers that left (null when not compared)", True),
            _f(
                "quantity_changes",
                pa.int32(),
                "Held tickers whose quantity changed (null when not compared)",
                True,
            ),
            _f(
                "reductor_changed",
                pa.bool_(),
                "Reductor differs from the previous day (null when not compared)",
                True,
            ),
        ]
    ),
)

GOLD_TIME_IN_INDEX = TableDef(
    name="gold_time_in_index",
    layer="gold",
    published_with="gold",
    short="time_in_index",
    description=(
        "Per (date, index, ticker) in the portfolio: when the ticker's current stay in the index began "
        "as far as the lake shows (first_seen), trading days held (B3 calendar) and calendar days since. "
        "Days the lake lacks do not break a stay; observed_days < trading_days_held shows them."
    ),
    schema=pa.schema(
        [
            _f("index", pa.string(), "Index code"),
            _f("ticker", pa.string(), "Ticker"),
            _f("first_seen", pa.date32(), "First date of the current stay in the index, per the lake"),
            _f("trading_days_held", pa.int32(), "B3 trading days from first_seen to this date, inclusive"),
            _f("calendar_days_since_entry", pa.int32(), "Calendar days from first_seen to this date"),
            _f(
                "observed_days",
                pa.int32(),
                "Dates of the stay the lake holds (= trading_days_held when complete)",
            ),
            _f(
                "first_seen_is_history_start",
                pa.bool_(),
                "first_seen is the index's first date in the lake: the stay may have begun earlier",
            ),
        ]
    ),
)

RAW_CAPTURES = TableDef(
    name="raw_captures",
    layer="raw",
    short="captures",
    file_format="json",
    description=(
        "One row per raw capture, read from its .meta.json sidecar: where it came from (B3's API or an "
        "imported file), when, its sha256 and HTTP status. The bytes themselves stay as received."
    ),
    schema=pa.schema(
        [
            _f("index", pa.string(), "Index code"),
            _f("source", pa.string(), "api (captured from B3) or import (a saved file)"),
            _f("source_format", pa.string(), "json (API response) or csv (Carteira do Dia download)"),
            _f("fetched_at", pa.timestamp("us", tz="UTC"), "When it was fetched or imported"),
            _f("sha256", pa.string(), "sha256 of the body (of the first page when paged)"),
            _f("http_status", pa.int32(), "HTTP status of the response (null for imports)", True),
            _f("url", pa.string(), "Request URL (API captures)", True),
            _f("file_name", pa.string(), "Imported file (imports)", True),
            _f("header_date", pa.string(), "header.date as written", True),
            _f("language", pa.string(), "pt-br or en-us", True),
            _f("pages", pa.int32(), "Response pages stored for the capture"),
        ]
    ),
)

GOLD_TABLES = (GOLD_COMPOSITION, GOLD_CHANGES, GOLD_INDEX_SUMMARY, GOLD_TIME_IN_INDEX)

#: The Parquet tables the pipeline writes.
TABLES: dict[str, TableDef] = {
    t.name: t for t in (BRONZE_PORTFOLIO, SILVER_HEADER, SILVER_ASSETS, *GOLD_TABLES)
}

#: What the catalog registers: every Parquet table, and raw's captures read from their sidecars.
CATALOG_TABLES: dict[str, TableDef] = {RAW_CAPTURES.name: RAW_CAPTURES, **TABLES}


# --- announced portfolios (GetTheoricalPortfolio, GetQuartelyPreview) -----------------------------


def _announced_schema() -> pa.Schema:
    """silver_theoretical and silver_preview hold the same columns: the two are compared row by row."""
    return pa.schema(
        [
            _f("index", pa.string(), "Index code"),
            _f("ticker", pa.string(), "Ticker, e.g. PETR4"),
            _f("company", pa.string(), "Company name as B3 writes it"),
            _f("share_class", pa.string(), "Share class: ON, PN, PNA, PNB, UNT, …"),
            _f("event_flag", pa.string(), "Event/ex-right flag (changes around ex-dates)", True),
            _f("listing_segment", pa.string(), "Listing segment (NM, N1, N2, …)", True),
            _f("type_code", pa.string(), "B3's type code as written"),
            _f("weight", WEIGHT, "Weight in the announced portfolio, %"),
            _f("theoretical_quantity", pa.int64(), "Theoretical quantity"),
            _f("cont", pa.int32(), "results[].cont as B3 sends it (null when absent)", True),
            _f("row_number", pa.int32(), "Position in the response"),
            _f("theoretical_quantity_total", pa.int64(), "header.theoricalQty: the portfolio's total"),
            _f("part_total", WEIGHT, "header.part: the weights' total as B3 states it (100.000)"),
            _f("reductor", REDUCTOR, "header.reductor: the reductor announced with the portfolio"),
            _f("period_year", pa.int32(), "Year of the quadrimester the portfolio is for"),
            _f("period_start_month", pa.int32(), "First month of that quadrimester: 1, 5 or 9"),
            _f("period_end_month", pa.int32(), "Last month of that quadrimester: 4, 8 or 12"),
            _f(
                "period_source",
                pa.string(),
                "Where the quadrimester comes from: GetStockIndex's header (its capture named), or "
                "derived from the capture's trading date when no GetStockIndex capture of the date exists",
            ),
            _f("language", pa.string(), "pt-br or en-us: how B3 wrote the numbers"),
            _f("capture_id", pa.string(), "Raw capture the row comes from"),
            _f("fetched_at", pa.timestamp("us", tz="UTC"), "When the capture was fetched"),
        ]
    )


SILVER_THEORETICAL = TableDef(
    name="silver_theoretical",
    layer="silver",
    short="theoretical",
    description=(
        "The quadrimester's theoretical portfolio (GetTheoricalPortfolio) as served on the date, one typed "
        "row per (date, index, ticker). The response has no date: the partition is the capture's B3 "
        "trading day."
    ),
    schema=_announced_schema(),
)

SILVER_PREVIEW = TableDef(
    name="silver_preview",
    layer="silver",
    short="preview",
    description=(
        "The preview of the next quadrimester's portfolio (GetQuartelyPreview) as served on the date, one "
        "typed row per (date, index, ticker); an index whose preview was not published has no rows."
    ),
    schema=_announced_schema(),
)

ANNOUNCED_CHANGES = TableDef(
    name="announced_changes",
    layer="gold",
    short="announced_changes",
    description=(
        "Per (date, index, ticker): what the next rebalance will change according to the preview captured "
        "on the date, against the theoretical portfolio in force: entering, leaving or staying, expected "
        "weight and quantity changes."
    ),
    schema=pa.schema(
        [
            _f("index", pa.string(), "Index code"),
            _f("ticker", pa.string(), "Ticker"),
            _f("company", pa.string(), "Company (the preview's, or the current one for a leaving ticker)"),
            _f("change", pa.string(), "entering, leaving or staying at the next rebalance"),
            _f("rebalance_date", pa.date32(), "First trading day of the preview's quadrimester"),
            _f(
                "current_weight",
                WEIGHT,
                "Weight in the current theoretical portfolio, % (null if entering)",
                True,
            ),
            _f("preview_weight", WEIGHT, "Weight in the preview, % (null if leaving)", True),
            _f("weight_change_pp", WEIGHT_CHANGE, "preview − current weight, percentage points (null as 0)"),
            _f("current_quantity", pa.int64(), "Current theoretical quantity (null if entering)", True),
            _f("preview_quantity", pa.int64(), "Preview's theoretical quantity (null if leaving)", True),
            _f("quantity_change", pa.int64(), "preview − current quantity (null as 0)"),
            _f("theoretical_capture_id", pa.string(), "Raw capture of the theoretical portfolio compared"),
            _f("preview_capture_id", pa.string(), "Raw capture of the preview compared"),
        ]
    ),
)

ANNOUNCED_ACCURACY = TableDef(
    name="announced_accuracy",
    layer="gold",
    short="announced_accuracy",
    description=(
        "On a rebalance date (first trading day of January, May, September): for each index and each "
        "preview captured for this rebalance, how the day portfolio of the date matched it, and since "
        "when the preview was stable. Other dates hold no file."
    ),
    schema=pa.schema(
        [
            _f("index", pa.string(), "Index code"),
            _f("preview_date", pa.date32(), "Trading day the preview was captured"),
            _f("trading_days_before", pa.int32(), "Trading days from preview_date to the rebalance date"),
            _f("predicted_components", pa.int32(), "Tickers in the preview"),
            _f("actual_components", pa.int32(), "Tickers in the day portfolio of the rebalance date"),
            _f("tickers_matched", pa.int32(), "Tickers in both"),
            _f("missing_tickers", pa.string(), "In the preview, not in the day portfolio (comma-separated)"),
            _f(
                "unexpected_tickers",
                pa.string(),
                "In the day portfolio, not in the preview (comma-separated)",
            ),
            _f("quantities_equal", pa.int32(), "Tickers in both whose theoretical quantity is the same"),
            _f(
                "weight_max_abs_error_pp",
                WEIGHT_CHANGE,
                "Largest |day weight − preview weight| over tickers in both, percentage points (null if none)",
                True,
            ),
            _f("exact", pa.bool_(), "Same tickers and every theoretical quantity equal"),
            _f(
                "tickers_stable_since",
                pa.date32(),
                "First preview date from which every later preview had the final preview's tickers",
            ),
            _f(
                "quantities_stable_since",
                pa.date32(),
                "First preview date from which every later preview had the final preview's tickers and "
                "quantities",
            ),
            _f("preview_capture_id", pa.string(), "Raw capture of the preview"),
        ]
    ),
)

ANNOUNCED_TABLES = (SILVER_THEORETICAL, SILVER_PREVIEW, ANNOUNCED_CHANGES, ANNOUNCED_ACCURACY)
#: The day portfolio's tables, bronze to gold: what the day's portfolios (a capture or an import of
#: saved files) fill.
DAY_PORTFOLIO_TABLES: dict[str, TableDef] = dict(TABLES)
TABLES.update({t.name: t for t in ANNOUNCED_TABLES})
CATALOG_TABLES.update({t.name: t for t in ANNOUNCED_TABLES})

# --- the GetStockIndex listing -----------------------------------------------------------------

INDEX_MEMBERS = TableDef(
    name="index_members",
    layer="silver",
    short="index_members",
    description=(
        "One row per (date, index, ticker) from B3's GetStockIndex listing captured that trading day: "
        "which indices hold which stock, with the period B3 states for the listing. One row per "
        "membership (not an array per ticker) so it filters and joins like every other table "
        "(`WHERE ticker = 'PETR4'`, or with silver_assets on date, index and ticker)."
    ),
    schema=pa.schema(
        [
            _f("index", pa.string(), "Index code"),
            _f("ticker", pa.string(), "Ticker, e.g. PETR4"),
            _f("company", pa.string(), "Company name as B3 writes it"),
            _f("spotlight", pa.string(), "B3's `spotlight` as written: share class and listing segment"),
            _f("update_date", pa.date32(), "header.update: when B3 last updated the listing"),
            _f("period_year", pa.int32(), "header.year: the year of the period B3 states"),
            _f("period_start_month", pa.int32(), "header.startMonth: first month of the period"),
            _f("period_end_month", pa.int32(), "header.endMonth: last month of the period"),
            _f("capture_id", pa.string(), "Raw GetStockIndex capture the row comes from"),
        ]
    ),
)
TABLES[INDEX_MEMBERS.name] = INDEX_MEMBERS
CATALOG_TABLES[INDEX_MEMBERS.name] = INDEX_MEMBERS

# --- the catalog's coverage table ---------------------------------------------------------------

COVERAGE = TableDef(
    name="coverage",
    layer="catalog",
    short="coverage",
    partitioned=False,
    description=(
        "One row per index per trading day, from the first captured day to the day of the catalog's "
        "last refresh: whether raw holds a capture of it (what `python -m b3_platform coverage --days` "
        "lists). Stored a file per year; each refresh of the catalog rewrites the years that changed."
    ),
    schema=pa.schema(
        [
            _f("index", pa.string(), "Index code"),
            _f("date", pa.date32(), "Trading day (B3 calendar)"),
            _f("status", pa.string(), "captured (raw holds a capture of the day) or missing"),
            _f(
                "expected", pa.bool_(), "In the capture list, so a missing day is a miss (else only imported)"
            ),
        ]
    ),
)
CATALOG_TABLES[COVERAGE.name] = COVERAGE
