"""What `python -m b3_platform import` tells its user beyond the per-file lines: the files a folder's
walk skipped, whether the imported dates reached Dagster, and a malformed `--index` refused once,
before any file. Each case is the real command in a subprocess, read from its real output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from b3_platform_tests.conftest import REPO

SAMPLE = REPO / "demo_data" / "GetPortfolioDay" / "IBOV"


def run_import(lake: Path, *args: str, dagster_home: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("B3_PLATFORM_", "DAGSTER_HOME"))}
    if dagster_home is not None:
        env["DAGSTER_HOME"] = str(dagster_home)
    return subprocess.run(
        [sys.executable, "-m", "b3_platform", "--data-dir", str(lake), "import", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def archive(tmp_path: Path) -> Path:
    """Two real portfolios among what an archive folder also holds."""
    src = tmp_path / "archive"
    (src / "IBOV" / ".git").mkdir(parents=True)
    for day in ("2025-07-07", "2025-07-08"):
        shutil.copy(SAMPLE / f"{day}.json", src / "IBOV" / f"{day}.json")
    (src / "IBOV" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (src / "README.pdf").write_bytes(b"%PDF-1.4")
    (src / "IBOV" / "notes").write_text("no extension")
    (src / ".DS_Store").write_bytes(b"\0")
    return src


def test_a_folder_import_names_what_it_skipped_and_says_dagster_was_not_told(tmp_path):
    src = archive(tmp_path)
    ran = run_import(tmp_path / "lake", str(src))

    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    skipped = [line.split() for line in lines if line.lstrip().startswith("skipped")]
    assert sorted(skipped) == sorted(
        [
            ["skipped", str(src / ".DS_Store"), "(hidden", "file)"],
            ["skipped", str(src / "README.pdf"), "(not", "a", ".json", "or", ".csv", "file", "(.pdf))"],
            ["skipped", str(src / "IBOV" / ".git"), "(hidden", "folder,", "not", "searched)"],
            [
                "skipped",
                str(src / "IBOV" / "notes"),
                "(not",
                "a",
                ".json",
                "or",
                ".csv",
                "file",
                "(no",
                "extension))",
            ],
        ]
    )
    assert "2 file(s): 2 imported, 0 duplicate, 0 rejected; 4 skipped (not .json/.csv, or hidden)" in lines
    assert lines[-1] == (
        "not reported to Dagster: DAGSTER_HOME is not set, so no run follows for 2 date(s) "
        "(2025-07-07, 2025-07-08). Materialize them: dg launch --assets 'raw_portfolio*' --partition "
        "2025-07-07 (one run per date), or set DAGSTER_HOME before the next import"
    )


def test_with_dagster_home_the_imported_dates_are_reported_and_it_says_so(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("")
    src = archive(tmp_path)

    ran = run_import(tmp_path / "lake", str(src), dagster_home=home)

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[-1] == (
        f"reported 2 date(s) to Dagster (DAGSTER_HOME={home}) as raw_portfolio materializations: "
        "2025-07-07, 2025-07-08; the layers below follow when the daemon runs (dg dev)"
    )
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(dg.AssetKey("raw_portfolio"), limit=10).records
    assert sorted(r.partition_key for r in records) == ["2025-07-07", "2025-07-08"]

    # The same files again are duplicates: nothing new to report, and no line claims otherwise.
    again = run_import(tmp_path / "lake", str(src), dagster_home=home)
    assert again.returncode == 0, again.stderr
    assert "2 file(s): 0 imported, 2 duplicate, 0 rejected" in again.stdout
    assert "Dagster" not in again.stdout


def test_a_malformed_index_is_refused_once_before_any_file(tmp_path):
    src = archive(tmp_path)
    lake = tmp_path / "lake"

    ran = run_import(lake, str(src), str(SAMPLE / "2025-07-10.json"), "--index", "FOO")

    assert (ran.returncode, ran.stdout) == (2, "")
    assert ran.stderr == (
        "error: --index 'FOO' is not a B3 index code (four upper-case letters/digits, e.g. IBOV); "
        "nothing imported\n"
    )
    assert not lake.exists()


def test_a_folder_with_nothing_to_import_says_what_it_skipped(tmp_path):
    src = tmp_path / "docs"
    src.mkdir()
    (src / "readme.txt").write_text("hello")

    ran = run_import(tmp_path / "lake", str(src))

    assert ran.returncode == 1
    assert ran.stdout.splitlines()[1:] == [
        f"  skipped   {src / 'readme.txt'}  (not a .json or .csv file (.txt))"
    ]
    assert ran.stderr == "  no .json or .csv files found (1 other file(s) skipped, listed above)\n"
