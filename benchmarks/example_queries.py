"""(f) the example queries: each queries/*.sql through the DuckDB catalog, against a pandas function
per query scanning the raw JSON of the archive, answers compared."""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from common import REPO, Clock, median, pt_number

QUERIES_DIR = REPO / "queries"


def load_components(files: list[Path]):
    """Every component row of the given JSON files, one DataFrame (date, cod, asset, weight, ...)."""
    import pandas as pd

    records, dates = [], []
    for path in files:
        data = json.loads(path.read_bytes())
        day = dt.datetime.strptime(data["header"]["date"], "%d/%m/%y").date()
        records.extend(data["results"])
        dates.extend([day] * len(data["results"]))
    frame = pd.DataFrame.from_records(
        records, columns=["segment", "cod", "asset", "type", "part", "theoricalQty"]
    )
    frame["date"] = dates
    frame["weight"] = pt_number(frame["part"])
    frame["quantity"] = frame["theoricalQty"].str.replace(".", "", regex=False).astype("int64")
    return frame


# Each pandas function mirrors one queries/*.sql (same filters, same columns); the equality check
# below catches drift if a query is edited.
ENTRIES_FROM, ENTRIES_TO = dt.date(2025, 6, 30), dt.date(2025, 7, 11)
SECTOR_DATE = dt.date(2022, 12, 8)
HISTORY_TICKER = "PETR4"


def pandas_entries_exits(files: list[Path]):
    """entries_exits.sql: tickers entering/leaving IBOV vs the previous trading day, if present."""
    import pandas as pd

    from b3_platform.trading_calendar import previous_trading_day

    frame = load_components(files)
    by_day = {day: group.set_index("cod") for day, group in frame.groupby("date")}
    rows = []
    for day in sorted(d for d in by_day if ENTRIES_FROM <= d <= ENTRIES_TO):
        before = by_day.get(previous_trading_day(day))
        if before is None:
            continue
        now = by_day[day]
        for ticker in now.index.difference(before.index):
            rows.append((day, "IBOV", "entered", ticker, now.at[ticker, "asset"], now.at[ticker, "weight"]))
        for ticker in before.index.difference(now.index):
            rows.append(
                (day, "IBOV", "exited", ticker, before.at[ticker, "asset"], before.at[ticker, "weight"])
            )
    columns = ["date", "index", "membership", "ticker", "company", "weight"]
    return pd.DataFrame(rows, columns=columns).sort_values(["date", "membership", "ticker"])


def pandas_sector_weights(files: list[Path]):
    """sector_weights.sql: weight and count per sector on one date (null sector without segment 2)."""
    import pandas as pd

    frame = load_components(files)
    day = frame[frame["date"] == SECTOR_DATE]
    if day.empty:
        return pd.DataFrame(columns=["sector", "weight", "components"])
    sector = day["segment"] if day["segment"].notna().any() else None
    grouped = (
        day.assign(sector=sector)
        .groupby("sector", dropna=False)
        .agg(weight=("weight", "sum"), components=("cod", "size"))
        .reset_index()
    )
    return grouped.sort_values(["weight", "sector"], ascending=[False, True])


def pandas_top10_concentration(files: list[Path]):
    """top10_concentration.sql: per date, components, top-5/top-10 weight, HHI, equivalent count."""
    frame = load_components(files).sort_values(["date", "weight"], ascending=[True, False])
    frame["rank"] = frame.groupby("date").cumcount()
    frame["w2"] = frame["weight"] ** 2
    out = frame.groupby("date").agg(components=("cod", "size"), hhi=("w2", "sum"))
    out["top5_weight"] = frame[frame["rank"] < 5].groupby("date")["weight"].sum()
    out["top10_weight"] = frame[frame["rank"] < 10].groupby("date")["weight"].sum()
    out["equivalent_components"] = (10000 / out["hhi"]).round(1)
    return out.reset_index()[
        ["date", "components", "top5_weight", "top10_weight", "hhi", "equivalent_components"]
    ]


def pandas_weight_history(files: list[Path]):
    """weight_history.sql: PETR4's weight per date, change vs the previous trading day if present."""
    from b3_platform.trading_calendar import previous_trading_day

    frame = load_components(files)
    present = set(frame["date"])
    rows = frame[frame["cod"] == HISTORY_TICKER].sort_values("date")
    weight_on = dict(zip(rows["date"], rows["weight"]))
    changes = []
    for day, weight in zip(rows["date"], rows["weight"]):
        before = previous_trading_day(day)
        changes.append(weight - weight_on.get(before, 0.0) if before in present else None)
    out = rows.rename(columns={"cod": "ticker", "quantity": "theoretical_quantity"})
    out = out.assign(weight_change_pp=changes)
    return out[["date", "ticker", "weight", "weight_change_pp", "theoretical_quantity"]]


