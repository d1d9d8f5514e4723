"""Throwaway PostgreSQL and MariaDB servers for the test suite.

Each ``PostgresServer`` / ``MariaDBServer`` owns a private data directory under ``/tmp`` and
listens on a free loopback port chosen at creation time.  The servers are real processes, so
fault-injection tests can ``kill()`` (SIGKILL) them, ``stop()`` them cleanly and ``start()``
them again; committed data survives a kill (crash recovery).

Setting ``DBWIRE_TEST_POSTGRES_URL`` / ``DBWIRE_TEST_MYSQL_URL`` lets the suite use an
existing server instead (see ``from_env``); such an ``ExternalServer`` refuses
``start``/``stop``/``kill`` because fault tests need a server they own.

Leftovers are handled three ways: an ``atexit`` hook cleans up every server this process
created, a tiny watchdog process (``python servers.py --watch DIR``) removes a server whose
owning process died without running ``atexit`` (SIGKILL, OOM, CI timeout), and each new
server first reaps directories left behind by dead owners.

This module is deliberately independent of pytest.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal, Protocol, Self
from urllib.parse import quote, unquote, urlsplit

__all__ = [
    "MYSQL_URL_ENV",
    "POSTGRES_URL_ENV",
    "DatabaseServer",
    "ExternalServer",
    "ExternalServerError",
    "MariaDBServer",
    "PostgresServer",
    "ServerUnavailable",
    "free_port",
]

POSTGRES_URL_ENV = "DBWIRE_TEST_POSTGRES_URL"
MYSQL_URL_ENV = "DBWIRE_TEST_MYSQL_URL"

Kind = Literal["postgresql", "mysql"]

_TMP_ROOT = Path("/tmp")
_DIR_PREFIX = "dbwire-test-"
_META_FILE = "dbwire-server.json"
_SERVER_PID_FILE = "server.pid"
_LOCALHOST = "127.0.0.1"


class ServerUnavailable(RuntimeError):
    """The binaries (or OS users) needed to run a throwaway server are missing."""


class ExternalServerError(RuntimeError):
    """A lifecycle operation was requested on a server this suite does not own."""


class DatabaseServer(Protocol):
    """What the fixtures hand out: a local throwaway server or an external one."""

    @property
    def kind(self) -> Kind: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def user(self) -> str: ...
    @property
    def password(self) -> str: ...
    @property
    def database(self) -> str: ...
    @property
    def socket_dir(self) -> str | None: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def url(self) -> str: ...
    @property
    def admin_url(self) -> str: ...

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def kill(self) -> None: ...
    def restart(self) -> None: ...
    def is_running(self) -> bool: ...
    def cleanup(self) -> None: ...
    def run_sql_admin(self, sql: str) -> None: ...
    def query_admin(self, sql: str) -> list[tuple[Any, ...]]: ...


# --------------------------------------------------------------------------- helpers


def free_port(host: str = _LOCALHOST) -> int:
    """Return a TCP port that is currently free on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 = state, 1 = ppid)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _proc_stat(pid)
    if fields is None:
        return False
    return fields[0] not in ("Z", "X")


