"""A real PostgreSQL server of its own, for tests and benchmarks: a cluster made by
``initdb`` in a given directory, started by ``pg_ctl`` on a free 127.0.0.1 port (its
unix socket in that directory too), a database per test, stopped.

It never touches a PostgreSQL already running on the machine (its own data directory,
port and socket). ``initdb`` refuses to run as root: when the tests run as root, every
PostgreSQL binary runs as the ``postgres`` OS user (``runuser -u postgres --``) and the
directory is handed to that user, so it must be reachable by it (``tempfile.mkdtemp()``
is; pytest's ``tmp_path``, under a 0700 directory of root's, is not).

Trust authentication on 127.0.0.1 only, UTF8, locale C. With ``fast`` (what the test
fixture uses, and only it) the cluster trades durability for speed: ``initdb
--no-sync`` (its files are not fsynced), then ``fsync = off`` (``-F``),
``synchronous_commit = off`` and ``full_page_writes = off``. A killed server loses the
commits of its last fraction of a second (acknowledged before the log was written out:
a test that kills its server to prove durability needs ``fast=False``); a crash of the
machine may corrupt the cluster, which a test throws away anyway. Never run a real
store so.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from loadtest.redis_server import free_port

#: What PostgreSQL needs beside Python (Debian: ``apt-get install postgresql``).
BINARIES = ("initdb", "pg_ctl", "postgres", "psql")
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_OS_USER = "postgres"  # initdb and postgres refuse root: they run as this user then
_SUPERUSER = "postgres"  # the cluster's superuser (initdb -U)


def find_bindir() -> Path:
    """The directory holding initdb, pg_ctl, postgres and psql: that of ``initdb`` on the
    PATH (symlinks resolved: pg_ctl looks for ``postgres`` next to itself), else the newest
    ``/usr/lib/postgresql/<version>/bin``."""
    candidates: list[Path] = []
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).resolve().parent)

    def major(path: Path) -> int:
        return int(path.parent.name) if path.parent.name.isdigit() else 0

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=major, reverse=True)
    for directory in candidates:
        if all(os.access(directory / name, os.X_OK) for name in BINARIES):
            return directory
    raise RuntimeError(
        "PostgreSQL's initdb, pg_ctl, postgres and psql were not found (on the PATH or in "
        "/usr/lib/postgresql/*/bin): install them (Debian: apt-get install postgresql)"
    )


def _clean_env() -> dict[str, str]:
    """The environment without libpq's variables (PGHOST, PGOPTIONS, PGPASSWORD ...),
    which could point the binaries elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


