"""Conformance of dbwire.credentials.resolve_pg with the real libpq, case by case.

Every case runs PQconnectStart() in the same process: libpq resolves its options
(service file, PG* variables, .pgpass) before any network I/O, and PQhost/PQport/
PQuser/PQdb/PQpass then report its choices.  Each case is run against every libpq
available here: the one bundled in psycopg's binary wheel (18) and the system's
(Debian's libpq5, 15), with resolve_pg(libpq_version=...) set to match.

Hosts are 127.0.0.x on ports where nothing listens, or socket directories that do
not exist, so nothing is ever resolved through DNS or sent off this machine.
Multi-host cases drive PQconnectPoll() to walk the list, since libpq only shows
the host it is currently trying.  Mapping cases marked `expand` go to libpq as
keyword/value arrays through PQconnectStartParams(expand_dbname=1) (via ctypes, on
the very library psycopg loaded), so a dbname that is itself a connection string is
expanded by libpq as resolve_pg expands it.
"""

from __future__ import annotations

import ctypes
import glob
import os
import select
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import psycopg.pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbwire.credentials import PgpassWarning, parse_conninfo, resolve_pg
from dbwire.credentials._libpq import keywords, parse_int_param
from dbwire.errors import ConfigError

# --------------------------------------------------------------------------- libpq


@dataclass(frozen=True)
class Libpq:
    """One loaded libpq: psycopg's pq module (binary) or its ctypes twin (system)."""

    name: str
    module: Any

    @property
    def version(self) -> int:
        return int(self.module.version()) // 10000

    def cdll(self) -> ctypes.CDLL:
        """The same shared library through ctypes, for calls psycopg does not wrap."""
        if self.module is not psycopg.pq or psycopg.pq.__impl__ != "binary":
            # pq_ctypes (and psycopg_c) use the system's libpq; a CDLL of our own, so
            # the argtypes set below do not change pq_ctypes' functions.
            from psycopg.pq import _pq_ctypes

            return ctypes.CDLL(_pq_ctypes.pq._name)
        import psycopg_binary

        libs = os.path.join(os.path.dirname(psycopg_binary.__file__), "..", "psycopg_binary.libs")
        (path,) = glob.glob(os.path.join(libs, "libpq*.so*"))
        # dlopen() of an already loaded path returns the very library psycopg uses.
        return ctypes.CDLL(path)


def _backends() -> list[Libpq]:
    found = [Libpq("bundled", psycopg.pq)]
    try:
        from psycopg.pq import pq_ctypes

        if pq_ctypes.version() // 10000 != psycopg.pq.version() // 10000:
            found.append(Libpq("system", pq_ctypes))
    except Exception:  # no system libpq: only the bundled one is compared
        pass
    return found


BACKENDS = _backends()


@pytest.fixture(params=BACKENDS, ids=lambda b: f"libpq{b.version}")
def libpq(request: pytest.FixtureRequest) -> Libpq:
    backend: Libpq = request.param
    return backend


def _dead_port() -> int:
    # Bound then closed: nothing listens there, and connect() just gets refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Observed:
    targets: list[tuple[str, str, str]]
    user: str
    db: str
    status: int
    error: str
    info: dict[str, str | None]


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", "surrogateescape")


def observe(backend: Libpq, conninfo: str, *, walk: bool) -> Observed:
    """Run PQconnectStart and read back what libpq chose (walking the hosts if asked)."""
    conn = backend.module.PGconn.connect_start(conninfo.encode("utf-8", "surrogateescape"))
    try:

        def current() -> tuple[str, str, str]:
            return (_text(conn.host), _text(conn.port), _text(conn.password))

        seen = [current()]
        user, db = _text(conn.user), _text(conn.db)
        status = int(conn.status)
        error = _text(conn.error_message)
        info = {_text(o.keyword): (None if o.val is None else _text(o.val)) for o in conn.info}
        if walk:
            for _ in range(60):
                if conn.status == psycopg.pq.ConnStatus.BAD:
                    break
                state = conn.connect_poll()
                if seen[-1] != current():
                    seen.append(current())
                if state in (psycopg.pq.PollingStatus.FAILED, psycopg.pq.PollingStatus.OK):
                    break
                try:
                    fd = conn.socket
                except psycopg.OperationalError:
                    break
                if state == psycopg.pq.PollingStatus.READING:
                    select.select([fd], [], [], 2)
                else:
                    select.select([], [fd], [], 2)
        return Observed(seen, user, db, status, error, info)
    finally:
        conn.finish()


