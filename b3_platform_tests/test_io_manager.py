"""The lake IO manager: the layers stored under one key (`lake_io_manager`) and loaded back.

What a user sees: `defs.load_asset_value(...)` gives a table as pandas or Arrow, one date or a
range, locally and on the (moto) S3 lake, equal to the Parquet files; their own asset downstream of
ours gets the partitions it asks for. What the IO manager guarantees on its own: a wrong schema is
refused before anything of the date is written, a date is replaced exactly, a date without input
loses its stale file, a range is written one date at a time, a mid-range error names the asset,
date, field and value, and a multi-asset that breaks the one-stream convention fails.
"""

import dataclasses
import datetime as dt
import shutil
import weakref
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from b3_platform.assets import ALL_ASSETS
from b3_platform.assets.common import PARTITIONED
from b3_platform.definitions import build_defs
from b3_platform.importer import import_paths
from b3_platform.lake.io_manager import (
    LAKE_IO_MANAGER,
    DateStream,
    DateTables,
    NoInput,
    check_lake_assets,
)
from b3_platform.lake.paths import CHANGES_ROOT
from b3_platform.lake.schemas import BRONZE_PORTFOLIO, GOLD_TABLES, SILVER_ASSETS, SILVER_HEADER, TableDef
from b3_platform.lake.storage import LocalStorage
from b3_platform.lake.tables import MANIFEST_FILE, read_partition, write_partition
from b3_platform.partitions import partition_days, trading_days
from b3_platform.resources import B3ApiResource, LakeResource, lake_resources
from b3_platform.runs import range_tags
from b3_platform.transforms.bronze import bronze_table, decode_capture
from b3_platform_tests.conftest import REPO, duckdb_catalog
from b3_platform_tests.moto_aws import AwsTarget

JSON_DIR = REPO / "demo_data" / "GetPortfolioDay" / "IBOV"
#: Consecutive trading days with an IBOV sample, a day without one (2025-07-09), then one more.
DAYS = [dt.date(2025, 7, 7), dt.date(2025, 7, 8), dt.date(2025, 7, 10)]
FIRST, LAST = dt.date(2025, 7, 7), dt.date(2025, 7, 10)
D = dt.date(2025, 7, 10)
LAYERS = dg.AssetSelection.assets("bronze_portfolio").downstream() - dg.AssetSelection.assets(
    "athena_tables", "dashboard"
)
NEVER_CALLED_B3 = B3ApiResource(base_url="http://127.0.0.1:9/indexProxy/indexCall", indices=["IBOV"])


def graph_resources(lake: LakeResource, catalog) -> dict:
    """What the project's graph needs: the lake and its IO manager, a catalog, a B3 never called."""
    return {**lake_resources(lake), "catalog": catalog, "b3": NEVER_CALLED_B3}


def build_lake(lake: LakeResource, catalog, days=DAYS) -> None:
    """Import the samples of `days` and build bronze, silver and gold for FIRST..LAST in one run."""
    results = import_paths(lake.raw(), [JSON_DIR / f"{d}.json" for d in days])
    assert [r.status for r in results] == ["imported"] * len(days), [r.reason for r in results]
    result = dg.materialize(
        ALL_ASSETS,
        selection=LAYERS,
        resources=graph_resources(lake, catalog),
        instance=dg.DagsterInstance.ephemeral(),
        tags=range_tags(FIRST, LAST),
    )
    assert result.success


def parquet_file(root: Path, table_def: TableDef, day: dt.date) -> pa.Table:
    return pq.read_table(root / table_def.location / f"date={day}" / "data.parquet")


def with_dates(read, days) -> pa.Table:
    """What a range load should be: each date's file (`read(day)`), a `date` column first,
    concatenated."""
    parts = []
    for day in days:
        table = read(day)
        dates = pa.array([day] * table.num_rows, pa.date32())
        parts.append(table.add_column(0, pa.field("date", pa.date32(), nullable=False), dates))
    return pa.concat_tables(parts)


@pytest.fixture(scope="module")
def local_lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("io") / "lake"
    build_lake(LakeResource(root=str(root)), duckdb_catalog(root))
    return root


@pytest.fixture
def local_defs(local_lake) -> dg.Definitions:
    """The project's definitions as a notebook gets them: the default (local) environment, with
    the data directory pointed at the built lake; no DAGSTER_HOME."""
    return build_defs({"B3_PLATFORM_DATA_DIR": str(local_lake)})


# ----------------------------------------------------------------------------- loading, locally


