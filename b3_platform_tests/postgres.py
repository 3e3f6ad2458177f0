"""A real PostgreSQL server for the tests: Debian's `postgresql` binaries (`.ci/run` installs
them), one cluster per test session in a temp folder, listening on 127.0.0.1 with password
(SCRAM) authentication, as an RDS instance or the compose file's server would be reached.

Missing binaries fail the tests that need the server: nothing is skipped. initdb refuses to run as
root, so as root the cluster belongs to the `postgres` user the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from b3_platform_tests.conftest import unused_port

USER = "dagster"
#: Not a secret: a throw-away cluster on 127.0.0.1 that lives for one test session.
PASSWORD = "test-only-" + uuid.uuid4().hex[:12]


def bindir() -> Path:
    """The newest installed PostgreSQL's binaries; an error saying how to install them if none."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError(
        "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb, no initdb on PATH): "
        "apt-get install -y postgresql (.ci/run does)"
    )


class PostgresServer:
    """`durable=False` (the tests): fsync and synchronous commit off. `durable=True`: PostgreSQL's
    own defaults, as a production server runs (benchmarks/instance_storage.py, where the cost of a
    commit is part of what is measured)."""

    def __init__(self, durable: bool = False) -> None:
        self.bin = bindir()
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="b3-postgres-"))
        self.data = self.root / "data"
        self.port = unused_port()
        self.host = "127.0.0.1"
        self._user: dict = {}
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    "running as root, and there is no `postgres` user to own the cluster"
                ) from None
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._user = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        os.chmod(self.root, 0o700)

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [str(self.bin / args[0]), *args[1:]], capture_output=True, text=True, cwd=self.root, **self._user
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr[-2000:]}")

    def start(self) -> PostgresServer:
        password_file = self.root / "password"
        password_file.write_text(PASSWORD + "\n")
        if self._user:
            os.chown(password_file, self._user["user"], self._user["group"])
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            USER,
            f"--pwfile={password_file}",
            "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256",
            "-E",
            "UTF8",
            "--no-locale",
        )
        password_file.unlink()
        options = f"-c listen_addresses={self.host} -p {self.port} -k {self.root}"
        if not self.durable:
            # Durability settings off: a test cluster is thrown away, and fsync per commit is slow.
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-o", options, "start"
        )
        return self

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def connect(self, database: str = "postgres"):
        import psycopg2

        return psycopg2.connect(
            host=self.host, port=self.port, user=USER, password=PASSWORD, dbname=database, connect_timeout=10
        )

    def create_database(self) -> str:
        """A new, empty database (one per test: instances never share state)."""
        name = f"dagster_{uuid.uuid4().hex[:10]}"
        connection = self.connect()
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return name

    def env(self, database: str) -> dict[str, str]:
        """The DAGSTER_PG_* settings of deploy/dagster.yaml for `database`."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USERNAME": USER,
            "DAGSTER_PG_PASSWORD": PASSWORD,
            "DAGSTER_PG_DB": database,
        }

    def query(self, database: str, sql: str, params: tuple = ()) -> list[tuple]:
        connection = self.connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params or None)
                return cursor.fetchall()
        finally:
            connection.close()

    # --- what the server itself costs (benchmarks/instance_storage.py) ---------------------------

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def cpu_seconds(self) -> float:
        """CPU seconds the server's processes have used so far, from /proc (Linux): the postmaster's
        own, its exited children's (`cutime`/`cstime`: every backend of a closed connection — the
        Dagster storages open one per operation (NullPool) — and every autovacuum worker), and each
        live child's (checkpointer, WAL writer, open backends)."""
        postmaster = self.postmaster_pid()
        total = sum(_proc_times(postmaster))
        for pid in _children(postmaster):
            try:
                total += sum(_proc_times(pid))
            except FileNotFoundError:  # exited since listed: now in the postmaster's cutime/cstime
                pass
        return total / os.sysconf("SC_CLK_TCK")

    def wait_for_no_client(self, timeout: float = 30.0) -> None:
        """Until every client backend has exited (a closed connection's backend ends a moment after
        the client), so that its CPU is in the postmaster's `cutime`/`cstime` when read."""
        deadline = time.monotonic() + timeout
        while any(_is_client_backend(pid) for pid in _children(self.postmaster_pid())):
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL still has client backends after {timeout:.0f} s")
            time.sleep(0.05)

    def database_bytes(self, database: str) -> int:
        """pg_database_size: every table, index and TOAST file of `database` (not the cluster's WAL)."""
        ((size,),) = self.query(database, "SELECT pg_database_size(current_database())")
        return int(size)

    def sessions(self, database: str) -> int:
        """Connections opened to `database` so far, this query's own included
        (pg_stat_database.sessions, PostgreSQL 14+). The Dagster storages open one per operation
        (NullPool): each is a new backend and a password exchange."""
        sql = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ((count,),) = self.query(database, sql)
        return int(count)


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat from field 3 (state) on: the command name may hold spaces, so split after it."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def _proc_times(pid: int) -> tuple[int, int, int, int]:
    """utime, stime, cutime, cstime in clock ticks (stat fields 14-17)."""
    fields = _stat_fields(pid)
    return int(fields[11]), int(fields[12]), int(fields[13]), int(fields[14])


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat_fields(int(entry.name))[1]) == parent:
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
    return found


def _is_client_backend(pid: int) -> bool:
    """A backend serving a connection is titled `postgres: <user> <database> <host>(<port>) …`;
    the server's own processes `postgres: checkpointer`, `… walwriter` and so on."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return False
    return title.startswith(f"postgres: {USER} ")