class _ConninfoOption(ctypes.Structure):
    _fields_ = [
        ("keyword", ctypes.c_char_p),
        ("envvar", ctypes.c_char_p),
        ("compiled", ctypes.c_char_p),
        ("val", ctypes.c_char_p),
        ("label", ctypes.c_char_p),
        ("dispchar", ctypes.c_char_p),
        ("dispsize", ctypes.c_int),
    ]


def observe_params(backend: Libpq, params: dict[str, str | None]) -> Observed:
    """PQconnectStartParams(keywords, values, expand_dbname=1) and what libpq chose."""
    lib = backend.cdll()
    lib.PQconnectStartParams.restype = ctypes.c_void_p
    lib.PQconnectStartParams.argtypes = [
        ctypes.POINTER(ctypes.c_char_p),
        ctypes.POINTER(ctypes.c_char_p),
        ctypes.c_int,
    ]
    for name in ("PQhost", "PQport", "PQpass", "PQuser", "PQdb", "PQerrorMessage"):
        getattr(lib, name).restype = ctypes.c_char_p
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    lib.PQstatus.restype = ctypes.c_int
    lib.PQstatus.argtypes = [ctypes.c_void_p]
    lib.PQconninfo.restype = ctypes.POINTER(_ConninfoOption)
    lib.PQconninfo.argtypes = [ctypes.c_void_p]
    lib.PQconninfoFree.argtypes = [ctypes.POINTER(_ConninfoOption)]
    lib.PQfinish.argtypes = [ctypes.c_void_p]
    given = [(k, v) for k, v in params.items() if v is not None]
    keys = (ctypes.c_char_p * (len(given) + 1))(*[k.encode() for k, _ in given], None)
    values = (ctypes.c_char_p * (len(given) + 1))(*[v.encode() for _, v in given], None)
    conn = lib.PQconnectStartParams(keys, values, 1)
    assert conn, "out of memory"
    try:
        info: dict[str, str | None] = {}
        options = lib.PQconninfo(conn)
        if options:
            i = 0
            while options[i].keyword is not None:
                val = options[i].val
                info[_text(options[i].keyword)] = None if val is None else _text(val)
                i += 1
            lib.PQconninfoFree(options)
        return Observed(
            targets=[(_text(lib.PQhost(conn)), _text(lib.PQport(conn)), _text(lib.PQpass(conn)))],
            user=_text(lib.PQuser(conn)),
            db=_text(lib.PQdb(conn)),
            status=lib.PQstatus(conn),
            error=_text(lib.PQerrorMessage(conn)),
            info=info,
        )
    finally:
        lib.PQfinish(conn)


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    id: str
    params: str | dict[str, str | None] = ""
    env: dict[str, str | None] = field(default_factory=dict)
    #: path relative to the case directory -> content; @TMP@, @HOME@, @DEAD@, @DEAD2@
    #: are replaced in params, env values and file contents.
    files: dict[str, str | bytes] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    #: a fragment of libpq's error message; resolve_pg must then raise ConfigError.
    error: str | None = None
    walk: bool = False
    #: keywords whose final value is compared with PQconninfo().
    options: tuple[str, ...] = ()
    #: resolve_pg must warn with PgpassWarning.
    warns: bool = False
    #: a mapping given to libpq as PQconnectStartParams(expand_dbname=1), not as a string.
    expand: bool = False


PW = "home/.pgpass"
SVC = "svc.conf"
H = "host=127.0.0.1 port=@DEAD@"

