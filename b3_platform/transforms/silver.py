"""Bronze → silver: B3's strings typed by the parse rules of `b3.parse`; a value that does not parse
is an error naming the field, the value, the index and the date. The publish audit
(`b3_platform.audit`) runs this very typing on each capture before bronze takes it, so bronze only
holds captures that type: the error here can only come from bronze written under older rules."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from b3_platform.b3.parse import (
    ParseError,
    parse_date,
    parse_decimal,
    parse_int,
    parse_reductor,
    split_type,
)
from b3_platform.lake.paths import fetched_at_from_stem
from b3_platform.lake.schemas import SILVER_ASSETS, SILVER_HEADER


def _groups(bronze: pa.Table) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for row in bronze.to_pylist():
        groups.setdefault(row["index"], []).append(row)
    return groups


def silver_tables(bronze: pa.Table, day: dt.date) -> tuple[pa.Table, pa.Table]:
    """Typed (header, assets) tables for one date's bronze table."""
    headers: dict[str, list] = {f.name: [] for f in SILVER_HEADER.schema}
    assets: dict[str, list] = {f.name: [] for f in SILVER_ASSETS.schema}
    for index, rows in _groups(bronze).items():
        first = rows[0]
        locale = first["language"]
        where = f"{index} {day}"
        try:
            reference_date = parse_date(first["header_date"], locale, field="header.date")
            reductor = parse_reductor(first["header_reductor"], locale, field="header.reductor")
            header_values = {
                "index": index,
                "reference_date": reference_date,
                "theoretical_quantity_total": parse_int(
                    first["header_theorical_qty"], locale, field="header.theoricalQty"
                ),
                "part_total": parse_decimal(first["header_part"], locale, field="header.part"),
                "reductor": reductor.value,
                "reductor_note": reductor.note,
                "row_count": len(rows),
                "total_records": first["total_records"],
                "has_sector": any(r["segment"] for r in rows),
                "language": locale,
                "source_format": first["source_format"],
                "capture_id": first["capture_id"],
                "fetched_at": fetched_at_from_stem(first["capture_id"]),
            }
        except ParseError as exc:
            raise exc.at(where) from None
        if reference_date != day:
            raise ParseError(
                "header.date",
                first["header_date"],
                f"is {reference_date}, not the partition date",
                where=where,
            )
        for name, value in header_values.items():
            headers[name].append(value)
        for row in rows:
            try:
                type_code = split_type(row["type"])
                values = {
                    "index": index,
                    "ticker": row["cod"].strip(),
                    "company": row["asset"].strip(),
                    "share_class": type_code.share_class,
                    "event_flag": type_code.event_flag,
                    "listing_segment": type_code.listing_segment,
                    "sector": row["segment"].strip() if row["segment"] else None,
                    "sector_weight": (
                        parse_decimal(row["part_acum"], locale, field="partAcum")
                        if row["part_acum"]
                        else None
                    ),
                    "weight": parse_decimal(row["part"], locale, field="part"),
                    "theoretical_quantity": parse_int(row["theorical_qty"], locale, field="theoricalQty"),
                    "type_code": row["type"],
                    "row_number": row["row_number"],
                    "capture_id": row["capture_id"],
                }
            except ParseError as exc:
                raise exc.at(f"{where} row {row['row_number']} ({row['cod']})") from None
            for name, value in values.items():
                assets[name].append(value)
    return (typed_table(headers, SILVER_HEADER.schema, day), typed_table(assets, SILVER_ASSETS.schema, day))


def typed_table(columns: dict[str, list], schema: pa.Schema, day: dt.date) -> pa.Table:
    """Typed columns as a table of the declared schema, or a ParseError saying why they do not fit."""
    try:
        return pa.Table.from_pydict(columns, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        # e.g. a weight with more decimals than the declared scale: say so rather than round.
        raise ParseError(
            "(table)", None, f"does not fit the declared schema: {exc}", where=str(day)
        ) from None
