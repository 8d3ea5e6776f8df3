"""A PostgreSQL server of our own on loopback: Debian's `postgresql` binaries, a fresh data
directory, a free port. The tests, the benchmarks and the local platform start one instead of
relying on a server that a machine may not run.

    with PostgresServer() as pg:
        psycopg.connect(pg.admin_dsn)  # user `postgres`, trust authentication on 127.0.0.1 only

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` account that
Debian's package creates, in a data directory owned by it.
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
from types import TracebackType

import psycopg

from permisos_sandbox.ports import free_port

DEBIAN_BINARIES = Path("/usr/lib/postgresql")
SERVICE_USER = "postgres"


def binaries() -> Path:
    """The newest installed `/usr/lib/postgresql/<major>/bin` (Debian's layout)."""
    found = sorted(
        (p.parent for p in DEBIAN_BINARIES.glob("*/bin/postgres")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError(
            f"no PostgreSQL server under {DEBIAN_BINARIES}: install Debian's `postgresql` "
            "package (make test and make run do)"
        )
    return found[-1]


class PostgresServer:
    """initdb into a new temporary directory, then `postgres` on 127.0.0.1:<port>, TCP only;
    everything is removed on stop.

    `durable=False` (the tests' choice) turns fsync off: a crash loses the data, which a
    throw-away server does not mind, and tests that commit often run several times faster.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        durable: bool = True,
        log_path: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.durable = durable
        self._directory: Path | None = None
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def data_directory(self) -> Path | None:
        """The cluster's data directory while the server runs."""
        return self._directory / "data" if self._directory else None

    @property
    def admin_dsn(self) -> str:
        """libpq URL of the `postgres` superuser's maintenance database."""
        return f"postgresql://{SERVICE_USER}@{self.host}:{self.port}/postgres"

    def url(self, database: str) -> str:
        """SQLAlchemy URL of `database` on this server (psycopg 3)."""
        return f"postgresql+psycopg://{SERVICE_USER}@{self.host}:{self.port}/{database}"

    def _account(self) -> tuple[int | None, int | None]:
        """The uid and gid to run PostgreSQL as: the service account when we are root."""
        if os.geteuid() != 0:
            return None, None
        account = pwd.getpwnam(SERVICE_USER)
        return account.pw_uid, account.pw_gid

    def start(self, timeout: float = 60.0) -> PostgresServer:
        """initdb and start; after `halt()`, starts again on the same port and data."""
        if self.running:
            return self
        fresh = self._directory is None
        if fresh:
            self._initdb()
        try:
            self._launch(timeout)
        except BaseException:
            # A restart that fails keeps the data, so it can be tried again or looked at.
            if fresh:
                self.stop()
            else:
                self.halt()
            raise
        return self

    def _initdb(self) -> None:
        bin_dir = binaries()
        uid, gid = self._account()
        # Under the system's temporary directory, which the service account can reach (a
        # directory of root's, such as pytest's, is not).
        self._directory = Path(tempfile.mkdtemp(prefix="permisos-pg-"))
        data = self._directory / "data"
        if uid is not None and gid is not None:
            os.chown(self._directory, uid, gid)
        initdb = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "--pgdata",
                str(data),
                "--username",
                SERVICE_USER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C.UTF-8",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            user=uid,
            group=gid,
        )
        if initdb.returncode != 0:
            self.stop()
            raise RuntimeError(f"initdb failed: {initdb.stderr.strip() or initdb.stdout.strip()}")

    def _launch(self, timeout: float) -> None:
        assert self._directory is not None
        uid, gid = self._account()
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": "",  # TCP only: nothing outside our directory is touched
            "max_connections": "300",
            "fsync": "on" if self.durable else "off",
            "synchronous_commit": "on" if self.durable else "off",
            "full_page_writes": "on" if self.durable else "off",
        }
        command = [str(binaries() / "postgres"), "-D", str(self._directory / "data")]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        log = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        try:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
                user=uid,
                group=gid,
            )
        finally:
            if self.log_path and not isinstance(log, int):
                log.close()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                raise RuntimeError(f"postgres exited with {code} while starting")
            try:
                with psycopg.connect(self.admin_dsn, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                time.sleep(0.1)  # polling a server coming up; there is no event to wait on
        raise TimeoutError(f"postgres did not accept connections on {self.host}:{self.port}")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def halt(self) -> None:
        """Fast shutdown (SIGINT: roll back sessions, close connections, exit), keeping the data
        directory and the port for `start()`: the database down, as in an outage."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process = None  # only now: `running` stays true while it shuts down

    def stop(self) -> None:
        """`halt()`, then remove the data directory."""
        self.halt()
        directory, self._directory = self._directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
