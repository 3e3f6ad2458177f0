"""The schema of every lake table, declared once.

Parquet files are written with exactly these schemas; the Dagster column-schema metadata and (in the
AWS mode) the Glue table columns are generated from them. `date` is not a column of any file: it is
the Hive partition (`date=YYYY-MM-DD/`), which is how Athena/Glue want partition keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from b3_platform.lake.paths import table_location

WEIGHT = pa.decimal128(7, 3)  # B3 writes weights with 3 decimals, 0.000–100.000
REDUCTOR = pa.decimal128(20, 8)  # B3 writes reductors with 8 decimals


def _f(name: str, type_: pa.DataType, description: str, nullable: bool = False) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"description": description})


@dataclass(frozen=True)
class TableDef:
    name: str
    layer: str
    short: str
    schema: pa.Schema
    description: str

    @property
    def location(self) -> str:
        return table_location(self.layer, self.short)


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

TABLES: dict[str, TableDef] = {t.name: t for t in (BRONZE_PORTFOLIO, SILVER_HEADER, SILVER_ASSETS)}