CASES: list[Case] = [
    # --- environment variables and compiled-in defaults
    Case("all-defaults"),
    Case(
        "env-vars-alone",
        env={
            "PGHOST": "127.0.0.1",
            "PGPORT": "@DEAD@",
            "PGUSER": "envuser",
            "PGDATABASE": "envdb",
            "PGPASSWORD": "envpw",
            "PGAPPNAME": "envapp",
            "PGSSLMODE": "disable",
            "PGCONNECT_TIMEOUT": "7",
            "PGOPTIONS": "-c work_mem=1MB",
        },
        options=("application_name", "sslmode", "connect_timeout", "options"),
    ),
    Case("env-empty-values-mean-defaults", "port=1", env={"PGHOST": "", "PGUSER": ""}),
    Case("env-hostaddr", env={"PGHOSTADDR": "127.0.0.1", "PGPORT": "@DEAD@"}),
    Case("os-user-not-USER", H, env={"USER": "impostor", "LOGNAME": "impostor"}),
    Case("dbname-defaults-to-user", H + " user=alice"),
    # --- key=value syntax
    Case(
        "kv-quoting-and-escapes",
        H + r" user='bob smith' dbname='it\'s' password='p\\w d'",
    ),
    Case("kv-spaces-around-equals", "host = 127.0.0.1 port= @DEAD@ user =bob"),
    Case("kv-empty-value-swallows-next-pair", H + " dbname= user=bob"),
    Case("kv-last-setting-wins", "user=a " + H + " user=b"),
    Case("kv-requiressl-then-sslmode", "requiressl=1 sslmode=disable " + H, options=("sslmode",)),
    Case("kv-missing-equals", "host 127.0.0.1", error='missing "="'),
    Case("kv-unterminated-quote", "user='bob", error="unterminated quoted string"),
    Case("kv-unknown-keyword", H + " colour=blue", error='invalid connection option "colour"'),
    Case(
        "mapping-params",
        {
            "host": "127.0.0.1",
            "port": "@DEAD@",
            "user": "map user",
            "password": "it's",
            "dbname": None,
        },
    ),
    # --- URIs
    Case("uri-basic", "postgresql://bob:secret@127.0.0.1:@DEAD@/db1"),
    Case(
        "uri-percent-encoding",
        "postgres://b%40b:p%3Aw%2F%25@127.0.0.1:@DEAD@/d%20b?application_name=a%26b",
        options=("application_name",),
    ),
    Case("uri-ipv6", "postgresql://u@[::1]:@DEAD@/db"),
    Case(
        "uri-query-host-overrides-netloc",
        "postgresql://u@nohost.invalid/db?host=127.0.0.1&port=@DEAD@",
    ),
    Case(
        "uri-query-params",
        "postgresql:///db?user=qu&password=qp&host=127.0.0.1&port=@DEAD@"
        "&application_name=app&sslmode=disable&connect_timeout=3",
        options=("application_name", "sslmode", "connect_timeout"),
    ),
    Case(
        "uri-unknown-query-parameter",
        "postgresql://127.0.0.1/db?colour=blue",
        error='invalid URI query parameter: "colour"',
    ),
    Case(
        "uri-empty-path-keeps-PGDATABASE",
        "postgresql://127.0.0.1:@DEAD@/",
        env={"PGDATABASE": "envdb"},
    ),
    Case("uri-percent-encoded-socket-dir", "postgresql://%2Fnonexistent%2Fsockets/db?port=1"),
    Case("uri-at-sign-in-query-is-userinfo", "postgresql://127.0.0.1?user=a@127.0.0.1:@DEAD@/db"),
    Case(
        "uri-bad-percent-escape",
        "postgresql://u%zz@127.0.0.1/db",
        error="invalid percent-encoded token",
    ),
    Case("uri-percent-00", "postgresql://127.0.0.1/a%00b", error="forbidden value %00"),
    Case("uri-raw-trailing-space", "postgresql://u@127.0.0.1:@DEAD@/db "),
    Case("uri-ssl-true", "postgresql://127.0.0.1:@DEAD@/d?ssl=true", options=("sslmode",)),
    Case("uri-unclosed-ipv6", "postgresql://[::1/db", error='matching "]"'),
    Case("uri-leading-blank-is-not-a-uri", " postgresql://127.0.0.1/db", error='missing "="'),
    # --- several hosts
    Case("multi-host-ports", "host=127.0.0.1,127.0.0.2 port=@DEAD@,@DEAD2@", walk=True),
    Case("multi-host-one-port", "host=127.0.0.1,127.0.0.2,127.0.0.3 port=@DEAD@", walk=True),
    Case("multi-host-uri", "postgresql://u@127.0.0.1:@DEAD@,127.0.0.2:@DEAD2@/db", walk=True),
    Case(
        "multi-host-port-count-mismatch",
        "host=127.0.0.1,127.0.0.2,127.0.0.3 port=1,2",
        error="could not match 2 port numbers to 3 hosts",
    ),
    Case(
        "multi-host-hostaddr-count-mismatch",
        "host=a,b hostaddr=127.0.0.1",
        error="could not match 2 host names to 1 hostaddr values",
    ),
    Case(
        "multi-host-per-host-pgpass",
        "host=db1.example,db2.example hostaddr=127.0.0.1,127.0.0.2 port=@DEAD@ user=u dbname=d",
        files={PW: "db1.example:*:d:u:first\ndb2.example:*:d:u:second\n"},
        walk=True,
    ),
    Case(
        "multi-host-empty-element-is-default-socket",
        "host=127.0.0.1, port=@DEAD@,1",
        files={PW: "localhost:1:*:*:sockpw\n127.0.0.1:*:*:*:tcppw\n"},
        walk=True,
    ),
    # --- .pgpass
    Case(
        "pgpass-wildcards",
        H + " user=u dbname=d",
        files={PW: "otherhost:*:*:*:no\n*:@DEAD@:*:u:yes\n*:*:*:*:fallback\n"},
    ),
    Case(
        "pgpass-first-match-wins",
        H + " user=u dbname=d",
        files={PW: "127.0.0.1:*:d:*:first\n127.0.0.1:@DEAD@:d:u:second\n"},
    ),
    Case(
        "pgpass-escapes",
        "host=h:x\\\\y hostaddr=127.0.0.1 port=@DEAD@ user=u dbname=d",
        files={PW: "h\\:x\\\\y:*:d:u:a\\:b\\\\c\\:d:ignored\n"},
    ),
    Case(
        "pgpass-comments-and-blank-lines",
        H + " user=u dbname=d",
        files={PW: "#127.0.0.1:*:*:*:commented\n\n #*:*:*:*:indented-hash\n*:*:*:*:real\n"},
    ),
    Case(
        "pgpass-default-port-5432",
        "host=/nonexistent/sock user=u dbname=d",
        files={PW: "/nonexistent/sock:5433:*:*:no\n/nonexistent/sock:5432:*:*:yes\n"},
    ),
    Case(
        "pgpass-port-compared-as-string",
        "host=/nonexistent/sock port=05432 user=u",
        files={PW: "*:5432:*:*:numeric\n*:05432:*:*:string\n"},
    ),
    Case(
        "pgpass-localhost-for-default-socket",
        "port=1 user=u",
        files={PW: "/var/run/postgresql:1:*:*:literal\nlocalhost:1:*:*:localhost\n"},
    ),
    Case(
        "pgpass-socket-dir-trailing-slash-is-literal",
        "host=/var/run/postgresql/ port=1 user=u",
        files={PW: "localhost:1:*:*:localhost\n/var/run/postgresql/:1:*:*:literal\n"},
    ),
    Case(
        "pgpass-hostaddr-only",
        "hostaddr=127.0.0.1 port=@DEAD@ user=u",
        files={PW: "localhost:*:*:*:no\n127.0.0.1:*:*:*:byaddr\n"},
    ),
    Case(
        "pgpass-group-readable-is-ignored",
        H + " user=u",
        files={PW: "*:*:*:*:open\n"},
        modes={PW: 0o640},
        warns=True,
    ),
    Case("pgpass-0700-is-accepted", H + " user=u", files={PW: "*:*:*:*:ok\n"}, modes={PW: 0o700}),
    Case(
        "pgpass-directory-is-ignored",
        H + " user=u",
        env={"PGPASSFILE": "@TMP@/home"},
        warns=True,
    ),
    Case(
        "pgpass-PGPASSFILE",
        H + " user=u",
        env={"PGPASSFILE": "@TMP@/custom.pgpass"},
        files={PW: "*:*:*:*:home\n", "custom.pgpass": "*:*:*:*:custom\n"},
    ),
    Case(
        "pgpass-passfile-param-beats-PGPASSFILE",
        H + " user=u passfile=@TMP@/param.pgpass",
        env={"PGPASSFILE": "@TMP@/custom.pgpass"},
        files={"custom.pgpass": "*:*:*:*:env\n", "param.pgpass": "*:*:*:*:param\n"},
    ),
    Case(
        "pgpass-empty-password-param-hides-PGPASSWORD",
        H + " user=u password=''",
        env={"PGPASSWORD": "envpw"},
        files={PW: "*:*:*:*:frompgpass\n"},
    ),
    Case(
        "pgpass-PGPASSWORD-wins",
        H + " user=u",
        env={"PGPASSWORD": "envpw"},
        files={PW: "*:*:*:*:frompgpass\n"},
    ),
    Case(
        "pgpass-crlf-and-missing-final-newline",
        H + " user=u dbname=d",
        files={PW: "nomatch:*:*:*:x\r\n*:*:d:u:crlf-ok"},
    ),
    Case(
        "pgpass-empty-password-stops-search",
        H + " user=u",
        files={PW: "*:*:*:u:\n*:*:*:*:second\n"},
    ),
    Case(
        "pgpass-nul-byte-joins-lines",
        H + " user=u dbname=d",
        files={PW: b"*:*:d:u\x00junk\n:glued\n*:*:*:*:later\n"},
    ),
    Case(
        "pgpass-long-line",
        H + " user=u",
        files={PW: "x" * 300 + ":*:*:*:no\n*:*:*:u:" + "p" * 600 + "\n"},
    ),
    # --- .pgpass keys that contain ':' are compared byte by byte with the line
    Case(
        "pgpass-unescaped-colon-in-user",
        H + " user=we:ird dbname=d",
        files={PW: "*:*:*:we:ird:pw\n*:*:*:*:fallback\n"},
    ),
    Case(
        "pgpass-escaped-colon-matches-the-same-user",
        H + " user=we:ird dbname=d",
        files={PW: "*:*:*:we\\:ird:escaped\n*:*:*:*:fallback\n"},
    ),
    Case(
        "pgpass-colon-user-line-also-matches-shorter-user",
        H + " user=we dbname=d",
        files={PW: "*:*:*:we:ird:pw\n"},
    ),
    Case(
        "pgpass-star-inside-a-colon-key-is-literal",
        H + " user=we:ird dbname=d",
        files={PW: "*:*:*:we:*:no\n*:*:*:*:fallback\n"},
    ),
    Case(
        "pgpass-unescaped-colon-in-dbname",
        H + " user=u dbname=a:b",
        files={PW: "*:*:a:b:u:pw\n"},
    ),
    Case(
        "pgpass-ipv6-host-unescaped",
        "host=::1 port=@DEAD@ user=u dbname=d",
        files={PW: "127.0.0.1:*:*:*:no\n::1:@DEAD@:d:u:v6\n"},
    ),
    Case(
        "pgpass-colon-key-spans-into-password",
        H + " user=u:pw dbname=d",
        files={PW: "*:*:*:u:pw\n*:*:*:u:pw:extra\n"},
    ),
    # --- a mapping whose dbname is itself a connection string (expand_dbname=1)
    Case(
        "mapping-dbname-uri-expands",
        {"dbname": "postgresql://bob:secret@127.0.0.1:@DEAD@/realdb?application_name=fromuri"},
        options=("application_name",),
        expand=True,
    ),
    Case(
        "mapping-dbname-conninfo-expands",
        {"dbname": "host=127.0.0.1 port=@DEAD@ user=kv dbname=kvdb"},
        expand=True,
    ),
    Case(
        "mapping-dbname-string-without-dbname-defaults-to-user",
        {"user": "alice", "dbname": "host=127.0.0.1 port=@DEAD@"},
        expand=True,
    ),
    Case(
        "mapping-dbname-string-overrides-earlier-keys",
        {
            "host": "nohost.invalid",
            "user": "before",
            "dbname": "host=127.0.0.1 user=fromstring",
            "port": "@DEAD@",
        },
        expand=True,
    ),
    Case(
        "mapping-later-keys-override-the-dbname-string",
        {"dbname": "host=127.0.0.1 port=1 user=fromstring", "user": "after", "port": "@DEAD@"},
        expand=True,
    ),
    Case(
        "mapping-dbname-plain-name-is-not-expanded",
        {"host": "127.0.0.1", "port": "@DEAD@", "dbname": "POSTGRESQL://not-a-uri"},
        expand=True,
    ),
    Case(
        "mapping-dbname-uri-then-pgpass",
        {"dbname": "postgresql://pu@127.0.0.1:@DEAD@/pd"},
        files={PW: "*:*:pd:pu:frompgpass\n"},
        expand=True,
    ),
    Case(
        "mapping-dbname-uri-then-service",
        {"dbname": "postgresql:///?service=s1", "user": "u"},
        env={"PGSERVICEFILE": "@TMP@/" + SVC},
        files={SVC: "[s1]\nhost=127.0.0.1\nport=@DEAD@\ndbname=svcdb\n"},
        expand=True,
    ),
    Case(
        "mapping-dbname-bad-keyword",
        {"password": "secret", "dbname": "host=127.0.0.1 colour=blue"},
        error='invalid connection option "colour"',
        expand=True,
    ),
    Case(
        "mapping-dbname-bad-uri",
        {"dbname": "postgresql://u:secret@127.0.0.1/db?colour=blue"},
        error='invalid URI query parameter: "colour"',
        expand=True,
    ),
    # --- service files
    Case(
        "service-PGSERVICEFILE",
        "service=s1 port=@DEAD@",
        env={"PGSERVICEFILE": "@TMP@/" + SVC},
        files={
            SVC: "[s0]\nuser=wrong\n[s1]\nhost=127.0.0.1\nuser=svcuser\ndbname=svcdb\n"
            "password=svcpw\napplication_name=svcapp\n[s2]\nuser=wrong2\n"
        },
        options=("application_name",),
    ),
    Case(
        "service-home-file-and-PGSERVICE",
        "port=@DEAD@",
        env={"PGSERVICE": "s1"},
        files={"home/.pg_service.conf": "# comment\n  [s1]  \n  host=127.0.0.1  \nuser=homesvc\n"},
    ),
    Case(
        "service-PGSYSCONFDIR-via-uri",
        "postgresql:///?service=s2&port=@DEAD@",
        env={"PGSYSCONFDIR": "@TMP@/etc"},
        files={"etc/pg_service.conf": "[s2]\nhost=127.0.0.1\nuser=sysuser\n"},
    ),
    Case(
        "service-home-file-wins-over-sysconfdir",
        "service=s port=@DEAD@",
        env={"PGSYSCONFDIR": "@TMP@/etc"},
        files={
            "home/.pg_service.conf": "[s]\nhost=127.0.0.1\nuser=home\n",
            "etc/pg_service.conf": "[s]\nhost=127.0.0.1\nuser=sys\ndbname=sysdb\n",
        },
    ),
    Case(
        "service-falls-through-to-sysconfdir",
        "service=s port=@DEAD@",
        env={"PGSYSCONFDIR": "@TMP@/etc"},
        files={
            "home/.pg_service.conf": "[other]\nuser=no\n",
            "etc/pg_service.conf": "[s]\nhost=127.0.0.1\nuser=sys\n",
        },
    ),
    Case(
        "service-not-found",
        "service=nope",
        files={"home/.pg_service.conf": "[s]\nuser=x\n"},
        error='definition of service "nope" not found',
    ),
    Case(
        "service-precedence-param-service-env",
        "service=s user=paramuser",
        env={
            "PGSERVICEFILE": "@TMP@/" + SVC,
            "PGUSER": "envuser",
            "PGDATABASE": "envdb",
            "PGPASSWORD": "envpw",
            "PGPORT": "1",
        },
        files={SVC: "[s]\nhost=127.0.0.1\nport=@DEAD@\nuser=svcuser\ndbname=svcdb\n"},
    ),
    Case(
        "service-first-value-in-section-wins",
        "service=s",
        env={"PGSERVICEFILE": "@TMP@/" + SVC},
        files={SVC: "[s]\nhost=127.0.0.1\nport=@DEAD@\nuser=first\nuser=second\n"},
    ),
    Case(
        "service-empty-value-hides-env",
        "service=s port=1",
        env={"PGSERVICEFILE": "@TMP@/" + SVC, "PGHOST": "127.0.0.1"},
        files={SVC: "[s]\nhost=\n"},
    ),
    Case(
        "service-spaces-around-equals",
        "service=s",
        env={"PGSERVICEFILE": "@TMP@/" + SVC},
        files={SVC: "[s]\nhost = 127.0.0.1\n"},
        error="syntax error in service file",
    ),
    Case(
        "service-nested",
        "service=s",
        env={"PGSERVICEFILE": "@TMP@/" + SVC},
        files={SVC: "[s]\nservice=t\n"},
        error="nested service specifications",
    ),
    Case(
        "service-PGSERVICEFILE-missing",
        "service=s",
        env={"PGSERVICEFILE": "@TMP@/missing.conf"},
        error="not found",
    ),
    Case(
        "service-sets-passfile",
        "service=s user=u",
        env={"PGSERVICEFILE": "@TMP@/" + SVC},
        files={
            SVC: "[s]\nhost=127.0.0.1\nport=@DEAD@\npassfile=@TMP@/svc.pgpass\n",
            "svc.pgpass": "*:*:*:u:viaservice\n",
        },
    ),
    # --- precedence and empty values
    Case("explicit-empty-host-hides-PGHOST", "host='' port=1", env={"PGHOST": "127.0.0.1"}),
    Case("explicit-empty-user-hides-PGUSER", H + " user=''", env={"PGUSER": "envuser"}),
    Case(
        "explicit-beats-env",
        H + " user=paramuser dbname=paramdb",
        env={"PGUSER": "envuser", "PGDATABASE": "envdb", "PGPORT": "1"},
    ),
    Case("PGREQUIRESSL", H, env={"PGREQUIRESSL": "1"}, options=("sslmode",)),
    Case(
        "PGSSLMODE-beats-PGREQUIRESSL",
        H,
        env={"PGREQUIRESSL": "1", "PGSSLMODE": "allow"},
        options=("sslmode",),
    ),
    Case(
        "sslrootcert-system",
        "host=/nonexistent/sock port=1 sslrootcert=system",
        options=("sslmode", "sslrootcert"),
    ),
    Case("invalid-sslmode", H + " sslmode=sometimes", error='invalid sslmode value: "sometimes"'),
    Case(
        "invalid-target-session-attrs",
        H + " target_session_attrs=any-old",
        error="invalid target_session_attrs value",
    ),
    Case("port-not-an-integer", "host=/nonexistent/sock port=abc", error="invalid integer value"),
    Case("port-out-of-range", "host=/nonexistent/sock port=0", error="invalid port number"),
    Case("port-with-blanks", "host=/nonexistent/sock port=' 12 '"),
]


