"""The same asset graph on S3 (a moto server on 127.0.0.1, real boto3 and pyarrow clients): single
dates and ranges write the local layout under `s3://bucket/prefix/`, byte for byte what a local lake
holds; re-runs replace exactly; the example queries give the local answers over the S3 files; and
S3 faults (a missing bucket, access denied, a PUT failing mid-range) fail clearly, leave every
stored object readable, and a re-run completes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import unquote

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from b3_platform.assets import ALL_ASSETS
from b3_platform.catalog.base import PARTITION_COLUMN
from b3_platform.discovery import import_listing, listing_store
from b3_platform.importer import import_paths
from b3_platform.lake.paths import CHANGES_ROOT, PARQUET_FILE, RAW_INVENTORY_ROOT, raw_prefix
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.schemas import ANNOUNCED_TABLES, INDEX_MEMBERS
from b3_platform.lake.schemas import DAY_PORTFOLIO_TABLES as TABLES
from b3_platform.lake.storage import LocalStorage, StorageError
from b3_platform.lake.tables import manifest_key
from b3_platform.resources import LakeResource, lake_resources
from b3_platform.runs import range_tags
from b3_platform_tests.conftest import REPO, duckdb_catalog, replay_b3_resource
from b3_platform_tests.moto_aws import AwsTarget
from b3_platform_tests.replay import SAMPLES, STOCK_INDEX_SAMPLE, sample_bytes, with_changes
from b3_platform_tests.s3_proxy import S3FaultProxy

JSON_DIR = REPO / "demo_data" / "GetPortfolioDay" / "IBOV"
#: Consecutive B3 trading days with an IBOV sample, then 2025-07-10 (2025-07-09 has none).
RANGE = [dt.date(2025, 6, 30), dt.date(2025, 7, 1), dt.date(2025, 7, 2), dt.date(2025, 7, 3)]
SINGLE = dt.date(2025, 7, 10)
DAYS = [*RANGE, SINGLE]
PARTITIONED = dg.AssetSelection.assets("raw_portfolio", *TABLES)
#: The example queries over the day portfolio's tables: the announced portfolios and the GetStockIndex
#: listing are not captured by this file's runs (test_announced.py, test_discovery.py).
QUERIES = [
    q
    for q in sorted((REPO / "queries").glob("*.sql"))
    if not any(t.name in q.read_text(encoding="utf-8") for t in (*ANNOUNCED_TABLES, INDEX_MEMBERS))
]


def s3_lake(target: AwsTarget, endpoint: str | None = None) -> LakeResource:
    return target.lake(endpoint)


def aws_resources(target: AwsTarget, b3_server, endpoint: str | None = None) -> dict:
    """The AWS mode's resources on this target (the catalog is tested in test_glue_athena.py)."""
    return {
        **lake_resources(target.lake(endpoint)),
        "catalog": target.catalog(endpoint),
        "b3": replay_b3_resource(b3_server),
    }


def run(resources: dict, *, day: dt.date | None = None, first=None, last=None, selection=PARTITIONED):
    kwargs = {"partition_key": day.isoformat()} if day else {"tags": range_tags(first, last)}
    return dg.materialize(
        ALL_ASSETS,
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        selection=selection,
        **kwargs,
    )


def failure_text(result) -> str:
    texts = []
    for event in result.get_step_failure_events():
        error = event.event_specific_data.error
        while error is not None:
            texts.append(error.message)
            error = error.cause
    return "\n".join(texts)


def s3_objects(target: AwsTarget) -> dict[str, bytes]:
    s3 = target.client("s3")
    return {
        key: s3.get_object(Bucket=target.bucket, Key=f"{target.prefix}/{key}")["Body"].read()
        for key in target.keys()
    }


def local_files(root: Path) -> dict[str, bytes]:
    """Every file of a local lake but its change journal, which only a local lake keeps (its one
    reader is the local catalog: lake.changes)."""
    return {
        key: p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not (key := p.relative_to(root).as_posix()).startswith(CHANGES_ROOT)
    }


