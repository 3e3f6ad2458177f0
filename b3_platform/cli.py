"""`python -m b3_platform` commands: import saved files, query the catalog, and the demo that builds
every layer."""

import argparse
import datetime as dt
import os
import sys
import time
import warnings
from pathlib import Path

from b3_platform.catalog.output import FORMATS
from b3_platform.catalog.results import LOCK_WAIT_SECONDS
from b3_platform.environment import DATA_DIR_VAR, DEFAULT_DATA_DIR

REPO = Path(__file__).resolve().parent.parent
DEMO_DATA = REPO / "demo_data"
QUERIES = REPO / "queries"
#: The example query the demo prints: the real NTCO3 → NATU3 swap of 2025-07-02 is in the samples.
DEMO_QUERY = QUERIES / "entries_exits.sql"
#: The day-portfolio samples; demo_data/ also keeps other endpoints' responses for the tests.
DEMO_FOLDERS = ("GetPortfolioDay", "csv")


def _instance():
    """The persistent instance when DAGSTER_HOME is set (runs then show in `dagster dev`)."""
    import dagster as dg

    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get(), True
    return dg.DagsterInstance.ephemeral(), False


def _report_imports(results, instance) -> None:
    """Tell Dagster that raw_portfolio partitions gained captures (UI, and automation later on)."""
    import dagster as dg

    for result in results:
        if result.status == "imported":
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key="raw_portfolio",
                    partition=result.day.isoformat(),
                    metadata={
                        "source": "import",
                        "index": result.index,
                        "file_name": str(result.path),
                        "capture_id": result.capture_id,
                        "rows": result.rows,
                    },
                )
            )


def _print_result(result) -> None:
    where = f"{result.index} {result.day}" if result.day else ""
    detail = f" ({result.reason})" if result.reason else ""
    print(f"  {result.status:<9} {result.path}  {where}{detail}", flush=True)


def _env(args) -> dict[str, str]:
    """The settings the command runs with: the process environment, with `--data-dir` (when given)
    as the local lake root. Handed to build_resources, never written into os.environ, so a flag of
    one call does not linger for later calls in the same process."""
    env = dict(os.environ)
    if args.data_dir:
        env[DATA_DIR_VAR] = args.data_dir
    return env


def _resources(args) -> dict:
    """The active environment's resources (`--data-dir` overrides the local lake root)."""
    from b3_platform.resources import build_resources

    return build_resources(_env(args))


def _status_counts(results) -> dict[str, int]:
    return {s: sum(r.status == s for r in results) for s in ("imported", "duplicate", "rejected")}


#: `import` exit codes (README, "Importing saved files"): 0 every file imported or a duplicate;
#: 1 a file was rejected (or none found); 2 the command could not start (a setting, the lake's
#: root, a malformed --index); 3 the lake failed while storing (disk full, read-only, S3 refused):
#: the import stopped there, and what was done before is kept and summed up.
EXIT_REJECTED, EXIT_CANNOT_START, EXIT_STORAGE_FAILED = 1, 2, 3


def _print_skipped(path: Path, why: str) -> None:
    print(f"  {'skipped':<9} {path}  ({why})", flush=True)


def _report_to_dagster(results) -> None:
    """Report the imported dates to Dagster when DAGSTER_HOME names its instance, and say so either
    way: without it the dates are only in raw, and no run follows until someone asks for one."""
    days = sorted({r.day for r in results if r.status == "imported"})
    if not days:
        return
    listed = ", ".join(map(str, days[:5])) + (f", … ({len(days) - 5} more)" if len(days) > 5 else "")
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        print(
            f"not reported to Dagster: DAGSTER_HOME is not set, so no run follows for {len(days)} "
            f"date(s) ({listed}). Materialize them: dg launch --assets 'raw_portfolio*' --partition "
            f"{days[0]} (one run per date), or set DAGSTER_HOME before the next import"
        )
        return
    instance, _ = _instance()
    _report_imports(results, instance)
    print(
        f"reported {len(days)} date(s) to Dagster (DAGSTER_HOME={home}) as raw_portfolio "
        f"materializations: {listed}; the layers below follow when the daemon runs (dg dev)"
    )