def _substitute(text: str, marks: dict[str, str]) -> str:
    for mark, value in marks.items():
        text = text.replace(mark, value)
    return text


def _to_conninfo(params: dict[str, str | None]) -> str:
    parts = []
    for key, value in params.items():
        if value is None:
            continue
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        parts.append(f"{key}='{escaped}'")
    return " ".join(parts)


@dataclass
class Prepared:
    params: str | dict[str, str | None]
    conninfo: str
    env: dict[str, str]


@pytest.fixture
def ports() -> dict[str, str]:
    return {"@DEAD@": str(_dead_port()), "@DEAD2@": str(_dead_port())}


def prepare(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ports: dict[str, str]
) -> Prepared:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "etc").mkdir()
    marks = {"@TMP@": str(tmp_path), "@HOME@": str(home), **ports}
    for name, content in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content if isinstance(content, bytes) else _substitute(content, marks).encode()
        path.write_bytes(data)
        path.chmod(case.modes.get(name, 0o600))
    for key in list(os.environ):
        if key.startswith("PG"):
            monkeypatch.delenv(key)
    # Never the real ~/.pgpass or ~/.pg_service.conf, never /etc/postgresql-common.
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PGSYSCONFDIR", str(tmp_path / "etc"))
    for key, value in case.env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, _substitute(value, marks))
    if isinstance(case.params, str):
        params: str | dict[str, str | None] = _substitute(case.params, marks)
        conninfo = params
    else:
        params = {k: None if v is None else _substitute(v, marks) for k, v in case.params.items()}
        conninfo = _to_conninfo(params)
    return Prepared(params, conninfo, dict(os.environ))


