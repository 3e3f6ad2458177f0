"""AWS requests and wall time of the AWS mode's runs, against a local lake measured in the same run.

Everything is offline: a moto server on 127.0.0.1 stands in for S3 and Glue, and a counting proxy
(b3_platform_tests/s3_proxy.py) sits between the pipeline and it, so every request the real boto3
clients send is seen. For each history size N it builds the synthetic archive of benchmarks/archive.py
(the real IBOV samples re-dated onto N+1 consecutive B3 trading days), imports N days and backfills
them in one single run, then measures "a day": importing the next day's file, then one run of
raw → bronze → silver → gold for that date followed by the catalog (athena_tables: Glue tables and
partitions). The same steps run on a local lake + DuckDB catalog as the baseline.

    .venv/bin/python benchmarks/s3_requests.py --history 20,250 --repeat 3

Request counts are exact and repeatable; times are medians of --repeat and only comparable within
one run of this script (moto answers on loopback in about a millisecond; S3 takes 10-30 ms a request,
so on AWS the request counts, not these times, are the figure to plan with).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")


def _runner():
    import dagster as dg

    from b3_platform.assets import ALL_ASSETS
    from b3_platform.runs import QUIET, range_tags

    # One instance for every run: ephemeral instances left to the garbage collector close their
    # sqlite connections from whichever thread collects them, which sqlite refuses noisily.
    instance = dg.DagsterInstance.ephemeral()

    def run(resources, *, first: dt.date, last: dt.date, catalog: bool) -> float:
        selection = dg.AssetSelection.all() - dg.AssetSelection.assets("athena_tables")
        started = time.perf_counter()
        kwargs = {"partition_key": first.isoformat()} if first == last else {"tags": range_tags(first, last)}
        result = dg.materialize(
            ALL_ASSETS,
            resources=resources,
            instance=instance,
            selection=selection,
            raise_on_error=True,
            run_config=QUIET,
            **kwargs,
        )
        if catalog:
            dg.materialize(
                ALL_ASSETS,
                resources=resources,
                instance=instance,
                selection=["athena_tables"],
                raise_on_error=True,
                run_config=QUIET,
            )
        if not result.success:
            raise RuntimeError(f"a run of {first}..{last} failed")
        return time.perf_counter() - started

    return run


def measure(history: int, repeat: int, workdir: Path) -> dict:
    from archive import build_archive

    from b3_platform.importer import import_paths
    from b3_platform.resources import LakeResource, lake_resources
    from b3_platform_tests.conftest import duckdb_catalog, replay_b3_resource
    from b3_platform_tests.moto_aws import AwsTarget, MotoServer
    from b3_platform_tests.replay import ReplayServer
    from b3_platform_tests.s3_proxy import S3FaultProxy

    archive, days, _ = build_archive(workdir / f"archive-{history}", history + 1, 1)
    files = [archive / "IBOV" / f"{d}.json" for d in days]
    past, today = days[:-1], days[-1]
    run = _runner()
    server, replay = MotoServer().start(), ReplayServer().start()
    proxy = S3FaultProxy(server.endpoint).start()
    try:
        target = AwsTarget.create(server)
        s3 = {
            **lake_resources(target.lake(proxy.endpoint)),
            "catalog": target.catalog(proxy.endpoint),
            "b3": replay_b3_resource(replay),
        }
        local_root = workdir / f"local-{history}"
        local = {
            **lake_resources(LakeResource(root=str(local_root))),
            "catalog": duckdb_catalog(local_root),
            "b3": replay_b3_resource(replay),
        }
        out: dict = {"history": history}
        for name, resources in (("s3", s3), ("local", local)):
            store = resources["lake"].raw()
            proxy.reset_counts()
            started = time.perf_counter()
            import_paths(store, files[:-1])
            out[f"{name}_import_s"] = time.perf_counter() - started
            out[f"{name}_import_requests"] = Counter(proxy.counts)
            proxy.reset_counts()
            out[f"{name}_backfill_s"] = run(resources, first=past[0], last=past[-1], catalog=True)
            out[f"{name}_backfill_requests"] = Counter(proxy.counts)
            proxy.reset_counts()
            import_paths(store, files[-1:])
            out[f"{name}_day_import_requests"] = Counter(proxy.counts)
            times, counts = [], []
            for _ in range(repeat):  # re-running the day replaces it exactly: the same work each time
                proxy.reset_counts()
                times.append(run(resources, first=today, last=today, catalog=True))
                counts.append(Counter(proxy.counts))
            out[f"{name}_day_s"] = statistics.median(times)
            out[f"{name}_day_requests"] = counts[0]
            # S3 requests are the same on every repeat; Glue's differ (only the first registers the
            # new date's partitions), so the first repeat is the one reported.
            s3_kinds = ("PUT", "GET", "LIST", "HEAD", "DELETE")
            out[f"{name}_day_requests_stable"] = all(
                [c[k] for k in s3_kinds] == [counts[0][k] for k in s3_kinds] for c in counts
            )
        return out
    finally:
        proxy.stop()
        replay.stop()
        server.stop()


def _s3(counts: Counter) -> str:
    return ", ".join(f"{k} {counts.get(k, 0)}" for k in ("PUT", "GET", "LIST", "HEAD", "DELETE"))


def _json_api(counts: Counter) -> str:
    calls = {k: v for k, v in counts.items() if "." in k}
    return ", ".join(f"{k.split('.', 1)[1]} {v}" for k, v in sorted(calls.items())) or "none"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--history", default="20,250", help="comma-separated N: trading days already in the lake"
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import warnings

    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("dagster").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="b3-s3-bench-") as tmp:
        for n in (int(x) for x in args.history.split(",")):
            r = measure(n, args.repeat, Path(tmp))
            print(f"\n== history N={n} trading days (1 index) ==")
            print(
                f"import {n} files      : S3 {r['s3_import_s']:.1f} s, local {r['local_import_s']:.1f} s "
                f"({r['s3_import_s'] / r['local_import_s']:.1f}×); S3 requests: {_s3(r['s3_import_requests'])}"
            )
            print(
                f"backfill {n} dates    : S3 {r['s3_backfill_s']:.1f} s, local {r['local_backfill_s']:.1f} s "
                f"({r['s3_backfill_s'] / r['local_backfill_s']:.1f}×)"
            )
            b = r["s3_backfill_requests"]
            print(
                f"  S3 requests         : {_s3(b)}  (per date: PUT {b['PUT'] / n:.1f}, GET {b['GET'] / n:.1f})"
            )
            print(f"  Glue                : {_json_api(b)}")
            print(f"a day (import 1 file): S3 {_s3(r['s3_day_import_requests'])}")
            d = r["s3_day_requests"]
            print(
                f"a day (run + catalog): S3 {r['s3_day_s']:.2f} s, local {r['local_day_s']:.2f} s "
                f"({r['s3_day_s'] / r['local_day_s']:.1f}×), median of {args.repeat}"
            )
            print(
                f"  S3 requests         : {_s3(d)}{'' if r['s3_day_requests_stable'] else ' (S3 requests varied between repeats)'}"
            )
            print(f"  Glue (1st repeat)   : {_json_api(d)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