def cmd_import(args) -> int:
    from b3_platform.b3.indices import validate_index_code
    from b3_platform.importer import ImportStopped, import_paths

    if args.index is not None:
        try:
            validate_index_code(args.index)
        except ValueError as exc:
            print(f"error: --index {exc}; nothing imported", file=sys.stderr)
            return EXIT_CANNOT_START
    store = _resources(args)["lake"].raw()
    print(f"Importing into {store.storage.uri()}:")
    stopped = None
    skipped: list[Path] = []

    def on_skip(path: Path, why: str) -> None:
        skipped.append(path)
        _print_skipped(path, why)

    try:
        results = import_paths(store, args.paths, index=args.index, progress=_print_result, on_skip=on_skip)
    except ImportStopped as exc:
        results, stopped = exc.results, exc
    if not results and stopped is None:
        also = f" ({len(skipped)} other file(s) skipped, listed above)" if skipped else ""
        print(f"  no .json or .csv files found{also}", file=sys.stderr)
        return EXIT_REJECTED
    counts = _status_counts(results)
    summary = (
        f"{len(results)} file(s): {counts['imported']} imported, {counts['duplicate']} duplicate, "
        f"{counts['rejected']} rejected"
    )
    if skipped:
        summary += f"; {len(skipped)} skipped (not .json/.csv, or hidden)"
    if stopped is not None:
        summary += f"; stopped at {stopped.path}, {stopped.not_attempted} file(s) not attempted"
    print(summary)
    _report_to_dagster(results)
    if stopped is not None:
        print(
            f"error: stopped: {stopped}. Nothing of {stopped.path} was stored; the files above are "
            f"kept. Fix the lake ({store.storage.uri()}) and run the same import again: what is "
            "already stored comes back as duplicate.",
            file=sys.stderr,
        )
        return EXIT_STORAGE_FAILED
    return EXIT_REJECTED if counts["rejected"] else 0


def _catalog_for_query(args):
    """The catalog `query` reads. Locally that is the DuckDB file alone, read without importing
    Dagster (most of a second; `select 1` answers in a fraction of it); on AWS the resources."""
    from b3_platform.environment import LOCAL, environment_mode, local_catalog_file

    env = _env(args)
    if environment_mode(env) == LOCAL:
        from b3_platform.catalog.duckdb_reader import DuckDBCatalogReader

        return DuckDBCatalogReader(local_catalog_file(env))
    return _resources(args)["catalog"]