_OPTION_ERRORS = (
    "invalid ",
    "could not match",
    "not found",
    "syntax error",
    "missing ",
    "unterminated",
    "nested service",
    "too long",
    "forbidden value",
    "unexpected ",
    "weak sslmode",
    "end of string",
    "may not be empty",
    "extra key/value",
)


def _dedupe(items: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for item in items:
        if not out or out[-1] != item:
            out.append(item)
    return out


def _port(text: str) -> int:
    number = parse_int_param(text) if text else 5432
    assert number is not None
    return number


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_resolve_pg_matches_libpq(
    case: Case,
    libpq: Libpq,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ports: dict[str, str],
) -> None:
    prepared = prepare(case, tmp_path, monkeypatch, ports)
    if case.expand:
        assert isinstance(prepared.params, dict) and not case.walk
        seen = observe_params(libpq, prepared.params)
    else:
        seen = observe(libpq, prepared.conninfo, walk=case.walk)

    def run() -> Any:
        return resolve_pg(prepared.params, prepared.env, libpq_version=libpq.version)

    if case.error is not None:
        assert case.error in seen.error, f"libpq said: {seen.error!r}"
        with pytest.raises(ConfigError) as caught:
            run()
        for secret in ("secret", "envpw", "svcpw"):
            assert secret not in str(caught.value)
        return

    assert not any(marker in seen.error for marker in _OPTION_ERRORS), seen.error
    if case.warns:
        with pytest.warns(PgpassWarning):
            ours = run()
    else:
        ours = run()

    host, port, password = seen.targets[0]
    assert (ours.host, ours.port, ours.user, ours.dbname) == (host, _port(port), seen.user, seen.db)
    assert (ours.password.get_secret_value() if ours.password else "") == password
    if case.walk:
        mine = _dedupe(
            [
                (t.host, str(t.port), t.password.get_secret_value() if t.password else "")
                for t in ours.targets
            ]
        )
        theirs = [(h, str(_port(p)), pw) for h, p, pw in seen.targets]
        assert mine == theirs
        assert len(mine) > 1
    compiled = keywords(libpq.version)
    for key in case.options:
        # Keywords left to libpq's compiled-in default are absent from options.
        expected = ours.options.get(key, compiled[key].compiled)
        assert expected == seen.info.get(key), key


def test_cases_are_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


# --------------------------------------------------------------------------- sources


def test_sources_name_each_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ports: dict[str, str]
) -> None:
    case = Case(
        "sources",
        "service=s user=u",
        env={"PGSERVICEFILE": "@TMP@/" + SVC, "PGAPPNAME": "app"},
        files={SVC: "# first\n[s]\nhost=127.0.0.1\nport=@DEAD@\n", PW: "#\n*:*:*:u:pw\n"},
    )
    prepared = prepare(case, tmp_path, monkeypatch, ports)
    ours = resolve_pg(prepared.params, prepared.env)
    assert ours.sources == {
        "host": f"service file {tmp_path}/{SVC} [s] line 3",
        "port": f"service file {tmp_path}/{SVC} [s] line 4",
        "user": "argument",
        "dbname": "default",
        "password": f".pgpass {tmp_path}/home/.pgpass line 2",
        "service": "argument",
        "application_name": "env PGAPPNAME",
    }


