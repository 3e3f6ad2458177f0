"""Athena's query results as Python values.

GetQueryResults returns every value as text (`VarCharValue`, absent for NULL) with each column's
Athena type in the result set's metadata. `query_result` turns its pages into a QueryResult whose
rows hold typed values (ints, Decimals with Athena's digits, dates, datetimes); a type without a
converter (arrays, maps, rows…) stays text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from b3_platform.catalog.base import QueryResult


def _timestamp_with_zone(text: str) -> dt.datetime:
    """Athena writes `2025-07-10 12:00:00.000 UTC` (a zone name) or an offset."""
    stamp, _, zone = text.rpartition(" ")
    if zone in ("UTC", "Z"):
        return dt.datetime.fromisoformat(stamp).replace(tzinfo=dt.timezone.utc)
    if zone[:1] in "+-":
        return dt.datetime.fromisoformat(stamp + zone)
    return dt.datetime.fromisoformat(stamp).replace(tzinfo=ZoneInfo(zone))


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    **dict.fromkeys(("varchar", "char", "string"), str),
    **dict.fromkeys(("tinyint", "smallint", "integer", "int", "bigint"), int),
    **dict.fromkeys(("double", "real", "float"), float),
    "decimal": Decimal,
    "boolean": lambda text: text.lower() == "true",
    "date": dt.date.fromisoformat,
    "timestamp": dt.datetime.fromisoformat,
    "timestamp with time zone": _timestamp_with_zone,
}


def converter(athena_type: str) -> Callable[[str | None], Any]:
    """How a column's text becomes a Python value; types without one (arrays, maps…) stay text."""
    convert = _CONVERTERS.get(athena_type.lower(), str)
    return lambda text: None if text is None else convert(text)


def type_name(info: dict[str, Any]) -> str:
    """A column's type as reported: `decimal(7,3)` with its precision and scale."""
    if info["Type"] == "decimal" and "Precision" in info:
        return f"decimal({info['Precision']},{info.get('Scale', 0)})"
    return info["Type"]


def query_result(pages: Iterable[dict[str, Any]], has_header: bool) -> QueryResult:
    """GetQueryResults pages → columns, types and typed rows. The first page describes the
    columns; a SELECT's first row repeats their labels (`has_header`), DDL's results have none."""
    columns: list[str] = []
    types: list[str] = []
    rows: list[tuple] = []
    converters: list[Callable[[str | None], Any]] = []
    for number, page in enumerate(pages):
        result_set = page["ResultSet"]
        if number == 0:
            info = result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
            columns = [c["Name"] for c in info]
            types = [type_name(c) for c in info]
            converters = [converter(c["Type"]) for c in info]
        page_rows = result_set.get("Rows", [])
        if number == 0 and has_header:
            page_rows = page_rows[1:]
        for row in page_rows:
            data = row.get("Data", [])
            rows.append(tuple(conv(d.get("VarCharValue")) for conv, d in zip(converters, data)))
    return QueryResult(columns, types, rows)
