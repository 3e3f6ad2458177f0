"""What a run of a subsettable multi-asset (silver, gold) was asked for: its selected tables and
checks. Selecting one table of a layer builds the date as usual and stores only that table (its
date is published with the others carried over, lake.tables); a check not selected is neither
recorded nor reported, since Dagster refuses results of checks a run did not plan."""

from collections.abc import Sequence

import dagster as dg

from b3_platform.lake.schemas import TableDef


def selected_tables(context: dg.AssetExecutionContext, tables: Sequence[TableDef]) -> list[TableDef]:
    """The tables among `tables` whose asset the run materializes, in their declared order."""
    keys = context.selected_asset_keys
    return [t for t in tables if dg.AssetKey(t.name) in keys]


def selected_checks(
    context: dg.AssetExecutionContext, specs: Sequence[dg.AssetCheckSpec]
) -> list[dg.AssetCheckSpec]:
    """The check specs the run executes."""
    keys = context.selected_asset_check_keys
    return [s for s in specs if s.key in keys]
