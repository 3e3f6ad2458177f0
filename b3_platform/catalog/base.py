"""What every catalog offers the asset graph and the query command (one resource key: `catalog`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import dagster as dg
import pyarrow as pa

from b3_platform.catalog.results import (  # noqa: F401  (re-exported: the catalog's one import)
    LOCK_WAIT_SECONDS,
    PARTITION_COLUMN,
    CatalogError,
    QueryError,
    QueryResult,
    RegisteredTable,
)
from b3_platform.lake.schemas import TableDef
from b3_platform.lake.storage import Storage

if TYPE_CHECKING:
    from b3_platform.lake.raw_inventory import RawInventory


class CatalogResource(dg.ConfigurableResource):
    """Registers the lake's tables (`sync`) and runs SQL over them (`query`)."""

    @property
    def location(self) -> str:
        raise NotImplementedError

    @property
    def kinds(self) -> set[str]:
        """The engines behind this catalog, shown as athena_tables' kinds in the UI."""
        raise NotImplementedError

    def covers(self, table_def: TableDef) -> bool:
        """Whether this catalog registers `table_def`: athena_tables syncs and checks only those."""
        return True

    def sync(
        self,
        storage: Storage,
        tables: Sequence[TableDef],
        *,
        raw: RawInventory | None = None,
        journal: bool = False,
        say: Callable[[str], None] | None = None,
    ) -> list[RegisteredTable]:
        """Register `tables` as the lake holds them now. `raw` is the raw inventory the caller has
        just brought up to date (the catalog refresh reads it once, for coverage too); a catalog
        that counts raw's captures reads it itself when it is not given. `journal`: the caller
        changed few dates, and a catalog that can learn which from the lake's change journal
        (lake.changes) may look at those only; `say` is told, in a sentence, how it looked."""
        raise NotImplementedError

    def query(
        self,
        sql: str,
        *,
        wait_seconds: float | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> QueryResult:
        """Run `sql`. A catalog another process is updating is waited for up to `wait_seconds`
        (its default when None), and `on_wait` is told once, with a sentence, when that wait starts."""
        raise NotImplementedError

    def describe(self, name: str) -> list[tuple[str, str]]:
        """(column, type) of a registered table, as the catalog reports them."""
        raise NotImplementedError

    def describe_all(self, names: Sequence[str]) -> dict[str, list[tuple[str, str]] | Exception]:
        """`describe` of each table, or the error describing it raised (the catalog check reports
        it as its finding). A catalog that can answer them together overrides this."""
        found: dict[str, list[tuple[str, str]] | Exception] = {}
        for name in names:
            try:
                found[name] = self.describe(name)
            except Exception as exc:  # noqa: BLE001 - any failure to read the table is the finding
                found[name] = exc
        return found

    def expected_type(self, type_: pa.DataType) -> str:
        """How this catalog reports a column declared with `type_`."""
        raise NotImplementedError
