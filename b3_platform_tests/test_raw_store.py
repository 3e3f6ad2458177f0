"""The raw store on its own: a capture is committed by its sidecar, written last."""

from __future__ import annotations

import datetime as dt

import pytest

from b3_platform.lake.raw_store import META_SUFFIX, RawStore
from b3_platform.lake.storage import LocalStorage


def test_raw_capture_interrupted_before_its_sidecar_leaves_nothing(tmp_path, monkeypatch):
    """A capture is committed by its .meta.json written last; a failure before that removes the
    bodies already written, so an interrupted import or capture leaves no orphan in raw."""
    store = RawStore(LocalStorage(tmp_path / "lake"))
    real_write = LocalStorage.write_bytes

    def fail_on_sidecar(self, key, data):
        if key.endswith(META_SUFFIX):
            raise OSError("disk full writing the sidecar")
        real_write(self, key, data)

    monkeypatch.setattr(LocalStorage, "write_bytes", fail_on_sidecar)
    with pytest.raises(OSError, match="disk full"):
        store.store(
            dt.date(2025, 7, 10),
            "IBOV",
            [b"page one", b"page two"],
            fetched_at=dt.datetime(2025, 7, 10, 12, tzinfo=dt.timezone.utc),
            source_format="json",
            meta={"source": "test"},
        )
    monkeypatch.undo()
    assert [p for p in (tmp_path / "lake").rglob("*") if p.is_file()] == []
    assert store.captures(dt.date(2025, 7, 10)) == []
