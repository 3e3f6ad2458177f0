"""The `import` command: in-process through `cli.main` and once as a real `python -m b3_platform`.

Bad inputs are built in tmp_path from the samples' bytes; the samples are never modified."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from b3_platform import cli
from b3_platform.lake.paths import RAW_PENDING_DIR, raw_inventory_prefix
from b3_platform.lake.raw_store import RawStore
from b3_platform.lake.storage import LocalStorage
from b3_platform_tests.replay import SAMPLES

JSON_0708 = SAMPLES / "GetPortfolioDay/IBOV/2025-07-08.json"
JSON_0710 = SAMPLES / "GetPortfolioDay/IBOV/2025-07-10.json"
CSV_0710 = SAMPLES / "csv/IBOV_2025-07-10.csv"
CSV_0711 = SAMPLES / "csv/IBOV_2025-07-11.csv"
STEM = re.compile(r"^(\d{8}T\d{12}Z)-([0-9a-f]{64})$")


@pytest.fixture
def lake(tmp_path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def src(tmp_path) -> Path:
    """A folder for the files to import (never inside the lake)."""
    folder = tmp_path / "in"
    folder.mkdir()
    return folder


@pytest.fixture
def run_import(lake, capsys):
    """`python -m b3_platform --data-dir LAKE import ARGS…` in-process → (exit code, stdout)."""

    def run(*args: str | Path) -> tuple[int, str]:
        code = cli.main(["--data-dir", str(lake), "import", *map(str, args)])
        out = capsys.readouterr().out
        return code, out

    return run


def lake_files(lake: Path) -> list[Path]:
    return sorted(p for p in lake.rglob("*") if p.is_file()) if lake.exists() else []


def pending_markers(lake: Path) -> list[Path]:
    """The raw inventory's markers (lake.raw_inventory): one per capture stored since the catalog
    last refreshed, the one file an import writes outside raw."""
    return [p for p in lake_files(lake) if p.parent == lake / raw_inventory_prefix() / RAW_PENDING_DIR]


def store_of(lake: Path) -> RawStore:
    return RawStore(LocalStorage(lake))


def status_line(out: str, path: Path) -> str:
    """The report line for one file."""
    lines = [line for line in out.splitlines() if f" {path}  " in line or line.endswith(f" {path}")]
    assert len(lines) == 1, out
    return lines[0]


def copy(source: Path, target: Path, data: bytes | None = None) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes() if data is None else data)
    return target


def replaced(source: Path, old: bytes, new: bytes) -> bytes:
    body = source.read_bytes()
    assert body.count(old) == 1, old
    return body.replace(old, new)


# ---------------------------------------------------------------------------------------------
# A good file, then the same file again


def test_good_json_is_filed_under_its_header_date(run_import, lake):
    code, out = run_import(JSON_0708)
    assert code == 0
    assert f"Importing into {lake}" in out
    assert "imported" in status_line(out, JSON_0708) and "IBOV 2025-07-08" in status_line(out, JSON_0708)
    assert "1 file(s): 1 imported, 0 duplicate, 0 rejected" in out

    folder = lake / "raw/GetPortfolioDay/date=2025-07-08/index=IBOV"
    [marker] = pending_markers(lake)
    files = [f for f in lake_files(lake) if f != marker]
    assert {f.parent for f in files} == {folder}
    assert len(files) == 2
    body_file = next(f for f in files if not f.name.endswith(".meta.json"))
    meta_file = next(f for f in files if f.name.endswith(".meta.json"))
    stem = body_file.name[: -len(".json")]
    assert meta_file.name == f"{stem}.meta.json"
    match = STEM.match(stem)
    assert match, stem
    sha = hashlib.sha256(JSON_0708.read_bytes()).hexdigest()
    assert match.group(2) == sha
    fetched_at = dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S%fZ").replace(tzinfo=dt.timezone.utc)
    assert abs(dt.datetime.now(dt.timezone.utc) - fetched_at) < dt.timedelta(minutes=5)
    assert body_file.read_bytes() == JSON_0708.read_bytes()
    # The marker names the date, the index and the capture (written before its body, at `<ms>`).
    assert marker.name.startswith("2025-07-08_IBOV_"), marker.name
    written_ms, _, marked_stem = marker.name[len("2025-07-08_IBOV_") :].partition("-")
    assert written_ms.isdigit() and marked_stem == stem, marker.name
    assert marker.read_bytes() == b""

    meta = json.loads(meta_file.read_text("utf-8"))
    assert meta["source"] == "import"
    assert meta["file_name"] == str(JSON_0708)
    assert (meta["index"], meta["date"], meta["format"], meta["sha256"]) == (
        "IBOV",
        "2025-07-08",
        "json",
        sha,
    )
    assert meta["header_date"] == "08/07/25" and meta["language"] == "pt-br"
    assert meta["pages"] == [
        {
            "key": f"raw/GetPortfolioDay/date=2025-07-08/index=IBOV/{stem}.json",
            "sha256": sha,
            "bytes": len(JSON_0708.read_bytes()),
        }
    ]


def test_good_csv_is_filed_with_its_csv_bytes(run_import, lake):
    code, out = run_import(CSV_0710)
    assert code == 0
    assert "imported" in status_line(out, CSV_0710) and "IBOV 2025-07-10" in status_line(out, CSV_0710)
    (capture,) = store_of(lake).captures(dt.date(2025, 7, 10), "IBOV")
    assert capture.source_format == "csv"
    assert capture.body_keys[0].endswith(".csv")
    assert capture.meta["source"] == "import" and capture.meta["file_name"] == str(CSV_0710)
    assert store_of(lake).read_bodies(capture) == [CSV_0710.read_bytes()]


def test_same_file_again_is_a_duplicate(run_import, lake):
    assert run_import(JSON_0708)[0] == 0
    before = lake_files(lake)
    code, out = run_import(JSON_0708)
    assert code == 0
    line = status_line(out, JSON_0708)
    assert line.split()[0] == "duplicate"
    (capture,) = store_of(lake).captures(dt.date(2025, 7, 8))
    assert f"identical to capture {capture.capture_id}" in line
    assert "1 file(s): 0 imported, 1 duplicate, 0 rejected" in out
    assert lake_files(lake) == before


def test_same_bytes_under_another_name_are_a_duplicate(run_import, lake, src):
    assert run_import(JSON_0708)[0] == 0
    other = copy(JSON_0708, src / "IBOV" / "saved-2025-07-08.json")
    code, out = run_import(other)
    assert code == 0 and status_line(out, other).split()[0] == "duplicate"
    assert len(store_of(lake).captures(dt.date(2025, 7, 8), "IBOV")) == 1


# ---------------------------------------------------------------------------------------------
# Rejections: nothing is written


def assert_rejected(code: int, out: str, path: Path, lake: Path, *fragments: str) -> str:
    assert code == 1
    line = status_line(out, path)
    assert line.split()[0] == "rejected"
    for fragment in fragments:
        assert fragment in line, line
    assert "0 imported" in out and "1 rejected" in out
    assert lake_files(lake) == []
    return line


def test_truncated_json_is_rejected(run_import, lake, src):
    body = JSON_0708.read_bytes()
    bad = copy(JSON_0708, src / "IBOV" / "2025-07-08.json", body[: len(body) // 2])
    code, out = run_import(bad)
    assert_rejected(code, out, bad, lake, "invalid or truncated JSON")


def test_csv_with_a_bad_number_is_rejected(run_import, lake, src):
    bad = copy(CSV_0710, src / "IBOV_2025-07-10.csv", replaced(CSV_0710, b";476.976.044;", b";4x6.976.044;"))
    code, out = run_import(bad)
    assert_rejected(code, out, bad, lake, "'4x6.976.044'", "theoricalQty", "ALOS3", "IBOV 2025-07-10")


def test_json_with_a_bad_weight_is_rejected(run_import, lake, src):
    bad = copy(
        JSON_0710,
        src / "IBOV" / "2025-07-10.json",
        replaced(
            JSON_0710,
            b'"ALOS3",\n      "asset": "ALLOS",\n      "type": "ON      NM",\n      "part": "0,493"',
            b'"ALOS3",\n      "asset": "ALLOS",\n      "type": "ON      NM",\n      "part": "0.493"',
        ),
    )
    code, out = run_import(bad)
    assert_rejected(code, out, bad, lake, "'part'", "'0.493'", "ALOS3")


def test_json_name_lying_about_its_date_is_rejected(run_import, lake, src):
    liar = copy(JSON_0708, src / "IBOV" / "2025-07-09.json")
    code, out = run_import(liar)
    assert_rejected(
        code, out, liar, lake, "file name says 2025-07-09 but the portfolio's header date is 2025-07-08"
    )


def test_csv_name_lying_about_its_date_is_rejected(run_import, lake, src):
    liar = copy(CSV_0710, src / "IBOVDia_09-07-25.csv")
    code, out = run_import(liar)
    assert_rejected(
        code, out, liar, lake, "file name says 2025-07-09 but the portfolio's header date is 2025-07-10"
    )


def test_csv_name_lying_about_its_index_is_rejected(run_import, lake, src):
    liar = copy(CSV_0710, src / "IBXXDia_10-07-25.csv")
    code, out = run_import(liar)
    assert_rejected(code, out, liar, lake, "file name says IBXX but the CSV title names IBOV")


def test_json_without_index_needs_index_option(run_import, lake, src):
    loose = copy(JSON_0710, src / "2025-07-10.json")
    code, out = run_import(loose)
    assert_rejected(code, out, loose, lake, "--index", "folder named for it")

    code, out = run_import(loose, "--index", "IBOV")
    assert code == 0
    assert status_line(out, loose).split()[0] == "imported"
    (capture,) = store_of(lake).captures(dt.date(2025, 7, 10))
    assert capture.index == "IBOV"


def test_index_option_is_upper_cased_and_validated(run_import, lake, src):
    loose = copy(JSON_0710, src / "2025-07-10.json")
    code, out = run_import(loose, "--index", "ibov")
    assert code == 0 and store_of(lake).indices_on(dt.date(2025, 7, 10)) == {"IBOV"}
    shutil.rmtree(lake)
    code, out = run_import(loose, "--index", "IBOVESPA")
    # Refused once, before any file (exit 2: it could not start); nothing read or stored.
    assert (code, out) == (2, "") and not lake.exists()


def test_csv_title_index_differing_from_index_option_is_rejected(run_import, lake):
    code, out = run_import(CSV_0710, "--index", "IBXX")
    assert_rejected(code, out, CSV_0710, lake, "the CSV title names IBOV, not --index IBXX")


def test_csv_title_index_equal_to_index_option_imports(run_import, lake):
    code, out = run_import(CSV_0710, "--index", "IBOV")
    assert code == 0 and status_line(out, CSV_0710).split()[0] == "imported"


@pytest.mark.parametrize(
    ("day", "pt_br"),
    [
        (dt.date(2025, 7, 12), b"12/07/25"),  # Saturday
        (dt.date(2025, 4, 21), b"21/04/25"),
    ],  # Monday, Tiradentes: B3 closed
)
def test_portfolio_dated_on_a_closed_day_is_rejected(run_import, lake, src, day, pt_br):
    body = replaced(JSON_0710, b'"date": "10/07/25"', b'"date": "' + pt_br + b'"')
    named = copy(JSON_0710, src / "IBOV" / f"{day.isoformat()}.json", body)
    code, out = run_import(named)
    assert_rejected(code, out, named, lake, f"header date {day} is not a B3 trading day")


def test_portfolio_dated_in_the_future_is_rejected(run_import, lake, src, today):
    today(dt.date(2025, 7, 9))
    code, out = run_import(JSON_0710)
    assert_rejected(code, out, JSON_0710, lake, "header date 2025-07-10 is in the future")


def test_missing_file_and_wrong_suffix_are_rejected(run_import, lake, src):
    missing = src / "IBOV" / "2025-07-08.json"
    code, out = run_import(missing)
    assert_rejected(code, out, missing, lake, "no such file")
    text = copy(JSON_0708, src / "IBOV" / "2025-07-08.txt")
    code, out = run_import(text)
    assert_rejected(code, out, text, lake, "not a .json or .csv file (.txt)")


def test_empty_folder_reports_no_files(run_import, lake, src, capsys):
    (src / "notes.txt").write_text("not a portfolio")
    code = cli.main(["--data-dir", str(lake), "import", str(src)])
    captured = capsys.readouterr()
    assert code == 1
    assert "no .json or .csv files found" in captured.err
    assert lake_files(lake) == []


# ---------------------------------------------------------------------------------------------
# Folders


def test_mixed_folder_reports_each_file(run_import, lake, src):
    assert run_import(SAMPLES / "GetPortfolioDay/IBOV/2025-07-07.json")[0] == 0
    good_json = copy(JSON_0708, src / "IBOV" / "2025-07-08.json")
    dup_json = copy(SAMPLES / "GetPortfolioDay/IBOV/2025-07-07.json", src / "IBOV" / "2025-07-07.json")
    body = (SAMPLES / "GetPortfolioDay/IBOV/2025-07-04.json").read_bytes()
    corrupt = copy(JSON_0708, src / "IBOV" / "2025-07-04.json", body[:-40])
    good_csv = copy(CSV_0711, src / "IBOVDia_11-07-25.csv")
    ignored = src / "IBOV" / "notes.txt"
    ignored.write_text("a .txt in a folder is not an import candidate")
    hidden = copy(JSON_0710, src / ".cache" / "IBOV" / "2025-07-10.json")

    code, out = run_import(src)
    assert code == 1
    assert status_line(out, good_json).split()[0] == "imported"
    assert status_line(out, good_csv).split()[0] == "imported"
    assert status_line(out, dup_json).split()[0] == "duplicate"
    corrupt_line = status_line(out, corrupt)
    assert corrupt_line.split()[0] == "rejected" and "invalid or truncated JSON" in corrupt_line
    # Not imported, but named: the .txt and the hidden folder (not searched, so not its file).
    assert status_line(out, ignored).split()[0] == "skipped" and "(not a .json or .csv file (.txt))" in out
    assert status_line(out, hidden.parents[1]).split()[0] == "skipped" and str(hidden) not in out
    assert "4 file(s): 2 imported, 1 duplicate, 1 rejected; 2 skipped (not .json/.csv, or hidden)" in out

    store = store_of(lake)
    assert store.dates() == [dt.date(2025, 7, 7), dt.date(2025, 7, 8), dt.date(2025, 7, 11)]
    for day in store.dates():
        assert len(store.captures(day, "IBOV")) == 1
    assert store.captures(dt.date(2025, 7, 4)) == []
    assert store.captures(dt.date(2025, 7, 10)) == []


def test_reimporting_the_demo_folder_is_all_duplicates(run_import, lake):
    folder = SAMPLES / "GetPortfolioDay"
    count = len(list(folder.rglob("*.json")))
    code, out = run_import(folder)
    assert code == 0
    assert f"{count} file(s): {count} imported, 0 duplicate, 0 rejected" in out
    before = lake_files(lake)
    assert len(pending_markers(lake)) == count  # the inventory's marker of each capture
    assert len(before) == 3 * count  # and a body and a sidecar each

    code, out = run_import(folder)
    assert code == 0
    assert f"{count} file(s): 0 imported, {count} duplicate, 0 rejected" in out
    report = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert report == ["duplicate"] * count
    assert lake_files(lake) == before


def test_an_import_never_lists_the_pending_markers_it_piles_up(run_import, lake, monkeypatch):
    """Raw's pending markers share one flat folder until a catalog refresh settles them: an import
    of years of files piles up tens of thousands. A write that swept that folder for stale temp
    files first (as write_bytes does) would cost each file more than the one before it. The
    markers are still there, empty, one per capture, and the inventory still finds every capture."""
    from b3_platform.lake.raw_inventory import inventory
    from b3_platform.lake.storage import LocalStorage as Local

    assert run_import(CSV_0711)[0] == 0
    store = store_of(lake)
    inventory(store.storage, store.method, update=True)  # a state: later captures are found by marker
    assert pending_markers(lake) == []
    pending_folder = (lake / raw_inventory_prefix() / RAW_PENDING_DIR).resolve()
    swept: list[Path] = []
    sweep = Local.remove_stale_temp_files

    def recorded_sweep(self, folder):
        swept.append(Path(folder))
        return sweep(self, folder)

    monkeypatch.setattr(Local, "remove_stale_temp_files", recorded_sweep)
    folder = SAMPLES / "GetPortfolioDay"
    count = len(list(folder.rglob("*.json")))
    code, out = run_import(folder)
    assert code == 0 and f"{count} imported" in out
    assert swept and pending_folder not in {p.resolve() for p in swept}  # raw's date folders still are
    markers = pending_markers(lake)
    assert len(markers) == count and all(m.stat().st_size == 0 for m in markers)
    found = inventory(store.storage, store.method, update=True).counts
    assert sum(n for by_index in found.values() for n in by_index.values()) == count + 1
    assert pending_markers(lake) == []  # settled


# ---------------------------------------------------------------------------------------------
# A real process


def test_import_as_a_real_process(tmp_path, lake, src):
    bad = copy(CSV_0710, src / "IBOV_2025-07-10.csv", replaced(CSV_0710, b";476.976.044;", b";4x6.976.044;"))
    good = copy(JSON_0708, src / "IBOV" / "2025-07-08.json")
    proc = subprocess.run(
        [sys.executable, "-m", "b3_platform", "--data-dir", str(lake), "import", str(good), str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr
    assert f"Importing into {lake}" in proc.stdout
    assert status_line(proc.stdout, good).split()[0] == "imported"
    bad_line = status_line(proc.stdout, bad)
    assert bad_line.split()[0] == "rejected" and "'4x6.976.044'" in bad_line
    assert "2 file(s): 1 imported, 0 duplicate, 1 rejected" in proc.stdout
    assert store_of(lake).dates() == [dt.date(2025, 7, 8)]
    assert not (tmp_path / "data").exists()  # nothing went to the default ./data


def test_import_reports_raw_materializations_to_the_dagster_instance(run_import, lake, tmp_path, monkeypatch):
    import dagster as dg

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(Path(__file__).resolve().parent.parent / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    code, _ = run_import(
        str(SAMPLES / "GetPortfolioDay" / "IBOV" / "2025-07-08.json"),
        str(SAMPLES / "csv" / "IBOV_2025-07-10.csv"),
    )
    assert code == 0
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(dg.AssetKey("raw_portfolio"), limit=10).records
        partitions = sorted(r.partition_key for r in records)
        assert partitions == ["2025-07-08", "2025-07-10"]
        meta = {r.partition_key: r.asset_materialization.metadata for r in records}
        assert meta["2025-07-10"]["source"].value == "import"
        assert meta["2025-07-10"]["index"].value == "IBOV"
    # A duplicate import reports nothing new.
    code, _ = run_import(str(SAMPLES / "GetPortfolioDay" / "IBOV" / "2025-07-08.json"))
    with dg.DagsterInstance.get() as instance:
        assert len(instance.fetch_materializations(dg.AssetKey("raw_portfolio"), limit=10).records) == 2