def _start_time(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields is not None else None


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _proc_stat(int(entry.name))
        if fields is not None and fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _wait_dead(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(_pid_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _kill_tree(pid: int, timeout: float = 10.0) -> None:
    """SIGKILL ``pid`` and its direct children (PostgreSQL backends) and wait for them."""
    children = _children(pid)
    _signal(pid, signal.SIGKILL)
    for child in children:
        _signal(child, signal.SIGKILL)
    # A child forked between the scan and the kill notices postmaster death on its own.
    if not _wait_dead([pid, *children], timeout):
        raise RuntimeError(f"processes {[pid, *children]} survived SIGKILL")


def _read_pid(path: Path) -> int | None:
    try:
        first = path.read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        return None
    return int(first) if first.isdigit() else None


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _which(name: str, extra_dirs: tuple[str, ...] = ("/usr/sbin", "/usr/local/sbin")) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in extra_dirs:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _os_user(name: str, package: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ServerUnavailable(
            f"OS user {name!r} does not exist (install the {package!r} apt package)"
        ) from None


def _chown_tree(path: Path, account: pwd.struct_passwd) -> None:
    os.chown(path, account.pw_uid, account.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), account.pw_uid, account.pw_gid)


def _make_url(scheme: str, user: str, password: str, host: str, port: int, db: str) -> str:
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{db}"


# --------------------------------------------------------------------------- SQL helpers


@dataclass(frozen=True)
class _ConnParams:
    host: str
    port: int
    user: str
    password: str
    database: str
    ssl: Any = None  # an ssl.SSLContext for a server that refuses clear-text logins


def _pg_execute(params: _ConnParams, sql: str, fetch: bool = False) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(
        host=params.host,
        port=params.port,
        user=params.user,
        password=params.password,
        dbname=params.database,
        autocommit=True,
        connect_timeout=10,
    ) as conn:
        cur = conn.execute(sql.encode())
        if fetch and cur.description is not None:
            return list(cur.fetchall())
    return []


def _mysql_connect(params: _ConnParams, timeout: float = 10.0) -> Any:
    import pymysql
    from pymysql.constants import CLIENT

    return pymysql.connect(
        host=params.host,
        port=params.port,
        user=params.user,
        password=params.password,
        database=params.database or None,
        autocommit=True,
        connect_timeout=timeout,
        client_flag=CLIENT.MULTI_STATEMENTS,
        ssl=params.ssl,
    )


def _mysql_execute(params: _ConnParams, sql: str, fetch: bool = False) -> list[tuple[Any, ...]]:
    conn = _mysql_connect(params)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            rows: list[tuple[Any, ...]] = list(cur.fetchall()) if fetch else []
            while cur.nextset():  # surfaces errors from later statements
                pass
            return rows
    finally:
        conn.close()


def _execute(kind: Kind, params: _ConnParams, sql: str, fetch: bool) -> list[tuple[Any, ...]]:
    if kind == "postgresql":
        return _pg_execute(params, sql, fetch)
    return _mysql_execute(params, sql, fetch)


# --------------------------------------------------------------------------- leftovers

_registry_lock = threading.Lock()
_live: dict[int, _LocalServer] = {}
_reaped_stale = False


@atexit.register
def _cleanup_all() -> None:
    with _registry_lock:
        servers = list(_live.values())
    for server in servers:
        if server._owner_pid != os.getpid():  # forked child: not ours to clean up
            continue
        with contextlib.suppress(Exception):
            server.cleanup()


def _owner_dead(meta: dict[str, Any]) -> bool:
    pid = int(meta.get("owner_pid", 0))
    return not _pid_alive(pid) or _start_time(pid) != meta.get("owner_start")


def _reap_dir(base: Path) -> None:
    """Kill the server recorded in ``base`` (if it is still the same process) and delete it."""
    try:
        meta: dict[str, Any] = json.loads((base / _META_FILE).read_text())
    except (OSError, ValueError):
        meta = {}
    pid = _read_pid(base / _SERVER_PID_FILE)
    data_dir = str(meta.get("data_dir", base / "data"))
    if pid is not None and _pid_alive(pid) and data_dir in _cmdline(pid):
        with contextlib.suppress(Exception):
            _kill_tree(pid, timeout=5.0)
    shutil.rmtree(base, ignore_errors=True)


def _reap_stale_dirs() -> None:
    """Remove server directories whose owning process is gone (once per process)."""
    global _reaped_stale
    if _reaped_stale:
        return
    _reaped_stale = True
    for base in _TMP_ROOT.glob(f"{_DIR_PREFIX}*"):
        try:
            meta = json.loads((base / _META_FILE).read_text())
        except FileNotFoundError:
            # Metadata is written right after mkdtemp; only reap clearly abandoned dirs.
            with contextlib.suppress(OSError):
                if time.time() - base.stat().st_mtime > 300:
                    _reap_dir(base)
            continue
        except (OSError, ValueError):
            continue
        if _owner_dead(meta):
            _reap_dir(base)


def _watch(base: Path) -> int:
    """Watchdog loop: exits when ``base`` is gone, reaps it when its owner dies."""
    try:
        meta = json.loads((base / _META_FILE).read_text())
    except (OSError, ValueError):
        return 1
    while base.exists():
        if _owner_dead(meta):
            _reap_dir(base)
            return 0
        time.sleep(0.5)
    return 0


# --------------------------------------------------------------------------- servers


class _LocalServer(ABC):
    """Shared lifecycle of a throwaway server living in its own temp directory."""

    kind: ClassVar[Kind]
    scheme: ClassVar[str]
    env_var: ClassVar[str]
    admin_user: ClassVar[str]
    admin_database: ClassVar[str]
    os_account: ClassVar[str]
    apt_package: ClassVar[str]
    #: Names the temp directory and the metadata when ``kind`` does not (a proxy in front).
    label: ClassVar[str] = ""

    def __init__(self, *, user: str = "dbwire", database: str = "dbwire") -> None:
        self._find_binaries()
        self._account: pwd.struct_passwd | None = (
            _os_user(self.os_account, self.apt_package) if os.geteuid() == 0 else None
        )
        self.host: str = _LOCALHOST
        self.port: int = free_port()
        self.user: str = user
        self.password: str = secrets.token_urlsafe(24)
        self.database: str = database
        self.admin_password: str = secrets.token_urlsafe(24)
        #: Seconds the last ``start()`` took (first start includes initialisation).
        self.last_start_seconds: float | None = None

        _reap_stale_dirs()
        self.base_dir: Path = Path(
            tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{self.label or self.kind}-", dir=_TMP_ROOT)
        )
        os.chmod(self.base_dir, 0o755)
        self.data_dir: Path = self.base_dir / "data"
        self.log_file: Path = self.base_dir / "server.log"
        self.socket_dir: str = str(self.base_dir)
        self._owner_pid = os.getpid()
        self._lock = threading.RLock()
        self._initialized = False
        self._bootstrapped = False
        self._cleaned = False
        (self.base_dir / _META_FILE).write_text(
            json.dumps(
                {
                    "kind": self.label or self.kind,
                    "owner_pid": self._owner_pid,
                    "owner_start": _start_time(self._owner_pid),
                    # _reap_dir kills the recorded pid only if this path is in its cmdline.
                    "data_dir": str(self._reap_marker()),
                }
            )
        )
        with _registry_lock:
            _live[id(self)] = self
        if self._account is not None:
            _chown_tree(self.base_dir, self._account)
        self._watchdog: subprocess.Popen[bytes] | None = self._spawn_watchdog()

    # -- subclass hooks -------------------------------------------------------------

    @abstractmethod
    def _find_binaries(self) -> None: ...

    @abstractmethod
    def _initialize(self) -> None: ...

    @abstractmethod
    def _launch(self) -> int:
        """Start the server process, wait until it accepts TCP connections, return its pid."""

    @abstractmethod
    def _bootstrap(self) -> None: ...

    @abstractmethod
    def _clean_shutdown(self) -> None: ...

    @abstractmethod
    def _remove_stale_files(self) -> None: ...

    @property
    @abstractmethod
    def pid(self) -> int | None:
        """Pid of the running server process (None when it is not running)."""

    def _reap_marker(self) -> Path:
        """A path on the server's command line, so a leftover is killed only if it is ours."""
        return self.data_dir

    # -- public API -----------------------------------------------------------------

    @classmethod
    def from_env(cls, var: str | None = None) -> ExternalServer | None:
        """An ``ExternalServer`` for the URL in ``var`` (default: the class's env var)."""
        name = var or cls.env_var
        url = os.environ.get(name, "").strip()
        if not url:
            return None
        admin_url = os.environ.get(name.removesuffix("_URL") + "_ADMIN_URL", "").strip()
        return ExternalServer(url, admin_url=admin_url or None, source=name)

    @property
    def url(self) -> str:
        return _make_url(self.scheme, self.user, self.password, self.host, self.port, self.database)

    @property
    def admin_url(self) -> str:
        return _make_url(
            self.scheme,
            self.admin_user,
            self.admin_password,
            self.host,
            self.port,
            self.admin_database,
        )

    def start(self) -> None:
        """Start the server (initialising the data directory the first time). Idempotent."""
        with self._lock:
            if self._cleaned:
                raise RuntimeError(f"{self!r} was cleaned up and cannot be started again")
            if self.is_running():
                return
            began = time.monotonic()
            if not self._initialized:
                self._initialize()
                self._initialized = True
            self._remove_stale_files()
            pid = self._launch()
            (self.base_dir / _SERVER_PID_FILE).write_text(f"{pid}\n")
            if not self._bootstrapped:
                self._bootstrap()
                self._bootstrapped = True
            self.last_start_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Shut the server down cleanly and wait for it to exit. No-op if not running."""
        with self._lock:
            if not self.is_running():
                return
            self._clean_shutdown()

    def kill(self) -> None:
        """SIGKILL the server (PostgreSQL: the postmaster and its backends) and wait."""
        with self._lock:
            pid = self.pid
            if pid is None or not self.is_running():
                return
            _kill_tree(pid)
            self._reap_child()

    def restart(self) -> None:
        with self._lock:
            self.stop()
            self.start()

    def is_running(self) -> bool:
        pid = self.pid
        return pid is not None and _pid_alive(pid)

    def cleanup(self) -> None:
        """Stop the server (killing it if a clean stop fails) and delete its directory."""
        with self._lock:
            if self._cleaned:
                return
            try:
                self.stop()
            except Exception:
                with contextlib.suppress(Exception):
                    self.kill()
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self._cleaned = True
            if self._watchdog is not None:
                with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                    self._watchdog.kill()
                    self._watchdog.wait(timeout=5)
            with _registry_lock:
                _live.pop(id(self), None)

    def run_sql_admin(self, sql: str) -> None:
        """Execute ``sql`` as the superuser with autocommit.

        ``sql`` may hold several ``;``-separated statements; PostgreSQL then runs them in
        one implicit transaction, so statements like CREATE DATABASE need their own call.
        """
        _execute(self.kind, self._admin_params(), sql, fetch=False)

    def query_admin(self, sql: str) -> list[tuple[Any, ...]]:
        """Execute ``sql`` as the superuser and return the rows of its (first) result."""
        return _execute(self.kind, self._admin_params(), sql, fetch=True)

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
        return f"<{type(self).__name__} {self.host}:{self.port} {state} dir={self.base_dir}>"

    # -- internals ------------------------------------------------------------------

    def _admin_params(self) -> _ConnParams:
        return _ConnParams(
            self.host, self.port, self.admin_user, self.admin_password, self.admin_database
        )

    def _reap_child(self) -> None:
        """Collect the exit status of a server process that is our direct child."""
        return None

    def _as_account(self, argv: list[str]) -> list[str]:
        if self._account is None:
            return argv
        runuser = _which("runuser")
        if runuser is None:
            raise ServerUnavailable("'runuser' not found (install the 'util-linux' apt package)")
        return [runuser, "-u", self._account.pw_name, "--", *argv]

    def _run(self, argv: list[str], what: str, timeout: float = 120.0) -> None:
        proc = subprocess.run(
            argv,
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{what} failed (exit {proc.returncode}): {shlex.join(argv)}\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}\n"
                f"--- {self.log_file} ---\n{_tail(self.log_file)}"
            )

    def _spawn_watchdog(self) -> subprocess.Popen[bytes] | None:
        try:
            return subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--watch", str(self.base_dir)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                cwd="/",
            )
        except OSError:
            return None


class PostgresServer(_LocalServer):
    """A throwaway PostgreSQL cluster: ``dbwire`` role/database, scram over TCP."""

    kind = "postgresql"
    scheme = "postgresql"
    env_var = POSTGRES_URL_ENV
    admin_user = "postgres"
    admin_database = "postgres"
    os_account = "postgres"
    apt_package = "postgresql"

    def __init__(self, *, user: str = "dbwire", database: str = "dbwire") -> None:
        self.bindir: Path = Path()
        self._postmaster_pid: int | None = None
        super().__init__(user=user, database=database)

    @staticmethod
    def find_bindir() -> Path:
        """``$DBWIRE_TEST_PG_BINDIR``, ``pg_config --bindir``, newest /usr/lib/postgresql/*."""
        needed = ("initdb", "pg_ctl", "postgres")
        candidates: list[Path] = []
        if override := os.environ.get("DBWIRE_TEST_PG_BINDIR"):
            candidates.append(Path(override))
        if pg_config := shutil.which("pg_config"):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                out = subprocess.run(
                    [pg_config, "--bindir"], capture_output=True, text=True, timeout=10
                ).stdout.strip()
                if out:
                    candidates.append(Path(out))

        def version(path: Path) -> tuple[int, ...]:
            name = path.parent.name
            return tuple(int(p) for p in name.split(".") if p.isdigit()) or (0,)

        candidates.extend(
            sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
        )
        if initdb := shutil.which("initdb"):
            candidates.append(Path(initdb).parent)
        for candidate in candidates:
            if all((candidate / tool).is_file() for tool in needed):
                return candidate
        missing = next(
            (t for t in needed if not any((c / t).is_file() for c in candidates)), "initdb"
        )
        raise ServerUnavailable(
            f"PostgreSQL binary {missing!r} not found (looked in pg_config --bindir, "
            "/usr/lib/postgresql/*/bin and PATH); install the 'postgresql' apt package"
        )

    @property
    def pid(self) -> int | None:
        return self._postmaster_pid

    @property
    def version(self) -> str:
        return self.bindir.parent.name

    def _find_binaries(self) -> None:
        self.bindir = self.find_bindir()

    def _initialize(self) -> None:
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self.admin_password + "\n")
        if self._account is not None:
            os.chown(pwfile, self._account.pw_uid, self._account.pw_gid)
        try:
            self._run(
                self._as_account(
                    [
                        str(self.bindir / "initdb"),
                        "-D",
                        str(self.data_dir),
                        "-U",
                        self.admin_user,
                        "--auth-host=scram-sha-256",
                        "--auth-local=trust",
                        f"--pwfile={pwfile}",
                        "-E",
                        "UTF8",
                        "--locale=C",
                        "--no-sync",
                    ]
                ),
                "initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _extra_options(self) -> list[str]:
        """A subclass's extra ``-c name=value`` server options."""
        return []

    def _remove_stale_files(self) -> None:
        lock = self.data_dir / "postmaster.pid"
        old = _read_pid(lock)
        if old is not None and not _pid_alive(old):
            lock.unlink(missing_ok=True)
            sock = Path(self.socket_dir) / f".s.PGSQL.{self.port}"
            sock.unlink(missing_ok=True)
            Path(f"{sock}.lock").unlink(missing_ok=True)

    def _launch(self) -> int:
        options = " ".join(
            [
                f"-c listen_addresses={self.host}",
                f"-p {self.port}",
                f"-k {shlex.quote(self.socket_dir)}",
                "-c fsync=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
                *self._extra_options(),
            ]
        )
        self._run(
            self._as_account(
                [
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    str(self.log_file),
                    "-o",
                    options,
                    "start",
                ]
            ),
            "pg_ctl start",
        )
        pid = _read_pid(self.data_dir / "postmaster.pid")
        if pid is None:
            raise RuntimeError(f"postmaster.pid missing after start\n{_tail(self.log_file)}")
        self._postmaster_pid = pid
        return pid

    def _bootstrap(self) -> None:
        from psycopg import sql

        self.run_sql_admin(
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}")
            .format(sql.Identifier(self.user), sql.Literal(self.password))
            .as_string(None)
        )
        self.run_sql_admin(
            sql.SQL("CREATE DATABASE {} OWNER {}")
            .format(sql.Identifier(self.database), sql.Identifier(self.user))
            .as_string(None)
        )

    def _clean_shutdown(self) -> None:
        pid = self._postmaster_pid
        self._run(
            self._as_account(
                [
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "60",
                    "stop",
                ]
            ),
            "pg_ctl stop",
        )
        if pid is not None and not _wait_dead([pid], 30.0):
            raise RuntimeError(f"postmaster {pid} still alive after pg_ctl stop")


