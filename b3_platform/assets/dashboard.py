"""dashboard: the index dashboard, a self-contained HTML page written under the lake.

Built from the catalog's answers (the `catalog` resource: DuckDB locally, Athena on AWS), so it
runs after athena_tables (automation) and shows what SQL over the catalog shows. The page is
`dashboard/index.html` through the lake's storage; its materialization carries a PNG of the main
charts of one index and where the page is.
"""

import dagster as dg

from b3_platform.assets.common import SINGLE_RUN
from b3_platform.catalog.base import CatalogResource
from b3_platform.dashboard.picture import index_png, markdown_image
from b3_platform.dashboard.site import build_site
from b3_platform.resources import LakeResource

#: The index whose picture the materialization shows (the first held otherwise).
FEATURED_INDEX = "IBOV"


@dg.asset(
    deps=["athena_tables"],
    group_name="dashboard",
    kinds={"html", "vega"},
    # Reads the DuckDB file (read-only): queued behind the catalog's writer like athena_tables.
    pool="duckdb",
    # Unpartitioned; declared so a `--partition-range` selection may reach it (see athena_tables).
    backfill_policy=SINGLE_RUN,
    description=__doc__,
)
def dashboard(context: dg.AssetExecutionContext, lake: LakeResource, catalog: CatalogResource):
    built = build_site(catalog, lake.storage())
    context.log.info(
        f"dashboard: {len(built.indices)} indices over {len(built.dates)} dates, {built.size:,} bytes; "
        f"queries {built.query_seconds:.1f} s, page {built.render_seconds:.1f} s → {built.uri}"
    )
    featured = FEATURED_INDEX if FEATURED_INDEX in built.indices else built.indices[0]
    png = index_png(built.data, featured)
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": built.uri,
            "page": dg.MetadataValue.path(built.uri),
            "bytes": built.size,
            "indices": ", ".join(built.indices),
            "dates": len(built.dates),
            "first_date": built.dates[0],
            "last_date": built.dates[-1],
            "preview": dg.MetadataValue.md(markdown_image(png, f"{featured} dashboard")) if png else "none",
        }
    )
