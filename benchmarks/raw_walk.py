"""What the catalog refresh's two looks at raw cost as history grows, against a baseline checkout:
coverage (`write_coverage`, and within it `captured_days`) and raw_captures' counts
(`duckdb_catalog._sidecar_counts`), side by side, CPU and wall, medians over `--rounds`.

The lake: raw only, `--dates` dates x the source's indices, made by hard-linking the date folders of
an existing raw (`--source`, e.g. one `memory_profile.py --keep-lake` or `moonshot.py` built) onto
that many consecutive B3 trading days, cycling through the source's dates (neither step reads a
capture's bytes, only the folders' and files' names). Each round, each checkout gets its own
hard-linked copy of it (new folders only, no file ever written in place) and one child process
measures three refreshes in a row:

- `first`:  the first refresh of the lake (the new code: no state yet, so a full walk + its state);
- `daily`:  after one new date's capture of every index (through RawStore, as the schedule does);
- `idle`:   a refresh with nothing new.

The children print their answers (coverage's captured days and the counts); the run stops if the
checkouts disagree. `--s3` measures the same three refreshes on an in-process moto S3 (one round,
250 dates is plenty): the S3 requests each makes, by operation (exact, repeatable).

    .venv/bin/python benchmarks/raw_walk.py --source /path/lake/raw/GetPortfolioDay --dates 250,1250 \
        --baseline ../base --rounds 5
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAGES = ("first", "daily", "idle")
PARTS = ("coverage", "captured_days", "raw_counts")


def make_raw(source: Path, dates: int, into: Path) -> tuple[list[str], str]:
    """`into/raw/GetPortfolioDay/date=D/...` for `dates` trading days ending on the source's last
    date, each a hard-linked copy of a source date folder; returns the index codes and the next
    trading day (the daily refresh's new date)."""
    sys.path.insert(0, str(REPO))
    from b3_platform import trading_calendar

    folders = sorted(p for p in source.iterdir() if p.name.startswith("date="))
    last = max(dt_from(p.name) for p in folders)
    days = [last]
    while len(days) < dates:
        days.append(trading_calendar.previous_trading_day(days[-1]))
    target = into / "raw" / "GetPortfolioDay"
    target.mkdir(parents=True)
    for n, day in enumerate(sorted(days)):
        src = folders[n % len(folders)]
        dst = target / f"date={day.isoformat()}"
        for index_dir in src.iterdir():
            (dst / index_dir.name).mkdir(parents=True)
            for f in index_dir.iterdir():
                os.link(f, dst / index_dir.name / f.name)
    indices = sorted({p.name.split("=", 1)[1] for f in folders for p in f.iterdir()})
    return indices, trading_calendar.next_trading_day(last).isoformat()


def dt_from(name: str):
    import datetime as dt

    return dt.date.fromisoformat(name.split("=", 1)[1])


def _child(checkout: str, lake: str, indices: list[str], day: str, s3: bool) -> None:
    """Three refreshes of `lake` with `checkout`'s code; prints one JSON line."""
    sys.path.insert(0, checkout)
    import datetime as dt

    from b3_platform import coverage
    from b3_platform.catalog import duckdb_catalog
    from b3_platform.lake.raw_store import RawStore
    from b3_platform.lake.schemas import RAW_CAPTURES
    from b3_platform.lake.storage import LocalStorage

    if not coverage.__file__.startswith(str(Path(checkout).resolve())):
        raise SystemExit(f"imported {coverage.__file__}, not {checkout}'s")
    requests: Counter = Counter()
    if s3:
        storage, mock = _s3_lake(lake, requests)
    else:
        storage = LocalStorage(lake)
    spent: dict[str, list[float]] = {}

    def timed(part, fn):
        def wrapper(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[part] = [time.perf_counter() - wall, time.process_time() - cpu]

        return wrapper

    coverage.captured_days = timed("captured_days", coverage.captured_days)
    # A checkout whose catalog refresh reads raw's inventory once and hands it to coverage and to
    # raw_captures' counts (`sync(..., raw=)`): `coverage` is that read plus the table's write, and
    # `raw_counts` the counts from it; its coverage no longer builds `captured_days` (no figure).
    reads_raw_once = "raw" in inspect.signature(duckdb_catalog._sidecar_counts).parameters

    def refresh_coverage(storage, indices, day):
        from b3_platform.lake.raw_inventory import inventory

        # A checkout whose inventory reads only the years its markers name, as its refresh does.
        whole = {"whole": False} if "whole" in inspect.signature(inventory).parameters else {}
        raw = inventory(storage, update=True, **whole)
        coverage.write_coverage(storage, indices, day, raw=raw)
        return raw

    new_day = dt.date.fromisoformat(day)
    # What the first call would otherwise pay in both checkouts: the calendar's and Parquet's loading.
    from b3_platform import trading_calendar
    from b3_platform.lake.tables import to_parquet_bytes

    trading_calendar.trading_days_between(new_day, new_day)
    import pyarrow as pa

    to_parquet_bytes(pa.table({"a": [1]}))
    result: dict = {}
    for stage in STAGES:
        requests.clear()
        if stage == "daily":
            store = RawStore(storage)
            for index in indices:
                store.store(
                    new_day,
                    index,
                    [f'{{"new": "{index}"}}'.encode()],
                    fetched_at=dt.datetime.now(dt.timezone.utc),
                    source_format="json",
                    meta={"source": "benchmark"},
                )
        stored_requests = dict(requests)
        requests.clear()
        if reads_raw_once:  # as athena_tables refreshes: raw's inventory read once, for both
            raw = timed("coverage", refresh_coverage)(storage, indices, new_day)
        else:
            timed("coverage", coverage.write_coverage)(storage, indices, new_day)
        found = dict(spent)
        cov_requests = dict(requests)
        requests.clear()
        counts = (
            timed("raw_counts", duckdb_catalog._sidecar_counts)(
                RAW_CAPTURES, storage, *([raw] if reads_raw_once else [])
            )
            if not s3
            else None
        )
        table = _coverage_answer(storage)
        result[stage] = {
            **{p: found.get(p, spent.get(p)) for p in ("coverage", "captured_days")},
            "raw_counts": spent.get("raw_counts") if not s3 else None,
            "answer": [hashlib.sha256(table).hexdigest()[:16], counts and [str(c) for c in counts]],
            "requests": cov_requests,
            "count_requests": dict(requests),
            "store_requests": stored_requests,
        }
        spent.clear()
    if s3:
        mock.stop()
    print(json.dumps(result))


def _coverage_answer(storage) -> bytes:
    """The coverage table's rows, sorted, as bytes to hash: the same answer whether a checkout
    stores it in one file (`catalog/coverage/data.parquet`) or a file per year."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = [k for k in storage.list_keys("catalog/coverage/") if k.endswith(".parquet")]
    table = pa.concat_tables(pq.read_table(pa.BufferReader(storage.read_bytes(k))) for k in files)
    return json.dumps(
        table.sort_by([("index", "ascending"), ("date", "ascending")]).to_pydict(), default=str
    ).encode()


def _s3_lake(lake: str, requests: Counter):
    """The local `lake`'s raw uploaded into an in-process moto S3; requests counted per operation."""
    import boto3
    from moto import mock_aws

    from b3_platform.lake.s3_storage import S3Storage

    mock = mock_aws()
    mock.start()
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="bench")
    for folder, _dirs, files in os.walk(lake):
        for name in files:
            path = os.path.join(folder, name)
            client.put_object(Bucket="bench", Key=f"lake/{os.path.relpath(path, lake)}", Body=b"{}")
    client.meta.events.register("before-call.s3.*", lambda model, **_: requests.update([model.name]))
    return S3Storage("bench", "lake", client=client), mock


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", type=Path, help="an existing raw/GetPortfolioDay folder")
    parser.add_argument("--dates", default="250,1250")
    parser.add_argument("--baseline", type=Path, help="a checkout to compare with (no venv needed)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--s3", action="store_true", help="count S3 requests on moto (one round)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        checkout, lake, indices, day = args.child
        _child(checkout, lake, indices.split(","), day, args.s3)
        return
    checkouts = {"this": REPO, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    work = Path(tempfile.mkdtemp(prefix="raw-walk-"))
    try:
        for dates in [int(d) for d in args.dates.split(",")]:
            template = work / f"template-{dates}"
            indices, new_day = make_raw(args.source, dates, template)
            print(
                f"\n## {dates} dates x {len(indices)} indices (raw only; {'S3 on moto' if args.s3 else 'local'})"
            )
            runs: dict[str, list[dict]] = {name: [] for name in checkouts}
            for round_ in range(1 if args.s3 else args.rounds):
                for name, checkout in checkouts.items():  # interleaved, so load drifts hit both
                    lake = work / f"lake-{name}-{round_}"
                    subprocess.run(["cp", "-al", str(template), str(lake)], check=True)
                    proc = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--child",
                            str(checkout),
                            str(lake),
                            ",".join(indices),
                            new_day,
                        ]
                        + (["--s3"] if args.s3 else []),
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    if proc.returncode:
                        raise SystemExit(f"{name} child failed:\n{proc.stderr[-3000:]}")
                    runs[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
                    shutil.rmtree(lake)
            report(runs, args.s3)
            shutil.rmtree(template)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(runs: dict[str, list[dict]], s3: bool) -> None:
    names = list(runs)
    for stage in STAGES:
        answers = {n: json.dumps(r[stage]["answer"]) for n in names for r in runs[n]}
        if len(set(answers.values())) != 1:
            raise SystemExit(f"{stage}: the checkouts' answers differ: {answers}")
    if s3:
        print("| refresh | " + " | ".join(f"{n}: S3 requests of write_coverage" for n in names) + " |")
        print("|---|" + "---|" * len(names))
        for stage in STAGES:
            cells = [
                f"{sum(runs[n][0][stage]['requests'].values())} "
                f"({', '.join(f'{k} {v}' for k, v in sorted(runs[n][0][stage]['requests'].items()))})"
                for n in names
            ]
            print(f"| {stage} | " + " | ".join(cells) + " |")
        cells = [
            f"{sum(runs[n][0]['daily']['store_requests'].values())} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(runs[n][0]['daily']['store_requests'].items()))})"
            for n in names
        ]
        print("| (the daily capture's stores, all indices) | " + " | ".join(cells) + " |")
        return
    head = " | ".join(f"{n} wall / CPU ms" for n in names)
    print(f"| refresh | part | {head} |" + (" ratio CPU (this / baseline) |" if len(names) == 2 else ""))
    print("|---|---|" + "---|" * len(names) + ("---|" if len(names) == 2 else ""))
    for stage in STAGES:
        for part in PARTS:
            med = {}
            for n in names:
                values = [r[stage][part] for r in runs[n] if r[stage][part] is not None]
                med[n] = (
                    (
                        statistics.median(v[0] for v in values) * 1000,
                        statistics.median(v[1] for v in values) * 1000,
                    )
                    if values
                    else None  # a part this checkout no longer has
                )
            cells = " | ".join(
                "–" if med[n] is None else f"{med[n][0]:,.1f} / {med[n][1]:,.1f}" for n in names
            )
            ratio = (
                f" {med[names[0]][1] / med[names[1]][1]:.3f} |"
                if len(names) == 2 and None not in med.values() and med[names[1]][1]
                else (" – |" if len(names) == 2 else "")
            )
            print(f"| {stage} | {part} | {cells} |{ratio}")


if __name__ == "__main__":
    main()
