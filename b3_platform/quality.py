"""Data-quality rules for the lake's tables, as pure functions of one date's tables.

Each rule returns the problems it found (empty = passed). The assets run them on the tables they
have just built and report them as Dagster asset checks; tests call them directly.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from b3_platform.b3.parse import ParseError, parse_date, split_type

TICKER = re.compile(r"^[A-Z][A-Z0-9]{3}\d{1,2}$")
#: TICKER for pyarrow.compute (RE2): ASCII digits only, so stricter; a ticker it refuses is judged
#: by TICKER itself.
TICKER_ASCII = TICKER.pattern.replace(r"\d", "[0-9]")
#: B3 rounds each weight to 3 decimals, so n weights may miss 100 by up to n × 0.0005.
WEIGHT_ROUNDING_PER_ROW = Decimal("0.0005")


@dataclass(frozen=True)
class Rule:
    name: str
    table: str  # the asset the check is attached to
    blocking: bool
    description: str
    fn: Callable[..., list[str]]
    reads: str | None = None  # the table the rule reads, when not the asset it is attached to
    #: The rule also needs the date's silver header (passed as `header=`).
    with_header: bool = False

    @property
    def source(self) -> str:
        return self.reads or self.table

    def evaluate(self, tables: Mapping[str, pa.Table], day: dt.date) -> list[str]:
        """The rule on one date's tables, by table name (its source, and silver_header if needed)."""
        extra = {"header": tables["silver_header"]} if self.with_header else {}
        return self.fn(tables[self.source], day, **extra)


def _by_index(table: pa.Table, *columns: str) -> dict[str, list[tuple]]:
    data = table.select(["index", *columns]).to_pydict()
    grouped: dict[str, list[tuple]] = {}
    for i, index in enumerate(data["index"]):
        grouped.setdefault(index, []).append(tuple(data[c][i] for c in columns))
    return grouped


def _per_index(table: pa.Table, aggregations: list[tuple[str, str]]) -> pa.Table:
    """`table.group_by("index").aggregate(aggregations)` (columns named `<column>_<function>`,
    `count_all`). A table of one index (one capture: the publish audit, an import) gets the same
    from whole-column kernels: Acero's group-by costs ~0.5 ms to start, more than such a table's
    whole typing."""
    if pc.count_distinct(table.column("index"), mode="all").as_py() != 1:
        return table.group_by("index", use_threads=False).aggregate(
            [([] if function == "count_all" else column, function) for column, function in aggregations]
        )
    columns = {"index": [table.column("index")[0].as_py()]}
    for column, function in aggregations:
        if function == "count_all":
            columns["count_all"] = [table.num_rows]
        else:
            columns[f"{column}_{function}"] = [getattr(pc, function)(table.column(column)).as_py()]
    return pa.table(columns)


def header_date_matches_partition(bronze: pa.Table, day: dt.date) -> list[str]:
    # Each distinct (date text, language) is parsed once: a date holds a few, not 3,000 rows.
    distinct = _distinct_pairs(bronze, "header_date", "language")
    try:
        if all(parse_date(text, language, field="header.date") == day for text, language in distinct):
            return []
    except (ParseError, ValueError):
        pass  # the loop below names it (or raises it) as ever
    problems = []
    for index, rows in _by_index(bronze, "header_date", "language").items():
        for header_date, language in set(rows):
            try:
                parsed = parse_date(header_date, language, field="header.date")
            except ParseError as exc:
                problems.append(f"{index}: {exc}")
                continue
            if parsed != day:
                problems.append(f"{index}: header date {parsed} is not the partition {day}")
    return problems


def _distinct_pairs(table: pa.Table, first: str, second: str) -> set[tuple]:
    """The distinct (first, second) values of a table's rows. A date's captures nearly always share
    one header date and one language: then that pair is read from the two columns' distinct values
    alone, instead of a Python pair for each of ~3,000 rows."""
    one, other = pc.unique(table.column(first)), pc.unique(table.column(second))
    if len(one) == 1 and len(other) == 1:
        return {(one[0].as_py(), other[0].as_py())} if table.num_rows else set()
    return set(zip(table.column(first).to_pylist(), table.column(second).to_pylist()))


def row_count_matches_total_records(bronze: pa.Table, day: dt.date) -> list[str]:
    per_index = _per_index(bronze, [("total_records", "min"), ("total_records", "max"), ("", "count_all")])
    if all(
        low is None or low == high == n
        for low, high, n in zip(
            *(
                per_index.column(c).to_pylist()
                for c in ("total_records_min", "total_records_max", "count_all")
            )
        )
    ):
        return []
    problems = []
    for index, rows in _by_index(bronze, "total_records").items():
        totals = {r[0] for r in rows}
        for total in totals - {None}:  # CSV downloads do not state a total
            if total != len(rows):
                problems.append(f"{index}: {len(rows)} rows but page.totalRecords = {total}")
    return problems


