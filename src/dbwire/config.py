"""DatabaseConfig / Config models and load_config(): every source and its precedence."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
)

from dbwire.errors import MASK, ConfigError, is_secret_key
from dbwire.url import (
    mask_text,
    mask_url,
    mask_url_string,
    parse_url,
    plainly_secret_free,
    query_secrets,
)

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
# Transaction-pooling proxies dbwire knows how to talk through (dbwire.pooler).
POOLERS = ("pgbouncer",)
_object_setattr = object.__setattr__
# Values that hold no text, as TOML and code give them.
_SCALARS = frozenset({int, float, bool, type(None)})


class DatabaseConfig(BaseModel):
    """One named database: where it is, how to log in, and how to pool connections.

    Fields left at None mean "no opinion": the backend's defaults apply.
    """

    # hide_input_in_errors: a DatabaseConfig(...) built in code with a bad value raises
    # pydantic's error, whose text would otherwise quote the input (a provider table's
    # token, a password); validate_database() shows inputs masked on its own.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, hide_input_in_errors=True
    )

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)
    # `url` and `replicas` are kept masked (str(), repr, dumps); the URLs as written, with
    # their passwords, live only here and come out through url_with_password().
    _url_secret: str | None = PrivateAttr(default=None)
    _replica_secrets: tuple[str, ...] | None = PrivateAttr(default=None)
    # The environment given to load_config()/connect(): PG* variables and HOME are read
    # from it alone when a connection opens. None: os.environ at that moment.
    _environ: Mapping[str, str] | None = PrivateAttr(default=None)
    # True once the env_prefix variables are in the fields (load_config applies them).
    _prefix_applied: bool = PrivateAttr(default=False)
    # The other databases of the Config this one came from: `replicas` may name them.
    _siblings: Mapping[str, DatabaseConfig] | None = PrivateAttr(default=None)

    name: str = "default"
    url: str | None = None
    backend: str | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = Field(default=None, alias="username")
    password: SecretStr | None = Field(default=None, repr=False)
    database: str | None = None
    # A pg_service.conf section, as libpq's `service=`: its host, port, dbname... fill in
    # whatever this table leaves unset.
    service: str | None = None
    # Credential sources resolved at connect time (see dbwire.credentials).
    passfile: str | None = None
    password_file: str | None = None
    password_command: str | list[str] | None = None
    password_command_ttl: float = Field(default=300.0, ge=0)
    # {type = "aws_secrets_manager", secret_id = "...", ttl = 300}: dbwire.credentials.providers
    password_provider: dict[str, Any] | None = None
    mysql_option_file: str | None = None
    env_prefix: str | None = None
    options: dict[str, str] = Field(default_factory=dict)
    connect_args: dict[str, Any] = Field(default_factory=dict)
    replicas: list[str] = Field(default_factory=list)
    # Read replicas (dbwire.replicas): how readonly=True work picks one, when one is skipped.
    replica_strategy: Literal["round_robin", "least_loaded"] = "round_robin"
    max_replica_lag_s: float | None = Field(default=None, gt=0)
    replica_check_interval_s: float = Field(default=5.0, ge=0)
    replica_backoff_s: float = Field(default=30.0, ge=0)
    read_your_writes_s: float = Field(default=5.0, ge=0)
    # A transaction-pooling proxy in front of the server (dbwire.pooler): "pgbouncer".
    pooler: str | None = None
    # "null": no pool of dbwire's own (SQLAlchemy's NullPool), pooling is the pooler's job.
    pooler_pool: Literal["queue", "null"] = "queue"

    readonly: bool = False
    create_db: bool = False
    pool_size: int | None = Field(default=None, ge=0)
    max_overflow: int | None = Field(default=None, ge=-1)
    # Connections opened in the background when the engine is created, and kept pooled.
    pool_min_size: int = Field(default=0, ge=0)
    pool_timeout: float | None = Field(default=None, gt=0)
    pool_recycle: int | None = None
    pool_pre_ping: bool | None = None
    # With pool_pre_ping on, ping only connections idle longer than this many seconds (or
    # whose socket shows the server hung up); 0 pings on every checkout, as SQLAlchemy does.
    pre_ping_idle: float = Field(default=1.0, ge=0)
    echo: bool = False
    connect_timeout: float | None = Field(default=None, gt=0)

    log_queries: bool = False
    query_log_level: LogLevel = "DEBUG"
    slow_query_ms: float | None = Field(default=None, ge=0)
    # Log a warning, once per checkout, for a pooled connection held longer than this
    # many seconds (dbwire.observe); None: off.
    leak_warning_s: float | None = Field(default=None, gt=0)
    connect_retries: int = Field(default=0, ge=0)
    health_timeout: float = Field(default=5.0, gt=0)
    # The statement a health check runs; default: the backend's (SELECT 1).
    health_query: str | None = None
    # Seed 001: reflected metadata cached here as JSON (a file, or a directory for one file per
    # database), keyed by URL and schema; db.refresh_metadata() rewrites it.
    metadata_cache: str | None = None
    metadata_schema: str | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _valid_text(cls, value: object) -> object:
        # A lone surrogate (e.g. from os.fsdecode of a bad byte) cannot be encoded: refuse it
        # here rather than fail later inside a driver or when the config is serialised.
        kind = value.__class__
        if kind in _SCALARS or (isinstance(value, str) and value.isascii()):
            return value
        if not _encodable(value):
            raise ValueError(
                "contains text that is not valid Unicode (a lone surrogate); "
                "write the value in valid UTF-8"
            )
        return value

    @field_validator("query_log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("password_provider", mode="before")
    @classmethod
    def _provider_table(cls, value: object) -> object:
        if isinstance(value, str):  # from an environment variable: a JSON object
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError('must be a JSON object such as {"type": "env", ...}') from None
        return value

    @field_validator("password_provider")
    @classmethod
    def _valid_provider(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from dbwire.credentials.providers import validate_provider_spec

            validate_provider_spec(value)
        return value

    @field_validator("pooler")
    @classmethod
    def _valid_pooler(cls, value: str | None) -> str | None:
        if value is not None and value not in POOLERS:
            hint = _suggest(value, POOLERS)
            raise ValueError(
                f"unknown pooler {value!r}{hint}; expected one of {', '.join(POOLERS)} "
                "(transaction pooling), or leave it unset for a direct connection"
            )
        return value

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value and not value.startswith("sqlite:"):
            raise ValueError("expected 'scheme://...', e.g. 'postgresql://app@localhost/app'")
        return value

    def model_post_init(self, context: Any, /) -> None:
        """Move the URL's password (userinfo, ?password=, ?sslpassword= ...) out of `url`."""
        # The private attributes in one dict: pydantic's own initialisation (which this
        # class undoes below) asks each attribute for its default, a fifth of validating
        # a small config.
        _object_setattr(self, "__pydantic_private__", {**_PRIVATE_DEFAULTS, "_sources": {}})
        url, replicas = self.url, self.replicas
        if url is not None:
            shown, had_secret = mask_url_string(url)
            if had_secret:
                self._url_secret = url
                self.__dict__["url"] = shown  # frozen model: set once, at validation
        if replicas and not all(map(plainly_secret_free, replicas)):
            masked = [mask_url_string(raw) for raw in replicas]
            if any(had for _, had in masked):
                self._replica_secrets = tuple(replicas)
                self.__dict__["replicas"] = [shown for shown, _ in masked]

    def url_with_password(self) -> str | None:
        """The URL as configured, password included: for the engine and --show-password only."""
        secret = self._url_secret
        # A copy whose url was replaced (model_copy(update=...)) keeps the old private
        # attribute: the secret counts only while it still masks to the current url.
        if secret is not None and mask_url_string(secret)[0] == self.url:
            return secret
        return self.url

    def replicas_with_passwords(self) -> list[str]:
        """The replica URLs as configured, passwords included."""
        return list(self._replica_secrets or self.replicas)

    def secret_values(self) -> list[str]:
        """Every secret written in this config, for scrubbing text before it is shown."""
        found: list[str] = []
        if self.password is not None:
            found.append(self.password.get_secret_value())
        for raw in (self._url_secret, *(self._replica_secrets or ())):
            if raw is None:
                continue
            try:
                url = parse_url(raw)
            except ConfigError:
                continue
            if url.password:
                found.append(str(url.password))
            found.extend(query_secrets(url).values())
        found.extend(_secret_leaves(self.options))
        found.extend(_secret_leaves(self.connect_args))
        found.extend(_secret_leaves(self.password_provider or {}))
        return [s for s in found if s]

    def secret_fingerprint(self) -> str:
        """A digest of the secrets, so two configs differing only in a password differ."""
        material = repr(
            (
                self.url_with_password(),
                self.replicas_with_passwords(),
                sorted(self.options.items()),
                sorted((k, repr(v)) for k, v in self.connect_args.items()),
                self.password_command,
                repr(self.password_provider),
                self.password.get_secret_value() if self.password is not None else None,
            )
        )
        return hashlib.sha256(material.encode()).hexdigest()

    @field_serializer("options", "connect_args")
    def _dump_masked(self, value: dict[str, Any]) -> dict[str, Any]:
        return _masked_mapping(value)

    @field_serializer("password_provider")
    def _dump_provider(self, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        shown = _masked_mapping(value)
        if "command" in shown:  # a command's arguments may hold a token
            shown["command"] = self._dump_command(shown["command"])
        return shown

    @field_serializer("password_command")
    def _dump_command(self, value: str | list[str] | None) -> str | list[str] | None:
        # An argument may be a token; the program's name is enough to recognise it.
        if value is None:
            return None
        if isinstance(value, str):
            try:
                argv = shlex.split(value)
            except ValueError:
                return MASK
            return shlex.join([os.path.basename(argv[0]), *[MASK] * (len(argv) > 1)])
        return [os.path.basename(value[0]), *[MASK] * (len(value) > 1)] if value else []

    @property
    def scheme(self) -> str | None:
        """The URL scheme without a driver suffix ('postgresql+psycopg' -> 'postgresql')."""
        if self.url is None:
            return None
        return self.url.split("://", 1)[0].split(":", 1)[0].split("+", 1)[0].lower()

    @property
    def display_url(self) -> str:
        """The URL (or host/database summary) with any password masked."""
        if self.url is not None:
            return mask_url(parse_url(self.url, database=self.name))
        parts = [self.backend or "?", "://"]
        if self.user:
            parts.append(f"{self.user}@")
        parts.append(self.host or "")
        if self.port:
            parts.append(f":{self.port}")
        parts.append(f"/{self.database or ''}")
        return "".join(parts)

    def with_overrides(self, **overrides: Any) -> DatabaseConfig:
        """Return a copy with overrides applied and validated (arguments in code win)."""
        if not overrides:
            return self
        # Field values as set (resolved_source), not model_dump(): dumps mask the secrets.
        arguments = layer(overrides, {}, default="argument")
        data, sources = _split(first_wins((arguments, resolved_source(self))))
        result = validate_database(data, name=self.name, origin="arguments", sources=sources)
        result._environ = self._environ
        result._prefix_applied = self._prefix_applied
        result._siblings = self._siblings
        return result

    def with_env_prefix(self) -> DatabaseConfig:
        """A copy with the <env_prefix>_<FIELD> variables applied, as load_config applies them.

        A DatabaseConfig built in code reads them here, from its environment (os.environ
        when none was given), so env_prefix means the same however the config was made;
        arguments given to dbwire.connect() still win over them.
        """
        if not self.env_prefix or self._prefix_applied:
            return self
        env = os.environ if self._environ is None else self._environ
        prefixed = prefix_env_source(self.name, self.env_prefix, env)
        if not prefixed:
            copy = self.model_copy()
            copy._prefix_applied = True
            return copy
        data, sources = _split(first_wins((prefixed, resolved_source(self))))
        result = validate_database(data, name=self.name, origin="arguments", sources=sources)
        result._environ = self._environ
        result._prefix_applied = True
        result._siblings = self._siblings
        return result

    @property
    def environ(self) -> Mapping[str, str] | None:
        """The environment this database reads PG* variables and HOME from (None: os.environ)."""
        return self._environ

    def with_environ(self, environ: Mapping[str, str] | None) -> DatabaseConfig:
        """A copy that resolves credentials from environ (None: os.environ)."""
        if environ is self._environ:
            return self
        copy = self.model_copy()
        copy._environ = environ
        return copy

    @property
    def siblings(self) -> Mapping[str, DatabaseConfig] | None:
        """The databases of the Config this one was read with (None: built on its own)."""
        return self._siblings

    def field_source(self, field: str) -> str:
        """Where a field's value came from: 'argument', 'env VAR', 'FILE:LINE', or 'default'."""
        return self._sources.get(field, "default")

    def __repr__(self) -> str:
        return f"DatabaseConfig(name={self.name!r}, url={self.display_url!r})"

    __str__ = __repr__


# pydantic wraps a model_post_init of a model with private attributes in a function that
# sets their defaults first, one get_default() each; DatabaseConfig's sets them itself.
_post_init = DatabaseConfig.model_post_init
DatabaseConfig.model_post_init = getattr(_post_init, "__wrapped__", _post_init)  # type: ignore[method-assign]
# The constant defaults (`_sources` is the one made per instance, in model_post_init).
_PRIVATE_DEFAULTS = {
    name: attr.default
    for name, attr in DatabaseConfig.__private_attributes__.items()
    if attr.default_factory is None
}
if set(DatabaseConfig.__private_attributes__) - set(_PRIVATE_DEFAULTS) != {"_sources"}:
    raise RuntimeError("DatabaseConfig.model_post_init must create each default_factory value")


_VALIDATE = DatabaseConfig.__pydantic_validator__.validate_python


class Config(BaseModel):
    """A set of named databases and where they were read from."""

    model_config = ConfigDict(frozen=True)

    databases: dict[str, DatabaseConfig] = Field(default_factory=dict)
    source: str | None = None

    def model_post_init(self, context: Any, /) -> None:
        """Let each database's `replicas` name the others."""
        databases = self.databases
        for config in databases.values():
            private = config.__pydantic_private__
            if private is None:  # not made by validation or model_construct()
                config._siblings = databases
            else:  # as the assignment does, without its per-call attribute lookups
                private["_siblings"] = databases

    def database(self, name: str) -> DatabaseConfig:
        """Return the database called name; UnknownDatabaseError lists the known ones."""
        from dbwire.errors import UnknownDatabaseError

        try:
            return self.databases[name]
        except KeyError:
            known = ", ".join(sorted(self.databases)) or "(none)"
            hint = _suggest(name, self.databases)
            raise UnknownDatabaseError(
                f"no database named {name!r}{hint}; configured: {known} "
                f"(config: {self.source or 'none found'})",
                database=name,
            ) from None


def _encodable(value: object) -> bool:
    """True when every string inside value (dict keys included) encodes to UTF-8."""
    if isinstance(value, str):
        if value.isascii():
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, Mapping):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_encodable(v) for v in value)
    return True


