"""A real PostgreSQL 15 on a free loopback port, in a temp dir, for tests and benchmarks.

initdb refuses to run as root, so as root the cluster belongs to the `postgres` user (or `nobody`
when there is no such user) and every server command goes through `runuser`; as another user it
runs as that user. The server listens on 127.0.0.1 only, its socket lives in the data dir's parent,
and `stop()` signals the postmaster by PID (fast shutdown, then SIGKILL).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from imaging_assets_tests.servers import free_port

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/local/bin")
USER = "dagster"
PASSWORD = "dagster-test-password"
DATABASE = "dagster"


def pg_binary(name: str) -> str | None:
    for folder in PG_BIN_DIRS:
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    return shutil.which(name)


def binaries_missing() -> list[str]:
    return [name for name in ("initdb", "pg_ctl", "postgres") if pg_binary(name) is None]


def _server_user() -> str | None:
    """The OS user that owns the cluster when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root but neither user `postgres` nor `nobody` exists")


class PostgresServer:
    """`with PostgresServer() as pg:` starts a throwaway cluster; `pg.env()` holds the
    DAGSTER_POSTGRES_* variables of docker/dagster.yaml for it."""

    def __init__(self, fsync: bool = False, max_connections: int = 200) -> None:
        self.fsync = fsync
        self.max_connections = max_connections
        self.port = free_port()
        self.host = "127.0.0.1"
        self.root: Path | None = None
        self.startup_seconds: float | None = None
        self._pid: int | None = None

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        assert self.root is not None
        return self.root / "postgres.log"

    def _run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        user = _server_user()
        command = ["runuser", "-u", user, "--", *argv] if user else argv
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def start(self) -> PostgresServer:
        missing = binaries_missing()
        if missing:
            raise RuntimeError(f"PostgreSQL binaries missing: {', '.join(missing)}")
        started = time.monotonic()
        # Not under pytest's tmp dir: that is private to root (0700), which `postgres` cannot enter.
        self.root = Path(tempfile.mkdtemp(prefix="imaging-assets-pg-"))
        password_file = self.root / "password"
        password_file.write_text(PASSWORD + "\n")
        user = _server_user()
        if user:
            entry = pwd.getpwnam(user)
            for path in (self.root, password_file):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            [
                pg_binary("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                USER,
                f"--pwfile={password_file}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        for attempt in range(1, 4):
            try:
                self._pg_ctl_start()
                break
            except RuntimeError:
                # free_port can only say the port was free a moment ago: on a taken port, again
                # on another (the log says so), else the error as it is
                log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
                if "Address already in use" not in log or attempt == 3:
                    raise
                self.port = free_port()
        self._pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        self.create_database(DATABASE)
        self.startup_seconds = time.monotonic() - started
        return self

    def _pg_ctl_start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses={self.host} "
            f"-c max_connections={self.max_connections} -c fsync={'on' if self.fsync else 'off'} "
            f"-c synchronous_commit={'on' if self.fsync else 'off'} -c full_page_writes=off"
        )
        self._run(
            [
                pg_binary("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ]
        )

    def connect(self, database: str = DATABASE):
        import psycopg2

        return psycopg2.connect(
            host=self.host, port=self.port, user=USER, password=PASSWORD, dbname=database
        )

    def create_database(self, name: str) -> str:
        connection = self.connect("postgres")
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return name

    def query(self, sql: str, params: tuple = (), database: str = DATABASE) -> list[tuple]:
        connection = self.connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        finally:
            connection.close()

    def env(self, database: str = DATABASE) -> dict[str, str]:
        """The variables docker/dagster.yaml reads its storage from."""
        return {
            "DAGSTER_POSTGRES_HOST": self.host,
            "DAGSTER_POSTGRES_PORT": str(self.port),
            "DAGSTER_POSTGRES_USER": USER,
            "DAGSTER_POSTGRES_PASSWORD": PASSWORD,
            "DAGSTER_POSTGRES_DB": database,
        }

    def stop(self) -> None:
        if self._pid is not None:
            try:
                os.kill(self._pid, signal.SIGINT)  # fast shutdown: disconnect clients, then exit
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    os.kill(self._pid, 0)
                    time.sleep(0.1)
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._pid = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def log_tail(self, lines: int = 40) -> str:
        if self.root is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
