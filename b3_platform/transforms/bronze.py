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
    """One bronze table from (index, capture_id, portfolio) items, rows in response order."""
    columns: dict[str, list] = {f.name: [] for f in BRONZE_PORTFOLIO.schema}
    for index, capture_id, portfolio in sorted(items, key=lambda item: item[0]):
        h = portfolio.header
        for number, row in enumerate(portfolio.results, start=1):
            values = {
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
                "row_number": number,
                "segment": row.segment,
                "cod": row.cod,
                "asset": row.asset,
                "type": row.type,
                "part": row.part,
                "part_acum": row.partAcum,
                "theorical_qty": row.theoricalQty,
            }
            for name, value in values.items():
                columns[name].append(value)
    return pa.Table.from_pydict(columns, schema=BRONZE_PORTFOLIO.schema)