@dataclass(frozen=True)
class QuerySpec:
    name: str
    pandas_fn: object
    #: dates a pandas user could restrict the file list to by name (None: needs every date)
    needed_dates: object = None
    tolerance: dict = field(default_factory=dict)


def _entries_dates(available: list[dt.date]) -> set[dt.date]:
    from b3_platform.trading_calendar import previous_trading_day

    window = {d for d in available if ENTRIES_FROM <= d <= ENTRIES_TO}
    return window | {previous_trading_day(d) for d in window}


QUERY_SPECS = {
    "entries_exits": QuerySpec("entries_exits", pandas_entries_exits, _entries_dates),
    "sector_weights": QuerySpec("sector_weights", pandas_sector_weights, lambda _: {SECTOR_DATE}),
    "top10_concentration": QuerySpec(
        "top10_concentration", pandas_top10_concentration, tolerance={"equivalent_components": 0.1 + 1e-9}
    ),
    "weight_history": QuerySpec("weight_history", pandas_weight_history),
}


def _plain(value):
    """One value as a comparable Python object (Decimal/numpy -> float, NaN -> None)."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, (Decimal, float)):
        value = float(value)
        return None if math.isnan(value) else value
    return value


def same_answer(sql_columns: list[str], sql_rows: list[tuple], frame, tolerance: dict) -> tuple[bool, str]:
    """Compare the catalog's answer with pandas' on the columns pandas computes (rows sorted, numbers
    within tolerance: pandas works in floats, the lake in exact decimals)."""
    columns = list(frame.columns)
    missing = [c for c in columns if c not in sql_columns]
    if missing:
        return False, f"columns {missing} not in the SQL result"
    picks = [sql_columns.index(c) for c in columns]
    ours = [tuple(_plain(row[i]) for i in picks) for row in sql_rows]
    theirs = [tuple(_plain(v) for v in row) for row in frame.itertuples(index=False, name=None)]
    if len(ours) != len(theirs):
        return False, f"{len(ours)} rows from the catalog, {len(theirs)} from pandas"

    def key(row):
        return tuple((v is None, round(v, 3) if isinstance(v, float) else v) for v in row)

    for a, b in zip(sorted(ours, key=key), sorted(theirs, key=key)):
        for column, x, y in zip(columns, a, b):
            if isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=0, abs_tol=tolerance.get(column, 1e-6)):
                    return False, f"{column}: {x} vs {y}"
            elif x != y:
                return False, f"{column}: {x!r} vs {y!r}"
    return True, f"{len(ours)} rows equal"


def time_calls(fn, repeat: int) -> float:
    """Median seconds of `repeat` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return median(times)


@dataclass
class QueryResult:
    name: str
    rows: int
    duckdb_ms: float
    pandas_ms: float
    pruned_ms: float | None
    equal: bool
    detail: str


def measure_queries(lake: Path, archive: Path, repeat: int, clock: Clock) -> list[QueryResult]:
    """(f): each queries/*.sql through DuckDBCatalogResource.query vs a pandas scan of the IBOV JSON."""
    from b3_platform.resources import build_resources

    env = {
        "B3_PLATFORM_ENV": "local",
        "B3_PLATFORM_DATA_DIR": str(lake),
        "B3_PLATFORM_DUCKDB": str(lake / "warehouse.duckdb"),
    }
    catalog = build_resources(env)["catalog"]
    files = sorted((archive / "IBOV").glob("*.json"))
    available = [dt.date.fromisoformat(p.stem) for p in files]
    results = []
    for sql_file in sorted(QUERIES_DIR.glob("*.sql")):
        spec = QUERY_SPECS.get(sql_file.stem)
        if spec is None:
            clock.say(f"  (f) {sql_file.name}: no pandas equivalent written; skipped")
            continue
        sql = sql_file.read_text(encoding="utf-8")
        answer = catalog.query(sql)
        equal, detail = same_answer(answer.columns, answer.rows, spec.pandas_fn(files), spec.tolerance)
        duckdb_s = time_calls(lambda: catalog.query(sql), repeat)
        pandas_s = time_calls(lambda: spec.pandas_fn(files), repeat)
        pruned_s = None
        if spec.needed_dates is not None:
            wanted = spec.needed_dates(available)
            subset = [p for p in files if dt.date.fromisoformat(p.stem) in wanted]
            pruned_s = time_calls(lambda: spec.pandas_fn(subset), repeat)
        results.append(
            QueryResult(
                sql_file.stem,
                len(answer.rows),
                duckdb_s * 1000,
                pandas_s * 1000,
                None if pruned_s is None else pruned_s * 1000,
                equal,
                detail,
            )
        )
        clock.say(
            f"  (f) {sql_file.stem}: {len(answer.rows)} rows, DuckDB {duckdb_s * 1000:.1f} ms, "
            f"pandas scan {pandas_s * 1000:.0f} ms, same answer: {'yes' if equal else 'NO — ' + detail}"
        )
    return results