def test_no_dagster_home_is_needed_to_load(local_defs, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    frame = local_defs.load_asset_value(
        "silver_assets", partition_key=D.isoformat(), python_type=pd.DataFrame
    )
    assert isinstance(frame, pd.DataFrame) and len(frame) > 50


@pytest.mark.parametrize("table_def", [SILVER_HEADER, SILVER_ASSETS, *GOLD_TABLES], ids=lambda t: t.name)
def test_one_date_loads_as_pandas_and_arrow_equal_to_its_file(local_defs, local_lake, table_def):
    expected = parquet_file(local_lake, table_def, D)
    table = local_defs.load_asset_value(table_def.name, partition_key=D.isoformat(), python_type=pa.Table)
    assert isinstance(table, pa.Table)
    assert table.equals(expected, check_metadata=True)
    assert table.schema.equals(table_def.schema, check_metadata=False)
    frame = local_defs.load_asset_value(table_def.name, partition_key=D.isoformat(), python_type=pd.DataFrame)
    pd.testing.assert_frame_equal(frame, expected.to_pandas())


def test_a_range_loads_every_stored_date_with_a_date_column(local_defs, local_lake):
    loader = local_defs.get_asset_value_loader()
    window = dg.PartitionKeyRange(FIRST.isoformat(), LAST.isoformat())
    with loader:
        table = loader.load_asset_value("silver_assets", partition_key_range=window, python_type=pa.Table)
        frame = loader.load_asset_value("silver_assets", partition_key_range=window, python_type=pd.DataFrame)
    # 2025-07-09 is a trading day without a capture: it has no file, and is simply not there.
    expected = with_dates(lambda day: parquet_file(local_lake, SILVER_ASSETS, day), DAYS)
    assert table.equals(expected)
    assert table.schema.names[0] == "date"
    assert sorted(set(table.column("date").to_pylist())) == DAYS
    pd.testing.assert_frame_equal(frame, expected.to_pandas())
    assert frame.groupby("date").size().to_dict() == {
        d: parquet_file(local_lake, SILVER_ASSETS, d).num_rows for d in DAYS
    }


def test_a_date_not_in_the_lake_says_so(local_defs, local_lake):
    with pytest.raises(dg.Failure) as raised:
        local_defs.load_asset_value("silver_assets", partition_key="2025-07-09", python_type=pd.DataFrame)
    assert "silver_assets has no partition 2025-07-09" in str(raised.value)
    assert "materialize it first" in str(raised.value)


def test_a_users_downstream_asset_gets_the_partitions_it_asks_for(tmp_path, local_lake):
    """A user's asset, partitioned like ours, takes silver_assets as a DataFrame (one date) or an
    Arrow table (a single-run range), materialized in-process next to the project's assets."""
    lake = tmp_path / "lake"
    shutil.copytree(local_lake, lake)
    seen: dict[str, object] = {}

    @dg.asset(partitions_def=trading_days, backfill_policy=dg.BackfillPolicy.single_run())
    def weight_by_sector(context: dg.AssetExecutionContext, silver_assets: pd.DataFrame) -> None:
        seen[context.partition_key_range.start] = silver_assets

    @dg.asset(partitions_def=trading_days, backfill_policy=dg.BackfillPolicy.single_run())
    def header_as_arrow(context: dg.AssetExecutionContext, silver_header: pa.Table) -> None:
        seen["arrow"] = silver_header

    defs_assets = [*ALL_ASSETS, weight_by_sector, header_as_arrow]
    resources = graph_resources(LakeResource(root=str(lake)), duckdb_catalog(lake))
    result = dg.materialize(
        defs_assets,
        selection=[weight_by_sector, header_as_arrow],
        resources=resources,
        partition_key=D.isoformat(),
    )
    assert result.success
    pd.testing.assert_frame_equal(seen[D.isoformat()], parquet_file(lake, SILVER_ASSETS, D).to_pandas())
    assert seen["arrow"].equals(parquet_file(lake, SILVER_HEADER, D))

    result = dg.materialize(
        defs_assets, selection=[weight_by_sector], resources=resources, tags=range_tags(FIRST, LAST)
    )
    assert result.success
    pd.testing.assert_frame_equal(
        seen[FIRST.isoformat()],
        with_dates(lambda day: parquet_file(lake, SILVER_ASSETS, day), DAYS).to_pandas(),
    )


# ------------------------------------------------------------------------------ loading, on S3


@pytest.fixture(scope="module")
def s3_lake(moto_server) -> AwsTarget:
    target = AwsTarget.create(moto_server)
    build_lake(target.lake(), target.catalog())
    return target


def s3_file(target: AwsTarget, table_def: TableDef, day: dt.date) -> pa.Table:
    """The object the IO manager wrote on S3, read with a plain boto3 GET."""
    key = f"{target.prefix}/{table_def.location}date={day}/data.parquet"
    body = target.client("s3").get_object(Bucket=target.bucket, Key=key)["Body"].read()
    return pq.read_table(pa.BufferReader(body))


def test_the_same_calls_load_from_the_s3_lake(s3_lake):
    """B3_PLATFORM_ENV=aws swaps what stands behind the keys: the same loads give the S3 objects
    the same graph wrote there."""
    defs = build_defs(s3_lake.env())
    assert defs.resources["lake_io_manager"].lake.root.startswith("s3://")
    for table_def in (SILVER_ASSETS, SILVER_HEADER, GOLD_TABLES[0]):
        expected = s3_file(s3_lake, table_def, D)
        table = defs.load_asset_value(table_def.name, partition_key=D.isoformat(), python_type=pa.Table)
        assert table.equals(expected)
        frame = defs.load_asset_value(table_def.name, partition_key=D.isoformat(), python_type=pd.DataFrame)
        pd.testing.assert_frame_equal(frame, expected.to_pandas())
    window = dg.PartitionKeyRange(FIRST.isoformat(), LAST.isoformat())
    with defs.get_asset_value_loader() as loader:
        frame = loader.load_asset_value("silver_assets", partition_key_range=window, python_type=pd.DataFrame)
    expected = with_dates(lambda day: s3_file(s3_lake, SILVER_ASSETS, day), DAYS)
    pd.testing.assert_frame_equal(frame, expected.to_pandas())


# ------------------------------------------------------------------------ the IO manager on its own


@pytest.fixture(scope="module")
def templates(local_lake) -> dict[str, pa.Table]:
    """Real silver tables of one date, to build test streams from."""
    storage = LocalStorage(local_lake)
    return {t.name: read_partition(storage, t, D) for t in (SILVER_HEADER, SILVER_ASSETS)}


def silver_like(build, name: str = "silver", resumed: list | None = None):
    """A multi-asset over the silver tables whose dates come from `build` (one stream, the
    project's convention). `resumed` records, each time the asset resumes after an Output,
    which dates were stored by then."""

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(t.name).with_io_manager_key(LAKE_IO_MANAGER) for t in (SILVER_HEADER, SILVER_ASSETS)
        ],
        name=name,
        **PARTITIONED,
    )
    def _silver(context: dg.AssetExecutionContext):
        stream = DateStream(
            context,
            (SILVER_HEADER, SILVER_ASSETS),
            partition_days(context),
            build,
            name=name,
            nothing_built_hint="nothing to see",
        )
        for t in (SILVER_HEADER, SILVER_ASSETS):
            yield dg.Output(stream, output_name=t.name)
            if resumed is not None:
                resumed.append(list(stream.built))
        stream.finish()

    return _silver


