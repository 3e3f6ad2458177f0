"""Data-quality rules for the announced portfolios' silver tables (silver_theoretical and
silver_preview): the day portfolio's own rules (quality.py), plus the quantity total, which these
tables carry on every row instead of in a header table."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from b3_platform.quality import (
    Rule,
    quantities_positive,
    ticker_format,
    unique_tickers,
    weights_sum_to_100,
)


def quantities_sum_to_stated_total(table: pa.Table, day: dt.date) -> list[str]:
    """Σ component quantities = header.theoricalQty, which each row repeats."""
    totals: dict[str, int] = {}
    stated: dict[str, set[int]] = {}
    for index, quantity, total in zip(
        *(
            table.column(c).to_pylist()
            for c in ("index", "theoretical_quantity", "theoretical_quantity_total")
        )
    ):
        totals[index] = totals.get(index, 0) + quantity
        stated.setdefault(index, set()).add(total)
    problems = []
    for index, total in sorted(totals.items()):
        if stated[index] != {total}:
            problems.append(f"{index}: components sum to {total}, header total is {sorted(stated[index])}")
    return problems


def announced_rules(table: str) -> tuple[Rule, ...]:
    """The blocking rules of one announced silver table: the same checks as the day portfolio's."""
    return (
        Rule("unique_tickers", table, True, "One row per (date, index, ticker).", unique_tickers),
        Rule("ticker_format", table, True, "Tickers look like B3 tickers (PETR4, BPAC11).", ticker_format),
        Rule(
            "weights_sum_to_100",
            table,
            True,
            "Weights of each index sum to 100 within B3's 3-decimal rounding.",
            weights_sum_to_100,
        ),
        Rule("quantities_positive", table, True, "Every theoretical quantity is > 0.", quantities_positive),
        Rule(
            "quantities_sum_to_header_total",
            table,
            True,
            "Σ component theoretical quantities = the header's total.",
            quantities_sum_to_stated_total,
        ),
    )
