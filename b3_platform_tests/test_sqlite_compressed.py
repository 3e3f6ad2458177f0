"""The event log's serialized bodies stored compressed (b3_platform.sqlite_storage), and the way back.

One history (b3_platform_tests/compressed_history.py) is written first by Dagster's own class, then
by ours: a mixed history. Everything Dagster reads of it (the instance's API and the UI's GraphQL)
must read the same through our class as through Dagster's own class in a process that never loaded
ours, once `python -m b3_platform instance-plain` has rewritten the compressed rows; before that,
Dagster's own class cannot read them (the cost the README states)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zlib
from pathlib import Path

import dagster as dg
import pytest

from b3_platform.sqlite_body_dictionary import DICTIONARY, DICTIONARY_ID
from b3_platform.sqlite_storage import PooledSqliteEventLogStorage
from b3_platform_tests import compressed_history as history
from b3_platform_tests.conftest import REPO
from b3_platform_tests.test_webserver import graphql, running_webserver

BODIES = {
    "event_logs": "event",
    "asset_check_executions": "evaluation_event",
    "asset_keys": "last_materialization",
}

UI_READS = """
query ($path: [String!]!, $check: String!) {
  assetNodes(assetKeys: [{path: $path}]) {
    assetPartitionStatuses { ... on TimePartitionStatuses { ranges { startKey endKey status } } }
  }
  assetOrError(assetKey: {path: $path}) {
    ... on Asset {
      assetMaterializations {
        partition runId
        metadataEntries { label ... on IntMetadataEntry { intValue } ... on TextMetadataEntry { text } }
      }
    }
  }
  assetCheckExecutions(assetKey: {path: $path}, checkName: $check, limit: 50) {
    runId status partition
    evaluation { success partition metadataEntries { label ... on BoolMetadataEntry { boolValue } } }
  }
}
"""


def body_types(home: Path) -> dict[str, dict[str, int]]:
    """Per database file (index or 'shard') and body column: how many values are BLOB / TEXT."""
    counts: dict[str, dict[str, int]] = {}
    for db_file in sorted((home / "history" / "runs").glob("*.db")):
        where = "index" if db_file.stem == "index" else "shard"
        with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as conn:
            for table, column in BODIES.items():
                for kind, n in conn.execute(
                    f"SELECT typeof({column}), count(*) FROM {table} WHERE {column} IS NOT NULL GROUP BY 1"
                ):
                    key = f"{where} {table}.{column}"
                    counts.setdefault(key, {}).setdefault(kind, 0)
                    counts[key][kind] += n
    return counts


def env_for(home: Path) -> dict[str, str]:
    return {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO)}


def reads_in_a_clean_process(home: Path) -> subprocess.CompletedProcess:
    """history.reads(home) in a new Python process that never imports our storage."""
    return subprocess.run(
        [sys.executable, "-m", "b3_platform_tests.compressed_history", str(home)],
        env=env_for(home),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def instance_plain(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "b3_platform", "instance-plain", *args],
        env=env_for(home),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ui_reads(home: Path) -> dict:
    """What the UI shows of both assets and their checks, from the real webserver."""
    with running_webserver(["-m", "b3_platform_tests.compressed_history"], env_for(home)) as url:
        return {
            name: graphql(url, UI_READS, path=[name], check=check) for name, check in history.CHECKS.items()
        }


def write_mixed_history(home: Path) -> None:
    history.configure(home, pooled=False)  # Dagster's own class: plain rows
    history.materialize_prices(home, history.KEYS[0])
    history.configure(home, pooled=True)  # then ours, into the same files
    with history.open_instance(home) as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
    history.materialize_prices(home, history.KEYS[1])
    history.materialize_prices(home, history.KEYS[2])
    history.fail_a_range(home, history.KEYS[2], history.KEYS[4])


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("mixed") / "home"
    write_mixed_history(home)
    return home


def test_bodies_written_through_our_class_are_compressed_on_disk(mixed):
    types = body_types(mixed)
    # The stock class's run left plain rows in the index; ours wrote BLOBs beside them.
    assert types["index event_logs.event"]["text"] > 0 and types["index event_logs.event"]["blob"] > 0
    # Our runs' own files (shards) hold compressed bodies only, one shard being the stock run's.
    with sqlite3.connect(mixed / "history" / "runs" / "index.db") as conn:
        first_run = conn.execute(
            "SELECT run_id FROM event_logs WHERE typeof(event) = 'text' LIMIT 1"
        ).fetchone()[0]
        for (stored,) in conn.execute("SELECT event FROM event_logs WHERE typeof(event) = 'blob'"):
            # A zlib stream naming the preset dictionary in its header, and read with it.
            assert int.from_bytes(stored[2:6], "big") == DICTIONARY_ID == zlib.adler32(DICTIONARY)
            body = zlib.decompressobj(zdict=DICTIONARY).decompress(stored)
            assert json.loads(body)["__class__"] == "EventLogEntry"
        check_rows = dict(
            conn.execute(
                "SELECT typeof(evaluation_event), count(*) FROM asset_check_executions "
                "WHERE asset_key = '[\"fragile\"]' GROUP BY 1"
            ).fetchall()
        )
    assert check_rows == {"blob": 3}  # planned for the range's three dates, never judged
    for shard in (mixed / "history" / "runs").glob("*.db"):
        if shard.stem in ("index", first_run):
            continue
        with sqlite3.connect(f"file:{shard}?mode=ro", uri=True) as conn:
            assert {k for (k,) in conn.execute("SELECT DISTINCT typeof(event) FROM event_logs")} == {"blob"}
    assert types["index asset_keys.last_materialization"] == {"blob": 1}  # prices: ours wrote last
    assert set(types["index asset_check_executions.evaluation_event"]) == {"text", "blob"}


def test_every_read_is_dagsters_and_the_way_back_restores_its_class(mixed, tmp_path):
    """Our class reads the mixed history exactly as Dagster's own class reads the same history once
    plain again, through the instance API and the UI; Dagster's class cannot read it before."""
    ours = history.reads(mixed)
    assert ours["prices"]["materialized"] == history.KEYS[:3]
    assert ours["prices"]["statuses"]["2025-07-01"] == "MATERIALIZED"
    assert [ours["fragile"]["statuses"][k] for k in history.KEYS[2:]] == ["FAILED"] * 3
    assert len(ours["prices"]["check history"]) == 3 and len(ours["fragile"]["check history"]) == 3
    ui_ours = ui_reads(mixed)
    (fragile,) = ui_ours["fragile"]["assetNodes"]
    assert fragile["assetPartitionStatuses"]["ranges"] == [
        {"startKey": history.KEYS[2], "endKey": history.KEYS[4], "status": "FAILED"}
    ]
    executions = ui_ours["prices"]["assetCheckExecutions"]
    assert sorted(e["partition"] for e in executions) == history.KEYS[:3]
    assert all(
        e["evaluation"]["metadataEntries"] == [{"label": "judged", "boolValue": True}] for e in executions
    )

    history.configure(mixed, pooled=False)  # the user removes our class from dagster.yaml
    refused = reads_in_a_clean_process(mixed)
    # Dagster's class alone meets compressed rows: the stated cost.
    # (bytes' repr opens with b' or b" by what the bytes hold, so the message is matched on both ends)
    assert refused.returncode != 0 and "is not a str. Got b" in refused.stderr
    assert "which is type <class 'bytes'>" in refused.stderr

    done = instance_plain(home=mixed)
    assert done.returncode == 0, done.stderr
    assert "compressed rows rewritten as plain text" in done.stdout
    assert all(set(kinds) == {"text"} for kinds in body_types(mixed).values())
    stock = reads_in_a_clean_process(mixed)
    assert stock.returncode == 0, stock.stderr[-3000:]
    assert json.loads(stock.stdout) == ours
    assert ui_reads(mixed) == ui_ours

    again = instance_plain(home=mixed)  # idempotent: nothing left to rewrite
    assert again.returncode == 0 and " 0 compressed rows" in again.stdout


