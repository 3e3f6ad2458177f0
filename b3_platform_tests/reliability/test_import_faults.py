"""`import` and the landing under hostile files and a failing lake: each defect's reproduction.

Every CLI case runs `python -m b3_platform import` as a real process and reads what a user reads:
its lines, its summary, its exit code (0 all stored, 1 something rejected, 3 the lake failed and
the import stopped). Where nothing should have changed, the lake is compared byte for byte."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import resource
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

from b3_platform.automation.landing_intake import landing_sensor
from b3_platform.b3.contract import MAX_BODY_BYTES
from b3_platform.importer import dates_in_name, import_paths
from b3_platform.lake.paths import META_SUFFIX, RAW_INVENTORY_ROOT
from b3_platform.lake.raw_store import LEASE_SUFFIX, RawStore, capture_sha256
from b3_platform.lake.storage import LocalStorage
from b3_platform.landing import LocalLandingResource
from b3_platform.resources import LakeResource
from b3_platform_tests.replay import SAMPLES

JSON_0708 = SAMPLES / "GetPortfolioDay/IBOV/2025-07-08.json"
JSON_0710 = SAMPLES / "GetPortfolioDay/IBOV/2025-07-10.json"
CSV_0710 = SAMPLES / "csv/IBOV_2025-07-10.csv"
CSV_0711 = SAMPLES / "csv/IBOV_2025-07-11.csv"
SECRET = (
    b"root:x:0:0:SECRET-TOKEN-4711:/root:/bin/bash\n" + b"daemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n" * 5
)
NESTED = b"[" * 100_000 + b"]" * 100_000  # far past Python's recursion limit


def put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "B3_PLATFORM_"))}


def run_import(
    lake: Path, *args: str | Path, preexec_fn: Callable[[], None] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "b3_platform", "--data-dir", str(lake), "import", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=180,
        env=clean_env(),
        cwd=lake.parent,
        preexec_fn=preexec_fn,
    )


def line_for(stdout: str, path: Path) -> str:
    [line] = [x for x in stdout.splitlines() if f" {path}  " in x or x.endswith(f" {path}")]
    return line


def snapshot(lake: Path) -> dict[str, bytes]:
    return {p.relative_to(lake).as_posix(): p.read_bytes() for p in sorted(lake.rglob("*")) if p.is_file()}


def assert_captures_whole(lake: Path) -> list:
    """Every committed capture's bodies are there and match its sha256; no temp file or lease left."""
    store = RawStore(LocalStorage(lake))
    captures = [c for d in store.dates() for c in store.captures(d)]
    for capture in captures:
        assert capture_sha256(store.read_bodies(capture)) == capture.sha256
    leftovers = [p for p in lake.rglob("*") if p.name.startswith(".tmp-") or p.name.endswith(LEASE_SUFFIX)]
    assert not leftovers
    bodies = [p for p in (lake / "raw").rglob("*") if p.is_file() and not p.name.endswith(META_SUFFIX)]
    assert len(bodies) == len(captures)  # no body without its sidecar
    # The raw inventory's pending markers (lake.raw_inventory): one per committed capture, none left
    # by a write that failed (only the inventory's refresh, never run here, settles them).
    markers = [p.name for p in (lake / RAW_INVENTORY_ROOT).rglob("*") if p.is_file()]
    stems = [m.split("_", 2)[2].split("-", 1)[1] for m in markers]  # <date>_<index>_<ms>-<stem>
    assert sorted(stems) == sorted(c.capture_id for c in captures)
    return captures


# ------------------------------------------------------------------------------ 4: nested JSON, size cap


def test_deeply_nested_json_is_rejected_and_the_files_after_it_are_imported(tmp_path):
    src = tmp_path / "in"
    nested = put(src / "IBOV/2025-07-07.json", NESTED)
    good = [
        put(src / "IBOV/2025-07-08.json", JSON_0708.read_bytes()),
        put(src / "IBOV/2025-07-10.json", JSON_0710.read_bytes()),
    ]
    proc = run_import(tmp_path / "lake", src)

    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    line = line_for(proc.stdout, nested)
    assert line.split()[0] == "rejected" and "JSON nested too deeply to parse" in line
    for path in good:
        assert line_for(proc.stdout, path).split()[0] == "imported"
    assert "3 file(s): 2 imported, 0 duplicate, 1 rejected" in proc.stdout
    assert RawStore(LocalStorage(tmp_path / "lake")).dates() == [dt.date(2025, 7, 8), dt.date(2025, 7, 10)]


def tick(lake: Path) -> dg.SensorResult:
    """One evaluation of the landing sensor over `<lake>/landing`, files taken at once."""
    resources = {
        "lake": LakeResource(root=str(lake)),
        "landing": LocalLandingResource(folder=str(lake / "landing"), min_age_seconds=0),
    }
    with dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources=resources) as context:
        return landing_sensor.evaluate_tick(context)


