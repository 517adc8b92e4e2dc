"""A throwaway PostgreSQL server started by the test suite, and fixtures that run a test on SQLite and PostgreSQL.

The cluster is created once per test session from Debian's PostgreSQL binaries in a temporary folder: trust
authentication, listening on 127.0.0.1 and a Unix socket in its own folder only, durability switched off for speed.
Every test that asks for `postgres_url` gets a database of its own, dropped afterwards.

    postgres_server   session: the running `PostgresServer` (create_database / drop_database / url)
    postgres_url      a fresh, empty PostgreSQL database
    sqlite_url        a fresh SQLite file under tmp_path (a file, not :memory:, so WAL applies)
    db_url            parametrised over ["sqlite", "postgresql"]: a fresh, empty database on each backend
    migrated_db_url   parametrised the same way: a fresh database already at the newest schema
    db_engine         `migrated_db_url` as an engine from `db.session.make_engine`
    db_runtime        the `runtime` fixture on each backend: migrated database, media folder under tmp_path
    sqlite_template   session: a SQLite file migrated to head once; copy it to get a migrated database in ~1 ms

Migrating costs a few hundred milliseconds per database (SQLite rebuilds tables in batch mode), so the migrated
fixtures migrate once per session and copy: a file copy on SQLite, CREATE DATABASE … TEMPLATE on PostgreSQL.

Without the binaries the PostgreSQL cases are skipped locally (`apt-get install -y postgresql`) and fail under
CI=true, where `scripts/system-deps.sh` installs them, so a broken CI image cannot pass by skipping.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from app.runtime import Runtime, open_runtime
from app.settings import load_settings
from db import migrate
from db.session import make_engine

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
PG_USER = "rise"
INSTALL_HINT = "apt-get install -y postgresql"
# Safe only for a cluster that is thrown away: a crash may lose or corrupt data, which a test run never needs.
FAST_UNSAFE_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
START_ATTEMPTS = 3


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL binaries are not installed on this machine."""


def find_pg_bin() -> Path | None:
    """The newest Debian PostgreSQL bin folder, else the folder of an `initdb` on PATH, else None."""

    def major(path: str) -> int:
        version = Path(path).parent.name
        return int(version) if version.isdigit() else -1

    debian = sorted((p for p in glob.glob(PG_BIN_GLOB) if Path(p, "initdb").exists()), key=major)
    if debian:
        return Path(debian[-1])
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    bin_dir: Path
    data_dir: Path
    port: int
    # initdb and postgres refuse to run as root; as root we run them as this system user instead.
    run_as: str | None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def admin_engine(self) -> Engine:
        # CREATE/DROP DATABASE cannot run inside a transaction; NullPool leaves no idle connection behind.
        return create_engine(self.url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)

    def create_database(self, name: str | None = None, *, template: str | None = None) -> str:
        """Create a database (a unique name unless given), empty or a copy of `template`, and return its URL."""
        name = name or f"test_{uuid.uuid4().hex[:16]}"
        copy_of = f' TEMPLATE "{template}"' if template else ""
        engine = self.admin_engine()
        try:
            with engine.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"{copy_of}'))
        finally:
            engine.dispose()
        return self.url(name)

    def drop_database(self, name: str) -> None:
        # FORCE ends connections a failed test left open, so the drop cannot hang or fail on them.
        engine = self.admin_engine()
        try:
            with engine.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            engine.dispose()

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop", check=False)

    def log_tail(self, lines: int = 30) -> str:
        log = self.data_dir / "log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / program), *args]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        # cwd: the postgres user may not be allowed into the caller's working directory.
        result = subprocess.run(command, cwd=self.data_dir, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        return result


def start_postgres(bin_dir: Path | None = None) -> PostgresServer:
    """initdb a new cluster in a temporary folder and start it on a free port; the caller must `stop()` it."""
    bin_dir = bin_dir or find_pg_bin()
    if bin_dir is None:
        raise PostgresUnavailable(f"PostgreSQL binaries not found in {PG_BIN_GLOB} or on PATH; run: {INSTALL_HINT}")
    run_as = "postgres" if os.geteuid() == 0 else None
    data_dir = Path(tempfile.mkdtemp(prefix="rise-pg-"))
    if run_as:
        shutil.chown(data_dir, user=run_as, group=run_as)
    server = PostgresServer(bin_dir=bin_dir, data_dir=data_dir, port=0, run_as=run_as)
    try:
        # -N: no fsync of the new cluster; C locale with UTF8 so any text round-trips whatever the host locale is.
        server._run("initdb", "-D", str(data_dir), "-A", "trust", "-U", PG_USER, "-E", "UTF8", "--locale=C", "-N")
        for _ in range(START_ATTEMPTS):
            # The port can be taken between choosing it and binding it; then try another.
            server.port = _free_port()
            options = f"-p {server.port} -k {data_dir} -c listen_addresses=127.0.0.1 {FAST_UNSAFE_OPTIONS}"
            log = str(data_dir / "log")
            started = server._run("pg_ctl", "-D", str(data_dir), "-o", options, "-l", log, "-w", "start", check=False)
            if started.returncode == 0:
                return server
        raise RuntimeError(f"PostgreSQL did not start in {data_dir}:\n{started.stderr}\n{server.log_tail()}")
    except BaseException:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        raise


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = start_postgres()
    except PostgresUnavailable as error:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{error} (scripts/system-deps.sh installs them on CI)")
        pytest.skip(str(error))
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database: `postgresql+psycopg://rise@127.0.0.1:PORT/test_<hex>`."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'rise.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on each backend; the PostgreSQL server starts only when a PostgreSQL case runs."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database file at the newest schema, made once per session. Copy it; never open it."""
    path = tmp_path_factory.mktemp("sqlite-template") / "rise.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            # Move everything from the write-ahead log into the main file, which is the only file copied.
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> str:
    """The name of a PostgreSQL database at the newest schema, made once per session, for CREATE DATABASE TEMPLATE."""
    url = postgres_server.create_database("rise_template")
    migrate.upgrade(url)  # disposes its engine: a template must have no open connections when it is copied
    return "rise_template"


@pytest.fixture
def migrated_sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "rise.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def migrated_postgres_url(postgres_server: PostgresServer, postgres_template: str) -> Iterator[str]:
    url = postgres_server.create_database(template=postgres_template)
    yield url
    postgres_server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def migrated_db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database at the newest schema on each backend."""
    return request.getfixturevalue(f"migrated_{'sqlite' if request.param == 'sqlite' else 'postgres'}_url")


@pytest.fixture
def db_engine(migrated_db_url: str) -> Iterator[Engine]:
    """A fresh database at the newest schema on each backend, as an engine."""
    engine = make_engine(migrated_db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_runtime(migrated_db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """Like the `runtime` fixture, on each backend."""
    settings = load_settings({"RISE_DATA_DIR": str(tmp_path / "data"), "RISE_DATABASE_URL": migrated_db_url})
    runtime = open_runtime(settings)
    yield runtime
    runtime.close()