def test_dagsters_class_in_the_same_process_still_writes_plain(tmp_path):
    ours = history.configure(tmp_path / "ours", pooled=True)
    history.materialize_prices(ours, history.KEYS[0])  # our engines have written compressed bodies
    stock = history.configure(tmp_path / "stock", pooled=False)
    with history.open_instance(stock) as instance:
        assert type(instance.event_log_storage).__name__ == "SqliteEventLogStorage"
    history.materialize_prices(stock, history.KEYS[0])
    history.fail_a_range(stock, history.KEYS[2], history.KEYS[4])
    assert all(set(kinds) == {"text"} for kinds in body_types(stock).values())
    assert all(set(kinds) == {"blob"} for kinds in body_types(ours).values())


def test_postgresql_in_the_same_process_still_stores_plain_text(postgres_server, tmp_path, monkeypatch):
    """The production instance (deploy/dagster.yaml) shares Dagster's table objects, and so their
    column type, with our class: it stores what Dagster stores."""
    ours = history.configure(tmp_path / "ours", pooled=True)
    history.materialize_prices(ours, history.KEYS[0])
    home = tmp_path / "pg"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    database = postgres_server.create_database()
    for var, value in postgres_server.env(database).items():
        monkeypatch.setenv(var, value)
    with history.open_instance(home) as instance:
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    history.materialize_prices(home, history.KEYS[0])
    history.fail_a_range(home, history.KEYS[2], history.KEYS[4])
    for table, column in BODIES.items():
        bodies = postgres_server.query(database, f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")
        assert bodies, table
        for (body,) in bodies:
            assert body.startswith('{"__class__": '), (table, body[:80])
    with history.open_instance(home) as instance:
        assert instance.get_materialized_partitions(dg.AssetKey("prices")) == {history.KEYS[0]}


def test_the_way_back_leaves_a_file_it_cannot_read_untouched(tmp_path):
    home = history.configure(tmp_path / "home", pooled=True)
    history.materialize_prices(home, history.KEYS[0])
    index = home / "history" / "runs" / "index.db"
    with sqlite3.connect(index) as conn:
        (bad_id,) = conn.execute("SELECT max(id) FROM event_logs").fetchone()
        conn.execute("UPDATE event_logs SET event = ? WHERE id = ?", (b"not zlib", bad_id))
    before = body_types(home)["index event_logs.event"]

    refused = instance_plain(str(home / "history" / "runs"), home=home)
    assert refused.returncode == 1
    assert f"{index}: event_logs.event of row {bad_id}" in refused.stderr
    assert "nothing in this file was changed" in refused.stderr
    assert body_types(home)["index event_logs.event"] == before  # every body still compressed

    empty = instance_plain(str(tmp_path / "nowhere"), home=home)
    assert empty.returncode == 2 and "no event log database" in empty.stderr


def test_the_dictionary_never_changes():
    """Every body compressed so far names this dictionary by its checksum and reads only with exactly
    these bytes: a better dictionary is added beside it (see sqlite_body_dictionary.py), never over it."""
    assert len(DICTIONARY) == 16384
    assert zlib.adler32(DICTIONARY) == DICTIONARY_ID == 2510479470
