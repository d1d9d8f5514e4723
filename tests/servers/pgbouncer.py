"""A throwaway PgBouncer in front of a PostgreSQL server, on its own free loopback port.

The ini and userlist live in a private temp directory; PgBouncer refuses to run as root,
so as root it runs as the ``postgres`` OS user (as the PostgreSQL fixture does). It
starts daemonised with a pidfile and is stopped by that pid. The lifecycle is
``servers.local``'s: atexit cleanup, the watchdog and the reaping of leftovers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path
from typing import Literal

from servers.local import (
    _META_FILE,
    DatabaseServer,
    ServerUnavailable,
    _LocalServer,
    _pid_alive,
    _read_pid,
    _tail,
    _which,
)

__all__ = ["PgBouncerServer"]

PoolMode = Literal["session", "transaction", "statement"]


class PgBouncerServer(_LocalServer):
    """PgBouncer for ``upstream``'s database and login, in ``pool_mode`` pooling."""

    kind = "postgresql"  # it speaks the PostgreSQL protocol (and its admin console does)
    label = "pgbouncer"
    scheme = "postgresql"
    env_var = ""  # never an external PgBouncer: from_env finds nothing
    admin_user = "pgbouncer_admin"
    admin_database = "pgbouncer"
    os_account = "postgres"
    apt_package = "postgresql"

    def __init__(
        self,
        upstream: DatabaseServer,
        *,
        pool_mode: PoolMode = "transaction",
        default_pool_size: int = 4,
    ) -> None:
        self.binary = ""
        self.upstream = upstream
        self.pool_mode = pool_mode
        self.default_pool_size = default_pool_size
        super().__init__(user=upstream.user, database=upstream.database)
        # The upstream's login, passed through: url is the upstream's through PgBouncer.
        self.password = upstream.password
        self.log_file = self.base_dir / "pgbouncer.log"
        self._pidfile = self.base_dir / "pgbouncer.pid"

    @property
    def ini(self) -> Path:
        return self.base_dir / "pgbouncer.ini"

    # -- lifecycle hooks -----------------------------------------------------------

    def _find_binaries(self) -> None:
        binary = _which("pgbouncer")
        if binary is None:
            raise ServerUnavailable(
                "'pgbouncer' not found (install the 'pgbouncer' apt package; "
                "./scripts/install-servers does)"
            )
        self.binary = binary

    def _reap_marker(self) -> Path:
        return self.ini

    @property
    def pid(self) -> int | None:
        pid = _read_pid(self._pidfile)
        return pid if pid is not None and _pid_alive(pid) else None

    def _initialize(self) -> None:
        up = self.upstream
        self.ini.write_text(
            "\n".join(
                [
                    "[databases]",
                    f"{up.database} = host={up.host} port={up.port} dbname={up.database}",
                    "",
                    "[pgbouncer]",
                    f"listen_addr = {self.host}",
                    f"listen_port = {self.port}",
                    f"unix_socket_dir = {self.base_dir}",
                    "auth_type = scram-sha-256",
                    f"auth_file = {self.base_dir / 'userlist.txt'}",
                    f"pool_mode = {self.pool_mode}",
                    f"default_pool_size = {self.default_pool_size}",
                    "max_client_conn = 500",
                    f"admin_users = {self.admin_user}",
                    f"logfile = {self.log_file}",
                    f"pidfile = {self._pidfile}",
                    # SQLAlchemy's drivers send no other startup parameter by default.
                    "ignore_startup_parameters = extra_float_digits",
                    "",
                ]
            )
        )
        userlist = self.base_dir / "userlist.txt"
        # Plain passwords: PgBouncer needs them to log in to the server with SCRAM.
        userlist.write_text(
            f'"{up.user}" "{up.password}"\n"{self.admin_user}" "{self.admin_password}"\n'
        )
        os.chmod(userlist, 0o600)
        if self._account is not None:
            for path in (self.base_dir, self.ini, userlist, self.base_dir / _META_FILE):
                os.chown(path, self._account.pw_uid, self._account.pw_gid)

    def _remove_stale_files(self) -> None:
        # After kill(), PgBouncer takes an unreaped (zombie) pid in its pidfile for a live
        # instance and refuses to start.
        old = _read_pid(self._pidfile)
        if old is not None and not _pid_alive(old):
            self._pidfile.unlink(missing_ok=True)

    def _launch(self) -> int:
        self._run(self._as_account([self.binary, "-d", str(self.ini)]), "pgbouncer", timeout=30)
        deadline = time.monotonic() + 20
        while True:
            pid = self.pid
            if pid is not None and self._accepts():
                return pid
            if time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not start\n{_tail(self.log_file)}")
            time.sleep(0.05)

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def _bootstrap(self) -> None:
        """Nothing to create: the logins are the upstream's."""

    def _clean_shutdown(self) -> None:
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)  # immediate shutdown
        deadline = time.monotonic() + 10
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.02)