def test_deeply_nested_json_in_landing_goes_to_landing_rejected_once(tmp_path):
    lake = tmp_path / "lake"
    put(lake / "landing/IBOV/2025-07-07.json", NESTED)
    put(lake / "landing/IBOV/2025-07-08.json", JSON_0708.read_bytes())
    result = tick(lake)

    assert "2 landed file(s): 1 imported, 1 rejected" in result.skip_message
    assert [e.partition for e in result.asset_events] == ["2025-07-08"]
    rejected = lake / "landing_rejected/IBOV/2025-07-07.json"
    assert rejected.read_bytes() == NESTED
    assert "JSON nested too deeply" in Path(f"{rejected}.reason.txt").read_text()
    assert not (lake / "landing").exists() or not any((lake / "landing").rglob("*.json"))
    assert "nothing landed" in tick(lake).skip_message  # not retried on every tick


def test_a_file_over_the_cap_is_rejected_without_being_read(tmp_path):
    """A 1 GiB file (sparse: no disk used) is refused from its size; the process's peak memory
    shows it was never read (reading it would take over 1 GiB)."""
    src = tmp_path / "in"
    huge = src / "IBOV/2025-07-09.json"
    huge.parent.mkdir(parents=True)
    with open(huge, "wb") as fh:
        fh.truncate(1 << 30)
    good = put(src / "IBOV/2025-07-10.json", JSON_0710.read_bytes())
    proc = subprocess.Popen(
        [sys.executable, "-m", "b3_platform", "--data-dir", str(tmp_path / "lake"), "import", str(src)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
        cwd=tmp_path,
    )
    stdout = proc.stdout.read().decode()
    stderr = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)

    assert proc.returncode == 1, stderr
    line = line_for(stdout, huge)
    assert line.split()[0] == "rejected"
    assert f"{1 << 30} bytes: larger than {MAX_BODY_BYTES} bytes, not a B3 portfolio file (not read)" in line
    assert line_for(stdout, good).split()[0] == "imported"
    assert usage.ru_maxrss * 1024 < 700 * 1024 * 1024, f"peak RSS {usage.ru_maxrss} KiB: the file was read"


# ------------------------------------------------------------------------- 5: the lake fails while storing


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[bool]:
    """A tmpfs of `size` mounted on `folder` (True), or False where mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=True)


def limit_file_size(size: int) -> None:
    """In the child before exec: no file it writes may grow past `size` bytes (EFBIG: Python
    ignores SIGXFSZ, so the write fails instead of killing the process)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


def assert_stopped(proc: subprocess.CompletedProcess, at: Path, reason: str) -> None:
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"error: stopped: {at}: cannot write to the lake: {reason}" in proc.stderr
    assert "run the same import again" in proc.stderr
    assert f"; stopped at {at}, " in proc.stdout  # the summary is printed


def test_a_file_size_limit_stops_the_import_with_exit_3_and_a_summary(tmp_path):
    """RLIMIT_FSIZE below a JSON body's size (17 KB) but above a CSV's (4 KB): the CSVs are stored,
    the JSON cannot be, and the import stops there, saying what failed and where."""
    src = tmp_path / "in"
    first = put(src / "a/IBOV_2025-07-10.csv", CSV_0710.read_bytes())
    second = put(src / "a/IBOV_2025-07-11.csv", CSV_0711.read_bytes())
    stuck = put(src / "b/IBOV/2025-07-08.json", JSON_0708.read_bytes())
    put(src / "b/IBOV/2025-07-10.json", JSON_0710.read_bytes())
    lake = tmp_path / "lake"

    proc = run_import(lake, src, preexec_fn=lambda: limit_file_size(8_000))
    assert_stopped(proc, stuck, "File too large")
    assert line_for(proc.stdout, first).split()[0] == "imported"
    assert line_for(proc.stdout, second).split()[0] == "imported"
    assert "2 file(s): 2 imported, 0 duplicate, 0 rejected; stopped at" in proc.stdout
    assert "1 file(s) not attempted" in proc.stdout
    captures = assert_captures_whole(lake)
    assert sorted(c.day for c in captures) == [dt.date(2025, 7, 10), dt.date(2025, 7, 11)]
    before = snapshot(lake)

    rerun = run_import(lake, src)  # the lake fixed: the same command finishes the job
    assert rerun.returncode == 0, rerun.stderr
    assert "4 file(s): 2 imported, 2 duplicate, 0 rejected" in rerun.stdout
    after = snapshot(lake)
    assert {k: after[k] for k in before} == before  # what was stored is byte-identical


