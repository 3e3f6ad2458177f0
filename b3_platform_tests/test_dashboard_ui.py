"""The pictures as the Dagster UI shows them: the real `dagster-webserver` on 127.0.0.1, asked over
GraphQL the way the UI asks, for gold's newest partition and for the dashboard asset; the markdown
it serves holds a PNG that decodes. Dagster's UI renders base64 data-URI images in markdown
metadata."""

import base64
import datetime as dt
import re

import dagster as dg
import pytest

from b3_platform.dashboard.site import PAGE_KEY
from b3_platform.definitions import build_defs
from b3_platform.runs import range_tags
from b3_platform_tests.conftest import dagster_home_and_lake
from b3_platform_tests.pngs import decode_png
from b3_platform_tests.test_webserver import (
    JSON_DIR,
    KINDS,
    graphql,
    running_webserver,
)

FIRST, NEWEST = dt.date(2025, 7, 7), dt.date(2025, 7, 8)
GOLD = ["gold_composition", "gold_changes", "gold_index_summary", "gold_time_in_index"]

MARKDOWN = """
query ($path: [String!]!, $partitions: [String!]) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset {
      assetMaterializations(partitions: $partitions) {
        partition
        timestamp
        metadataEntries {
          label
          ... on MarkdownMetadataEntry { mdStr }
          ... on TextMetadataEntry { text }
        }
      }
    }
  }
}
"""


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """Every layer over two dates, the catalog and the dashboard, then gold of the newest date again
    (as automation does on the next update: now the catalog exists, it draws); the webserver on it."""
    env, home, lake = dagster_home_and_lake(
        tmp_path_factory.mktemp("dashboard-ui"), [JSON_DIR / f"{d}.json" for d in (FIRST, NEWEST)]
    )
    defs = build_defs(env)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.from_config(str(home)) as instance:
            job = defs.resolve_implicit_global_asset_job_def()
            layers = [
                k for k in defs.resolve_asset_graph().get_all_asset_keys() if k.path[0] != "raw_portfolio"
            ]
            partitioned = [k for k in layers if k.path[0] not in ("athena_tables", "dashboard")]
            for selection, tags in (
                (partitioned, range_tags(FIRST, NEWEST)),
                ([dg.AssetKey("athena_tables"), dg.AssetKey("dashboard")], {}),
            ):
                assert job.execute_in_process(instance=instance, asset_selection=selection, tags=tags).success
            gold = [dg.AssetKey(k) for k in GOLD]
            assert job.execute_in_process(
                instance=instance, asset_selection=gold, partition_key=str(NEWEST)
            ).success
    with running_webserver(["-m", "b3_platform.definitions"], env) as url:
        yield url, lake


def _entries(materialization: dict) -> dict[str, str]:
    return {e["label"]: e.get("mdStr", e.get("text")) for e in materialization["metadataEntries"]}


def _png(markdown: str) -> bytes:
    match = re.fullmatch(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert match, markdown[:200]
    return base64.b64decode(match.group(1))


def test_gold_newest_partition_shows_a_png_of_the_main_charts(ui):
    url, _lake = ui
    data = graphql(url, MARKDOWN, path=["gold_index_summary"], partitions=[str(NEWEST)])
    shown = sorted(data["assetOrError"]["assetMaterializations"], key=lambda m: float(m["timestamp"]))
    assert len(shown) == 2
    # The first build of the newest date had no catalog yet and says so; the rebuild draws.
    assert _entries(shown[0])["picture"].startswith("not drawn: no catalog at")
    width, height = decode_png(_png(_entries(shown[-1])["picture_IBOV"]))
    assert width > 400 and height > 400
    older = graphql(url, MARKDOWN, path=["gold_index_summary"], partitions=[str(FIRST)])
    (first,) = older["assetOrError"]["assetMaterializations"]
    assert not any(label.startswith("picture") for label in _entries(first))


def test_dashboard_asset_shows_its_page_and_no_picture(ui):
    """The dashboard's materialization says where the page is; it stores no PNG (redrawn after every
    catalog refresh, a picture there would add megabytes a day to the run history; gold's newest
    partition carries the picture, tested above)."""
    url, lake = ui
    data = graphql(url, MARKDOWN, path=["dashboard"], partitions=None)
    (shown,) = data["assetOrError"]["assetMaterializations"]
    entries = _entries(shown)
    assert "page" in entries and not any("data:image" in str(value) for value in entries.values())
    assert (lake / PAGE_KEY).is_file()
    kinds = {"/".join(n["assetKey"]["path"]): set(n["kinds"]) for n in graphql(url, KINDS)["assetNodes"]}
    assert kinds["dashboard"] == {"html", "vega"}