def unique_tickers(assets: pa.Table, day: dt.date) -> list[str]:
    if _pairs_all_distinct(assets, "index", "ticker"):
        return []
    problems = []
    for index, rows in _by_index(assets, "ticker").items():
        dupes = sorted(t for t, n in Counter(r[0] for r in rows).items() if n > 1)
        if dupes:
            problems.append(f"{index}: tickers listed more than once: {', '.join(dupes)}")
    return problems


def _pairs_all_distinct(table: pa.Table, first: str, second: str) -> bool:
    """Whether no two rows hold the same (first, second), judged by Arrow over the two texts joined
    (no Python pair per row). Two equal pairs join to equal texts, so "distinct" is never wrong;
    two pairs the join cannot tell apart (a separator inside a text), a null or columns that are
    not text send the question to Python's pairs, which are exact."""
    one, other = table.column(first), table.column(second)
    texts = pa.types.is_string(one.type) and pa.types.is_string(other.type)
    if texts and not one.null_count and not other.null_count:
        joined = pc.binary_join_element_wise(one, other, "\x00")
        if pc.count_distinct(joined).as_py() == table.num_rows:
            return True
    return len(set(zip(one.to_pylist(), other.to_pylist()))) == table.num_rows


def ticker_format(assets: pa.Table, day: dt.date) -> list[str]:
    tickers = assets.column("ticker")
    if tickers.null_count == 0 and pc.all(pc.match_substring_regex(tickers, TICKER_ASCII)).as_py():
        return []
    problems = []
    for index, rows in _by_index(assets, "ticker").items():
        bad = sorted({r[0] for r in rows if not TICKER.match(r[0])})
        if bad:
            problems.append(f"{index}: tickers not like 'PETR4'/'BPAC11': {', '.join(bad)}")
    return problems


def weights_sum_to_100(assets: pa.Table, day: dt.date) -> list[str]:
    per_index = _per_index(assets, [("weight", "sum"), ("", "count_all")])
    if assets.column("weight").null_count == 0 and all(
        abs(total - 100) <= WEIGHT_ROUNDING_PER_ROW * n
        for total, n in zip(
            per_index.column("weight_sum").to_pylist(), per_index.column("count_all").to_pylist()
        )
    ):
        return []
    problems = []
    for index, rows in _by_index(assets, "weight").items():
        total = sum((r[0] for r in rows), Decimal(0))
        tolerance = WEIGHT_ROUNDING_PER_ROW * len(rows)
        if abs(total - 100) > tolerance:
            problems.append(f"{index}: weights sum to {total}, not 100 ± {tolerance}")
    return problems


def quantities_positive(assets: pa.Table, day: dt.date) -> list[str]:
    quantities = assets.column("theoretical_quantity")
    if quantities.null_count == 0 and (assets.num_rows == 0 or pc.min(quantities).as_py() > 0):
        return []
    problems = []
    for index, rows in _by_index(assets, "ticker", "theoretical_quantity").items():
        bad = [f"{t}={q}" for t, q in rows if q <= 0]
        if bad:
            problems.append(f"{index}: non-positive theoretical quantity: {', '.join(bad)}")
    return problems


def quantities_sum_to_header_total(assets: pa.Table, day: dt.date, header: pa.Table) -> list[str]:
    totals = dict(
        zip(header.column("index").to_pylist(), header.column("theoretical_quantity_total").to_pylist())
    )
    quantities = assets.column("theoretical_quantity")
    # Summed in int64 only when no sum can overflow it; Python's ints otherwise.
    bounds = pc.min_max(quantities).as_py() if assets.num_rows and quantities.null_count == 0 else None
    if bounds and max(abs(bounds["min"]), abs(bounds["max"])) * assets.num_rows < 2**63:
        sums = _per_index(assets, [("theoretical_quantity", "sum")])
        found = dict(
            zip(sums.column("index").to_pylist(), sums.column("theoretical_quantity_sum").to_pylist())
        )
        if all(totals.get(index) == total for index, total in found.items()):
            return []
    problems = []
    for index, rows in _by_index(assets, "theoretical_quantity").items():
        total = sum(r[0] for r in rows)
        if totals.get(index) != total:
            problems.append(f"{index}: components sum to {total}, header total is {totals.get(index)}")
    return problems