def test_a_full_lake_stops_the_import_with_exit_3_and_a_summary(tmp_path):
    lake = tmp_path / "lake"
    src = tmp_path / "in"
    files = [put(src / p.name, p.read_bytes()) for p in (CSV_0710, CSV_0711)]  # 4 KB each, first
    files += [
        put(src / f"IBOV/{p.name}", p.read_bytes()) for p in sorted(JSON_0708.parent.glob("2025-07-0*.json"))
    ]
    with tmpfs(lake, "48k") as mounted:
        # Not root: no tmpfs; a limit on the size of a written file (RLIMIT_FSIZE) fails the
        # writes of the 17 KB JSON bodies instead.
        proc = run_import(lake, src, preexec_fn=None if mounted else lambda: limit_file_size(10_000))
        assert proc.returncode == 3, proc.stdout + proc.stderr
        stuck = next(f for f in files if f" {f}  " not in proc.stdout)
        assert_stopped(proc, stuck, "No space left on device" if mounted else "File too large")
        imported = [f for f in files if f" {f}  " in proc.stdout]
        assert imported and all(line_for(proc.stdout, f).split()[0] == "imported" for f in imported)
        assert len(assert_captures_whole(lake)) == len(imported)


def test_a_read_only_lake_stops_the_import_with_exit_3_and_keeps_what_it_holds(tmp_path):
    lake = tmp_path / "lake"
    src = tmp_path / "in"
    old = put(src / "IBOV/2025-07-08.json", JSON_0708.read_bytes())
    new = put(src / "IBOV/2025-07-10.json", JSON_0710.read_bytes())
    with tmpfs(lake, "1m") as mounted:
        assert [r.status for r in import_paths(RawStore(LocalStorage(lake)), [old])] == ["imported"]
        before = snapshot(lake)
        if mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(lake)], check=True)
        else:  # not root: permissions are honoured
            for p in [lake, *lake.rglob("*")]:
                p.chmod(0o555 if p.is_dir() else 0o444)
        proc = run_import(lake, src)
        assert_stopped(proc, new, "Read-only file system" if mounted else "Permission denied")
        assert line_for(proc.stdout, old).split()[0] == "duplicate"  # reading still works
        assert "1 file(s): 0 imported, 1 duplicate, 0 rejected; stopped at" in proc.stdout
        assert snapshot(lake) == before


# --------------------------------------------------------------------------- 9: dates stated by the name


@pytest.mark.parametrize(
    ("name", "readings"),
    [
        ("2025-07-08.json", [{"2025-07-08"}]),
        ("IBOV_2025_07_08.json", [{"2025-07-08"}]),
        ("2025.07.08.json", [{"2025-07-08"}]),
        ("20250708.json", [{"2025-07-08"}]),
        ("IBOV-20250708.json", [{"2025-07-08"}]),
        ("08-07-2025.json", [{"2025-07-08", "2025-08-07"}]),
        ("08.07.2025.json", [{"2025-07-08", "2025-08-07"}]),
        ("13-07-2025.json", [{"2025-07-13"}]),  # 13 can only be the day
        ("08072025.json", [{"2025-07-08", "2025-08-07"}]),
        ("IBOVDia_08-07-25.csv", [{"2025-07-08"}]),  # B3's own name: day first
        ("carteira_08-07-25.csv", [{"2025-07-08", "2025-08-07"}]),
        ("2025-07-08_to_2025-07-09.json", [{"2025-07-08"}, {"2025-07-09"}]),
        # Not dates: a capture stem's time stamp and hash, digits inside words, impossible dates.
        ("20250710T120000123456Z-9f2a20250708ab.json", []),
        ("IBOV123456789.json", []),
        ("2025-13-45.json", []),
        ("segment2_pt-br.json", []),
    ],
)
def test_the_date_forms_a_file_name_is_checked_for(name, readings):
    assert [{d.isoformat() for d in r} for _, r in dates_in_name(name)] == readings


def test_a_file_name_stating_another_date_in_any_common_form_is_refused(tmp_path):
    src = tmp_path / "in/IBOV"
    body = JSON_0708.read_bytes()  # header date 2025-07-08
    compact = put(src / "20250811.json", body)
    day_first = put(src / "11-08-2025.json", body + b"\n")
    right_compact = put(src / "20250708.json", body + b"\n\n")
    right_dotted = put(src / "08.07.2025.json", body + b"\n\n\n")
    lake = tmp_path / "lake"
    proc = run_import(lake, src)

    assert proc.returncode == 1
    assert "file name says 2025-08-11 but the portfolio's header date is 2025-07-08" in line_for(
        proc.stdout, compact
    )
    assert (
        "file name says 11-08-2025 (2025-08-11 or 2025-11-08) but the portfolio's header date is 2025-07-08"
        in line_for(proc.stdout, day_first)
    )
    assert line_for(proc.stdout, right_compact).split()[0] == "imported"
    assert line_for(proc.stdout, right_dotted).split()[0] == "imported"
    assert "4 file(s): 2 imported, 0 duplicate, 2 rejected" in proc.stdout
    assert len(assert_captures_whole(lake)) == 2


