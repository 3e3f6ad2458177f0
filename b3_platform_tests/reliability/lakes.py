"""Lakes for the reliability tests: the real IBOV samples re-dated onto consecutive B3 trading days
(only `header.date` rewritten), imported and built in-process, and the `dagster` CLI to run on them.

Two versions of the same dates make a half-replaced date visible as such: v1 holds IBOV only; v2
adds the same portfolios filed as IBXX, so every gold table of v2 has other rows than v1's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from b3_platform.assets import ALL_ASSETS
from b3_platform.catalog.duckdb_catalog import DuckDBCatalogResource
from b3_platform.importer import import_paths
from b3_platform.lake.schemas import CATALOG_TABLES, GOLD_TABLES, TableDef
from b3_platform.lake.storage import LocalStorage
from b3_platform.resources import B3ApiResource, LakeResource, lake_resources
from b3_platform.runs import range_tags
from b3_platform.trading_calendar import START_DATE, trading_days_between
from b3_platform_tests.conftest import REPO, UNREACHABLE_B3_URL, duckdb_catalog
from b3_platform_tests.replay import sample_bytes, with_header_date

SAMPLES = sorted((REPO / "demo_data" / "GetPortfolioDay" / "IBOV").glob("2025-*.json"))
DAGSTER = str(Path(sys.executable).with_name("dagster"))
SILVER_STEP = ["bronze_portfolio", "silver_header", "silver_assets"]
GOLD = [t.name for t in GOLD_TABLES]
NEVER_CALLED_B3 = B3ApiResource(base_url=UNREACHABLE_B3_URL, indices=["IBOV"])


def trading_days(n: int, last: dt.date = dt.date(2025, 7, 11)) -> list[dt.date]:
    return trading_days_between(START_DATE, last)[-n:]


def redated_archive(folder: Path, days: list[dt.date], indices: tuple[str, ...]) -> Path:
    """`folder/<INDEX>/<date>.json`: day i is sample i mod 8 with its header date rewritten."""
    for index in indices:
        (folder / index).mkdir(parents=True, exist_ok=True)
        for i, day in enumerate(days):
            body = sample_bytes(f"GetPortfolioDay/IBOV/{SAMPLES[i % len(SAMPLES)].name}")
            (folder / index / f"{day}.json").write_bytes(with_header_date(body, day.strftime("%d/%m/%y")))
    return folder


def import_archive(lake: LakeResource, folder: Path) -> None:
    results = import_paths(lake.raw(), [folder])
    assert results and {r.status for r in results} == {"imported"}, [r.reason for r in results]


def resources(lake: LakeResource, catalog=None) -> dict:
    return {**lake_resources(lake), "catalog": catalog, "b3": NEVER_CALLED_B3}


def build(lake: LakeResource, days: list[dt.date], selection: list[str]) -> dg.ExecuteInProcessResult:
    """One single run of `selection` over days[0]..days[-1], in-process."""
    return dg.materialize(
        ALL_ASSETS,
        selection=selection,
        resources=resources(lake, duckdb_catalog(lake.root)),
        instance=dg.DagsterInstance.ephemeral(),
        tags=range_tags(days[0], days[-1]),
        raise_on_error=False,
    )


def local_lake(root: Path) -> LakeResource:
    return LakeResource(root=str(root))


def copy_lake(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def sync_catalog(root: Path) -> DuckDBCatalogResource:
    catalog = duckdb_catalog(root)
    catalog.sync(LocalStorage(root), list(CATALOG_TABLES.values()))
    return catalog


def file_of(root: Path, table_def: TableDef, day: dt.date) -> Path:
    return root / table_def.location / f"date={day}" / "data.parquet"


def gold_files(root: Path) -> dict[str, bytes]:
    """Every file under gold/ (tables and manifests), by relative path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted((root / "gold").rglob("*"))
        if p.is_file()
    }


def dagster_home(base: Path) -> Path:
    home = base / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return home


def cli_env(home: Path, lake: Path, **extra: str) -> dict[str, str]:
    """The environment of a `dagster`/`python -m b3_platform` subprocess on `lake`: none of the
    caller's DAGSTER_/B3_PLATFORM_ variables, B3 unreachable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "B3_PLATFORM_"))}
    env.update(DAGSTER_HOME=str(home), B3_PLATFORM_DATA_DIR=str(lake), B3_PLATFORM_B3_URL=UNREACHABLE_B3_URL)
    env.update(extra)
    return env


def materialize_args(selection: list[str], first: dt.date, last: dt.date | None = None) -> list[str]:
    """`dagster asset materialize` of `selection` for one date, or the range first..last (one run)."""
    partition = ["--partition", str(first)] if last is None else ["--partition-range", f"{first}...{last}"]
    return [
        DAGSTER,
        "asset",
        "materialize",
        "-m",
        "b3_platform.definitions",
        "--select",
        ",".join(selection),
        *partition,
    ]


def run_cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def small_tmpfs(mount: Path, size: str = "2m"):
    """A tmpfs of `size` mounted at `mount` (a disk that fills up for real), unmounted afterwards."""
    if os.geteuid() != 0:
        import pytest

        pytest.skip("mounting a tmpfs needs root")
    mount.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(folder: Path, name: str = "filler") -> Path:
    """Write `folder/name` until the disk is full (ENOSPC)."""
    path = folder / name
    with open(path, "wb", buffering=0) as fh:  # unbuffered: nothing left to flush on close
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC
    return path
