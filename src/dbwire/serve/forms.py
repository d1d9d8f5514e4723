"""Connection types: one form model per backend, its JSON schema, and form -> DatabaseConfig.

A backend may ship its own pydantic model as `config_model` (a class attribute); for the
others the form is derived here from the DatabaseConfig fields that kind of backend uses:
host, port, user, password, database, sslmode for a server, a file path for an embedded
one, and readonly for every one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, create_model

from dbwire.backends import registry
from dbwire.backends.base import Backend
from dbwire.errors import UnknownBackendError, is_secret_key
from dbwire.serve.errors import BadRequestError
from dbwire.url import mask_text

#: Form fields whose values are secrets: never returned, never stored in the state file.
SECRET_FIELDS = frozenset({"password", "password_command"})

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _secret(title: str, description: str) -> Any:
    return Field(default=None, title=title, description=description)


def _server_form(cls: type[Backend]) -> type[BaseModel]:
    label = cls.label or cls.name
    fields: dict[str, Any] = {
        "host": (str, Field(default="127.0.0.1", title="Host", description="Server host name")),
        "port": (
            int,
            Field(
                default=cls.default_port or 1,
                ge=1,
                le=65535,
                title="Port",
                description=f"{label} server port",
            ),
        ),
        "user": (str | None, Field(default=None, title="User", description="Login name")),
        "password": (
            SecretStr | None,
            _secret("Password", "Stored in the system keyring or a 0600 file, never shown"),
        ),
        "database": (
            str | None,
            Field(default=None, title="Database", description="Database to connect to"),
        ),
        "sslmode": (
            SslMode | None,
            Field(default=None, title="SSL mode", description="TLS: libpq's sslmode names"),
        ),
        "connect_timeout": (
            float | None,
            Field(default=10.0, gt=0, le=300, title="Connect timeout (s)"),
        ),
        "password_file": (
            str | None,
            Field(default=None, title="Password file", description="Read at every connect"),
        ),
        "password_command": (
            str | None,
            _secret("Password command", "A command printing the password (kept secret)"),
        ),
        "env_prefix": (
            str | None,
            Field(
                default=None,
                pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                max_length=64,
                title="Environment prefix",
                description="Read PREFIX_PASSWORD (and PREFIX_HOST, ...) from the server's "
                "environment at connect time",
            ),
        ),
        "readonly": (
            bool,
            Field(default=True, title="Read-only", description="Refuse writes in the database"),
        ),
    }
    return create_model(f"{cls.name.title()}Form", __base__=_Form, **fields)


def _file_form(cls: type[Backend]) -> type[BaseModel]:
    label = cls.label or cls.name
    fields: dict[str, Any] = {
        "path": (
            str,
            Field(min_length=1, title="File", description=f"Path of the {label} database file"),
        ),
        "readonly": (
            bool,
            Field(default=True, title="Read-only", description="Refuse writes in the database"),
        ),
    }
    return create_model(f"{cls.name.title()}Form", __base__=_Form, **fields)


@dataclass(frozen=True)
class ConnectionType:
    """One entry of GET /api/types: a backend and the form that configures it."""

    name: str
    title: str
    description: str
    backend: type[Backend]
    form: type[BaseModel]
    derived: bool

    def schema(self) -> dict[str, Any]:
        """The form's JSON schema, flattened for a page: `X | None` shown as X, secrets marked."""
        schema = self.form.model_json_schema()
        for name, prop in schema.get("properties", {}).items():
            options = prop.pop("anyOf", None)
            if options:
                kept = [o for o in options if o.get("type") != "null"]
                if len(kept) == 1:
                    prop.update({k: v for k, v in kept[0].items() if k not in prop})
            if name in SECRET_FIELDS or is_secret_key(name):
                prop["writeOnly"] = True
                prop["format"] = "password"
        return schema

    def secret_fields(self) -> list[str]:
        """The form's fields that hold secrets."""
        return [k for k in self.form.model_fields if self.is_secret(k)]

    def is_secret(self, field: str) -> bool:
        """True when the field holds a secret (stored apart, never returned)."""
        return field in SECRET_FIELDS or is_secret_key(field)

    def parse(self, name: str, given: object) -> dict[str, Any]:
        """Validate a request's `config` against the form; BadRequestError names the field."""
        if not isinstance(given, dict):
            raise BadRequestError(
                f"connection {name!r}: 'config' must be an object of form fields",
                field="config",
                database=name,
            )
        try:
            form = self.form.model_validate(given)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "config"
            shown = mask_text(first["msg"])
            raise BadRequestError(
                f"connection {name!r}: field {field!r}: {shown}",
                field=f"config.{field}",
                database=name,
                fix=f"see GET /api/types for the {self.name} form",
            ) from None
        values: dict[str, Any] = {}
        for key in type(form).model_fields:
            value = getattr(form, key)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            values[key] = value
        return values

    def database_fields(self, values: dict[str, Any]) -> dict[str, Any]:
        """DatabaseConfig fields for validated form values (secrets included)."""
        if not self.derived:
            return {"backend": self.name, **{k: v for k, v in values.items() if v is not None}}
        fields: dict[str, Any] = {"backend": self.name}
        options: dict[str, str] = {}
        for key, value in values.items():
            if value is None:
                continue
            if key == "path":
                fields["database"] = value
            elif key == "sslmode":
                options["sslmode"] = value
            else:
                fields[key] = value
        if options:
            fields["options"] = options
        return fields