class PostgresServer:
    """One cluster in ``directory`` (``data/`` inside, the log ``postgres.log``, the unix
    socket ``.s.PGSQL.<port>``). :meth:`start` makes it (once) and starts it; after
    :meth:`kill` or :meth:`stop`, :meth:`start` starts the same cluster again."""

    def __init__(self, directory: Path, *, fast: bool = False) -> None:
        self.bindir = find_bindir()
        self.directory = Path(directory).resolve()
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        self.fast = fast
        self.port = free_port()
        self.pid: int | None = None
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise RuntimeError("running as root needs runuser (util-linux) to run PostgreSQL")
            self._as_user = [runuser, "-u", _OS_USER, "--"]
        socket_path = self.directory / f".s.PGSQL.{65535}"
        if len(str(socket_path)) > 100:
            raise ValueError(f"{self.directory} is too long a path for a unix socket")

    @property
    def url(self) -> str:
        """The ``postgres`` database (the maintenance one)."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://{_SUPERUSER}@127.0.0.1:{self.port}/{name}"

    # --- life cycle -------------------------------------------------------------------

    def start(self, attempts: int = 5) -> PostgresServer:
        """Make the cluster if there is none, start it and wait until it answers a query
        over TCP. A port taken meanwhile is replaced by another (``attempts`` times)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            if self._as_user:
                self._hand_over()
            if not (self.data / "PG_VERSION").exists():
                self._initdb()
            for attempt in range(attempts):
                if self._pg_ctl_start():
                    break
                if attempt == attempts - 1 or not self._port_was_taken():
                    raise RuntimeError(f"PostgreSQL did not start:\n{self._log_tail()}")
                self.port = free_port()
            self.pid = self._postmaster_pid()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """``pg_ctl stop -m fast`` (sessions ended, a clean shutdown); if it fails or times
        out, SIGKILL to the postmaster's process group (every server process)."""
        if not self._running():
            self.pid = None
            return
        command = [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w"]
        try:
            stopped = self._run([*command, "-t", "30", "stop"], check=False, timeout=40)
            failed = stopped.returncode != 0
        except subprocess.TimeoutExpired:
            failed = True
        if failed or self._running():
            self.kill()
        self.pid = None

    def kill(self) -> None:
        """SIGKILL to every server process at once (the postmaster leads its process group,
        pg_ctl made it so): a crash. The next :meth:`start` recovers from the WAL."""
        if not self._running():
            self.pid = None
            return
        pid = self.pid or self._postmaster_pid()
        assert pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.pid = None

    def _running(self) -> bool:
        """Whether this cluster's postmaster runs: the process named in ``postmaster.pid``
        is alive and serves this data directory (a stale file's pid may be another's)."""
        pid = self.pid or self._postmaster_pid()
        if pid is None or not _alive(pid):
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return True  # no /proc: trust the pid file
        return str(self.data).encode() in cmdline

    # --- databases --------------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """A new, empty database (UTF8, from template0); its URL."""
        self._check_name(name)
        self.psql(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop the database, ending any session still connected to it."""
        self._check_name(name)
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` with psql over TCP (as the superuser); its output, unaligned."""
        result = subprocess.run(
            [
                *(str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"),
                *("-h", "127.0.0.1", "-p", str(self.port), "-U", _SUPERUSER, "-d", database),
                *("-c", sql),
            ],
            capture_output=True,
            text=True,
            env=_clean_env(),
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    # --- inside -----------------------------------------------------------------------

    @staticmethod
    def _check_name(name: str) -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a plain database name: {name!r}")

    def _run(
        self, command: list[str], *, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self._as_user + command,
            capture_output=True,
            text=True,
            env=_clean_env(),
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{Path(command[0]).name} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def _hand_over(self) -> None:
        """Give the directory to the postgres user and make sure that user can reach it."""
        user = pwd.getpwnam(_OS_USER)
        os.chown(self.directory, user.pw_uid, user.pw_gid)
        reachable = self._run(["test", "-w", str(self.directory)], check=False)
        if reachable.returncode != 0:
            raise RuntimeError(
                f"the {_OS_USER} user cannot write to {self.directory} (a parent directory "
                "closed to others?): use a directory it can reach, e.g. tempfile.mkdtemp()"
            )

    def _initdb(self) -> None:
        self._run(
            [str(self.bindir / "initdb"), "-D", str(self.data), "-U", _SUPERUSER]
            + ["--auth=trust", "--encoding=UTF8", "--locale=C"]
            + (["--no-sync"] if self.fast else []),
            timeout=120,
        )

    def _options(self) -> str:
        options = [
            f"-p {self.port}",
            f"-k {self.directory}",
            "-c listen_addresses=127.0.0.1",
            "-c max_connections=200",
        ]
        if self.fast:  # tests only: see the module's docstring
            options += ["-F", "-c synchronous_commit=off", "-c full_page_writes=off"]
        return " ".join(options)

    def _pg_ctl_start(self) -> bool:
        started = self._run(
            [
                *(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log)),
                *("-w", "-t", "60", "-o", self._options(), "start"),
            ],
            check=False,
            timeout=90,
        )
        return started.returncode == 0

    def _port_was_taken(self) -> bool:
        tail = self._log_tail()
        return "could not bind" in tail or "Address already in use" in tail

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data / "postmaster.pid").read_text().split("\n", 1)[0]
        except OSError:
            return None
        return int(first) if first.strip().isdigit() else None

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.psql("SELECT 1")
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
