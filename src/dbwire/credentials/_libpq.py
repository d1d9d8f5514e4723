"""The compiled-in facts of libpq 15-18 that resolution depends on: keywords, env vars, paths."""

from __future__ import annotations

import functools
import importlib.util
import os
import pwd
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dbwire.errors import ConfigError

#: libpq major versions whose option handling is reproduced exactly (each one is
#: compared against the real library in tests/test_credentials_libpq.py).
SUPPORTED_LIBPQ_VERSIONS = (15, 16, 17, 18)

#: The version whose semantics apply when neither a version is given nor psycopg's
#: libpq can be loaded.
DEFAULT_LIBPQ_VERSION = 16

#: Debian/Ubuntu builds (and psycopg's binary wheels) are configured with these;
#: an upstream source build would use /tmp and PREFIX/etc instead.
DEFAULT_PGSOCKET_DIR = "/var/run/postgresql"
SYSCONFDIR = "/etc/postgresql-common"
DEF_PGPORT = 5432
DEF_PGPORT_STR = "5432"
#: What a Unix-socket or empty host is called when matched against .pgpass.
DEFAULT_HOST = "localhost"

#: C isspace() in the C locale; Python's str.isspace() also accepts Unicode spaces,
#: which libpq never skips.
C_SPACE = " \t\n\v\f\r"
C_SPACE_BYTES = b" \t\n\v\f\r"


@dataclass(frozen=True)
class Keyword:
    """One entry of libpq's PQconninfoOptions table."""

    name: str
    envvar: str | None
    compiled: str | None
    secret: bool
    since: int


_TABLE: tuple[Keyword, ...] = (
    Keyword("service", "PGSERVICE", None, False, 15),
    Keyword("user", "PGUSER", None, False, 15),
    Keyword("password", "PGPASSWORD", None, True, 15),
    Keyword("passfile", "PGPASSFILE", None, False, 15),
    Keyword("channel_binding", "PGCHANNELBINDING", "prefer", False, 15),
    Keyword("connect_timeout", "PGCONNECT_TIMEOUT", None, False, 15),
    Keyword("dbname", "PGDATABASE", None, False, 15),
    Keyword("host", "PGHOST", None, False, 15),
    Keyword("hostaddr", "PGHOSTADDR", None, False, 15),
    Keyword("port", "PGPORT", DEF_PGPORT_STR, False, 15),
    Keyword("client_encoding", "PGCLIENTENCODING", None, False, 15),
    Keyword("options", "PGOPTIONS", "", False, 15),
    Keyword("application_name", "PGAPPNAME", None, False, 15),
    Keyword("fallback_application_name", None, None, False, 15),
    Keyword("keepalives", None, None, False, 15),
    Keyword("keepalives_idle", None, None, False, 15),
    Keyword("keepalives_interval", None, None, False, 15),
    Keyword("keepalives_count", None, None, False, 15),
    Keyword("tcp_user_timeout", None, None, False, 15),
    Keyword("sslmode", "PGSSLMODE", "prefer", False, 15),
    Keyword("sslnegotiation", "PGSSLNEGOTIATION", "postgres", False, 17),
    Keyword("sslcompression", "PGSSLCOMPRESSION", "0", False, 15),
    Keyword("sslcert", "PGSSLCERT", None, False, 15),
    Keyword("sslkey", "PGSSLKEY", None, False, 15),
    Keyword("sslcertmode", "PGSSLCERTMODE", None, False, 16),
    Keyword("sslpassword", None, None, True, 15),
    Keyword("sslrootcert", "PGSSLROOTCERT", None, False, 15),
    Keyword("sslcrl", "PGSSLCRL", None, False, 15),
    Keyword("sslcrldir", "PGSSLCRLDIR", None, False, 15),
    Keyword("sslsni", "PGSSLSNI", "1", False, 15),
    Keyword("requirepeer", "PGREQUIREPEER", None, False, 15),
    Keyword("require_auth", "PGREQUIREAUTH", None, False, 16),
    Keyword("min_protocol_version", "PGMINPROTOCOLVERSION", None, False, 18),
    Keyword("max_protocol_version", "PGMAXPROTOCOLVERSION", None, False, 18),
    Keyword("ssl_min_protocol_version", "PGSSLMINPROTOCOLVERSION", "TLSv1.2", False, 15),
    Keyword("ssl_max_protocol_version", "PGSSLMAXPROTOCOLVERSION", None, False, 15),
    # The compiled default is "prefer" only in builds with GSSAPI (Debian's);
    # psycopg's 3.3 wheels say "disable".
    Keyword("gssencmode", "PGGSSENCMODE", "prefer", False, 15),
    Keyword("krbsrvname", "PGKRBSRVNAME", "postgres", False, 15),
    Keyword("gsslib", "PGGSSLIB", None, False, 15),
    Keyword("gssdelegation", "PGGSSDELEGATION", "0", False, 16),
    Keyword("replication", None, None, False, 15),
    Keyword("target_session_attrs", "PGTARGETSESSIONATTRS", "any", False, 15),
    Keyword("load_balance_hosts", "PGLOADBALANCEHOSTS", "disable", False, 16),
    Keyword("scram_client_key", None, None, True, 18),
    Keyword("scram_server_key", None, None, True, 18),
    Keyword("oauth_issuer", None, None, False, 18),
    Keyword("oauth_client_id", None, None, False, 18),
    Keyword("oauth_client_secret", None, None, True, 18),
    Keyword("oauth_scope", None, None, False, 18),
    Keyword("sslkeylogfile", None, None, False, 18),
)