def test_uri_whitespace_follows_the_chosen_version() -> None:
    env = {"HOME": "/nonexistent", "PGUSER": "u"}
    assert resolve_pg("postgresql:///db ", env, libpq_version=15).dbname == "db "
    assert resolve_pg("postgresql:///db ", env, libpq_version=18).dbname == "db"
    with pytest.raises(ConfigError, match="%20"):
        resolve_pg("postgresql:///d b", env, libpq_version=18)


def test_resolve_pg_follows_the_libpq_psycopg_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without libpq_version, the rules are those of the libpq psycopg itself connects with."""
    for key in list(os.environ):
        if key.startswith("PG"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", "/nonexistent")
    monkeypatch.setenv("PGUSER", "u")
    loaded = Libpq("loaded", psycopg.pq)
    # Spaces around URI parts are kept up to libpq 17 and trimmed from 18 on.
    uri = "postgresql://127.0.0.1:1/db "
    seen = observe(loaded, uri, walk=False)
    ours = resolve_pg(uri, dict(os.environ))
    assert ours.libpq_version == loaded.version
    assert ours.dbname == seen.db
    assert parse_conninfo(uri)["dbname"] == seen.db
    # A version given explicitly still wins.
    other = 15 if loaded.version != 15 else 18
    assert resolve_pg(uri, dict(os.environ), libpq_version=other).dbname != seen.db


# --------------------------------------------------------------------------- differential fuzzing

_conninfo_alphabet = st.sampled_from(
    [*list("abcdehnoprstuw=' \\\t@:/?&%,[]#01-_."), "host", "user", "port", "dbname", "%20", "%3D"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.lists(_conninfo_alphabet, max_size=25).map("".join),
        st.lists(_conninfo_alphabet, max_size=25).map(lambda x: "postgresql://" + "".join(x)),
        st.lists(_conninfo_alphabet, max_size=25).map(lambda x: "postgres://" + "".join(x)),
    )
)
def test_parse_conninfo_agrees_with_PQconninfoParse(text: str) -> None:
    """PQconninfoParse does no I/O at all, so arbitrary strings are safe to hand to libpq."""
    for backend in BACKENDS:
        try:
            theirs = {
                _text(o.keyword): _text(o.val)
                for o in backend.module.Conninfo.parse(text.encode())
                if o.val is not None
            }
        except psycopg.OperationalError:
            with pytest.raises(ConfigError):
                parse_conninfo(text, libpq_version=backend.version)
            continue
        assert parse_conninfo(text, libpq_version=backend.version) == theirs


_pgpass_token = st.sampled_from(
    [
        "*",
        "127.0.0.1",
        "localhost",
        "d",
        "u",
        "x",
        "\\",
        "\\:",
        "\\\\",
        ":",
        "\n",
        "\r",
        "#",
        " ",
        "\x00",
        "pw",
        "p:w",
        "u:w",
        "@DEAD@",
    ]
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(content=st.lists(_pgpass_token, max_size=40).map("".join))
def test_pgpass_lookup_agrees_with_libpq(
    content: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ports: dict[str, str]
) -> None:
    passfile = tmp_path / "fuzz.pgpass"
    passfile.write_bytes(_substitute(content, ports).encode())
    passfile.chmod(0o600)
    for key in list(os.environ):
        if key.startswith("PG"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    # A user with a ':' is compared byte by byte with the line, separators included.
    for user in ("u", "u:w"):
        conninfo = (
            f"host=127.0.0.1 port={ports['@DEAD@']} user='{user}' dbname=d passfile={passfile}"
        )
        for backend in BACKENDS:
            seen = observe(backend, conninfo, walk=False)
            ours = resolve_pg(conninfo, dict(os.environ), libpq_version=backend.version)
            assert (ours.password.get_secret_value() if ours.password else "") == seen.targets[0][2]