class MariaDBServer(_LocalServer):
    """A throwaway MariaDB server: ``dbwire`` user/database, password auth over TCP."""

    kind = "mysql"
    scheme = "mysql"
    env_var = MYSQL_URL_ENV
    admin_user = "root"
    admin_database = "mysql"
    os_account = "mysql"
    apt_package = "mariadb-server"

    def __init__(self, *, user: str = "dbwire", database: str = "dbwire") -> None:
        self.install_db: str = ""
        self.mariadbd: str = ""
        self._proc: subprocess.Popen[bytes] | None = None
        super().__init__(user=user, database=database)
        self.socket_path: str = str(self.base_dir / "mysqld.sock")
        self.pid_file: Path = self.base_dir / "mariadbd.pid"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _find_binaries(self) -> None:
        install_db = _which("mariadb-install-db") or _which("mysql_install_db")
        if install_db is None:
            raise ServerUnavailable(
                "MariaDB binary 'mariadb-install-db' not found; "
                "install the 'mariadb-server' apt package"
            )
        mariadbd = _which("mariadbd") or _which("mysqld")
        if mariadbd is None:
            raise ServerUnavailable(
                "MariaDB binary 'mariadbd' not found; install the 'mariadb-server' apt package"
            )
        self.install_db, self.mariadbd = install_db, mariadbd

    def _user_args(self) -> list[str]:
        return [f"--user={self._account.pw_name}"] if self._account is not None else []

    # A subclass's extra mariadbd options, and the TLS context its own logins then need.
    _client_ssl: Any = None

    def _extra_args(self) -> list[str]:
        return []

    def _admin_params(self) -> _ConnParams:
        return _ConnParams(
            self.host,
            self.port,
            self.admin_user,
            self.admin_password,
            self.admin_database,
            self._client_ssl,
        )

    def _initialize(self) -> None:
        self._run(
            [
                self.install_db,
                "--no-defaults",
                *self._user_args(),
                f"--basedir={Path(self.mariadbd).resolve().parent.parent}",
                f"--datadir={self.data_dir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            "mariadb-install-db",
        )

    def _remove_stale_files(self) -> None:
        for path in (self.socket_path, f"{self.socket_path}.lock", str(self.pid_file)):
            Path(path).unlink(missing_ok=True)

    def _launch(self) -> int:
        argv = [
            self.mariadbd,
            "--no-defaults",
            f"--datadir={self.data_dir}",
            f"--socket={self.socket_path}",
            f"--port={self.port}",
            f"--bind-address={self.host}",
            f"--pid-file={self.pid_file}",
            *self._user_args(),
            "--skip-log-bin",
            "--skip-name-resolve",
            # 2 (not 0): every commit reaches the OS, so it survives a SIGKILL; no fsync.
            "--innodb-flush-log-at-trx-commit=2",
            "--max-connections=300",
            *self._extra_args(),
        ]
        with open(self.log_file, "ab") as log:
            self._proc = subprocess.Popen(
                argv,
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(timeout=30.0)
        except BaseException:
            with contextlib.suppress(Exception):
                self.kill()
            raise
        return self._proc.pid

    def _wait_ready(self, timeout: float) -> None:
        import pymysql

        assert self._proc is not None
        password = self.admin_password if self._bootstrapped else ""
        params = _ConnParams(self.host, self.port, self.admin_user, password, "", self._client_ssl)
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"mariadbd exited with {self._proc.returncode} during startup\n"
                    f"{_tail(self.log_file)}"
                )
            try:
                _mysql_connect(params, timeout=2.0).close()
                return
            except pymysql.err.OperationalError as exc:
                if exc.args and exc.args[0] == 1045:  # access denied: the server is up
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"mariadbd did not accept TCP connections on {self.host}:{self.port} "
                    f"within {timeout:.0f}s\n{_tail(self.log_file)}"
                )
            time.sleep(0.05)

    def _bootstrap(self) -> None:
        conn = _mysql_connect(
            _ConnParams(self.host, self.port, self.admin_user, "", "", self._client_ssl)
        )
        try:
            with conn.cursor() as cur:
                loopback = ("localhost", "127.0.0.1", "::1")
                cur.execute("SELECT User, Host FROM mysql.user WHERE is_role = 'N'")
                accounts: list[tuple[str, str]] = list(cur.fetchall())
                # Anonymous users would shadow dbwire@'%'; root@<hostname> is unusable under
                # --skip-name-resolve (ALTER USER fails), so only loopback root accounts stay.
                stale = [
                    (user, host)
                    for user, host in accounts
                    if user == "" or (user == self.admin_user and host not in loopback)
                ]
                if stale:
                    cur.execute(
                        "DELETE FROM mysql.global_priv WHERE "
                        + " OR ".join(["(User = %s AND Host = %s)"] * len(stale)),
                        [value for account in stale for value in account],
                    )
                    cur.execute("FLUSH PRIVILEGES")
                cur.execute(f"CREATE DATABASE `{self.database}`")
                for host in ("%", *loopback):
                    cur.execute(
                        "CREATE USER %s@%s IDENTIFIED BY %s", (self.user, host, self.password)
                    )
                    cur.execute(f"GRANT ALL ON `{self.database}`.* TO %s@%s", (self.user, host))
                # Root last: this connection stays authenticated while passwords change.
                for user, host in accounts:
                    if user == self.admin_user and host in loopback:
                        cur.execute(
                            "ALTER USER %s@%s IDENTIFIED BY %s", (user, host, self.admin_password)
                        )
                cur.execute("FLUSH PRIVILEGES")
        finally:
            conn.close()

    def _clean_shutdown(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                f"mariadbd {self._proc.pid} ignored SIGTERM\n{_tail(self.log_file)}"
            ) from None

    def _reap_child(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=10)


