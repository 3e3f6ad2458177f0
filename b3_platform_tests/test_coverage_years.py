"""Raw's inventory and the coverage table kept a year per file, so that a catalog refresh reads and
writes only the years that changed (the daily run's refresh then costs the same at 250 dates as
at 5,000): each refresh still gives what a full walk of raw gives, a capture for an old year or a
new index rebuilds what it changes, and an older version's layout (one inventory JSON, one
coverage file) or a lost or damaged file is replaced, never counted twice."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from b3_platform.catalog.duckdb_catalog import STATE_TABLE, WHOLE
from b3_platform.coverage import coverage_table, write_coverage
from b3_platform.lake import raw_inventory
from b3_platform.lake.paths import COVERAGE_BASIS_KEY, PARQUET_FILE, raw_inventory_prefix, year_file
from b3_platform.lake.raw_inventory import inventory
from b3_platform.lake.schemas import COVERAGE
from b3_platform.lake.storage import LocalStorage
from b3_platform.lake.tables import to_parquet_bytes
from b3_platform_tests.conftest import duckdb_catalog
from b3_platform_tests.test_coverage_inventory import capture, walked

#: A capture in each of three years, and the day the refreshes run.
DAYS = (dt.date(2023, 12, 28), dt.date(2024, 7, 1), dt.date(2025, 7, 1))
TODAY = dt.date(2025, 7, 3)
YEARS_DIR = f"{raw_inventory_prefix()}years/"


class Recording(LocalStorage):
    """A local lake that records the keys read and written."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.read: list[str] = []
        self.written: list[str] = []

    def read_bytes(self, key: str) -> bytes:
        self.read.append(key)
        return super().read_bytes(key)

    def write_bytes(self, key: str, data: bytes) -> None:
        self.written.append(key)
        super().write_bytes(key, data)

    def forget(self) -> None:
        self.read.clear()
        self.written.clear()


def coverage_key(year: int) -> str:
    return f"{COVERAGE.location}{year_file(year)}"


def refresh(storage: LocalStorage, catalog, expected=("IBOV",), today: dt.date = TODAY) -> list[tuple]:
    """What athena_tables does with coverage: the inventory brought up to date reading only the
    years its markers name, the coverage years written, the catalog synced; returns the table."""
    raw = inventory(storage, update=True, whole=False)
    write_coverage(storage, list(expected), today, raw=raw)
    catalog.sync(storage, [COVERAGE], raw=raw)
    return catalog.query('SELECT "index", "date", status, expected FROM coverage ORDER BY ALL').rows


def whole_table(storage: LocalStorage, expected=("IBOV",), today: dt.date = TODAY) -> list[tuple]:
    """The coverage table built whole from a full walk of raw: what every refresh must equal."""
    table = coverage_table(raw_inventory.RawInventory(walked(storage)), list(expected), today)
    return sorted(tuple(r.values()) for r in table.to_pylist())


def identities(catalog) -> dict[dt.date, str]:
    return dict(catalog.query(f"SELECT date, identity FROM {STATE_TABLE} WHERE table_name = 'coverage'").rows)


@pytest.fixture
def lake(tmp_path) -> Recording:
    storage = Recording(tmp_path / "lake")
    for day in DAYS:
        capture(storage, day, "IBOV")
    return storage


def test_a_daily_refresh_reads_and_writes_only_its_own_year(lake):
    catalog = duckdb_catalog(lake.root)
    assert refresh(lake, catalog) == whole_table(lake)
    assert lake.list_keys(COVERAGE.location) == [coverage_key(y) for y in (2023, 2024, 2025)]
    before = identities(catalog)

    capture(lake, dt.date(2025, 7, 2), "IBOV")
    lake.forget()
    assert refresh(lake, catalog) == whole_table(lake)
    inventory_years = [k[len(YEARS_DIR) :][:4] for k in lake.read + lake.written if k.startswith(YEARS_DIR)]
    assert set(inventory_years) == {"2025"}  # the older years' inventory files neither read nor written
    touched = [k for k in lake.read + lake.written if k.startswith(COVERAGE.location)]
    assert set(touched) == {coverage_key(2025)}  # nor their coverage files
    after = identities(catalog)
    assert {d: after[d] == before[d] for d in before} == {
        dt.date(2023, 1, 1): True,
        dt.date(2024, 1, 1): True,
        dt.date(2025, 1, 1): False,  # only the current year reloaded
    }
    assert inventory(lake).totals() == (4, 4, DAYS[0], dt.date(2025, 7, 2))

    lake.forget()  # nothing new: no year file written at all
    assert refresh(lake, catalog) == whole_table(lake)
    assert not [k for k in lake.written if k.startswith((YEARS_DIR, COVERAGE.location))]
    assert identities(catalog) == after


def test_a_capture_for_an_old_year_rebuilds_that_year(lake):
    catalog = duckdb_catalog(lake.root)
    refresh(lake, catalog)
    before = identities(catalog)
    capture(lake, dt.date(2024, 7, 2), "IBOV")
    lake.forget()
    assert refresh(lake, catalog) == whole_table(lake)
    assert coverage_key(2024) in lake.written and coverage_key(2023) not in lake.written + lake.read
    assert identities(catalog)[dt.date(2023, 1, 1)] == before[dt.date(2023, 1, 1)]
    assert identities(catalog)[dt.date(2024, 1, 1)] != before[dt.date(2024, 1, 1)]