def _describe(cls: type[Backend]) -> str:
    label = cls.label or cls.name
    if cls.is_server:
        return f"A {label} server, reached over the network"
    return f"A {label} database file on this machine"


def connection_types() -> list[ConnectionType]:
    """Every backend with a SQLAlchemy engine, built-in and third-party, once each."""
    seen: dict[str, ConnectionType] = {}
    for key in registry.known():
        try:
            cls = registry.get(key)
        except UnknownBackendError:
            continue
        if cls.name in seen or cls.name != key or not getattr(cls, "has_engine", True):
            continue
        own = getattr(cls, "config_model", None)
        if isinstance(own, type) and issubclass(own, BaseModel):
            form, derived = own, False
        else:
            form = _server_form(cls) if cls.is_server else _file_form(cls)
            derived = True
        seen[cls.name] = ConnectionType(
            name=cls.name,
            title=cls.label or cls.name,
            description=_describe(cls),
            backend=cls,
            form=form,
            derived=derived,
        )
    return list(seen.values())


def connection_type(name: str, kind: object) -> ConnectionType:
    """The type called kind; BadRequestError lists the known ones."""
    types = {t.name: t for t in connection_types()}
    if isinstance(kind, str) and kind in types:
        return types[kind]
    shown = repr(kind) if isinstance(kind, str) and len(kind) < 40 else "that"
    raise BadRequestError(
        f"connection {name!r}: no connection type {shown}; known: {', '.join(sorted(types))}",
        field="type",
        database=name,
        fix="pick one of GET /api/types",
    )


#: Catalog names DuckDB keeps for itself: a connection of that name could not be attached.
_RESERVED = frozenset({"memory", "system", "temp", "main", "store"})


def check_name(name: object) -> str:
    """A connection name: also its catalog name in the DuckDB store, so a plain identifier."""
    if isinstance(name, str) and name in _RESERVED:
        raise BadRequestError(
            f"connection name {name!r} is reserved by the DuckDB store",
            field="name",
            fix=f"pick another name, e.g. {name}_db",
        )
    if isinstance(name, str) and _NAME.match(name):
        return name
    raise BadRequestError(
        "connection name must start with a lowercase letter and hold only lowercase "
        "letters, digits and '_' (at most 63): it is also the name in cross-database SQL",
        field="name",
        fix="e.g. 'pg1' or 'shop_db'",
    )