class ExternalServer:
    """A server given by URL (``DBWIRE_TEST_*_URL``); the suite must not stop or kill it."""

    def __init__(self, url: str, *, admin_url: str | None = None, source: str = "") -> None:
        parts = urlsplit(url)
        scheme = parts.scheme.split("+", 1)[0].lower()
        if scheme in ("postgresql", "postgres"):
            self.kind: Kind = "postgresql"
            default_port = 5432
        elif scheme in ("mysql", "mariadb"):
            self.kind = "mysql"
            default_port = 3306
        else:
            raise ValueError(f"unsupported database URL scheme {parts.scheme!r} in {source}")
        self.source = source
        self.host: str = parts.hostname or _LOCALHOST
        self.port: int = parts.port or default_port
        self.user: str = unquote(parts.username or "")
        self.password: str = unquote(parts.password or "")
        self.database: str = unquote(parts.path.lstrip("/"))
        self.socket_dir: str | None = None
        self.pid: int | None = None
        self._query = f"?{parts.query}" if parts.query else ""
        self._admin = ExternalServer(admin_url, source=f"{source} admin") if admin_url else None

    @property
    def url(self) -> str:
        scheme = "postgresql" if self.kind == "postgresql" else "mysql"
        base = _make_url(scheme, self.user, self.password, self.host, self.port, self.database)
        return base + self._query

    @property
    def admin_url(self) -> str:
        return self._admin.url if self._admin is not None else self.url

    def _refuse(self, action: str) -> ExternalServerError:
        return ExternalServerError(
            f"cannot {action} the external server from ${self.source} ({self.host}:{self.port}): "
            "fault tests need a throwaway server; unset the variable to let the suite "
            "start its own"
        )

    def start(self) -> None:
        if not self.is_running():
            raise self._refuse("start")

    def stop(self) -> None:
        raise self._refuse("stop")

    def kill(self) -> None:
        raise self._refuse("kill")

    def restart(self) -> None:
        raise self._refuse("restart")

    def is_running(self) -> bool:
        """True if the server accepts TCP connections."""
        try:
            with socket.create_connection((self.host, self.port), timeout=2.0):
                return True
        except OSError:
            return False

    def cleanup(self) -> None:
        """Nothing to clean up: the server is not ours."""

    def _admin_params(self) -> _ConnParams:
        target = self._admin or self
        return _ConnParams(target.host, target.port, target.user, target.password, target.database)

    def run_sql_admin(self, sql: str) -> None:
        _execute(self.kind, self._admin_params(), sql, fetch=False)

    def query_admin(self, sql: str) -> list[tuple[Any, ...]]:
        return _execute(self.kind, self._admin_params(), sql, fetch=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"<ExternalServer {self.kind} {self.host}:{self.port} from ${self.source}>"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--watch":
        sys.exit(_watch(Path(sys.argv[2])))
    sys.exit(f"usage: {sys.argv[0]} --watch DIR")