def cmd_query(args) -> int:
    from b3_platform.catalog.output import render
    from b3_platform.catalog.results import CatalogError, QueryError

    if args.file:
        try:
            sql = Path(args.file).read_text(encoding="utf-8")
        except OSError as exc:
            print(f"cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
        except UnicodeDecodeError as exc:
            print(f"cannot read {args.file}: not UTF-8 ({exc.reason} at byte {exc.start})", file=sys.stderr)
            return 2
    else:
        sql = args.sql
    if not sql.strip():
        print("no SQL given", file=sys.stderr)
        return 2
    catalog = _catalog_for_query(args)
    try:
        result = catalog.query(
            sql, wait_seconds=args.wait, on_wait=lambda notice: print(notice, file=sys.stderr, flush=True)
        )
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except QueryError as exc:
        print(f"query failed: {exc}", file=sys.stderr)
        return 1
    print(render(result, args.format))
    return 0


def cmd_coverage(args) -> int:
    """Per index, the trading days captured in raw and the ones missing."""
    from b3_platform import coverage, trading_calendar
    from b3_platform.catalog.base import QueryResult
    from b3_platform.catalog.output import render

    resources = _resources(args)
    storage = resources["lake"].storage()
    found = coverage.captured_days(storage)
    expected = [i for i in resources["b3"].capture_list() if not args.index or i in args.index]
    if args.index:
        found = {i: d for i, d in found.items() if i in args.index}
    if not found and not args.since:
        print(f"no captures in {storage.uri()}: import files or let the schedule capture", file=sys.stderr)
        return 1
    today = trading_calendar.today_sao_paulo()
    first = args.since or min(min(d) for d in found.values())
    last = args.until or today
    if first > last:
        print(f"--since {first} is after --until {last}", file=sys.stderr)
        return 2
    report = coverage.coverage(found, expected, first, last)
    if args.days:
        rows = [row[:3] for row in coverage.coverage_rows(report)]  # the catalog's table, less `expected`
        result = QueryResult(["index", "date", "status"], ["VARCHAR", "DATE", "VARCHAR"], rows)
    else:
        rows = [
            (
                c.index,
                c.expected,
                c.first,
                c.last,
                c.days,
                len(c.captured),
                len(c.missing),
                coverage.describe_ranges(c.missing),
            )
            for c in report
        ]
        result = QueryResult(
            ["index", "expected", "first", "last", "trading_days", "captured", "missing", "missing_days"],
            ["VARCHAR", "BOOLEAN", "DATE", "DATE", "INTEGER", "INTEGER", "INTEGER", "VARCHAR"],
            rows,
        )
    if args.format == "table":
        print(f"Coverage of {storage.uri()}, trading days {first}..{last} (expected: the capture list)")
    print(render(result, args.format))
    return 0


def _definitions(args):
    """The platform's definitions with this command's settings (`--data-dir` included). Built on
    every call, so a flag of one call holds for that call only."""
    from b3_platform.definitions import build_defs

    return build_defs(_env(args))


def _demo_import(store, samples: Path) -> list:
    """Step 1: file the bundled samples in raw (what is there already counts as a duplicate)."""
    from b3_platform.importer import import_paths

    print(f"1/4 Importing the bundled real B3 samples from {samples} into {store.storage.uri()}")
    results = import_paths(store, [samples / folder for folder in DEMO_FOLDERS])
    for r in results:
        if r.status == "rejected":
            _print_result(r)
    counts = _status_counts(results)
    print(
        f"    {counts['imported']} imported, {counts['duplicate']} already there, {counts['rejected']} rejected"
    )
    return results


def _demo_listings(defs, store, samples: Path, instance) -> list:
    """Step 1b: B3's GetStockIndex samples filed in raw under the day B3 says it updated them, and
    typed into index_members (which indices hold which stock), before the catalog is built."""
    import json

    from b3_platform.discovery import import_listing, listing_store
    from b3_platform.runs import materialize_days

    listings = listing_store(store)
    days = set()
    for path in sorted((samples / "GetStockIndex").glob("*.json")):
        day = dt.date.fromisoformat(json.loads(path.read_bytes())["header"]["update"])
        import_listing(listings, day, path)
        days.add(day)
    if not days:
        return []
    print(f"    GetStockIndex listing(s) of {', '.join(map(str, sorted(days)))} → index_members")
    return materialize_days(
        defs, days, instance=instance, selection=["raw_stock_index", "index_members"], quiet=True
    )


def _demo_materialize(defs, days, instance, persistent: bool) -> list:
    """Step 2: every layer for every date in raw, one single-run backfill per block of consecutive
    trading days, then the catalog."""
    from b3_platform.runs import archive_selection, materialize_days

    print(
        f"2/4 Materializing raw → bronze → silver → gold for {len(days)} trading days, then the catalog "
        f"({'DAGSTER_HOME=' + os.environ['DAGSTER_HOME'] if persistent else 'temporary instance'})"
    )
    return materialize_days(
        defs,
        days,
        instance=instance,
        selection=archive_selection(defs.resolve_asset_graph()),
        quiet=True,
        progress=lambda a, b: print(
            f"    run {a}" + (f"…{b}" if b != a else "")
            if a
            else "    run athena_tables (catalog), dashboard",
            flush=True,
        ),
    )


def _demo_summary(store, catalog, days, runs, failed, started: float) -> None:
    """Step 3: what the lake holds now (dates, indices, rows per table) and how the runs went."""
    from b3_platform.dashboard.site import PAGE_KEY
    from b3_platform.lake.schemas import TABLES
    from b3_platform.lake.tables import partition_dates, read_partition

    print("3/4 Summary")
    indices = sorted({ix for d in days for ix in store.indices_on(d)})
    print(f"    dates   : {len(days)} ({days[0]} … {days[-1]})")
    print(f"    indices : {', '.join(indices)}")
    raw_count = sum(len(store.captures(d)) for d in days)
    print(f"    raw     : {raw_count} captures")
    for name, table_def in TABLES.items():
        # index_members lives on the days of the GetStockIndex listings, not of the portfolios.
        table_days = partition_dates(store.storage, table_def) if name == "index_members" else days
        rows = sum(
            (t.num_rows if (t := read_partition(store.storage, table_def, d)) is not None else 0)
            for d in table_days
        )
        print(f"    {name:<19}: {rows} rows")
    print(f"    lake    : {store.storage.uri()}")
    print(f"    catalog : {catalog.location}")
    if store.storage.exists(PAGE_KEY):
        print(f"    dashboard: {store.storage.uri(PAGE_KEY)}  (python -m b3_platform dashboard --open)")
    print(
        f"    runs    : {len(runs)} ({len(runs) - 1} single-run backfills + the catalog), {len(failed)} failed; "
        f"{time.monotonic() - started:.1f} s"
    )


def _demo_query(catalog) -> None:
    """Step 4: the example query, through the catalog just built."""
    from b3_platform.catalog.output import as_table

    print(f"4/4 Example query ({DEMO_QUERY.relative_to(REPO)}): entries and exits of IBOV")
    print("    " + as_table(catalog.query(DEMO_QUERY.read_text(encoding="utf-8"))).replace("\n", "\n    "))
    print("    More: .venv/bin/python -m b3_platform query --file queries/<name>.sql  (or inline SQL)")


def _print_failures(failed) -> None:
    for r in failed:
        for message in r.failures:
            print(f"    FAILED: {message}", file=sys.stderr)


def cmd_demo(args) -> int:
    """Import the samples, build every layer for their dates, sum up, and run the example query."""
    started = time.monotonic()
    defs = _definitions(args)
    store = defs.resources["lake"].raw()
    catalog = defs.resources["catalog"]
    results = _demo_import(store, Path(args.samples))
    instance, persistent = _instance()
    _report_imports(results, instance)
    days = store.dates()
    runs = _demo_listings(defs, store, Path(args.samples), instance)
    runs += _demo_materialize(defs, days, instance, persistent)
    failed = [r for r in runs if not r.success]
    _demo_summary(store, catalog, days, runs, failed, started)
    if not failed:
        _demo_query(catalog)
    print('Open the UI:  export DAGSTER_HOME="$PWD" && .venv/bin/dg dev   (then http://127.0.0.1:3000)')
    if failed:
        _print_failures(failed)
        return 1
    return 0


def cmd_dashboard(args) -> int:
    """Build the dashboard from the active catalog into the lake, and open it when asked."""
    import webbrowser

    from b3_platform.catalog.base import CatalogError, QueryError
    from b3_platform.dashboard.site import build_site

    resources = _resources(args)
    try:
        built = build_site(resources["catalog"], resources["lake"].storage())
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except QueryError as exc:
        print(f"error: the catalog refused the dashboard's query: {exc}", file=sys.stderr)
        return 1
    if built.last_date:
        print(
            f"dashboard: {', '.join(built.indices)} over {built.dates} dates "
            f"({built.first_date} … {built.last_date}), {built.size:,} bytes"
        )
    else:
        print(
            "dashboard: the catalog holds no date yet (materialize gold, then athena_tables); the page says so"
        )
    print(f"written to {built.uri}")
    if args.open:
        if "://" in built.uri:
            print("not opened: the page is on S3; download it or serve it from the bucket", file=sys.stderr)
        else:
            webbrowser.open(Path(built.uri).as_uri())
    return 0


def cmd_instance_plain(args) -> int:
    """Rewrite the event log's compressed bodies as plain text, so that Dagster's own sqlite class
    reads the instance again once `event_log_storage` is removed from dagster.yaml."""
    from dagster._core.instance.ref import _event_logs_directory

    from b3_platform.sqlite_storage import PlainRewriteError, event_log_files, write_plain

    if args.folder:
        folder = Path(args.folder)
    elif os.environ.get("DAGSTER_HOME"):  # where the storage keeps them with no base_dir (Dagster's place)
        folder = Path(_event_logs_directory(os.environ["DAGSTER_HOME"]))
    else:
        print("error: set DAGSTER_HOME or name the event log's folder", file=sys.stderr)
        return 2
    files = event_log_files(folder)
    if not files:
        print(f"error: no event log database (*.db) in {folder}", file=sys.stderr)
        return 2
    total = 0
    for done, db_file in enumerate(files):
        try:
            total += write_plain(db_file)
        except PlainRewriteError as exc:
            print(f"error: {exc}", file=sys.stderr)
            print(
                f"{done} of {len(files)} files were rewritten before it; run again once fixed",
                file=sys.stderr,
            )
            return 1
    print(f"{folder}: {total} compressed rows rewritten as plain text in {len(files)} files")
    return 0


def main(argv: list[str] | None = None) -> int:
    # `backfill_policy` is marked beta in Dagster 1.13; the warning tells a CLI user nothing.
    warnings.filterwarnings("ignore", message=".*backfill_policy.*")
    # Partitioned check specs and `include_sources` are "preview"/"beta" in 1.13; we rely on them
    # knowingly (see the README), and the notice only adds noise to a terminal.
    warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec.*")
    warnings.filterwarnings("ignore", message=".*include_sources.*")
    parser = argparse.ArgumentParser(prog="python -m b3_platform", description=__doc__)
    parser.add_argument("--data-dir", help=f"lake root (default ${DATA_DIR_VAR} or ./{DEFAULT_DATA_DIR})")
    sub = parser.add_subparsers(dest="command", required=True)
    p_import = sub.add_parser("import", help="import saved B3 JSON responses and CSV downloads into raw")
    p_import.add_argument("paths", nargs="+", help="files or folders (searched recursively)")
    p_import.add_argument(
        "--index", type=str.upper, help="index of JSON files whose path does not name it (e.g. IBOV)"
    )
    p_import.set_defaults(func=cmd_import)
    p_query = sub.add_parser(
        "query",
        help="run SQL against the catalog (DuckDB tables of every lake table)",
        description="Run SQL against the active catalog: inline, or from a file such as queries/*.sql.",
    )
    source = p_query.add_mutually_exclusive_group(required=True)
    source.add_argument("sql", nargs="?", help="the SQL to run")
    source.add_argument("--file", "-f", help="a file holding the SQL")
    p_query.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    p_query.add_argument(
        "--wait",
        type=float,
        default=LOCK_WAIT_SECONDS,
        metavar="SECONDS",
        help=f"how long to wait while another process updates the local catalog (default: {LOCK_WAIT_SECONDS:g})",
    )
    p_query.set_defaults(func=cmd_query)
    p_coverage = sub.add_parser(
        "coverage",
        help="per index, which trading days are captured in raw and which are missing",
        description=(
            "Per index (the capture list, then any other index found in raw): trading days captured "
            "and missing between --since (default: the first capture) and --until (default: today)."
        ),
    )
    p_coverage.add_argument("--since", type=dt.date.fromisoformat, help="first date (YYYY-MM-DD)")
    p_coverage.add_argument("--until", type=dt.date.fromisoformat, help="last date (YYYY-MM-DD)")
    p_coverage.add_argument("--index", type=str.upper, action="append", help="only this index (repeatable)")
    p_coverage.add_argument("--days", action="store_true", help="one row per index and trading day")
    p_coverage.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default: table)"
    )
    p_coverage.set_defaults(func=cmd_coverage)
    p_demo = sub.add_parser("demo", help="import the bundled samples and build every layer")
    p_demo.add_argument("--samples", default=str(DEMO_DATA), help="folder of sample files to import")
    p_demo.set_defaults(func=cmd_demo)
    p_dashboard = sub.add_parser(
        "dashboard",
        help="build the index dashboard (one HTML page under the lake) from the catalog",
        description="Build dashboard/index.html under the lake from the active catalog's answers.",
    )
    p_dashboard.add_argument("--open", action="store_true", help="open the page in the default browser")
    p_dashboard.set_defaults(func=cmd_dashboard)
    p_plain = sub.add_parser(
        "instance-plain",
        help="rewrite the Dagster instance's compressed event log as plain text (before dropping its storage class)",
        description=(
            "The repo's dagster.yaml stores the event log compressed (b3_platform.sqlite_storage), which "
            "Dagster's own sqlite class cannot read. Stop dagster dev and the daemon, remove "
            "`event_log_storage` from dagster.yaml, then run this: each database file is rewritten "
            "whole or not at all."
        ),
    )
    p_plain.add_argument(
        "folder", nargs="?", help="the event log's folder (default: $DAGSTER_HOME/history/runs)"
    )
    p_plain.set_defaults(func=cmd_instance_plain)
    args = parser.parse_args(argv)
    from b3_platform.lake.storage import StorageError
    from b3_platform.settings_errors import ConfigError

    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:
        print(f"error: the lake cannot be reached: {exc}", file=sys.stderr)
        return 2
