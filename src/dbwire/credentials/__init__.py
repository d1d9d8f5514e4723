"""dbwire.credentials: libpq-exact PostgreSQL resolution, the other password sources, and
the password providers (`dbwire.credentials.providers`)."""

from __future__ import annotations

from dbwire.credentials._libpq import DEFAULT_LIBPQ_VERSION, SUPPORTED_LIBPQ_VERSIONS
from dbwire.credentials.command import PasswordCommand
from dbwire.credentials.conninfo import parse_conninfo
from dbwire.credentials.mysql import read_mysql_option_files
from dbwire.credentials.password_file import read_password_file
from dbwire.credentials.pgpass import PgpassEntry, PgpassWarning, lookup_pgpass, parse_pgpass
from dbwire.credentials.providers import (
    Credential,
    LoginTarget,
    PasswordProvider,
    ProviderOptions,
    known_providers,
    register_provider,
)
from dbwire.credentials.resolve import PgHost, ResolvedPg, resolve_pg

__all__ = [
    "DEFAULT_LIBPQ_VERSION",
    "SUPPORTED_LIBPQ_VERSIONS",
    "Credential",
    "LoginTarget",
    "PasswordCommand",
    "PasswordProvider",
    "PgHost",
    "PgpassEntry",
    "PgpassWarning",
    "ProviderOptions",
    "ResolvedPg",
    "known_providers",
    "lookup_pgpass",
    "parse_conninfo",
    "parse_pgpass",
    "read_mysql_option_files",
    "read_password_file",
    "register_provider",
    "resolve_pg",
]
