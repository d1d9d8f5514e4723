"""resolve_pg(): host, port, user, database and password exactly as libpq would choose them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from dbwire.credentials._libpq import (
    DEF_PGPORT,
    DEF_PGPORT_STR,
    DEFAULT_PGSOCKET_DIR,
    SECRET_KEYWORDS,
    Keyword,
    home_directory,
    is_unixsock_path,
    keywords,
    os_user_name,
    parse_int_param,
    version_or_loaded,
)
from dbwire.credentials.conninfo import (
    is_connection_string,
    parse_conninfo,
    scrub_error,
    store_option,
)
from dbwire.credentials.pgpass import _read_passfile, _search, pgpass_host_key
from dbwire.credentials.pgservice import apply_service
from dbwire.errors import ConfigError, DbwireError

__all__ = ["PgHost", "ResolvedPg", "resolve_pg"]

_MAIN = ("host", "port", "user", "dbname", "password")
_MASK = "'**********'"


@dataclass(frozen=True)
class PgHost:
    """One entry of a multi-host list, with the password libpq would send to it."""

    host: str
    hostaddr: str | None
    port: int
    password: SecretStr | None
    password_source: str | None

    @property
    def is_unix_socket(self) -> bool:
        """True when libpq would connect through a Unix-domain socket in this directory."""
        return not self.hostaddr and is_unixsock_path(self.host)


@dataclass(frozen=True)
class ResolvedPg:
    """The settings libpq would use; `password` and the first host are the ones tried first.

    `options` holds every other keyword that an argument, the service file or an
    environment variable set (keywords left to libpq's build-dependent compiled-in
    defaults are absent).  `sources` says where each value came from.  The repr
    masks the password and any other secret keyword.
    """

    host: str
    port: int
    user: str
    dbname: str
    password: SecretStr | None
    hosts: list[tuple[str, int]]
    options: dict[str, str]
    sources: dict[str, str]
    targets: list[PgHost]
    passfile: str | None
    libpq_version: int

    def __repr__(self) -> str:
        shown = {
            key: (_MASK if key in SECRET_KEYWORDS else repr(value))
            for key, value in self.options.items()
        }
        options = "{" + ", ".join(f"{k!r}: {v}" for k, v in shown.items()) + "}"
        password = "None" if self.password is None else f"SecretStr({_MASK})"
        targets = ", ".join(
            f"PgHost(host={t.host!r}, hostaddr={t.hostaddr!r}, port={t.port}, "
            f"password={'None' if t.password is None else f'SecretStr({_MASK})'}, "
            f"password_source={t.password_source!r})"
            for t in self.targets
        )
        return (
            f"ResolvedPg(host={self.host!r}, port={self.port}, user={self.user!r}, "
            f"dbname={self.dbname!r}, password={password}, hosts={self.hosts!r}, "
            f"options={options}, sources={self.sources!r}, targets=[{targets}], "
            f"passfile={self.passfile!r}, libpq_version={self.libpq_version})"
        )

    __str__ = __repr__


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    # getenv() hands libpq a C string, which ends at the first NUL.
    return None if value is None else value.split("\0", 1)[0]


def _explicit(
    params: Mapping[str, str | None] | str | None,
    known: Mapping[str, Keyword],
    version: int,
    expand_dbname: bool,
) -> dict[str, str]:
    if params is None:
        return {}
    if isinstance(params, str):
        return parse_conninfo(params, libpq_version=version)
    if not isinstance(params, Mapping):
        raise ConfigError(
            f"connection parameters must be a mapping of libpq keywords, a conninfo string "
            f"or a postgresql:// URI, not {type(params).__name__}"
        )
    values: dict[str, str] = {}
    for keyword, value in params.items():
        if value is None:
            continue
        if not isinstance(keyword, str):
            raise ConfigError(
                f"connection parameter names must be strings, not {type(keyword).__name__}"
            )
        if isinstance(value, int) and not isinstance(value, bool):
            # port=5432 is the one non-string everybody passes; libpq sees its digits.
            value = str(value)
        if not isinstance(value, str):
            raise ConfigError(
                f"connection parameter {keyword[:40]!r} must be a string, "
                f"not {type(value).__name__}"
            )
        if "\0" in value or "\0" in keyword:
            raise ConfigError(
                f"connection parameter {keyword[:40]!r} contains a NUL character; remove it"
            )
        if expand_dbname and keyword == "dbname" and is_connection_string(value):
            # conninfo_array_parse(expand_dbname=1): the string's own settings replace
            # the keywords given before dbname, and later keywords replace them; the
            # string itself is never a database name.
            for key, expanded in parse_conninfo(value, libpq_version=version).items():
                store_option(values, key, expanded, known, where="dbname connection string")
            continue
        # Like psycopg's make_conninfo(): an empty string is an explicit empty
        # setting (it hides the env var), only None means "not given".
        store_option(values, keyword, value, known, where="connection parameters")
    return values


def _split(value: str) -> list[str]:
    # parse_comma_separated_list(): no quoting, empty elements allowed.
    return value.split(",")


def _port_number(text: str | None) -> int:
    if not text:
        return DEF_PGPORT
    number = parse_int_param(text)
    if number is None:
        raise ConfigError(
            f'invalid integer value "{text}" for connection option "port"; '
            "give a port number such as 5432"
        )
    if not 1 <= number <= 65535:
        # libpq would skip such a host and try the next; a resolver has to refuse it.
        raise ConfigError(f'invalid port number: "{text}"; use a port between 1 and 65535')
    return number


_ENUMS_ALWAYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("channel_binding", ("disable", "prefer", "require")),
    ("sslmode", ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")),
)
_TLS_VERSIONS = ("tlsv1", "tlsv1.1", "tlsv1.2", "tlsv1.3")
_AUTH_METHODS = ("password", "md5", "gss", "sspi", "scram-sha-256", "none")


def _invalid(keyword: str, value: str, choices: tuple[str, ...]) -> ConfigError:
    return ConfigError(f'invalid {keyword} value: "{value}"; use one of {", ".join(choices)}')


def _check_require_auth(value: str) -> None:
    negated = False
    seen: set[str] = set()
    for index, part in enumerate(value.split(",")):
        method = part
        if method.startswith("!"):
            if index and not negated:
                raise ConfigError(
                    f'negative require_auth method "{method}" cannot be mixed with '
                    "non-negative methods; negate all of them or none"
                )
            negated = True
            method = method[1:]
        elif negated:
            raise ConfigError(
                f'require_auth method "{method}" cannot be mixed with negative methods; '
                "negate all of them or none"
            )
        if method not in _AUTH_METHODS:
            raise _invalid("require_auth", method, _AUTH_METHODS)
        if method in seen:
            raise ConfigError(
                f'require_auth method "{part}" is specified more than once; list it once'
            )
        seen.add(method)


def _validate(effective: Mapping[str, str], version: int) -> None:
    """The option checks of pqConnectOptions2(), in its order."""
    if version >= 16 and effective.get("require_auth"):
        _check_require_auth(effective["require_auth"])
    for keyword, choices in _ENUMS_ALWAYS:
        value = effective.get(keyword)
        if value is not None and value not in choices:
            raise _invalid(keyword, value, choices)
    sslmode = effective.get("sslmode", "prefer")
    if version >= 16 and effective.get("sslrootcert") == "system" and sslmode != "verify-full":
        raise ConfigError(
            f'weak sslmode "{sslmode}" may not be used with sslrootcert=system (use "verify-full")'
        )
    for keyword in ("ssl_min_protocol_version", "ssl_max_protocol_version"):
        value = effective.get(keyword)
        if value and value.lower() not in _TLS_VERSIONS:
            raise _invalid(keyword, value, ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"))
    low = (effective.get("ssl_min_protocol_version") or "").lower()
    high = (effective.get("ssl_max_protocol_version") or "").lower()
    if low and high and low != "tlsv1" and (high == "tlsv1" or low > high):
        raise ConfigError(
            "invalid SSL protocol version range; ssl_min_protocol_version must not be "
            "above ssl_max_protocol_version"
        )
    enums: list[tuple[str, tuple[str, ...], int]] = [
        ("sslcertmode", ("disable", "allow", "require"), 16),
        ("gssencmode", ("disable", "prefer", "require"), 15),
        (
            "target_session_attrs",
            ("any", "read-write", "read-only", "primary", "standby", "prefer-standby"),
            15,
        ),
        ("load_balance_hosts", ("disable", "random"), 16),
        ("sslnegotiation", ("postgres", "direct"), 17),
    ]
    for keyword, choices, since in enums:
        value = effective.get(keyword)
        if version >= since and value is not None and value not in choices:
            raise _invalid(keyword, value, choices)
    if (
        version >= 17
        and effective.get("sslnegotiation") == "direct"
        and sslmode not in ("require", "verify-ca", "verify-full")
    ):
        raise ConfigError(
            f'weak sslmode "{sslmode}" may not be used with sslnegotiation=direct '
            '(use "require", "verify-ca", or "verify-full")'
        )


def resolve_pg(
    params: Mapping[str, str | None] | str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    home: str | None = None,
    libpq_version: int | None = None,
    expand_dbname: bool = True,
) -> ResolvedPg:
    """Resolve connection settings the way libpq's PQconnectStart() does before any I/O.

    `params` is a mapping of libpq keywords (None values are ignored, "" is an
    explicit empty value as in a conninfo string) or a conninfo string / URI.
    `environ` defaults to os.environ; `home` overrides $HOME for ~/.pgpass and
    ~/.pg_service.conf.  Precedence, as in libpq: explicit > service file > PG*
    environment variables > compiled-in defaults.  `libpq_version` (15-18) picks
    the release whose rules apply where they differ; by default, that of the libpq
    psycopg loads.  A mapping's `dbname` that is a URI or contains `=` is expanded
    as PQconnectdbParams(expand_dbname=1) expands it, unless `expand_dbname` is
    False (a conninfo string's dbname is never expanded, as in libpq).

    Raises ConfigError for malformed input and CredentialsError for a service file
    that exists but cannot be read.  A .pgpass that is missing, unreadable, not a
    plain file or open to group/others is skipped, as libpq skips it (the last two
    with a PgpassWarning).
    """
    version = version_or_loaded(libpq_version)
    env: Mapping[str, str] = os.environ if environ is None else environ
    secrets: list[str] = []
    try:
        return _resolve(params, env, home, version, expand_dbname, secrets)
    except DbwireError as exc:
        # Values echoed in a message (a port, an sslmode) may equal a password.
        error = scrub_error(exc, secrets)
    # Raised outside the except block so the unscrubbed original is not chained.
    raise error


def _resolve(
    params: Mapping[str, str | None] | str | None,
    env: Mapping[str, str],
    home: str | None,
    version: int,
    expand_dbname: bool,
    secrets: list[str],
) -> ResolvedPg:
    known = keywords(version)
    if isinstance(params, Mapping):
        secrets.extend(v for k, v in params.items() if k in SECRET_KEYWORDS and isinstance(v, str))
    values = _explicit(params, known, version, expand_dbname)
    secrets.extend(v for k, v in values.items() if k in SECRET_KEYWORDS)
    sources = dict.fromkeys(values, "argument")
    homedir = home_directory(env, home)

    service = values["service"] if "service" in values else _env(env, "PGSERVICE")
    if service is not None:
        apply_service(service, values, sources, known=known, environ=env, home=homedir)

    compiled: dict[str, str] = {}
    sslmode_defaulted = False
    for kw in known.values():
        if kw.name in values:
            continue
        if kw.envvar is not None:
            from_env = _env(env, kw.envvar)
            if from_env is not None:
                values[kw.name] = from_env
                sources[kw.name] = f"env {kw.envvar}"
                continue
        if kw.name == "sslmode":
            requiressl = _env(env, "PGREQUIRESSL")
            if requiressl is not None and requiressl.startswith("1"):
                values["sslmode"] = "require"
                sources["sslmode"] = "env PGREQUIRESSL"
                continue
            sslmode_defaulted = True
        if kw.compiled is not None:
            compiled[kw.name] = kw.compiled
    secrets.extend(v for k, v in values.items() if k in SECRET_KEYWORDS)
    if version >= 16 and sslmode_defaulted and values.get("sslrootcert") == "system":
        values["sslmode"] = "verify-full"
        sources["sslmode"] = "default (sslrootcert=system)"

    # pqConnectOptions2(): one slot per hostaddr element, else per host element.
    hostaddr_value = values.get("hostaddr") or ""
    host_value = values.get("host") or ""
    if hostaddr_value:
        count = len(_split(hostaddr_value))
    elif host_value:
        count = len(_split(host_value))
    else:
        count = 1
    addrs: list[str | None] = list(_split(hostaddr_value)) if hostaddr_value else [None] * count
    names: list[str | None] = [None] * count
    if host_value:
        given = _split(host_value)
        if len(given) != count:
            raise ConfigError(
                f"could not match {len(given)} host names to {count} hostaddr values; "
                "give as many host names as hostaddr entries"
            )
        names = list(given)
    slot_hosts: list[str] = []
    for name, addr in zip(names, addrs, strict=True):
        if not addr and not name:
            # An empty slot means the compiled-in socket directory.
            slot_hosts.append(DEFAULT_PGSOCKET_DIR)
        else:
            slot_hosts.append(name or "")
    port_value = values.get("port") or ""
    slot_ports: list[str | None] = [None] * count
    if port_value:
        given_ports = _split(port_value)
        if len(given_ports) == 1:
            slot_ports = [given_ports[0]] * count
        elif len(given_ports) == count:
            slot_ports = list(given_ports)
        else:
            raise ConfigError(
                f"could not match {len(given_ports)} port numbers to {count} hosts; "
                "give one port for all hosts or one per host"
            )

    user = values.get("user") or ""
    if user:
        user_source = sources["user"]
    else:
        user = os_user_name()
        user_source = "default"
    dbname = values.get("dbname") or ""
    if dbname:
        dbname_source = sources["dbname"]
    else:
        dbname = user
        dbname_source = "default"

    explicit_password = values.get("password") or ""
    passwords: list[tuple[SecretStr, str] | None] = [None] * count
    passfile: str | None = None
    if explicit_password:
        passwords = [(SecretStr(explicit_password), sources["password"])] * count
    else:
        passfile = values.get("passfile") or None
        if passfile is None and homedir is not None:
            passfile = f"{homedir}/.pgpass"
        data = _read_passfile(passfile, stacklevel=4) if passfile else None
        if data is not None and passfile:
            for i in range(count):
                # libpq searches with the host name if one was given, else hostaddr.
                key_host = slot_hosts[i] or addrs[i] or ""
                found = _search(
                    data, pgpass_host_key(key_host), slot_ports[i] or DEF_PGPORT_STR, dbname, user
                )
                if found is not None and found[0]:
                    secrets.append(found[0])
                    passwords[i] = (SecretStr(found[0]), f".pgpass {passfile} line {found[1]}")

    _validate({**compiled, **values}, version)

    targets: list[PgHost] = []
    for i in range(count):
        shown = slot_hosts[i] or addrs[i] or ""
        port_number = _port_number(slot_ports[i])
        pw = passwords[i]
        targets.append(
            PgHost(
                host=shown,
                hostaddr=addrs[i] or None,
                port=port_number,
                password=pw[0] if pw else None,
                password_source=pw[1] if pw else None,
            )
        )

    first = targets[0]
    if names[0]:
        host_source = sources["host"]
    elif addrs[0]:
        host_source = sources["hostaddr"]
    else:
        host_source = "default"
    result_sources: dict[str, str] = {
        "host": host_source,
        "port": sources["port"] if slot_ports[0] else "default",
        "user": user_source,
        "dbname": dbname_source,
    }
    if first.password_source is not None:
        result_sources["password"] = first.password_source
    options = {k: v for k, v in values.items() if k not in _MAIN}
    for key in options:
        result_sources[key] = sources[key]
    return ResolvedPg(
        host=first.host,
        port=first.port,
        user=user,
        dbname=dbname,
        password=first.password,
        hosts=[(t.host, t.port) for t in targets],
        options=options,
        sources=result_sources,
        targets=targets,
        passfile=passfile,
        libpq_version=version,
    )