def test_a_new_index_or_a_new_capture_list_rewrites_every_year(lake):
    catalog = duckdb_catalog(lake.root)
    refresh(lake, catalog)
    capture(lake, dt.date(2025, 7, 2), "SMLL")  # every year gains SMLL's rows (missing before it)
    lake.forget()
    assert refresh(lake, catalog) == whole_table(lake)
    assert {coverage_key(y) for y in (2023, 2024, 2025)} <= set(lake.written)
    lake.forget()
    assert refresh(lake, catalog, expected=("IBOV", "IDIV")) == whole_table(lake, ("IBOV", "IDIV"))
    assert {coverage_key(y) for y in (2023, 2024, 2025)} <= set(lake.written)


def test_a_new_year_adds_a_file_and_an_earlier_today_drops_one(lake):
    catalog = duckdb_catalog(lake.root)
    refresh(lake, catalog)
    later = dt.date(2026, 1, 5)
    assert refresh(lake, catalog, today=later) == whole_table(lake, today=later)
    assert coverage_key(2026) in lake.list_keys(COVERAGE.location)
    assert refresh(lake, catalog) == whole_table(lake)  # back to TODAY: 2026 holds no day of the range
    assert coverage_key(2026) not in lake.list_keys(COVERAGE.location)


def test_an_older_versions_layout_is_replaced_not_counted_twice(lake):
    """A lake and a catalog of the version before: one inventory JSON of every date (format 1),
    one coverage file (`data.parquet`), the catalog's rows of it under WHOLE."""
    catalog = duckdb_catalog(lake.root)
    whole = whole_table(lake)
    refresh(lake, catalog)
    for key in lake.list_keys(raw_inventory_prefix()):
        lake.delete(key)
    old_state = '{"format":1,"dates":{"2023-12-28":{"IBOV":1}}}'  # also out of date: a walk must redo it
    lake.write_bytes(f"{raw_inventory_prefix()}state-000000000007.json", old_state.encode())
    legacy = coverage_table(raw_inventory.RawInventory(walked(lake)), ["IBOV"], TODAY)
    for key in [*lake.list_keys(COVERAGE.location), COVERAGE_BASIS_KEY]:
        lake.delete(key)
    lake.write_bytes(f"{COVERAGE.location}{PARQUET_FILE}", to_parquet_bytes(legacy))
    with duckdb.connect(str(Path(lake.root) / "warehouse.duckdb")) as conn:
        conn.execute(f"DELETE FROM {STATE_TABLE} WHERE table_name = 'coverage'")
        conn.execute(f"INSERT INTO {STATE_TABLE} VALUES ('coverage', ?, 'legacy', ?)", [WHOLE, len(whole)])

    assert refresh(lake, catalog) == whole  # the legacy rows removed, each year loaded once
    assert lake.list_keys(COVERAGE.location) == [coverage_key(y) for y in (2023, 2024, 2025)]
    assert sorted(identities(catalog)) == [dt.date(y, 1, 1) for y in (2023, 2024, 2025)]
    [state] = [k for k in lake.list_keys(raw_inventory_prefix()) if "/state-" in k]
    assert state.endswith("state-000000000008.json") and inventory(lake).counts == walked(lake)


def test_a_lost_basis_rebuilds_every_year_and_drops_files_of_no_year(lake):
    catalog = duckdb_catalog(lake.root)
    refresh(lake, catalog)
    lake.delete(COVERAGE_BASIS_KEY)
    stray = coverage_key(2019)
    lake.write_bytes(stray, pq_bytes_of_nothing())
    lake.forget()
    assert refresh(lake, catalog) == whole_table(lake)
    assert stray not in lake.list_keys(COVERAGE.location)
    assert {coverage_key(y) for y in (2023, 2024, 2025)} <= set(lake.read)  # each year built and compared
    assert lake.exists(COVERAGE_BASIS_KEY)


def pq_bytes_of_nothing() -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(COVERAGE.schema.empty_table(), sink)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("damage", ["lost", "garbled"])
def test_a_lost_or_damaged_year_file_is_walked_again(lake, damage, monkeypatch):
    inventory(lake, update=True)
    [year_2024] = [k for k in lake.list_keys(YEARS_DIR) if k[len(YEARS_DIR) :].startswith("2024-")]
    if damage == "lost":
        lake.delete(year_2024)
    else:
        lake.write_bytes(year_2024, b'{"format":2,"year":2024,"dates":{"2024-07-01":{"IBOV":9}}}')
    # A reader of one year that is not there: that year from a walk of raw, the others' files.
    assert inventory(lake, whole=False).year(2024) == {DAYS[1]: {"IBOV": 1}}
    # A reader of every year: the state cannot be trusted, raw is walked; a refresh writes it anew.
    assert inventory(lake).counts == walked(lake)
    assert inventory(lake, update=True).counts == walked(lake)
    # ... rewritten under the same name (the same counts, so the same digest), and read from now on
    assert year_2024 in lake.list_keys(YEARS_DIR)
    expected = walked(lake)
    monkeypatch.setattr(raw_inventory, "_walk_all", lambda *a: pytest.fail("walked raw again"))
    assert inventory(lake).counts == expected
