"""A throwaway PgBouncer in front of a PostgreSQL server, on its own free loopback port.

The ini and userlist live in a private temp directory; PgBouncer refuses to run as root,
so as root it runs as the ``postgres`` OS user (as the PostgreSQL fixture does). It
starts daemonised with a pidfile and is stopped by that pid; the directory carries the
same metadata as ``servers.local`` servers, so the watchdog and the reaping of leftovers
remove a PgBouncer whose owner died.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Literal, Self
from urllib.parse import quote

from servers.local import (
    _DIR_PREFIX,
    _META_FILE,
    _SERVER_PID_FILE,
    _TMP_ROOT,
    DatabaseServer,
    ServerUnavailable,
    _os_user,
    _pid_alive,
    _read_pid,
    _reap_stale_dirs,
    _start_time,
    _tail,
    _which,
    free_port,
)

__all__ = ["PgBouncerServer"]

PoolMode = Literal["session", "transaction", "statement"]


class PgBouncerServer:
    """PgBouncer for ``upstream``'s database and login, in ``pool_mode`` pooling."""

    def __init__(
        self,
        upstream: DatabaseServer,
        *,
        pool_mode: PoolMode = "transaction",
        default_pool_size: int = 4,
    ) -> None:
        binary = _which("pgbouncer")
        if binary is None:
            raise ServerUnavailable(
                "'pgbouncer' not found (install the 'pgbouncer' apt package; "
                "./scripts/install-servers does)"
            )
        self.binary = binary
        self._account: pwd.struct_passwd | None = (
            _os_user("postgres", "postgresql") if os.geteuid() == 0 else None
        )
        self.upstream = upstream
        self.pool_mode = pool_mode
        self.default_pool_size = default_pool_size
        self.host = "127.0.0.1"
        self.port = free_port()
        self.admin_password = secrets.token_urlsafe(16)
        _reap_stale_dirs()
        self.base_dir = Path(tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}pgbouncer-", dir=_TMP_ROOT))
        os.chmod(self.base_dir, 0o755)
        self.ini = self.base_dir / "pgbouncer.ini"
        self.log_file = self.base_dir / "pgbouncer.log"
        self._pidfile = self.base_dir / "pgbouncer.pid"
        self._cleaned = False
        owner = os.getpid()
        (self.base_dir / _META_FILE).write_text(
            json.dumps(
                {
                    "kind": "pgbouncer",
                    "owner_pid": owner,
                    "owner_start": _start_time(owner),
                    # _reap_dir kills the recorded pid only if this path is in its cmdline.
                    "data_dir": str(self.ini),
                }
            )
        )
        self._write_config()
        self._watchdog = self._spawn_watchdog()

    # -- configuration -------------------------------------------------------------

    def _write_config(self) -> None:
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
                    "admin_users = pgbouncer_admin",
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
            f'"{up.user}" "{up.password}"\n"pgbouncer_admin" "{self.admin_password}"\n'
        )
        os.chmod(userlist, 0o600)
        if self._account is not None:
            for path in (self.base_dir, self.ini, userlist, self.base_dir / _META_FILE):
                os.chown(path, self._account.pw_uid, self._account.pw_gid)

    # -- lifecycle -----------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        pid = _read_pid(self._pidfile)
        return pid if pid is not None and _pid_alive(pid) else None

    def is_running(self) -> bool:
        return self.pid is not None

    def start(self) -> None:
        if self._cleaned:
            raise RuntimeError(f"{self!r} was cleaned up and cannot be started again")
        if self.is_running():
            return
        argv = [self.binary, "-d", str(self.ini)]
        if self._account is not None:
            runuser = _which("runuser")
            if runuser is None:
                raise ServerUnavailable("'runuser' not found (install 'util-linux')")
            argv = [runuser, "-u", self._account.pw_name, "--", *argv]
        proc = subprocess.run(
            argv,
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            start_new_session=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"pgbouncer failed (exit {proc.returncode}): {proc.stderr}\n{_tail(self.log_file)}"
            )
        deadline = time.monotonic() + 20
        while True:
            pid = self.pid
            if pid is not None and self._accepts():
                (self.base_dir / _SERVER_PID_FILE).write_text(f"{pid}\n")
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not start\n{_tail(self.log_file)}")
            time.sleep(0.05)

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def stop(self) -> None:
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

    def cleanup(self) -> None:
        if self._cleaned:
            return
        with contextlib.suppress(Exception):
            self.stop()
        import shutil

        shutil.rmtree(self.base_dir, ignore_errors=True)
        self._cleaned = True
        if self._watchdog is not None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self._watchdog.kill()
                self._watchdog.wait(timeout=5)

    def _spawn_watchdog(self) -> subprocess.Popen[bytes] | None:
        import servers.local

        try:
            return subprocess.Popen(
                [sys.executable, servers.local.__file__, "--watch", str(self.base_dir)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                cwd="/",
            )
        except OSError:
            return None

    # -- addresses -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """The upstream's login and database, through PgBouncer."""
        up = self.upstream
        return (
            f"postgresql://{quote(up.user, safe='')}:{quote(up.password, safe='')}"
            f"@{self.host}:{self.port}/{up.database}"
        )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        state = "cleaned" if self._cleaned else ("running" if self.is_running() else "stopped")
        return f"<PgBouncerServer {self.host}:{self.port} {self.pool_mode} {state}>"