def type_codes_recognised(assets: pa.Table, day: dt.date) -> list[str]:
    """Codes no rule of `split_type` recognises: kept verbatim in `type_code`, split as far as the
    layout allows, and only reported (a descriptive field never refuses a capture)."""
    # Each distinct code is split once: a date holds a few dozen codes over 3,000 rows.
    if all(
        isinstance(c, str) and not split_type(c).unrecognised
        for c in pc.unique(assets.column("type_code")).to_pylist()
    ):
        return []
    problems = []
    for index, rows in _by_index(assets, "type_code", "ticker").items():
        unknown: dict[str, list[str]] = {}
        for code, ticker in rows:
            if reason := split_type(code).unrecognised:
                unknown.setdefault(f"{code!r} ({reason})", []).append(ticker)
        problems.extend(f"{index}: type code {code} of {', '.join(t)}" for code, t in sorted(unknown.items()))
    return problems


def configured_indices_present(
    present: Iterable[str], configured: Iterable[str], expected: str | None = None
) -> list[str]:
    """The indices of the day's list without a capture; `expected` says which list that was
    (configured, discovered from GetStockIndex, or the built-in one)."""
    missing = sorted(set(configured) - set(present))
    if not missing:
        return []
    return [f"not captured: {', '.join(missing)}" + (f" (expected {expected})" if expected else "")]


BRONZE_RULES = (
    Rule(
        "header_date_matches_partition",
        "bronze_portfolio",
        True,
        "Every index's header.date is the partition date.",
        header_date_matches_partition,
    ),
    Rule(
        "row_count_matches_total_records",
        "bronze_portfolio",
        True,
        "Rows per index equal page.totalRecords (API captures; CSV downloads state no total).",
        row_count_matches_total_records,
    ),
)

SILVER_ASSET_RULES = (
    Rule("unique_tickers", "silver_assets", True, "One row per (date, index, ticker).", unique_tickers),
    Rule(
        "ticker_format", "silver_assets", True, "Tickers look like B3 tickers (PETR4, BPAC11).", ticker_format
    ),
    Rule(
        "weights_sum_to_100",
        "silver_assets",
        True,
        "Weights of each index sum to 100 within B3's 3-decimal rounding.",
        weights_sum_to_100,
    ),
    Rule(
        "quantities_positive",
        "silver_assets",
        True,
        "Every theoretical quantity is > 0.",
        quantities_positive,
    ),
    Rule(
        "quantities_sum_to_header_total",
        "silver_assets",
        True,
        "Σ component theoretical quantities = the header's total.",
        quantities_sum_to_header_total,
        with_header=True,
    ),
    Rule(
        "type_codes_recognised",
        "silver_assets",
        False,
        "Every type code is one the parse rules recognise; an unknown one is kept verbatim in "
        "type_code, split as far as the fixed-width layout allows, and only reported here.",
        type_codes_recognised,
    ),
)

#: The rules that decide whether a capture of (date, index) may be published: every blocking rule
#: of bronze and silver. `b3_platform.audit` runs them before bronze takes a capture and before
#: `import` stores a file, so a capture that would fail them never replaces published data.
PUBLISH_RULES = tuple(r for r in (*BRONZE_RULES, *SILVER_ASSET_RULES) if r.blocking)


def composition_covers_every_component(composition: pa.Table, day: dt.date) -> list[str]:
    """Each dimension's groups add up to the whole index (a component lost or counted twice shows)."""
    problems = []
    # Summed by Arrow per (index, dimension): exact decimal sums, ~140 groups from ~3,000 rows
    # at 34 indices, so only the groups become Python values.
    sums = composition.group_by(["index", "dimension"], use_threads=False).aggregate(
        [("weight", "sum"), ("components", "sum")]
    )
    totals: dict[tuple[str, str], tuple[Decimal, int]] = {
        (index, dimension): (weight, n)
        for index, dimension, weight, n in zip(
            *(sums.column(c).to_pylist() for c in ("index", "dimension", "weight_sum", "components_sum"))
        )
    }
    counts = {}
    for (index, dimension), (weight, n) in sorted(totals.items()):
        tolerance = WEIGHT_ROUNDING_PER_ROW * n
        if abs(weight - 100) > tolerance:
            problems.append(f"{index} by {dimension}: weights sum to {weight}, not 100 ± {tolerance}")
        counts.setdefault(index, set()).add(n)
    for index, ns in counts.items():
        if len(ns) > 1:
            problems.append(f"{index}: dimensions count different components: {sorted(ns)}")
    return problems