def materialize(assets_def, root: Path, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [assets_def],
        resources=lake_resources(LakeResource(root=str(root))),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        **kwargs,
    )


def files(root: Path) -> dict[str, bytes]:
    """The lake's files but its change journal, whose markers say when each date was written (a
    write adds one whatever it wrote: test_catalog_journal)."""
    return {
        key: p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not (key := p.relative_to(root).as_posix()).startswith(CHANGES_ROOT)
    }


def failure(result) -> tuple[str, str]:
    """(the message a user reads first, every message down the cause chain)."""
    error = result.get_step_failure_events()[0].event_specific_data.error
    first, chain = error.message, []
    while error is not None:
        chain.append(error.message)
        error = error.cause
    return first, "\n".join(chain)


def test_handle_output_stores_the_stream_before_the_asset_resumes(tmp_path, templates):
    """What the design stands on: Dagster runs handle_output to completion before the asset's
    generator resumes, so what the stream recorded (dates, check results) is there afterwards."""
    resumed: list[list[dt.date]] = []
    days = [dt.date(2025, 7, 7), dt.date(2025, 7, 8)]
    asset = silver_like(lambda day: DateTables(dict(templates)), resumed=resumed)
    assert materialize(asset, tmp_path, tags=range_tags(*days)).success
    assert resumed == [days, days]  # every date stored by the first output, before it resumed
    assert parquet_file(tmp_path, SILVER_ASSETS, days[1]).equals(templates["silver_assets"])


