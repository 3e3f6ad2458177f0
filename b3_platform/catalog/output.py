"""Query results as a terminal table, CSV or JSON (what `python -m b3_platform query` prints)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from decimal import Decimal

from b3_platform.catalog.results import QueryResult

FORMATS = ("table", "csv", "json")


def _text(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def as_table(result: QueryResult, max_rows: int | None = None) -> str:
    """Aligned columns, numbers right-aligned, with a row count (and `…` past max_rows)."""
    rows = result.rows if max_rows is None else result.rows[:max_rows]
    cells = [[_text(v) for v in row] for row in rows]
    widths = [len(c) for c in result.columns]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    numeric = [bool(rows) and all(_is_number(r[i]) or r[i] is None for r in rows) for i in range(len(widths))]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric)).rstrip()

    out = [line(list(result.columns)), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells]
    shown = len(rows)
    more = f", {len(result.rows) - shown} more not shown" if shown < len(result.rows) else ""
    out.append(f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''}{more})")
    return "\n".join(out)


def as_csv(result: QueryResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow(["" if v is None else _text(v) for v in row])
    return buffer.getvalue()


_MARK = "\u0000decimal:"
_MARKED = re.compile(r'"\\u0000decimal:(-?[0-9.]+)"')


def _json_value(value):
    if isinstance(value, Decimal):
        return f"{_MARK}{value:f}"  # becomes a bare JSON number with exactly these digits below
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def as_json(result: QueryResult) -> str:
    """One JSON array of objects keyed by column name; decimals keep their exact digits."""
    records = [{c: _json_value(v) for c, v in zip(result.columns, row)} for row in result.rows]
    return _MARKED.sub(r"\1", json.dumps(records, ensure_ascii=False, indent=1, default=str))


def render(result: QueryResult, fmt: str) -> str:
    if fmt == "csv":
        return as_csv(result).rstrip("\n")
    if fmt == "json":
        return as_json(result)
    return as_table(result)