# ----------------------------------------------------------------------------- 10: contradicting hints


def test_a_file_whose_index_hints_disagree_is_refused(tmp_path):
    src = tmp_path / "in"
    folder_vs_name = put(src / "IBXX/IBOV_2025-07-08.json", JSON_0708.read_bytes())
    csv_in_other_folder = put(src / "IBXX/IBOV_2025-07-10.csv", CSV_0710.read_bytes())
    lake = tmp_path / "lake"
    proc = run_import(lake, src)
    assert proc.returncode == 1
    assert "the index hints disagree (folder says IBXX, file name says IBOV)" in line_for(
        proc.stdout, folder_vs_name
    )
    assert "folder says IBXX but the CSV title names IBOV" in line_for(proc.stdout, csv_in_other_folder)
    assert "2 file(s): 0 imported, 0 duplicate, 2 rejected" in proc.stdout

    option_vs_folder = put(src / "IBOV/2025-07-10.json", JSON_0710.read_bytes())
    proc = run_import(lake, option_vs_folder, "--index", "IDIV")
    assert proc.returncode == 1
    assert "the index hints disagree (--index says IDIV, folder says IBOV)" in line_for(
        proc.stdout, option_vs_folder
    )
    assert snapshot(lake) == {}


def test_folders_above_the_one_named_are_no_hint(tmp_path):
    """A folder that merely happens to be named like an index above what the user named (a home
    directory `smll`) says nothing about the files; hints that agree import."""
    src = tmp_path / "smll/archive"
    loose = put(src / "2025-07-10.json", JSON_0710.read_bytes())
    agreeing = put(src / "IBOV/IBOV_2025-07-08.json", JSON_0708.read_bytes())
    results = import_paths(RawStore(LocalStorage(tmp_path / "lake")), [src], index="IBOV")
    assert {(r.path, r.status, r.index) for r in results} == {
        (loose, "imported", "IBOV"),
        (agreeing, "imported", "IBOV"),
    }


# ------------------------------------------------------------------ 11: links out of the folder, echoes


def test_links_out_of_the_folder_are_not_followed_and_no_content_is_echoed(tmp_path):
    secret = put(tmp_path / "elsewhere/passwd", SECRET)
    src = tmp_path / "in"
    good = put(src / "IBOV/2025-07-10.json", JSON_0710.read_bytes())
    (src / "IBOV/2025-07-08.json").symlink_to(secret)
    (src / "IBOV/IBOV_2025-07-09.csv").symlink_to(secret)
    (src / "IBOV/inside.json").symlink_to(good)  # inside the folder: followed
    not_b3 = put(src / "IBOV/2025-07-07.json", SECRET)  # a plain file that is no B3 response
    not_b3_csv = put(src / "IBOV/IBOV_2025-07-04.csv", SECRET)
    proc = run_import(tmp_path / "lake", src)

    assert proc.returncode == 1
    for link in ("2025-07-08.json", "IBOV_2025-07-09.csv"):
        line = line_for(proc.stdout, src / "IBOV" / link)
        assert line.split()[0] == "rejected"
        assert f"a symbolic link to {secret}, outside {src}: not followed" in line
    assert line_for(proc.stdout, src / "IBOV/inside.json").split()[0] == "duplicate"
    assert "invalid or truncated JSON" in line_for(proc.stdout, not_b3)
    assert "not a Carteira do Dia download" in line_for(proc.stdout, not_b3_csv)
    assert "SECRET" not in proc.stdout + proc.stderr and "root:x" not in proc.stdout + proc.stderr
    assert secret.read_bytes() == SECRET


def test_a_link_out_of_landing_is_moved_aside_unread(tmp_path):
    lake = tmp_path / "lake"
    secret = put(tmp_path / "elsewhere/passwd", SECRET)
    link = lake / "landing/IBOV/2025-07-08.json"
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    put(lake / "landing/IBOV/2025-07-07.json", SECRET)
    result = tick(lake)

    assert "2 landed file(s): 2 rejected" in result.skip_message
    moved = lake / "landing_rejected/IBOV/2025-07-08.json"
    assert moved.is_symlink() and not link.exists()  # the link itself was moved, the target untouched
    reason = Path(f"{moved}.reason.txt").read_text()
    assert f"a symbolic link to {secret}, outside {lake / 'landing'}: not followed" in reason
    other = Path(f"{lake}/landing_rejected/IBOV/2025-07-07.json.reason.txt").read_text()
    assert "invalid or truncated JSON" in other
    assert "SECRET" not in reason + other and "root:x" not in reason + other
    assert secret.read_bytes() == SECRET
    assert not (lake / "raw").exists()