def table_keys(days) -> set[str]:
    """Each table's file of each date, and the manifest publishing each date of silver and gold."""
    files = {f"{t.location}date={d}/{PARQUET_FILE}" for t in TABLES.values() for d in days}
    return files | {manifest_key(layer, d) for layer in ("silver", "gold") for d in days}


class Built:
    """One S3 lake built from the real samples, and a local lake built from the same raw bytes."""

    def __init__(self, target: AwsTarget, local: Path, server) -> None:
        self.target, self.local, self.server = target, local, server


@pytest.fixture(scope="module")
def built(moto_server, tmp_path_factory, replay_server) -> Built:
    target = AwsTarget.create(moto_server)
    lake = s3_lake(target)
    results = import_paths(lake.raw(), [JSON_DIR / f"{d}.json" for d in DAYS])
    assert [r.status for r in results] == ["imported"] * len(DAYS), [r.reason for r in results]
    # B3's GetStockIndex listing on every day too, so index_members is built like every table.
    for day in DAYS:
        import_listing(listing_store(lake.raw()), day, SAMPLES / STOCK_INDEX_SAMPLE)
    resources = aws_resources(target, replay_server)
    assert run(resources, first=RANGE[0], last=RANGE[-1]).success
    assert run(resources, day=SINGLE).success
    # The local twin: the very same raw objects (same capture ids), built by the same graph.
    local = tmp_path_factory.mktemp("local") / "lake"
    for key, body in s3_objects(target).items():
        (local / key).parent.mkdir(parents=True, exist_ok=True)
        (local / key).write_bytes(body)
    local_resources = {
        **lake_resources(LakeResource(root=str(local))),
        "catalog": duckdb_catalog(local),
        "b3": replay_b3_resource(replay_server),
    }
    assert run(local_resources, first=RANGE[0], last=RANGE[-1]).success
    assert run(local_resources, day=SINGLE).success
    return Built(target, local, moto_server)


# ------------------------------------------------------------------------------- layout and bytes


def test_every_layer_lands_under_the_prefix_with_the_local_path_scheme(built):
    keys = built.target.keys()
    raw = [k for k in keys if k.startswith(raw_prefix())]
    tables = {k for k in keys if not k.startswith(("raw/", RAW_INVENTORY_ROOT))}
    assert tables == table_keys(DAYS)
    listings = [k for k in keys if k.startswith("raw/GetStockIndex/")]
    assert len(listings) == 2 * len(DAYS) and all("/index=ALL/" in k for k in listings)
    # raw: one body and one sidecar per imported file, under date=/index=IBOV/
    assert len(raw) == 2 * len(DAYS)
    for day in DAYS:
        under = [k for k in raw if k.startswith(raw_prefix(day, "IBOV"))]
        assert sorted(Path(k).suffixes[-1] for k in under) == [".json", ".json"]
        assert any(k.endswith(".meta.json") for k in under)
    # Nothing outside the prefix but what the test created.
    everything = built.target.client("s3").list_objects_v2(Bucket=built.target.bucket)["Contents"]
    assert all(o["Key"].startswith(f"{built.target.prefix}/") for o in everything)


def test_s3_objects_are_byte_for_byte_the_local_lakes_files(built):
    assert s3_objects(built.target) == local_files(built.local)


def test_parquet_files_on_s3_have_the_declared_schemas_read_through_pyarrow(built):
    fs = s3_lake(built.target).storage().arrow_filesystem()
    for table_def in TABLES.values():
        for day in DAYS:
            path = (
                f"{built.target.bucket}/{built.target.prefix}/{table_def.location}date={day}/{PARQUET_FILE}"
            )
            schema = pq.read_schema(path, filesystem=fs)
            assert schema.equals(table_def.schema, check_metadata=False), (table_def.name, day)


