"""Every real sample in demo_data goes through import → raw → bronze → silver, and the other
endpoints' responses are refused. Expected values are computed from the files themselves."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from b3_platform.importer import import_paths
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.storage import LocalStorage
from b3_platform.transforms.bronze import bronze_table, decode_capture
from b3_platform.transforms.silver import silver_tables
from b3_platform_tests.replay import SAMPLES

JSON_SAMPLES = sorted(
    p.relative_to(SAMPLES).as_posix() for p in (SAMPLES / "GetPortfolioDay").rglob("*.json")
)
CSV_SAMPLES = sorted(p.relative_to(SAMPLES).as_posix() for p in (SAMPLES / "csv").iterdir())
OTHER_ENDPOINTS = sorted(
    p.relative_to(SAMPLES).as_posix()
    for folder in ("GetTheoricalPortfolio", "GetStockIndex", "indexStatistics_GetPortfolioDay")
    for p in (SAMPLES / folder).rglob("*.json")
)
SEGMENT2 = "GetPortfolioDay/IBOV/2022-12-08_segment2_pt-br_vcr.json"
CSV_2021 = "csv/IBOVDia_26-03-21.csv"


def test_sample_lists_are_complete():
    assert len(JSON_SAMPLES) == 9
    assert len(CSV_SAMPLES) == 10
    assert len(OTHER_ENDPOINTS) == 5


def _pt_int(text: str) -> int:
    return int(text.replace(".", ""))


def _expected(relative: str) -> dict:
    """What the file itself says: component count, header total, reductor text, date."""
    body = (SAMPLES / relative).read_bytes()
    if relative.endswith(".json"):
        data = json.loads(body.decode("utf-8"))
        header = data["header"]
        return {
            "rows": len(data["results"]),
            "total": _pt_int(header["theoricalQty"]),
            "reductor": header["reductor"],
            "date": header["date"],
            "format": "json",
            "qty_sum": sum(_pt_int(r["theoricalQty"]) for r in data["results"]),
        }
    lines = [line for line in body.decode("iso-8859-1").replace("\r", "").split("\n") if line]
    rows = lines[2:-2]
    return {
        "rows": len(rows),
        "total": _pt_int(lines[-2].split(";")[3]),
        "reductor": lines[-1].split(";")[3],
        "date": lines[0].rsplit(" ", 1)[1],
        "format": "csv",
        "qty_sum": sum(_pt_int(r.split(";")[3]) for r in rows),
    }


def _import_one(tmp_path: Path, relative: str, **kwargs):
    store = RawStore(LocalStorage(tmp_path / "lake"))
    results = import_paths(store, [SAMPLES / relative], **kwargs)
    assert len(results) == 1
    return store, results[0]


def _silver(store: RawStore, day: dt.date, index: str):
    captures = store.captures(day, index)
    assert len(captures) == 1
    capture = captures[0]
    portfolio = decode_capture(
        store.read_bodies(capture), source_format=capture.source_format, index=index, day=day
    )
    header, assets = silver_tables(bronze_table([(index, capture.capture_id, portfolio)]), day)
    return capture, header.to_pylist(), assets.to_pylist()


@pytest.fixture
def silver_of(tmp_path):
    """Import one sample into a fresh lake and return (result, capture, header row, asset rows)."""
    counter = iter(range(1000))

    def run(relative: str):
        store, result = _import_one(tmp_path / f"run{next(counter)}", relative)
        assert result.status == "imported", result.reason
        capture, header, assets = _silver(store, result.day, result.index)
        assert len(header) == 1
        return result, capture, header[0], assets

    return run


@pytest.mark.parametrize("relative", JSON_SAMPLES + CSV_SAMPLES)
def test_sample_imports_and_yields_silver(relative, silver_of):
    expected = _expected(relative)
    result, capture, header, assets = silver_of(relative)
    assert result.rows == expected["rows"]
    assert capture.source_format == expected["format"]
    # One silver row per component, in file order.
    assert len(assets) == header["row_count"] == expected["rows"]
    assert [a["row_number"] for a in assets] == list(range(1, expected["rows"] + 1))
    assert {a["index"] for a in assets} == {result.index} == {header["index"]}
    # The header is typed and agrees with the rows.
    assert header["reference_date"] == result.day
    assert result.day.strftime("%d/%m/%y") == expected["date"]
    assert header["theoretical_quantity_total"] == expected["total"]
    assert sum(a["theoretical_quantity"] for a in assets) == expected["total"] == expected["qty_sum"]
    assert header["part_total"] == Decimal("100.000")
    assert abs(sum((a["weight"] for a in assets), Decimal(0)) - Decimal(100)) <= Decimal("0.05")
    assert all(a["weight"] > 0 for a in assets)
    assert header["reductor"] > 0
    assert header["total_records"] == (expected["rows"] if expected["format"] == "json" else None)
    assert header["source_format"] == expected["format"]
    assert header["language"] == "pt-br"
    assert header["capture_id"] == capture.capture_id
    # Every row splits its type code and keeps the original.
    for a in assets:
        assert a["ticker"] and a["company"] and a["share_class"] in {"ON", "PN", "PNA", "PNB", "PNC", "UNT"}
        assert a["type_code"].startswith(a["share_class"])


@pytest.mark.parametrize("relative", JSON_SAMPLES + CSV_SAMPLES)
def test_sample_raw_bytes_are_stored_verbatim(relative, tmp_path):
    store, result = _import_one(tmp_path, relative)
    assert result.status == "imported", result.reason
    (capture,) = store.captures(result.day, result.index)
    assert store.read_bodies(capture) == [(SAMPLES / relative).read_bytes()]


def test_json_and_csv_of_2025_07_10_give_the_same_silver(silver_of):
    _, _, json_header, json_assets = silver_of("GetPortfolioDay/IBOV/2025-07-10.json")
    _, _, csv_header, csv_assets = silver_of("csv/IBOV_2025-07-10.csv")
    keys = (
        "ticker",
        "company",
        "share_class",
        "event_flag",
        "listing_segment",
        "weight",
        "theoretical_quantity",
    )
    json_rows = [tuple(a[k] for k in keys) for a in json_assets]
    csv_rows = [tuple(a[k] for k in keys) for a in csv_assets]
    assert len(json_rows) == 84
    assert json_rows == csv_rows
    for k in ("theoretical_quantity_total", "reductor", "reference_date", "part_total", "row_count"):
        assert json_header[k] == csv_header[k], k
    assert json_header["reductor"] == Decimal("15438607.05630450")
    assert (json_header["source_format"], csv_header["source_format"]) == ("json", "csv")
    assert (json_header["total_records"], csv_header["total_records"]) == (84, None)


def test_2021_csv_reductor_is_repaired_and_raw_kept_verbatim(silver_of, tmp_path):
    result, capture, header, assets = silver_of(CSV_2021)
    assert (result.index, result.day) == ("IBOV", dt.date(2021, 3, 26))
    assert header["reductor"] == Decimal("18296803.37677573")
    assert header["reductor_note"]
    assert "18.296.80337677573" in header["reductor_note"]
    assert len(assets) == 82
    # Raw holds the file as it was, defect included, under the .csv body key.
    original = (SAMPLES / CSV_2021).read_bytes()
    assert b"Redutor;;;18.296.80337677573" in original
    (key,) = capture.body_keys
    assert key.endswith(".csv")
    stored = next((tmp_path).rglob(key.rsplit("/", 1)[1]))
    assert stored.read_bytes() == original


def test_regular_reductors_have_no_note(silver_of):
    _, _, header, _ = silver_of("csv/IBOV_2025-07-11.csv")
    assert header["reductor_note"] is None
    assert header["reductor"] == Decimal("15438607.05630450")


def test_segment2_sample_carries_sectors(silver_of):
    result, _, header, assets = silver_of(SEGMENT2)
    assert (result.index, result.day) == ("IBOV", dt.date(2022, 12, 8))
    assert header["has_sector"] is True
    assert len(assets) == 92
    assert all(a["sector"] for a in assets)
    assert all(a["sector_weight"] is not None for a in assets)
    # partAcum is the sector's total weight: the same on every row of a sector, equal to the sum.
    by_sector: dict[str, list[dict]] = {}
    for a in assets:
        by_sector.setdefault(a["sector"], []).append(a)
    assert len(by_sector) > 10
    for sector, rows in by_sector.items():
        assert len({r["sector_weight"] for r in rows}) == 1, sector
        assert abs(sum((r["weight"] for r in rows), Decimal(0)) - rows[0]["sector_weight"]) <= Decimal("0.01")
    first = assets[0]
    assert (first["ticker"], first["company"], first["sector_weight"]) == ("WEGE3", "WEG", Decimal("2.728"))


@pytest.mark.parametrize("relative", [r for r in JSON_SAMPLES + CSV_SAMPLES if r != SEGMENT2])
def test_flat_samples_have_no_sector(relative, silver_of):
    _, _, header, assets = silver_of(relative)
    assert header["has_sector"] is False
    assert {a["sector"] for a in assets} == {None}
    assert {a["sector_weight"] for a in assets} == {None}


@pytest.mark.parametrize("relative", OTHER_ENDPOINTS)
@pytest.mark.parametrize("index", [None, "IBOV"])
def test_other_endpoints_are_rejected_as_not_a_day_portfolio(relative, index, tmp_path):
    store, result = _import_one(tmp_path, relative, index=index)
    assert result.status == "rejected"
    assert "not a GetPortfolioDay response" in result.reason
    if relative.startswith("GetTheoricalPortfolio") or relative.startswith("GetStockIndex"):
        assert "not a day's portfolio" in result.reason
    assert store.dates() == []
    assert not (tmp_path / "lake").exists() or not any(p.is_file() for p in (tmp_path / "lake").rglob("*"))
