"""dashboard: the index dashboard, a self-contained HTML page written under the lake, and the picture
gold's newest partition shows.

Built from the catalog's answers (the `catalog` resource: DuckDB locally, Athena on AWS), so it
runs after athena_tables (automation) and shows what SQL over the catalog shows. The page is
`dashboard/index.html` through the lake's storage; its materialization says where the page is and
what it covers. It carries no picture: automation redraws the page after every catalog refresh, and
a PNG there (~360 kB, kept several times over in the run history) would add megabytes a day to the
instance for a copy of what gold's newest partition already shows.

Gold's picture (`gold_picture`): the same main charts as a PNG of one index, over a trailing window
ending at the catalog's newest date, reported as an observation of `gold_index_summary` at that
date, so the UI shows it on gold's newest partition. It is drawn here, after the catalog, rather than
in gold's step: vl-convert's engine starts in ~0.4 s of CPU in every new run process and the render
takes ~0.6 s, about a third of a daily run, and the daily job should end as soon as the date is
queryable. The picture then appears with the page, some 30 s after the job.
"""

import datetime as dt

import dagster as dg

from b3_platform.assets.common import SINGLE_RUN
from b3_platform.catalog.base import CatalogError, CatalogResource, QueryError
from b3_platform.dashboard.data import load_window
from b3_platform.dashboard.picture import index_png, markdown_image
from b3_platform.dashboard.site import build_site
from b3_platform.lake.schemas import GOLD_INDEX_SUMMARY
from b3_platform.resources import LakeResource
from b3_platform.trading_calendar import first_of_last_trading_days

#: Gold's picture is stored in the event log with every dashboard run: three quarters of the
#: page's size keeps it near 240 kB (about 320 kB at full size).
GOLD_PICTURE_SCALE = 0.75
#: Gold's picture draws the last this many B3 trading days up to the date (about a year), not the
#: whole history: each redraw then queries and draws the same amount whatever the lake's age.
PICTURE_WINDOW_DAYS = 250
#: The index whose picture gold's newest partition shows (the first held otherwise).
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
        f"dashboard: {len(built.indices)} indices over {built.dates} dates, {built.size:,} bytes; "
        f"queries {built.query_seconds:.1f} s, page {built.render_seconds:.1f} s → {built.uri}"
    )
    picture = "not drawn: the catalog holds no date"
    if built.last_date:
        newest = dt.date.fromisoformat(built.last_date)
        drawn = gold_picture(catalog, newest)
        context.log_event(
            dg.AssetObservation(
                asset_key=GOLD_INDEX_SUMMARY.name, partition=newest.isoformat(), metadata=drawn
            )
        )
        shown = [key for key in drawn if key.startswith("picture_")]
        picture = f"{shown[0]} on {GOLD_INDEX_SUMMARY.name} {newest}" if shown else str(drawn["picture"])
        if not shown:
            context.log.warning(f"gold's picture of {newest}: {picture}")
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": built.uri,
            "page": dg.MetadataValue.path(built.uri),
            "bytes": built.size,
            "indices": ", ".join(built.indices),
            "dates": built.dates,
            "first_date": built.first_date or "none",
            "last_date": built.last_date or "none",
            "picture": picture,
        }
    )


def gold_picture(catalog: CatalogResource, day: dt.date) -> dict[str, dg.MetadataValue | str]:
    """Gold's picture of `day` (the catalog's newest date): a PNG of one index's main charts
    (`picture_<INDEX>`: the featured index, else the first `day` holds) over the last
    `PICTURE_WINDOW_DAYS` trading days up to `day`, from the catalog's rows of that window (every
    query bounded by `date >=`); the caption says the dates drawn ("IBOV, 2024-07-10 to 2025-07-10").

    One picture, not one per index: each is ~320 kB of metadata kept in the run history and ~0.5 s
    of CPU, so at 34 indices a picture per index cost ~11 MB and ~20 s on every redraw; every
    index's charts are on the dashboard page. A picture never fails the page: when it cannot be
    drawn (the catalog failing, the renderer) `picture` says why instead."""
    try:
        data = load_window(catalog, first_of_last_trading_days(day, PICTURE_WINDOW_DAYS), day)
        held = [index for index in data.indices if day.isoformat() in data.dates(index)]
        if not held:
            return {"picture": f"not drawn: no index on {day}"}
        index = FEATURED_INDEX if FEATURED_INDEX in held else held[0]
        days = data.dates(index)
        caption = f"{index}, {days[0]} to {days[-1]}"
        title = f"{caption} ({len(days)} dates in the lake of the last {PICTURE_WINDOW_DAYS} trading days)"
        png = index_png(data, index, scale=GOLD_PICTURE_SCALE, title=title)
        if not png:
            return {"picture": f"not drawn: nothing to draw for {index}"}
        return {f"picture_{index}": dg.MetadataValue.md(markdown_image(png, caption))}
    except (CatalogError, QueryError) as exc:
        return {"picture": f"not drawn: {exc}"}
    except Exception as exc:  # noqa: BLE001 - a picture is never worth failing the page
        return {"picture": f"not drawn: {type(exc).__name__}: {exc}"}
