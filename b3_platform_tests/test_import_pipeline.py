"""`import_paths` stores several accepted files at once while it judges the next ones: results
still come in file order, the same bytes twice in one import are imported once then a duplicate,
and when the lake fails the report matches what raw holds."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from b3_platform import importer
from b3_platform.importer import ImportStopped, import_paths
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.storage import LocalStorage

SAMPLES = Path(__file__).resolve().parent.parent / "demo_data" / "GetPortfolioDay" / "IBOV"
JSONS = sorted(SAMPLES.glob("2025-*.json"))


@pytest.fixture
def archive(tmp_path) -> Path:
    """Every 2025 sample under IBOV/, and each again under a second name (same bytes)."""
    folder = tmp_path / "archive" / "IBOV"
    folder.mkdir(parents=True)
    for path in JSONS:
        shutil.copy(path, folder / path.name)
        shutil.copy(path, folder / f"z-copy-{path.name}")
    return folder


def captures_in(store: RawStore) -> dict[str, int]:
    return {str(day): len(store.captures(day)) for day in store.dates()}


def test_results_come_in_file_order_and_the_same_bytes_are_imported_once(tmp_path, archive):
    store = RawStore(LocalStorage(tmp_path / "lake"))
    seen = []
    results = import_paths(store, [archive], progress=seen.append)
    assert seen == results
    assert [r.path.name for r in results] == sorted(p.name for p in archive.iterdir())
    by_name = {r.path.name: r for r in results}
    for path in JSONS:
        first, copy = by_name[path.name], by_name[f"z-copy-{path.name}"]
        # "2025-…" sorts before "z-copy-…": the first in file order is the one imported.
        assert first.status == "imported" and copy.status == "duplicate"
        assert copy.reason == f"identical to capture {first.capture_id}"
    assert captures_in(store) == {str(r.day): 1 for r in results}
    assert importer.STORE_WORKERS > 1  # the stores above did overlap


def test_a_lake_failure_reports_exactly_what_raw_holds(tmp_path, archive, monkeypatch):
    store = RawStore(LocalStorage(tmp_path / "lake"))
    real_store = RawStore.store
    failing_day = dt.date(2025, 7, 3)

    def store_or_fail(self, day, *args, **kwargs):
        if day == failing_day:
            raise OSError(28, "No space left on device", "raw/…")
        return real_store(self, day, *args, **kwargs)

    monkeypatch.setattr(RawStore, "store", store_or_fail)
    with pytest.raises(ImportStopped) as stopped:
        import_paths(store, [archive])
    exc = stopped.value
    assert exc.path.name == f"{failing_day}.json"
    assert "No space left on device" in str(exc)
    stored = {r.day for r in exc.results if r.status == "imported"}
    # Every file reported imported is in raw, and nothing else is.
    assert captures_in(store) == {str(day): 1 for day in stored}
    assert failing_day not in stored
    assert len(exc.results) + 1 + exc.not_attempted == len(list(archive.iterdir()))