def test_rematerializing_replaces_exactly_and_raw_is_untouched(built, replay_server):
    before = s3_objects(built.target)
    resources = aws_resources(built.target, replay_server)
    assert run(resources, day=RANGE[1]).success
    assert run(resources, first=RANGE[0], last=RANGE[-1]).success
    assert s3_objects(built.target) == before


# ------------------------------------------------------------------- the S3 layout is queryable


def duckdb_over_s3(target: AwsTarget) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per table over the S3 files, read through pyarrow's
    S3FileSystem (DuckDB 2.0 has no httpfs offline): proof that the S3 layout is what a query
    engine needs — Hive `date=` folders, declared schemas."""
    storage = s3_lake(target).storage()
    fs = storage.arrow_filesystem()
    conn = duckdb.connect()
    partitioning = ds.partitioning(pa.schema([(PARTITION_COLUMN, pa.date32())]), flavor="hive")
    for table_def in TABLES.values():
        dataset = ds.dataset(
            f"{target.bucket}/{target.prefix}/{table_def.location}",
            filesystem=fs,
            format="parquet",
            partitioning=partitioning,
            schema=table_def.schema.append(pa.field(PARTITION_COLUMN, pa.date32())),
        )
        conn.register(table_def.name, dataset)
    return conn


def local_catalog_results(built: Built, sql: str) -> list[tuple]:
    catalog = duckdb_catalog(built.local)
    catalog.sync(LocalStorage(built.local), list(TABLES.values()))
    return catalog.query(sql).rows


@pytest.mark.parametrize("query", QUERIES, ids=lambda p: p.stem)
def test_example_queries_over_s3_give_the_local_answers(built, query):
    sql = query.read_text(encoding="utf-8")
    got = duckdb_over_s3(built.target).execute(sql).fetchall()
    want = local_catalog_results(built, sql)
    assert got == want
    if query.stem in ("entries_exits", "weight_history", "top10_concentration"):
        assert got, f"{query.stem} returned no rows over the sample dates"


def test_the_ntco3_natu3_swap_is_found_over_s3(built):
    sql = (REPO / "queries" / "entries_exits.sql").read_text(encoding="utf-8")
    rows = duckdb_over_s3(built.target).execute(sql).fetchall()
    flat = {str(v) for row in rows for v in row}
    assert {"NTCO3", "NATU3"} <= flat


# ------------------------------------------------------------------------------------------ faults


@pytest.fixture
def proxy(moto_server):
    proxy = S3FaultProxy(moto_server.endpoint).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def seeded(aws_target, replay_server) -> AwsTarget:
    """A fresh S3 lake with the range's raw imported and every layer built once."""
    import_paths(s3_lake(aws_target).raw(), [JSON_DIR / f"{d}.json" for d in RANGE])
    resources = aws_resources(aws_target, replay_server)
    assert run(resources, first=RANGE[0], last=RANGE[-1]).success
    return aws_target


def test_a_missing_bucket_fails_clearly_and_writes_nothing(moto_server, replay_server):
    target = AwsTarget.create(moto_server, make_bucket=False)
    result = run(aws_resources(target, replay_server), day=RANGE[0])
    assert not result.success
    assert f"bucket '{target.bucket}' does not exist" in failure_text(result)
    assert "B3_PLATFORM_S3_BUCKET" in failure_text(result)
    buckets = [b["Name"] for b in moto_server.client("s3").list_buckets()["Buckets"]]
    assert target.bucket not in buckets


