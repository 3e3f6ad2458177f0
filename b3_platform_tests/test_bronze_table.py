"""`bronze_table` keeps every portfolio's strings as written, whatever kind of portfolio it holds:
compared with the table built the plain way, one row dict per component."""

from __future__ import annotations

import pyarrow as pa

from b3_platform.b3.contract import Portfolio, decode_portfolio_json
from b3_platform.b3.csv_reader import read_portfolio_csv
from b3_platform.lake.schemas import BRONZE_PORTFOLIO
from b3_platform.lake.tables import to_parquet_bytes
from b3_platform.transforms.bronze import bronze_table
from b3_platform_tests.replay import SAMPLES, sample_bytes, to_en_us, with_changes


def _row_by_row(items: list[tuple[str, str, Portfolio]]) -> pa.Table:
    rows = []
    for index, capture_id, p in sorted(items, key=lambda item: item[0]):
        h = p.header
        for number, c in enumerate(p.results, start=1):
            rows.append(
                {
                    "index": index,
                    "capture_id": capture_id,
                    "source_format": p.source_format,
                    "language": p.language,
                    "total_records": p.total_records,
                    "header_date": h.date,
                    "header_text": h.text,
                    "header_part": h.part,
                    "header_part_acum": h.partAcum,
                    "header_text_reductor": h.textReductor,
                    "header_reductor": h.reductor,
                    "header_theorical_qty": h.theoricalQty,
                    "row_number": number,
                    "segment": c.segment,
                    "cod": c.cod,
                    "asset": c.asset,
                    "type": c.type,
                    "part": c.part,
                    "part_acum": c.partAcum,
                    "theorical_qty": c.theoricalQty,
                }
            )
    return pa.Table.from_pylist(rows, schema=BRONZE_PORTFOLIO.schema)


def _json(relative: str, body: bytes | None = None, **kwargs) -> Portfolio:
    return decode_portfolio_json(body or sample_bytes(relative), index=None, **kwargs)


def _every_kind() -> list[tuple[str, str, Portfolio]]:
    segment2 = "GetPortfolioDay/IBOV/2022-12-08_segment2_pt-br_vcr.json"
    day = "GetPortfolioDay/IBOV/2025-07-10.json"
    items = [
        ("IBOV", "c-json", _json(day)),
        ("IBXX", "c-en-us", _json(day, to_en_us(sample_bytes(day)))),
        ("SECT", "c-segment-2", _json(segment2)),  # sectors and partAcum
        (
            "NULL",
            "c-nulls",
            _json(
                day,
                with_changes(
                    sample_bytes(day),
                    lambda d: (
                        d["header"].__setitem__("partAcum", None),
                        d["results"][2].__setitem__("segment", None),
                    ),
                ),
            ),
        ),
    ]
    for path in sorted((SAMPLES / "csv").glob("*.csv"))[:4]:  # no total_records, no sector
        portfolio = read_portfolio_csv(path.read_bytes())
        items.append((f"C{len(items)}", f"c-{path.stem}", portfolio))
    return items


def test_bronze_table_holds_every_kind_of_portfolio_as_written():
    items = _every_kind()
    expected = _row_by_row(items)
    got = bronze_table(list(reversed(items)))  # any order in, indices sorted out
    assert got.schema.equals(BRONZE_PORTFOLIO.schema)
    assert got.to_pylist() == expected.to_pylist()
    assert to_parquet_bytes(got) == to_parquet_bytes(expected)
    assert got.column("total_records").null_count > 0  # the CSV downloads
    assert got.column("segment").drop_null().to_pylist()  # the segment-2 sample's sectors
    assert got.num_rows == sum(len(p.results) for _, _, p in items)


def test_an_empty_date_is_an_empty_table():
    table = bronze_table([])
    assert table.num_rows == 0 and table.schema.equals(BRONZE_PORTFOLIO.schema)
