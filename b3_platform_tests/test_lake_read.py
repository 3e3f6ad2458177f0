"""`read_partition` reads a date's file back exactly as `pyarrow.parquet.read_table` does (it reads
the one file directly, for less CPU), and refuses what read_table refuses, word for word."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from b3_platform.b3.contract import decode_portfolio_json
from b3_platform.lake.paths import table_partition_key
from b3_platform.lake.schemas import BRONZE_PORTFOLIO, SILVER_ASSETS, SILVER_HEADER
from b3_platform.lake.storage import LocalStorage
from b3_platform.lake.tables import UnreadableFile, read_partition, write_partition
from b3_platform.transforms.bronze import bronze_table
from b3_platform.transforms.silver import silver_tables
from b3_platform_tests.conftest import SAMPLE_DAY, SAMPLE_JSON
from b3_platform_tests.replay import sample_bytes


@pytest.fixture
def stored(tmp_path):
    """bronze and silver of the sample day written to a local lake, and the tables written."""
    portfolio = decode_portfolio_json(sample_bytes(SAMPLE_JSON), index="IBOV", requested_date=SAMPLE_DAY)
    bronze = bronze_table([("IBOV", "20250710T130000000000Z-" + "0" * 64, portfolio)])
    header, assets = silver_tables(bronze, SAMPLE_DAY)
    storage = LocalStorage(tmp_path)
    tables = {BRONZE_PORTFOLIO: bronze, SILVER_HEADER: header, SILVER_ASSETS: assets}
    for table_def, table in tables.items():
        write_partition(storage, table_def, SAMPLE_DAY, table)
    return storage, tables


def _read_table(storage, table_def, columns=None):
    return pq.read_table(
        pa.BufferReader(storage.read_bytes(table_partition_key(table_def.location, SAMPLE_DAY))),
        columns=columns,
    )


@pytest.mark.parametrize(
    "columns",
    [None, ["index", "ticker"], ["ticker", "index"], ["weight"]],
    ids=["all", "two", "reordered", "one"],
)
def test_a_file_reads_back_as_read_table_reads_it(stored, columns):
    storage, tables = stored
    for table_def, written in tables.items():
        wanted = columns if columns is None or set(columns) <= set(written.column_names) else ["index"]
        got = read_partition(storage, table_def, SAMPLE_DAY, columns=wanted)
        expected = _read_table(storage, table_def, wanted)
        assert got.equals(expected)
        assert got.schema.equals(expected.schema, check_metadata=True)
        assert got.column_names == (wanted or written.column_names)
        if wanted is None:
            assert got.equals(written.cast(table_def.schema))


def test_a_missing_or_repeated_column_is_refused_as_read_table_refuses_it(stored):
    storage, _ = stored
    with pytest.raises(pa.ArrowInvalid) as expected:
        _read_table(storage, SILVER_ASSETS, ["index", "no_such_column"])
    with pytest.raises(UnreadableFile) as got:
        read_partition(storage, SILVER_ASSETS, SAMPLE_DAY, columns=["index", "no_such_column"])
    assert str(expected.value) in str(got.value)
    # Named twice: read_table gives the column twice, as before.
    twice = read_partition(storage, SILVER_ASSETS, SAMPLE_DAY, columns=["index", "index"])
    assert twice.column_names == ["index", "index"]


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],
        lambda b: b"not parquet at all",
        lambda b: b"",
        lambda b: b[:8] + b"\0" * (len(b) - 8),
        lambda b: b[:4] + b"\xff" * (len(b) // 2) + b[4 + len(b) // 2 :],
    ],
    ids=["truncated", "garbage", "empty", "zeroed", "pages overwritten, footer kept"],
)
def test_a_damaged_file_gets_read_tables_error(stored, damage):
    storage, _ = stored
    key = table_partition_key(SILVER_ASSETS.location, SAMPLE_DAY)
    storage.write_bytes(key, damage(storage.read_bytes(key)))
    with pytest.raises((pa.ArrowException, OSError)) as expected:
        _read_table(storage, SILVER_ASSETS)
    with pytest.raises(UnreadableFile) as got:
        read_partition(storage, SILVER_ASSETS, SAMPLE_DAY)
    assert f"({len(storage.read_bytes(key))} bytes; {expected.value})" in str(got.value)
    assert "is not a readable Parquet file" in str(got.value)