def concentration_within_bounds(summary: pa.Table, day: dt.date) -> list[str]:
    """top-5 ≤ top-10 ≤ 100 and 10,000/n ≤ HHI ≤ 10,000 (B3's rounding allowed)."""
    problems = []
    for row in summary.select(["index", "components", "top5_weight", "top10_weight", "hhi"]).to_pylist():
        n, top5, top10, hhi = row["components"], row["top5_weight"], row["top10_weight"], row["hhi"]
        slack = WEIGHT_ROUNDING_PER_ROW * max(n, 1)
        if n <= 0:
            problems.append(f"{row['index']}: no components")
            continue
        if not Decimal(0) < top5 <= top10 <= 100 + slack:
            problems.append(f"{row['index']}: top-5 {top5} / top-10 {top10} out of order or above 100")
        low = Decimal(10_000) / n - 2 * 100 * slack
        if not low <= hhi <= 10_000 + 2 * 100 * slack:
            problems.append(f"{row['index']}: HHI {hhi} outside [{low:.3f}, 10000] for {n} components")
    return problems


def time_in_index_consistent(stays: pa.Table, day: dt.date) -> list[str]:
    if _every_stay_consistent(stays, day):
        return []  # the row by row pass below would find nothing; it runs only to name problems
    problems = []
    columns = [
        "index",
        "ticker",
        "first_seen",
        "trading_days_held",
        "calendar_days_since_entry",
        "observed_days",
    ]
    for r in stays.select(columns).to_pylist():
        where = f"{r['index']} {r['ticker']}"
        if r["first_seen"] > day:
            problems.append(f"{where}: first seen {r['first_seen']} after the date")
        elif not 1 <= r["observed_days"] <= r["trading_days_held"]:
            problems.append(
                f"{where}: observed on {r['observed_days']} dates of {r['trading_days_held']} trading days"
            )
        elif r["calendar_days_since_entry"] != (day - r["first_seen"]).days:
            problems.append(
                f"{where}: calendar days {r['calendar_days_since_entry']} do not match first_seen"
            )
    return problems


def _every_stay_consistent(stays: pa.Table, day: dt.date) -> bool:
    """Whether no row breaks `time_in_index_consistent`, checked a column at a time: a date of
    34 indices has ~3,000 stays, which the row by row pass turns into ~3,000 Python dicts only to
    find nothing on nearly every date. A null anywhere is left to the row pass (False)."""
    columns = ["first_seen", "trading_days_held", "calendar_days_since_entry", "observed_days"]
    if any(stays.column(c).null_count for c in columns):
        return False
    first_seen = stays.column("first_seen")
    observed = stays.column("observed_days")
    ok = pc.and_(
        pc.and_(
            pc.less_equal(first_seen, pa.scalar(day, first_seen.type)),
            pc.less_equal(observed, stays.column("trading_days_held")),
        ),
        pc.and_(
            pc.greater_equal(observed, 1),
            pc.equal(
                stays.column("calendar_days_since_entry"),
                pc.days_between(first_seen, pa.scalar(day, first_seen.type)),
            ),
        ),
    )
    return bool(pc.all(ok).as_py())


def previous_trading_day_in_lake(summary: pa.Table, day: dt.date) -> list[str]:
    missing = [
        f"{r['index']}: the previous trading day {r['previous_date']} is not in the lake; not compared"
        for r in summary.select(["index", "previous_date", "previous_in_lake"]).to_pylist()
        if not r["previous_in_lake"]
    ]
    return missing


PREVIOUS_DAY_RULE = "previous_trading_day_in_lake"

GOLD_RULES = (
    Rule(
        PREVIOUS_DAY_RULE,
        "gold_changes",
        False,
        "Each index's previous trading day (B3 calendar) is in the lake, so entries, exits and "
        "changes were computed; otherwise that index is not compared with an older day. Judged when "
        "that previous day is on or after the lake's first capture from B3's API: before it (imported "
        "history with gaps) the check reads 'not judged' and the date's metadata names what was not "
        "compared.",
        previous_trading_day_in_lake,
        reads="gold_index_summary",
    ),
    Rule(
        "composition_covers_every_component",
        "gold_composition",
        True,
        "For every dimension the groups' weights sum to 100 and count every component once.",
        composition_covers_every_component,
    ),
    Rule(
        "concentration_within_bounds",
        "gold_index_summary",
        True,
        "top-5 ≤ top-10 ≤ 100 and 10,000/n ≤ HHI ≤ 10,000.",
        concentration_within_bounds,
    ),
    Rule(
        "time_in_index_consistent",
        "gold_time_in_index",
        True,
        "first_seen ≤ date, 1 ≤ observed days ≤ trading days held, calendar days match first_seen.",
        time_in_index_consistent,
    ),
)
