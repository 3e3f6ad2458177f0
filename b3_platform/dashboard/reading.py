"""How the dashboard page reads the catalog: a local DuckDB catalog under a memory bound of its own.

Each dashboard query opens the catalog read-only, and DuckDB keeps every block a query scans in its
buffer pool until the connection closes, up to its default limit of 80 % of the machine's memory.
The page's questions scan the whole history (the top-N ranking sums every date's weights; the entries
and exits are every one), so that pool grew with the lake's age (~16-26 KB per date at 34 indices
in the weights and events queries) although the answers are bounded. `READ_CONFIG` bounds it on
the page's own connections only: the `query` command and the asset graph keep DuckDB's defaults.
`threads` is fixed beside it because what a query needs grows with its threads (at 2,100 dates × 34
indices 48 MB sufficed with 2 threads and 32 MB did not), so the bound holds on a machine with many
cores too.

The bound is a memory economy, never a limit on the page: a query DuckDB cannot fit in it (an
out-of-memory error, once spilling to its temporary directory is not enough), or a catalog this
process already holds open with other settings (DuckDB gives one file one configuration per
process), is asked again through the catalog as every other caller asks it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import duckdb

from b3_platform.catalog.base import CatalogError, CatalogResource, QueryError, QueryResult
from b3_platform.catalog.duckdb_catalog import DuckDBCatalogResource
from b3_platform.catalog.duckdb_reader import DuckDBCatalogReader

log = logging.getLogger(__name__)

#: DuckDB settings of the page's reads of a local catalog (see the module docstring); None: DuckDB's
#: defaults, as every other reader (the reference path the tests compare the page with).
READ_CONFIG: Mapping[str, str] | None = {"memory_limit": "64MB", "threads": "2"}


def _beyond_the_bound(exc: Exception) -> bool:
    """Whether `exc` is the bound's doing (asking without it answers), not the SQL's or the file's."""
    cause = exc.__cause__
    if isinstance(cause, duckdb.OutOfMemoryException):
        return True
    return isinstance(cause, duckdb.ConnectionException) and "different configuration" in str(cause)


def asker(catalog: CatalogResource) -> Callable[[str], QueryResult]:
    """The function the page asks `catalog` with: a local DuckDB catalog through a reader under
    `READ_CONFIG`, falling back to `catalog.query` when the bound is what fails; any other
    catalog (Athena) as it is."""
    if READ_CONFIG is None or not isinstance(catalog, DuckDBCatalogResource):
        return catalog.query
    bounded = DuckDBCatalogReader(catalog.duckdb.database, config=READ_CONFIG)

    def ask(sql: str) -> QueryResult:
        try:
            return bounded.query(sql)
        except (CatalogError, QueryError) as exc:
            if not _beyond_the_bound(exc):
                raise
            log.info("the dashboard asks again without its DuckDB bound %s: %s", dict(READ_CONFIG), exc)
            return catalog.query(sql)

    return ask