_FIELD_NAMES = sorted(
    {*DatabaseConfig.model_fields, "username"} - {"name"},
)
# How a TOML file writes a "$": as itself, or escaped in a basic string.
_DOLLAR_FORMS = ("$", "\\u0024", "\\U00000024")
_INTERPOLATION = re.compile(r"\$\{(?P<var>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_PREFIX_FIELD_ALIASES = {"pgpass": "passfile", "dbname": "database", "name": "database"}


def _suggest(word: str, choices: Any) -> str:
    options = list(choices)
    # Django's USER / HOST / NAME: a key that differs only in case is the likely meaning.
    folded = [c for c in options if c.casefold() == word.casefold()]
    if not folded and word.casefold() == "name" and "database" in options:
        folded = ["database"]
    match = folded or difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


_SECRET_FIELDS = {"password", "password_command", "password_provider", "connect_args"}


def _masked_mapping(value: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with values under secret keys masked, nested tables too (connect_args.ssl)."""
    return {
        k: MASK if is_secret_key(k) else (_masked_mapping(v) if isinstance(v, Mapping) else v)
        for k, v in value.items()
    }


def _secret_leaves(value: Mapping[str, Any]) -> list[str]:
    """The values under secret keys, nested tables too."""
    found: list[str] = []
    for k, v in value.items():
        if isinstance(v, Mapping):
            found.extend(_secret_leaves(v))
        elif is_secret_key(k) and v is not None and str(v):
            found.append(str(v))
    return found


def _shown_input(loc: tuple[int | str, ...], value: Any) -> str:
    """A rejected value as a message may show it: secrets masked, URLs without passwords."""
    top = str(loc[0]) if loc else "?"
    if top in _SECRET_FIELDS or any(is_secret_key(part) for part in loc):
        return MASK
    if top in ("options", "url", "replicas") and not isinstance(value, str):
        return f"a {type(value).__name__}"  # a whole table may hold a secret
    if isinstance(value, str) and top in ("url", "replicas"):
        return repr(mask_url_string(value)[0])
    return mask_text(repr(value))


def validate_database(
    data: Mapping[str, Any],
    *,
    name: str,
    origin: str,
    sources: Mapping[str, str] | None = None,
) -> DatabaseConfig:
    """Validate one database's fields, turning pydantic errors into one clear ConfigError.

    Args:
        data: the field values.
        name: the database's name.
        origin: where the values came from, for messages ("dbwire.toml", "arguments").
        sources: per field, a finer origin ("env DBWIRE_MAIN__POOL_SIZE", "dbwire.toml:7"),
            kept on the result for `dbwire url --explain`.
    """
    payload = dict(data)
    payload["name"] = name
    where = sources or {}
    try:
        # The validator itself: model_validate() adds a call that only passes it on.
        config: DatabaseConfig = _VALIDATE(payload)
    except ValidationError as exc:
        errors = exc.errors()
    else:
        # Straight into the fresh model's private dict: the attribute goes through
        # pydantic's __getattr__, twice the cost of the dict.
        private = config.__pydantic_private__
        assert private is not None  # set by model_post_init
        private["_sources"] = {k: where.get(k, origin) for k in payload if k != "name"}
        return config
    # Raised outside the except block: pydantic's error (whose input_value may be a
    # password) would stay reachable as __context__ even with `from None`.
    problems = []
    for err in errors:
        field = ".".join(str(p) for p in err["loc"]) or "?"
        top = str(err["loc"][0]) if err["loc"] else "?"
        if err["type"] == "extra_forbidden":
            hint = _suggest(field, _FIELD_NAMES)
            problems.append(f"unknown field {field!r}{hint}")
            continue
        shown = _shown_input(tuple(err["loc"]), err.get("input"))
        source = where.get(top, origin)
        if source.startswith("env "):
            kind = _EXPECTED.get(err["type"].split("_", 1)[0], err["msg"])
            problems.append(f"{source[4:]}={shown} is not a valid {kind}")
        else:
            problems.append(
                f"field {field!r}: {mask_text(err['msg'])} (got {shown}; from {source})"
            )
    raise ConfigError(f"{origin}: database {name!r}: " + "; ".join(problems), database=name)


_EXPECTED = {"int": "int", "float": "float", "bool": "bool", "greater": "value (too small)"}


def interpolate(value: Any, environ: Mapping[str, str], *, where: str) -> Any:
    """Expand ${VAR} and ${VAR:-default} in every string of a TOML value."""
    if isinstance(value, str):
        if "${" not in value:
            return value

        def expand(match: re.Match[str]) -> str:
            var, default = match.group("var"), match.group("default")
            if var in environ:
                return environ[var]
            if default is not None:
                return default
            raise ConfigError(
                f"{where}: environment variable {var!r} is not set and has no default; "
                f"set it or write ${{{var}:-default}}"
            )

        return _INTERPOLATION.sub(expand, value)
    if isinstance(value, dict):
        return {
            k: v if v.__class__ in _SCALARS else interpolate(v, environ, where=where)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [interpolate(v, environ, where=where) for v in value]
    return value


# -- precedence: an ordered tuple of sources, read from the top, first one wins ---------
@dataclass(frozen=True)
class Sourced:
    """A value and where it came from: 'argument', 'env VAR', 'FILE:LINE' or 'default'."""

    value: Any
    source: str


#: Where a database's fields come from, highest first; the first source that sets a
#: field wins, and the field keeps that source's name (`dbwire url --explain`).
DATABASE_SOURCES: tuple[str, ...] = (
    "argument",  # dbwire.connect(..., **overrides), DatabaseConfig.with_overrides()
    "env DBWIRE_<NAME>__<FIELD>",
    "env <env_prefix>_<FIELD>",
    "file",  # a path or dict, $DBWIRE_CONFIG, ./dbwire.toml, [tool.dbwire], $DATABASE_URL
    "default",  # DatabaseConfig's own field defaults
)


def layer(
    values: Mapping[str, Any], origins: Mapping[str, str], default: str
) -> dict[str, Sourced]:
    """One source's fields, each with its origin (`default` where origins has none)."""
    return {key: Sourced(value, origins.get(key, default)) for key, value in values.items()}


def first_wins(layers: tuple[Mapping[str, Sourced], ...]) -> dict[str, Sourced]:
    """Merge sources given highest first: a field keeps the first value (and source) seen."""
    merged: dict[str, Sourced] = {}
    for found in layers:
        for key, item in found.items():
            merged.setdefault(key, item)
    return merged


def _split(merged: Mapping[str, Sourced]) -> tuple[dict[str, Any], dict[str, str]]:
    """Values and origins; a field without an origin ("") takes the validation's origin."""
    values = {k: v.value for k, v in merged.items()}
    return values, {k: v.source for k, v in merged.items() if v.source}


def dbwire_env_source(name: str, environ: Mapping[str, str]) -> dict[str, Sourced]:
    """The DBWIRE_<NAME>__<FIELD> variables of one database."""
    return layer(*_env_overrides(name, None, environ), default="env")


def prefix_env_source(
    name: str, prefix: str | None, environ: Mapping[str, str]
) -> dict[str, Sourced]:
    """The <env_prefix>_<FIELD> variables of a database that has an env_prefix."""
    if not prefix:
        return {}
    return layer(*_env_overrides(name, prefix, environ, dbwire_vars=False), default="env")


def resolved_source(config: DatabaseConfig) -> dict[str, Sourced]:
    """A validated config's set fields as a source: secrets as written, origins kept."""
    data: dict[str, Any] = {k: getattr(config, k) for k in config.model_fields_set}
    if "url" in data:
        data["url"] = config.url_with_password()
    if "replicas" in data:
        data["replicas"] = config.replicas_with_passwords()
    data.pop("name", None)
    # A field set in code has no recorded origin; the caller's validation names it.
    return layer(data, config._sources, default="")


def _env_overrides(
    name: str, prefix: str | None, environ: Mapping[str, str], *, dbwire_vars: bool = True
) -> tuple[dict[str, Any], dict[str, str]]:
    """Fields set by DBWIRE_<NAME>__<FIELD>, or by <PREFIX>_<FIELD> for a database with env_prefix.

    Returns the values and, per field, the variable that set it. DBWIRE_<NAME>__* wins
    over the env_prefix variables when both set the same field.
    """
    found: dict[str, Any] = {}
    origins: dict[str, str] = {}
    heads: list[tuple[str, str]] = []
    if prefix:
        heads.append((prefix.upper().rstrip("_") + "_", "prefix"))
    if dbwire_vars:
        heads.append(("DBWIRE_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper() + "__", "dbwire"))
    for head, kind in heads:
        for key, raw in sorted(environ.items()):
            if not key.startswith(head):
                continue
            field = key[len(head) :].lower()
            field = _PREFIX_FIELD_ALIASES.get(field, field) if kind == "prefix" else field
            field = "user" if field == "username" else field
            if field not in DatabaseConfig.model_fields or field == "name":
                if kind == "prefix":
                    continue  # a project's own variable that merely shares the prefix
                raise ConfigError(
                    f"environment variable {key}: unknown field {field!r}"
                    f"{_suggest(field, _FIELD_NAMES)}",
                    database=name,
                )
            if field == "password" and raw == "":
                continue  # seed 001: an empty password means "look in .pgpass"
            found[field] = _cast_env(key, field, raw, name)
            origins[field] = f"env {key}"
    return found, origins


def _cast_env(key: str, field: str, raw: str, name: str) -> Any:
    annotation = str(DatabaseConfig.model_fields[field].annotation)
    if "dict" in annotation or ("list" in annotation and "str |" not in annotation):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            problem = f"{exc.msg} at character {exc.pos}"
        # Not echoed (connect_args may hold a password) and raised outside the except
        # block: the JSONDecodeError keeps the whole value in its .doc.
        raise ConfigError(
            f"database {name!r}: {key}: expected JSON for field {field!r} ({problem}); "
            'write it as a JSON object, e.g. {"sslmode": "require"}',
            database=name,
        )
    # pydantic casts the remaining strings ("10" -> int, "true" -> bool); a failure is
    # reported by validate_database with the variable's name as origin.
    return raw


def _find_file(path: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path | None:
    if path is not None:
        candidate = Path(path)
        if not candidate.is_file():
            raise ConfigError(f"config file {str(candidate)!r} does not exist")
        return candidate
    if environ.get("DBWIRE_CONFIG"):
        candidate = Path(environ["DBWIRE_CONFIG"])
        if not candidate.is_file():
            raise ConfigError(f"DBWIRE_CONFIG points at {str(candidate)!r}, which does not exist")
        return candidate
    for name in ("dbwire.toml", "pyproject.toml"):
        candidate = Path.cwd() / name
        if candidate.is_file():
            return candidate
    return None


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read config: {exc}") from None


def _read_toml(file: Path, text: str | None = None) -> dict[str, Any]:
    try:
        document = tomllib.loads(_read_text(file) if text is None else text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None
    if file.name == "pyproject.toml":
        tool = document.get("tool", {})
        section = tool.get("dbwire", {}) if isinstance(tool, dict) else {}
        return section if isinstance(section, dict) else {}
    return document


def _databases_table(document: Mapping[str, Any], origin: str) -> dict[str, Any]:
    unknown = set(document) - {"databases", "dbs"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(
            f"{origin}: unknown top-level key {key!r}{_suggest(key, ['databases'])}; "
            "databases go under [databases.NAME]"
        )
    table = document.get("databases", document.get("dbs", {}))
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise ConfigError(f"{origin}: 'databases' must be a table of tables ([databases.NAME])")
    return table


def _field_lines(text: str) -> dict[tuple[str, str], int]:
    """(database, field) -> line number of its assignment, for `dbwire url --explain`.

    tomllib keeps no positions; a light scan of [databases.NAME] headers is enough here.
    """
    lines: dict[tuple[str, str], int] = {}
    current: str | None = None
    header = re.compile(
        r"^\s*\[\s*(?:tool\s*\.\s*dbwire\s*\.\s*)?(?:databases|dbs)\s*\.\s*"
        r"\"?([^\]\"]+)\"?\s*\]"
    )
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("["):
            match = header.match(line)
            current = match.group(1).strip() if match else None
            continue
        if current is not None and "=" in line:
            key = line.split("=", 1)[0].strip().strip('"')
            lines.setdefault((current, key), number)
    return lines


#: URL schemes (before any "+driver") whose database part is a file path.
_FILE_SCHEMES = ("sqlite", "duckdb")
_NOT_A_FILE = ("", ":memory:")


def _anchored_path(path: str, base: Path) -> str:
    if path in _NOT_A_FILE or path.startswith(("file:", "~")) or os.path.isabs(path):
        return path
    return str(base / path)


def _anchor_file_paths(fields: dict[str, Any], base: Path) -> dict[str, Any]:
    """A relative SQLite/DuckDB path written in a config file names a file next to it.

    Relative to the working directory, `dbwire check -c other/dbwire.toml` would create
    (and report healthy) a new empty database wherever it runs.
    """
    url = fields.get("url")
    if isinstance(url, str) and url.split(":", 1)[0].split("+", 1)[0] in _FILE_SCHEMES:
        from dbwire.url_type import make_url

        try:
            parsed = make_url(url)
        except Exception:  # left for validation to report with its own message
            return fields
        if parsed.database is not None:
            anchored = _anchored_path(parsed.database, base)
            if anchored != parsed.database:
                rendered = parsed.set(database=anchored).render_as_string(hide_password=False)
                return {**fields, "url": rendered}
    backend = fields.get("backend")
    database = fields.get("database")
    if url is None and backend in _FILE_SCHEMES and isinstance(database, str):
        return {**fields, "database": _anchored_path(database, base)}
    return fields


def load_config(
    path: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load the configuration.

    Sources, first found wins: an explicit path or dict, $DBWIRE_CONFIG, ./dbwire.toml,
    [tool.dbwire] in ./pyproject.toml; $DATABASE_URL adds a database named 'default'.
    On top of the file, DBWIRE_<NAME>__<FIELD> (or each database's env_prefix) wins.
    """
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    origin = "config"
    source: str | None = None
    lines: dict[tuple[str, str], int] = {}
    file_dir: Path | None = None
    # False for a file none of whose strings can hold a "$" (nor so a ${VAR}).
    dollars = True
    if isinstance(path, Mapping):
        raw = _databases_table(path, "config dict")
        origin, source = "config dict", "dict"
    else:
        file = _find_file(path, env)
        if file is not None:
            source = origin = str(file)
            text = _read_text(file)
            raw = _databases_table(_read_toml(file, text), origin)
            lines = _field_lines(text)
            file_dir = file.resolve().parent
            dollars = any(form in text for form in _DOLLAR_FORMS)
    if "default" not in raw and env.get("DATABASE_URL"):
        raw["default"] = {"url": env["DATABASE_URL"]}
        lines[("default", "url")] = 0
        source = source or "DATABASE_URL"
    # Every DBWIRE_<NAME>__<FIELD> variable starts so: one scan of the environment for all
    # the databases, not one each.
    dbwire_env = {key: value for key, value in env.items() if key.startswith("DBWIRE_")}
    databases: dict[str, DatabaseConfig] = {}
    for name, fields in raw.items():
        if not isinstance(name, str) or not _encodable(name):
            raise ConfigError(
                f"{origin}: database name {name!r} must be text (valid UTF-8); "
                "name it like [databases.primary]"
            )
        expanded = (
            interpolate(fields, env, where=f"{origin}: database {name!r}")
            if dollars or lines.get((name, "url")) == 0  # $DATABASE_URL is expanded too
            else fields
        )
        if file_dir is not None and lines.get((name, "url")) != 0:
            expanded = _anchor_file_paths(expanded, file_dir)
        sources = {
            key: (f"{origin}:{line}" if (line := lines.get((name, key))) else origin)
            for key in expanded
        }
        if name == "default" and lines.get(("default", "url")) == 0:
            sources["url"] = "env DATABASE_URL"
        prefix = expanded.get("env_prefix")
        # A non-text env_prefix is reported by validate_database; no variables apply then.
        prefix = prefix if isinstance(prefix, str) else None
        # DATABASE_SOURCES below the arguments, highest first (arguments come later, in
        # dbwire.connect, through with_overrides).
        from_env = (
            dbwire_env_source(name, dbwire_env) if dbwire_env else {},
            prefix_env_source(name, prefix, env),
        )
        if any(from_env):
            values, origins = _split(
                first_wins((*from_env, layer(expanded, sources, default=origin)))
            )
        else:  # the file is the only source: its fields, each with its line
            values, origins = expanded, sources
        database = validate_database(values, name=name, origin=origin, sources=origins)
        # Built here and not shared yet: set in place, no copy needed.
        private = database.__pydantic_private__
        assert private is not None  # set by model_post_init
        private["_prefix_applied"] = True
        private["_environ"] = environ
        databases[name] = database
    return Config(databases=databases, source=source)
