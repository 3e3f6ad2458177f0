"""Write-audit-publish: may this capture of (date, index) be published?

One answer for every place that decides it: bronze (which capture of each index a date publishes),
`import` and the landing sensor (which files are stored at all), and the tests. A capture passes
when it satisfies the contract, every parse rule types it exactly as silver will, and it passes every
blocking rule of bronze and silver (`quality.PUBLISH_RULES`: unique tickers, ticker format, weights
summing to 100, positive quantities summing to the header's total, …). Those rules used to run as
checks after silver was written, so a bad capture replaced good data before anything said so; run
here, before bronze takes a capture, they gate the publish instead, and the checks on the written
tables become a safety net that can only fail on a bug.

Decisions are per (date, index): a capture that fails is skipped for the next older one, and an
index none of whose captures pass is left out of the date, while the other indices still build.
Dagster-free, so `import` uses it as it is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from b3_platform.b3.contract import ContractError, Portfolio
from b3_platform.b3.parse import ParseError
from b3_platform.lake.raw_store import RawCapture, RawStore
from b3_platform.quality import PUBLISH_RULES, Rule
from b3_platform.transforms.bronze import bronze_table, decode_capture
from b3_platform.transforms.silver import silver_tables


def audit_portfolio(index: str, capture_id: str, portfolio: Portfolio, day: dt.date) -> list[str]:
    """Why this decoded portfolio may not be published as `index` on `day` (empty: it may).

    Builds the very bronze rows and silver tables the layers would, so the parse rules and the
    blocking rules see exactly what they will see after publishing."""
    return _problems([(index, capture_id, portfolio)], day)


def _problems(items: list[tuple[str, str, Portfolio]], day: dt.date) -> list[str]:
    """The audit of (index, capture_id, portfolio) items of distinct indices, as one table."""
    return _audited(items, day)[1]


def _audited(items: list[tuple[str, str, Portfolio]], day: dt.date) -> tuple[pa.Table, list[str]]:
    """(the bronze table of `items`, its audit's problems): the table is what bronze publishes
    when they pass, so the caller need not build it again."""
    bronze = bronze_table(items)
    tables = {"bronze_portfolio": bronze}
    problems = _broken(PUBLISH_RULES, tables, day, layer="bronze_portfolio")
    try:
        tables["silver_header"], tables["silver_assets"] = silver_tables(bronze, day)
    except ParseError as exc:
        return bronze, [*problems, str(exc)]
    return bronze, [*problems, *_broken(PUBLISH_RULES, tables, day, layer="silver_assets")]


def _broken(rules: Iterable[Rule], tables: Mapping, day: dt.date, *, layer: str) -> list[str]:
    return [f"{rule.name}: {p}" for rule in rules if rule.table == layer for p in rule.evaluate(tables, day)]


@dataclass(frozen=True)
class Refused:
    """A capture the audit kept out, and why."""

    capture_id: str
    reason: str


@dataclass(frozen=True)
class IndexChoice:
    """What one index publishes on a date: the newest capture that passes (None: the index is left
    out of the date), and the newer captures refused on the way, newest first."""

    index: str
    capture_id: str | None
    portfolio: Portfolio | None
    refused: tuple[Refused, ...]

    @property
    def published(self) -> bool:
        return self.capture_id is not None

    def problem(self) -> str | None:
        """The line the failing check and the run log show for this index (None: nothing refused)."""
        if not self.refused:
            return None
        reasons = " | ".join(f"capture {r.capture_id}: {r.reason}" for r in self.refused)
        if self.published:
            return f"{self.index}: published the older capture {self.capture_id}; refused {reasons}"
        return f"{self.index}: left out of the date, no capture passes the audit; refused {reasons}"


def audit_capture(store: RawStore, capture: RawCapture, day: dt.date) -> tuple[Portfolio | None, list[str]]:
    """A raw capture decoded again (contract) and audited: (its portfolio, problems)."""
    portfolio, problems = _decoded(store, capture, day)
    if portfolio is None:
        return None, problems
    return portfolio, audit_portfolio(capture.index, capture.capture_id, portfolio, day)


def _decoded(store: RawStore, capture: RawCapture, day: dt.date) -> tuple[Portfolio | None, list[str]]:
    """A raw capture decoded again (contract): (its portfolio, []) or (None, why not)."""
    try:
        return decode_capture(
            store.read_bodies(capture), source_format=capture.source_format, index=capture.index, day=day
        ), []
    except ContractError as exc:
        return None, [str(exc)]


def choose_capture(
    store: RawStore, day: dt.date, index: str, newest_first: Sequence[RawCapture]
) -> IndexChoice:
    """The newest capture of (day, index) that passes the audit; older ones are not even read."""
    refused = []
    for capture in newest_first:
        portfolio, problems = audit_capture(store, capture, day)
        if not problems:
            return IndexChoice(index, capture.capture_id, portfolio, tuple(refused))
        refused.append(Refused(capture.capture_id, "; ".join(problems)))
    return IndexChoice(index, None, None, tuple(refused))


@dataclass(frozen=True)
class DayChoice:
    """Every index's choice on one date."""

    choices: tuple[IndexChoice, ...]
    #: The bronze table of `items` when the audit built it whole (every newest capture passed):
    #: `bronze()` hands it on instead of building the same ~3,000 rows again.
    audited_table: pa.Table | None = field(default=None, compare=False, repr=False)

    def bronze(self) -> pa.Table:
        """The bronze table of the published items (`transforms.bronze.bronze_table(items)`)."""
        return self.audited_table if self.audited_table is not None else bronze_table(self.items)

    def rule_problems(self, rule: Rule, table: pa.Table, day: dt.date) -> list[str]:
        """`rule.fn(table, day)` for a rule of bronze on the date's bronze table: [] at once for a
        publish rule when `table` is the one the audit judged whole (it passed every publish rule,
        so running one again on it can only find nothing)."""
        if table is self.audited_table and rule in PUBLISH_RULES and rule.source == "bronze_portfolio":
            return []
        return rule.fn(table, day)

    @property
    def items(self) -> list[tuple[str, str, Portfolio]]:
        """(index, capture_id, portfolio) of every published index: what bronze is built from."""
        return [
            (c.index, c.capture_id, c.portfolio)
            for c in self.choices
            if c.capture_id is not None and c.portfolio is not None
        ]

    @property
    def left_out(self) -> list[str]:
        return [c.index for c in self.choices if not c.published]

    @property
    def problems(self) -> list[str]:
        return [p for c in self.choices if (p := c.problem())]


def choose_captures(store: RawStore, day: dt.date, captures: Mapping[str, Sequence[RawCapture]]) -> DayChoice:
    """For each index (captures newest first, as `RawStore.by_index` gives them) its choice."""
    return _all_newest_pass(store, day, captures) or DayChoice(
        tuple(choose_capture(store, day, index, found) for index, found in sorted(captures.items()))
    )


def _all_newest_pass(
    store: RawStore, day: dt.date, captures: Mapping[str, Sequence[RawCapture]]
) -> DayChoice | None:
    """The day's choice when the newest capture of every index passes, audited as one table; None
    when any does not (then `choose_capture` audits index by index, and says why).

    One audit of the date's ~3,000 rows instead of 34 of ~90: every parse rule and blocking rule
    judges each index on its own rows (and its own header), so the date's table passes exactly when
    every index's would."""
    newest: list[tuple[str, RawCapture, Portfolio]] = []
    for index, found in sorted(captures.items()):
        if not found:
            return None
        portfolio, problems = _decoded(store, found[0], day)
        if portfolio is None:
            return None
        newest.append((index, found[0], portfolio))
    items = [(index, capture.capture_id, portfolio) for index, capture, portfolio in newest]
    if not items:
        return None
    table, problems = _audited(items, day)
    if problems:
        return None
    return DayChoice(tuple(IndexChoice(index, c.capture_id, p, ()) for index, c, p in newest), table)
