"""The B3 API code, the lake and the pure layers import and run without Dagster."""

import subprocess
import sys

DAGSTER_FREE = [
    "b3_platform.b3.client",
    "b3_platform.b3.contract",
    "b3_platform.b3.csv_reader",
    "b3_platform.b3.parse",
    "b3_platform.b3.indices",
    "b3_platform.trading_calendar",
    "b3_platform.lake.paths",
    "b3_platform.lake.storage",
    "b3_platform.lake.raw_store",
    "b3_platform.lake.tables",
    "b3_platform.lake.schemas",
    "b3_platform.transforms.bronze",
    "b3_platform.transforms.silver",
    "b3_platform.transforms.gold",
    "b3_platform.quality",
    "b3_platform.importer",
    "b3_platform.audit",
    "b3_platform.b3.stock_index",
    "b3_platform.discovery",
    "b3_platform.transforms.index_members",
    "b3_platform.live_capture",
    "b3_platform.environment",
    "b3_platform.catalog.results",
    "b3_platform.catalog.duckdb_reader",
    "b3_platform.catalog.output",
    "b3_platform.cli",
]


def test_core_modules_import_without_dagster():
    code = (
        "import sys\n"
        "sys.modules['dagster'] = None  # any 'import dagster' now raises ImportError\n"
        f"for name in {DAGSTER_FREE!r}:\n"
        "    __import__(name)\n"
        "assert not any(m.startswith('dagster') and sys.modules[m] is not None for m in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
