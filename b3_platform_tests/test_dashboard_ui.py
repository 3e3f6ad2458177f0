"""The picture as the Dagster UI shows it: the real `dagster-webserver` on 127.0.0.1, asked over
GraphQL the way the UI asks, for gold's newest partition (the observation the dashboard's run
reports there) and for the dashboard asset; the markdown it serves holds a PNG that decodes.
Dagster's UI renders base64 data-URI images in markdown metadata."""

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

MARKDOWN = """
query ($path: [String!]!, $partitions: [String!]) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset {
      assetMaterializations(partitions: $partitions) { ...shown }
      assetObservations(partitions: $partitions) { ...shown }
    }
  }
}
fragment shown on MessageEvent {
  runId
  timestamp
  ... on MaterializationEvent { partition metadataEntries { ...entry } }
  ... on ObservationEvent { partition metadataEntries { ...entry } }
}
fragment entry on MetadataEntry {
  label
  ... on MarkdownMetadataEntry { mdStr }
  ... on TextMetadataEntry { text }
}
"""


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """Every layer over two dates, then the catalog and the dashboard (which reports gold's picture
    of the newest date), as automation runs them; the webserver on it."""
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
    data = graphql(url, MARKDOWN, path=["gold_index_summary"], partitions=[str(NEWEST)])["assetOrError"]
    # Gold's own build of the date carries no picture; the dashboard's run observed the partition.
    (built,) = data["assetMaterializations"]
    assert not any(label.startswith("picture") for label in _entries(built))
    (observed,) = data["assetObservations"]
    assert observed["partition"] == str(NEWEST) and observed["runId"] != built["runId"]
    assert float(observed["timestamp"]) > float(built["timestamp"])
    assert list(_entries(observed)) == ["picture_IBOV"]
    width, height = decode_png(_png(_entries(observed)["picture_IBOV"]))
    assert width > 400 and height > 400
    older = graphql(url, MARKDOWN, path=["gold_index_summary"], partitions=[str(FIRST)])["assetOrError"]
    assert older["assetObservations"] == []
    (first,) = older["assetMaterializations"]
    assert not any(label.startswith("picture") for label in _entries(first))


def test_dashboard_asset_shows_its_page_and_no_picture(ui):
    """The dashboard's materialization says where the page is, and where the picture is; it stores
    no PNG of its own (the picture is on gold's newest partition, tested above)."""
    url, lake = ui
    data = graphql(url, MARKDOWN, path=["dashboard"], partitions=None)
    (shown,) = data["assetOrError"]["assetMaterializations"]
    entries = _entries(shown)
    assert "page" in entries and not any("data:image" in str(value) for value in entries.values())
    assert entries["picture"] == f"picture_IBOV on gold_index_summary {NEWEST}"
    assert (lake / PAGE_KEY).is_file()
    kinds = {"/".join(n["assetKey"]["path"]): set(n["kinds"]) for n in graphql(url, KINDS)["assetNodes"]}
    assert kinds["dashboard"] == {"html", "vega"}