def test_a_wrong_column_is_refused_before_anything_of_the_date_is_written(tmp_path, templates):
    days = [dt.date(2025, 7, 7), dt.date(2025, 7, 8)]
    assert materialize(
        silver_like(lambda day: DateTables(dict(templates))), tmp_path, tags=range_tags(*days)
    ).success
    before = files(tmp_path)

    def build(day):
        tables = dict(templates)
        if day == days[1]:  # the second table of the second date has a column renamed
            assets = templates["silver_assets"]
            tables["silver_assets"] = assets.rename_columns(
                ["tickr" if n == "ticker" else n for n in assets.schema.names]
            )
        return DateTables(tables)

    result = materialize(silver_like(build), tmp_path, tags=range_tags(*days))
    assert not result.success
    first, _ = failure(result)
    assert "silver_assets 2025-07-08: schema differs from the declared one" in first
    assert "tickr" in first
    # Neither table of that date was replaced (the header was fine, and still is the old file).
    assert files(tmp_path) == before


def test_a_date_is_replaced_exactly_and_a_date_without_input_loses_its_stale_files(tmp_path, templates):
    day = D.isoformat()
    assert materialize(
        silver_like(lambda d: DateTables(dict(templates))), tmp_path, partition_key=day
    ).success
    smaller = {**templates, "silver_assets": templates["silver_assets"].slice(0, 3)}
    result = materialize(silver_like(lambda d: DateTables(dict(smaller))), tmp_path, partition_key=day)
    assert result.success
    assert parquet_file(tmp_path, SILVER_ASSETS, D).num_rows == 3
    assert parquet_file(tmp_path, SILVER_HEADER, D).equals(templates["silver_header"])
    # Nothing but the two files and the date's manifest (what publishes them together).
    assert not [k for k in files(tmp_path) if Path(k).name not in ("data.parquet", MANIFEST_FILE)]
    rows = {
        e.asset_key.to_user_string(): e.metadata["dagster/row_count"].value
        for e in result.asset_materializations_for_node("silver")
    }
    assert rows == {"silver_header": templates["silver_header"].num_rows, "silver_assets": 3}

    result = materialize(silver_like(lambda d: NoInput("no bronze partition")), tmp_path, partition_key=day)
    assert not result.success  # nothing built: the step fails, saying why ...
    assert "silver: no bronze partition for 2025-07-10; nothing to see" in failure(result)[0]
    assert files(tmp_path) == {}  # ... and the stale files of the date are gone
    skipped = result.asset_materializations_for_node("silver")
    assert sorted(m.asset_key.to_user_string() for m in skipped) == ["silver_assets", "silver_header"]
    for mat in skipped:
        assert mat.metadata["status"].value == "no bronze partition"
        assert mat.metadata["dagster/row_count"].value == 0


def test_a_range_is_written_one_date_at_a_time(tmp_path, templates):
    """Memory does not grow with the range: at most the date being built and the one before it
    are alive while a 31-date range is stored."""
    alive: list[weakref.ref] = []
    most_alive = 0
    written_before: list[int] = []

    def build(day):
        nonlocal most_alive
        most_alive = max(most_alive, sum(r() is not None for r in alive))
        written_before.append(len(list(tmp_path.rglob("*.parquet"))))
        tables = {name: t.slice(0) for name, t in templates.items()}  # new objects each date
        alive.extend(weakref.ref(t) for t in tables.values())
        return DateTables(tables)

    first, last = dt.date(2025, 5, 5), dt.date(2025, 6, 16)
    result = materialize(silver_like(build), tmp_path, tags=range_tags(first, last))
    assert result.success
    dates = sorted({p.parent.name for p in tmp_path.rglob("*.parquet")})
    expected = trading_days.get_partition_keys_in_range(
        dg.PartitionKeyRange(first.isoformat(), last.isoformat())
    )
    assert len(dates) == len(written_before) == len(expected) == 31
    assert most_alive <= 2 * 2  # two tables per date
    # Each date was on disk before the next one was built (not all written at the end).
    assert written_before == [2 * i for i in range(31)]


