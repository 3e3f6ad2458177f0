"""Two imports at once over the same files store each capture once, locally and on S3.

Reproduces the defect where two `python -m b3_platform import` processes over the same folder left
most dates twice (same sha256): the look-up and the write were separate steps. The folder holds a
few dozen distinct files (every day-portfolio sample, each also with one and two trailing newlines:
valid, and a different sha256), so the two processes, started together and walking the same sorted
list, collide on nearly every file."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from b3_platform.lake.paths import META_SUFFIX, raw_prefix
from b3_platform.lake.raw_store import LEASE_STALE_SECONDS, LEASE_SUFFIX, RawStore, capture_sha256
from b3_platform.lake.storage import LocalStorage
from b3_platform_tests.replay import SAMPLES

VARIANTS = (b"", b"\n", b"\n\n")  # trailing newlines: the same portfolio, another sha256


def many_files(folder: Path, *, csv: bool = True, variants: int = len(VARIANTS)) -> dict[str, bytes]:
    """The day-portfolio samples (JSON, and CSV unless told not) in `variants` byte variants under
    `folder`; returns {name: bytes}."""
    written = {}
    sources = sorted((SAMPLES / "GetPortfolioDay").rglob("*.json"))
    sources += sorted((SAMPLES / "csv").glob("*.csv")) if csv else []
    for source in sources:
        relative = source.relative_to(SAMPLES / ("csv" if source.suffix == ".csv" else "GetPortfolioDay"))
        for number, tail in enumerate(VARIANTS[:variants]):
            name = relative.with_name(f"{relative.stem}{f'_v{number}' if number else ''}{relative.suffix}")
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes() + tail)
            written[name.as_posix()] = target.read_bytes()
    return written


def import_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "b3_platform", *args]


def run_together(
    commands: list[list[str]], env: dict[str, str], cwd: Path
) -> list[subprocess.CompletedProcess]:
    """Start every command at once; wait for all."""
    procs = [
        subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
        for c in commands
    ]
    done = []
    for command, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(command, proc.returncode, out, err))
    return done


def statuses(stdout: str) -> Counter[str]:
    return Counter(line.split()[0] for line in stdout.splitlines() if line.startswith("  "))


def assert_each_capture_once(store: RawStore, files: dict[str, bytes]) -> None:
    """Every distinct body is stored exactly once, byte for byte, and nothing else is."""
    seen: Counter[tuple[dt.date, str, str]] = Counter()
    for day in store.dates():
        for capture in store.captures(day):
            seen[(day, capture.index, capture.sha256)] += 1
            (body,) = store.read_bodies(capture)
            assert capture_sha256([body]) == capture.sha256
    duplicated = {key: n for key, n in seen.items() if n > 1}
    assert not duplicated, f"stored more than once: {duplicated}"
    assert {sha for _, _, sha in seen} == {capture_sha256([b]) for b in files.values()}
    assert not [k for k in store.storage.list_keys(raw_prefix()) if k.endswith(LEASE_SUFFIX)]


def test_two_import_processes_at_once_store_each_file_once_locally(tmp_path):
    files = many_files(tmp_path / "in")
    assert len(files) >= 50
    lake = tmp_path / "lake"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "B3_PLATFORM_"))}
    command = import_command("--data-dir", str(lake), "import", str(tmp_path / "in"))
    first, second = run_together([command, command], env, tmp_path)

    for proc in (first, second):
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"{len(files)} file(s):" in proc.stdout
    # Each file is imported by exactly one of the two, and a duplicate for the other.
    a, b = statuses(first.stdout), statuses(second.stdout)
    assert a["imported"] + b["imported"] == len(files), (a, b)
    assert a["duplicate"] + b["duplicate"] == len(files), (a, b)
    store = RawStore(LocalStorage(lake))
    assert_each_capture_once(store, files)
    assert sum(len(store.captures(d)) for d in store.dates()) == len(files)
    assert not [p for p in lake.rglob("*") if p.name.startswith(".tmp-")]


def test_two_import_processes_at_once_store_each_file_once_on_s3(tmp_path, aws_target):
    files = many_files(tmp_path / "in", csv=False, variants=2)  # moto runs in this process: fewer
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "B3_PLATFORM_"))}
    env.update(aws_target.env())
    command = import_command("import", str(tmp_path / "in"))
    first, second = run_together([command, command], env, tmp_path)

    for proc in (first, second):
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"Importing into {aws_target.root}" in proc.stdout
    a, b = statuses(first.stdout), statuses(second.stdout)
    assert a["imported"] + b["imported"] == len(files), (a, b)
    store = aws_target.lake().raw()
    assert_each_capture_once(store, files)
    metas = [k for k in aws_target.keys("raw/") if k.endswith(META_SUFFIX)]
    assert len(metas) == len(files)
    assert len(aws_target.keys("raw/")) == 2 * len(files)  # a body and a sidecar each, no lease left


def test_a_second_writer_of_the_same_bytes_waits_for_the_lease_and_stores_nothing(tmp_path):
    """The protocol, step by step: while one writer holds the content's lease, another storing the
    same bytes waits; once the first has committed and let go, the second finds that capture."""
    store = RawStore(LocalStorage(tmp_path / "lake"))
    body = (SAMPLES / "GetPortfolioDay/IBOV/2025-07-08.json").read_bytes()
    day, sha = dt.date(2025, 7, 8), capture_sha256([body])
    now = dt.datetime.now(dt.timezone.utc)
    lease = f"{raw_prefix(day, 'IBOV')}{sha}{LEASE_SUFFIX}"
    outcome = {}

    def second_writer():
        outcome["result"] = store.store(day, "IBOV", [body], fetched_at=now, source_format="json", meta={})

    with store._lease(lease):
        assert store.storage.create_bytes(lease, b"x") is False  # held: nobody else may create it
        waiting = threading.Thread(target=second_writer)
        waiting.start()
        time.sleep(0.5)
        assert waiting.is_alive()  # waiting for the lease, not writing
        first = store._write(day, "IBOV", [body], sha, raw_prefix(day, "IBOV"), now, "json", {}, None)
    waiting.join(timeout=10)
    capture, stored_now = outcome["result"]
    assert (capture.capture_id, stored_now) == (first.capture_id, False)
    assert [c.capture_id for c in store.captures(day)] == [first.capture_id]
    assert not store.storage.exists(lease)


def test_a_lease_left_by_a_crashed_process_is_broken_once_stale(tmp_path):
    store = RawStore(LocalStorage(tmp_path / "lake"))
    body = (SAMPLES / "GetPortfolioDay/IBOV/2025-07-08.json").read_bytes()
    day, sha = dt.date(2025, 7, 8), capture_sha256([body])
    lease = f"{raw_prefix(day, 'IBOV')}{sha}{LEASE_SUFFIX}"
    crashed = {"host": "gone", "pid": 1, "since": time.time() - LEASE_STALE_SECONDS - 5}
    assert store.storage.create_bytes(lease, json.dumps(crashed).encode())
    now = dt.datetime.now(dt.timezone.utc)
    started = time.monotonic()
    capture, stored_now = store.store(day, "IBOV", [body], fetched_at=now, source_format="json", meta={})
    assert stored_now and time.monotonic() - started < 5
    assert store.read_bodies(capture) == [body]
    assert not store.storage.exists(lease)


def test_create_bytes_is_exclusive_on_both_storages(tmp_path, aws_target):
    for storage in (LocalStorage(tmp_path / "lake"), aws_target.lake().storage()):
        assert storage.create_bytes("a/b.lease", b"first") is True
        assert storage.create_bytes("a/b.lease", b"second") is False
        assert storage.read_bytes("a/b.lease") == b"first"
        assert storage.list_keys("a/") == ["a/b.lease"]  # no temp file left behind