def test_access_denied_fails_clearly_and_leaves_stored_data_untouched(seeded, proxy, replay_server):
    before = s3_objects(seeded)
    # Credentials that may not write silver: neither replace (PUT) nor unpublish (DELETE) it.
    proxy.fail("PUT", "/silver/", status=403)
    proxy.fail("DELETE", "/silver/", status=403)
    resources = aws_resources(seeded, replay_server, proxy.endpoint)
    result = run(resources, first=RANGE[0], last=RANGE[-1])
    assert not result.success
    assert "access denied" in failure_text(result)
    # The first write of a published silver date is its unpublishing (lake.tables.write_date).
    assert (
        f"cannot delete s3://{seeded.bucket}/{seeded.prefix}/silver/_published/date=2025-06-30/manifest.json"
        in (failure_text(result))
    )
    # bronze was rewritten with identical bytes; silver refused; gold never ran.
    assert s3_objects(seeded) == before
    assert not [
        e for e in result.get_asset_materialization_events() if "gold" in e.asset_key.to_user_string()
    ]


def test_a_put_failing_mid_range_leaves_no_partial_partition_and_a_rerun_completes(
    seeded, proxy, replay_server
):
    # A newer capture of every date (the same portfolio, re-serialized): the rebuild changes the
    # capture_id of every bronze and silver row, so old and new versions differ byte for byte.
    store = s3_lake(seeded).raw()
    for day in RANGE:
        body = with_changes(sample_bytes(f"GetPortfolioDay/IBOV/{day}.json"), lambda data: None)
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)
        store.store(day, "IBOV", [body], fetched_at=later, source_format="json", meta={"source": "test"})
    before = s3_objects(seeded)
    failing = f"/silver/assets/date={RANGE[2]}/"
    proxy.fail("PUT", failing, status=500)  # every attempt: boto3's retries give up
    resources = aws_resources(seeded, replay_server, proxy.endpoint)
    result = run(resources, first=RANGE[0], last=RANGE[-1])
    assert not result.success
    assert f"silver/assets/date={RANGE[2]}/data.parquet" in failure_text(result)
    puts = [path for kind, path in proxy.log if kind == "PUT" and failing in unquote(path)]
    assert len(puts) >= 2, "boto3 retried the failing PUT before giving up"
    after = s3_objects(seeded)
    # The failed date is unpublished (its header is new, its assets old: never visible together).
    assert after.keys() == before.keys() - {manifest_key("silver", RANGE[2])}
    for key, body in after.items():
        if key.endswith(".parquet"):
            pq.read_table(pa.BufferReader(body))  # every object is whole and readable
    silver = f"silver/assets/date={RANGE[2]}/{PARQUET_FILE}"
    assert after[silver] == before[silver], "the failed file was not replaced"
    rebuilt = f"silver/assets/date={RANGE[1]}/{PARQUET_FILE}"
    assert after[rebuilt] != before[rebuilt], "dates before the failure hold their new version"
    proxy.heal()
    rerun = run(resources, first=RANGE[0], last=RANGE[-1])
    assert rerun.success
    final = s3_objects(seeded)
    newest = {d: store.latest_by_index(d)["IBOV"].capture_id for d in RANGE}
    for day in RANGE:
        table = pq.read_table(pa.BufferReader(final[f"silver/assets/date={day}/{PARQUET_FILE}"]))
        assert set(table.column("capture_id").to_pylist()) == {newest[day]}


def test_a_failed_raw_write_commits_no_capture(aws_target, proxy):
    """Raw is append-only and committed by its sidecar: a sidecar PUT that fails leaves no capture
    and removes the body written before it."""
    proxy.fail("PUT", ".meta.json", status=500)
    store = RawStore(s3_lake(aws_target, proxy.endpoint).storage())
    with pytest.raises(StorageError, match=r"cannot write s3://.*\.meta\.json: InternalError"):
        import_paths(store, [JSON_DIR / f"{RANGE[0]}.json"])
    assert aws_target.keys() == []
    proxy.heal()
    assert [r.status for r in import_paths(store, [JSON_DIR / f"{RANGE[0]}.json"])] == ["imported"]
    keys = aws_target.keys()  # body, sidecar and the raw inventory's marker (the failed one left none)
    assert len([k for k in keys if k.startswith("raw/")]) == 2
    assert len([k for k in keys if k.startswith(RAW_INVENTORY_ROOT)]) == 1