def test_a_mid_range_parse_error_names_asset_date_field_and_value(tmp_path):
    """The real silver asset over a bronze range whose middle date holds a value that does not
    parse: the message a user reads first names the asset, the date, the field and the value;
    the dates before it have their new version, the date itself and those after keep theirs.
    The value sits in bronze as if written under an older rule (the publish audit keeps a capture
    like it out of a freshly built bronze), so silver is the step that meets it."""
    lake = LakeResource(root=str(tmp_path))
    days = [dt.date(2025, 6, 30), dt.date(2025, 7, 1), dt.date(2025, 7, 2), dt.date(2025, 7, 3)]
    results = import_paths(lake.raw(), [JSON_DIR / f"{d}.json" for d in days])
    assert all(r.status == "imported" for r in results)
    bad_day = days[2]
    store, storage = lake.raw(), lake.storage()
    for day in days:
        capture = store.latest_by_index(day)["IBOV"]
        portfolio = decode_capture(store.read_bodies(capture), source_format="json", index="IBOV", day=day)
        rows = list(portfolio.results)
        if day == bad_day:
            rows[3] = rows[3].model_copy(update={"part": "1,2,3"})
        portfolio = dataclasses.replace(portfolio, results=rows)
        write_partition(
            storage, BRONZE_PORTFOLIO, day, bronze_table([("IBOV", capture.capture_id, portfolio)])
        )
    resources = graph_resources(lake, duckdb_catalog(tmp_path))
    result = dg.materialize(
        ALL_ASSETS,
        selection=["silver_header", "silver_assets"],
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        tags=range_tags(days[0], days[-1]),
    )
    assert not result.success
    first, chain = failure(result)
    # Dagster prefixes the exception's class; the rest is the stream's own sentence.
    assert first.startswith("dagster._core.definitions.events.Failure: silver 2025-07-02: IBOV"), first
    for part in ("'part'", "'1,2,3'", "IBOV", "row 4"):
        assert part in first, (part, first)
    assert "Error occurred while handling output" not in first
    written = {p.parent.name for p in (tmp_path / SILVER_ASSETS.location).rglob("*.parquet")}
    assert written == {"date=2025-06-30", "date=2025-07-01"}


def test_a_multi_asset_must_hand_every_output_the_same_stream(tmp_path, templates):
    @dg.multi_asset(
        specs=[
            dg.AssetSpec(t.name).with_io_manager_key(LAKE_IO_MANAGER) for t in (SILVER_HEADER, SILVER_ASSETS)
        ],
        name="split_silver",
        **PARTITIONED,
    )
    def split_silver(context: dg.AssetExecutionContext):
        # One stream per table: the convention says one stream for every table of the multi-asset.
        for t in (SILVER_HEADER, SILVER_ASSETS):
            stream = DateStream(
                context,
                [t],
                partition_days(context),
                lambda day, name=t.name: DateTables({name: templates[name]}),
                name="split_silver",
                nothing_built_hint="",
            )
            yield dg.Output(stream, output_name=t.name)

    result = materialize(split_silver, tmp_path, partition_key=D.isoformat())
    assert not result.success
    first, _ = failure(result)
    assert "must hold exactly its lake tables ['silver_assets', 'silver_header']" in first
    assert files(tmp_path) == {}


def test_an_asset_stored_in_the_lake_must_be_a_declared_table():
    @dg.asset(io_manager_key=LAKE_IO_MANAGER)
    def my_table() -> pa.Table:
        return pa.table({"a": [1]})

    with pytest.raises(dg.DagsterInvariantViolationError, match="my_table is stored by lake_io_manager"):
        check_lake_assets([*ALL_ASSETS, my_table])
    check_lake_assets(ALL_ASSETS)  # the project's own assets are all declared tables


def test_one_date_may_be_stored_as_a_table_a_range_may_not(tmp_path, local_lake, templates):
    bronze = read_partition(LocalStorage(local_lake), BRONZE_PORTFOLIO, D)

    @dg.asset(name="bronze_portfolio", io_manager_key=LAKE_IO_MANAGER, **PARTITIONED)
    def bronze_table() -> pa.Table:
        return bronze

    result = materialize(bronze_table, tmp_path, partition_key=D.isoformat())
    assert result.success
    assert parquet_file(tmp_path, BRONZE_PORTFOLIO, D).equals(bronze)
    result = materialize(bronze_table, tmp_path, tags=range_tags(dt.date(2025, 7, 7), dt.date(2025, 7, 8)))
    assert not result.success
    assert "a table is stored for exactly one date; this output covers 2 partition(s)" in failure(result)[0]

    # One table of a layer published together cannot be stored alone: the date would be half new.
    @dg.asset(name="silver_header", io_manager_key=LAKE_IO_MANAGER, **PARTITIONED)
    def header_table() -> pa.Table:
        return templates["silver_header"]

    before = files(tmp_path)
    result = materialize(header_table, tmp_path, partition_key=D.isoformat())
    assert not result.success
    assert "a date of silver is published whole (silver_header, silver_assets)" in failure(result)[0]
    assert files(tmp_path) == before