#: Keywords whose values are secrets: never shown in a repr or an error.
SECRET_KEYWORDS = frozenset(k.name for k in _TABLE if k.secret)


def check_version(libpq_version: int) -> int:
    """Return libpq_version if supported, else raise ConfigError naming the choices."""
    if libpq_version not in SUPPORTED_LIBPQ_VERSIONS:
        raise ConfigError(
            f"libpq_version={libpq_version!r} is not supported; "
            f"use one of {', '.join(map(str, SUPPORTED_LIBPQ_VERSIONS))}"
        )
    return libpq_version


@functools.cache
def loaded_libpq_version() -> int:
    """The major version of the libpq psycopg loads (clamped to the supported range).

    Its rules are the ones that apply when psycopg connects (they differ between
    releases, e.g. spaces in URIs since 18); without psycopg, DEFAULT_LIBPQ_VERSION.
    """
    major = None if "psycopg" in sys.modules else bundled_libpq_major()
    if major is None:
        try:
            import psycopg
        except ImportError:  # psycopg missing, or no libpq wrapper it could load
            return DEFAULT_LIBPQ_VERSION
        major = int(psycopg.pq.version()) // 10000
    return min(max(major, SUPPORTED_LIBPQ_VERSIONS[0]), SUPPORTED_LIBPQ_VERSIONS[-1])


def bundled_libpq_major() -> int | None:
    """PQlibVersion() // 10000 of the libpq in psycopg's binary wheel, read without
    importing psycopg; None unless that wheel's libpq is the one psycopg would load.

    Importing psycopg costs about 60 ms, and a collect through DuckDB's extension,
    connectorx or ADBC never connects through it: it only needs this one number. psycopg
    prefers psycopg_c (the system libpq) unless PSYCOPG_IMPL says otherwise, so then,
    or when the wheel's layout is not the one known here, the caller imports psycopg.
    """
    impl = os.environ.get("PSYCOPG_IMPL", "").lower()
    if impl not in ("", "binary") or importlib.util.find_spec("psycopg") is None:
        return None
    if not impl and importlib.util.find_spec("psycopg_c") is not None:
        return None
    spec = importlib.util.find_spec("psycopg_binary")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    found = sorted((package.parent / "psycopg_binary.libs").glob("libpq-*.so*"))
    if len(found) != 1:  # macOS and Windows wheels keep their libraries elsewhere
        return None
    # Since PostgreSQL 10 libpq's shared library is libpq.so.5.<major> (the wheel keeps
    # the suffix on its renamed copy): read there, loading the library and the TLS and
    # Kerberos libraries it links (6 ms and 7 MB of a collect's process) is not needed.
    suffix = re.search(r"\.so\.5\.(\d+)$", found[0].name)
    if suffix is not None and int(suffix.group(1)) >= 10:
        return int(suffix.group(1))
    import ctypes

    try:
        number = int(ctypes.CDLL(str(found[0])).PQlibVersion())
    except (OSError, AttributeError):
        return None
    return number // 10000 if number > 0 else None


def version_or_loaded(libpq_version: int | None) -> int:
    """check_version(libpq_version), or the loaded libpq's version when it is None."""
    return loaded_libpq_version() if libpq_version is None else check_version(libpq_version)


def keywords(libpq_version: int) -> dict[str, Keyword]:
    """The connection keywords known to that libpq major version, in table order."""
    return {k.name: k for k in _TABLE if k.since <= libpq_version}


def is_unixsock_path(path: str) -> bool:
    """libpq's is_unixsock_path(): an absolute path, or '@' for an abstract socket."""
    return path.startswith(("/", "@"))


_INT_RE = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]+[ \t\n\v\f\r]*")


def parse_int_param(value: str) -> int | None:
    """pqParseIntParam(): strtol() with surrounding C whitespace; None when invalid."""
    if not _INT_RE.fullmatch(value):
        return None
    number = int(value.strip(C_SPACE))
    # strtol() into a C int: anything outside int32 is an overflow error in libpq.
    if not -(2**31) <= number < 2**31:
        return None
    return number


def os_user_name() -> str:
    """pg_fe_getauthname(): the effective user's login name (never $USER)."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        raise ConfigError(
            f"could not look up local user ID {uid}: no passwd entry; "
            "set user= or PGUSER explicitly"
        ) from None


def home_directory(environ: Mapping[str, str], home: str | None) -> str | None:
    """pqGetHomeDirectory(): an explicit home, else $HOME if non-empty, else the passwd entry."""
    if home:
        return home
    env_home = environ.get("HOME")
    if env_home:
        return env_home
    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return None


def to_bytes(text: str) -> bytes:
    """Encode the way the C library sees the string (undecodable bytes round-trip)."""
    return text.encode("utf-8", "surrogateescape")


def to_str(data: bytes) -> str:
    """Decode bytes read from a file or a percent-escape, keeping any invalid UTF-8."""
    return data.decode("utf-8", "surrogateescape")
