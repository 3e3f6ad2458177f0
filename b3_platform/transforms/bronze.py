"""Raw → bronze: a capture's bodies decoded and validated again, and one table per date that keeps
B3's strings as they were written (no typing yet)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from b3_platform.b3.contract import (
    ContractError,
    Portfolio,
    component_rows,
    decode_portfolio_json,
    merge_pages,
)
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

    Built by Arrow a column at a time (a date of 34 indices holds ~3,000 rows): each portfolio's
    header values converted once and repeated over its rows by index, and every row's component
    fields (`component_rows`: the validated dicts, or each model's `vars`) converted in one pass into
    a struct whose fields are the row columns."""
    ordered = sorted(items, key=lambda item: item[0])
    counts = [len(portfolio.results) for _, _, portfolio in ordered]
    owner = pa.array(np.repeat(np.arange(len(ordered), dtype=np.int64), counts))  # each row's portfolio
    headers = pa.array([_header_values(*item) for item in ordered], _HEADER_TYPE).take(owner)
    rows = pa.array(
        [row for _, _, portfolio in ordered for row in component_rows(portfolio.results)], _ROW_TYPE
    )
    columns = {name: headers.field(name) for name in _HEADER_TYPE.names}
    columns["row_number"] = pa.array(
        np.concatenate(
            [np.arange(1, count + 1, dtype=np.int32) for count in counts] or [np.zeros(0, np.int32)]
        )
    )
    columns.update({name: rows.field(field) for name, field in _ROW_FIELDS.items()})
    return pa.Table.from_pydict(
        {name: columns[name] for name in BRONZE_PORTFOLIO.schema.names}, schema=BRONZE_PORTFOLIO.schema
    )


def _header_values(index: str, capture_id: str, portfolio: Portfolio) -> dict:
    """The bronze columns that repeat one value over a portfolio's rows."""
    h = portfolio.header
    return {
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
#: The row fields as one struct (each a string or null, as the contract's `Component` has them).
_ROW_TYPE = pa.struct([(field, pa.string()) for field in _ROW_FIELDS.values()])
#: The header columns, as the schema declares them.
_HEADER_TYPE = pa.struct(
    [f for f in BRONZE_PORTFOLIO.schema if f.name not in _ROW_FIELDS and f.name != "row_number"]
)
