"""Raw → bronze: a capture's bodies decoded and validated again, and one table per date that keeps
B3's strings as they were written (no typing yet)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pyarrow as pa

from b3_platform.b3.contract import ContractError, Portfolio, decode_portfolio_json, merge_pages
from b3_platform.b3.csv_reader import read_portfolio_csv
from b3_platform.lake.schemas import BRONZE_PORTFOLIO


def decode_capture(bodies: list[bytes], *, source_format: str, index: str, day: dt.date | None) -> Portfolio:
    """The portfolio held by a raw capture's bodies (validated again, as on arrival)."""
    if source_format == "csv":
        portfolio = read_portfolio_csv(bodies[0], requested_date=day)
        if portfolio.index != index:
            raise ContractError(f"CSV title names {portfolio.index}", index=index, requested_date=day)
        return portfolio
    if source_format != "json":
        raise ContractError(f"unknown raw format {source_format!r}", index=index, requested_date=day)
    pages = [
        decode_portfolio_json(b, index=index, requested_date=day, check_total_records=len(bodies) == 1)
        for b in bodies
    ]
    return merge_pages(pages, index=index, requested_date=day)


def bronze_table(items: Iterable[tuple[str, str, Portfolio]]) -> pa.Table:
    """One bronze table from (index, capture_id, portfolio) items, rows in response order.

    Built a column at a time (a header value repeated over its portfolio's rows, a component
    field read once per row): a date of 34 indices holds ~3,000 rows."""
    columns: dict[str, list] = {f.name: [] for f in BRONZE_PORTFOLIO.schema}
    for index, capture_id, portfolio in sorted(items, key=lambda item: item[0]):
        h, rows = portfolio.header, portfolio.results
        n = len(rows)
        repeated = {
            "index": index,
            "capture_id": capture_id,
            "source_format": portfolio.source_format,
            "language": portfolio.language,
            "total_records": portfolio.total_records,
            "header_date": h.date,
            "header_text": h.text,
            "header_part": h.part,
            "header_part_acum": h.partAcum,
            "header_text_reductor": h.textReductor,
            "header_reductor": h.reductor,
            "header_theorical_qty": h.theoricalQty,
        }
        for name, value in repeated.items():
            columns[name].extend([value] * n)
        columns["row_number"].extend(range(1, n + 1))
        for name, field in _ROW_FIELDS.items():
            columns[name].extend([getattr(row, field) for row in rows])
    return pa.Table.from_pydict(columns, schema=BRONZE_PORTFOLIO.schema)


#: Bronze column ← the field of B3's `results[]` row it keeps as written.
_ROW_FIELDS = {
    "segment": "segment",
    "cod": "cod",
    "asset": "asset",
    "type": "type",
    "part": "part",
    "part_acum": "partAcum",
    "theorical_qty": "theoricalQty",
}
