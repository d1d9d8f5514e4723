"""The connections the API serves: config-file ones and API-made ones, and their lifecycle.

Create validates, builds and connects (a failed connect is kept as the connection's error,
the connection still listed); update detaches it from the store, closes it, drops its old
secret and builds it anew; delete does the same without the rebuild. Every operation may
be repeated.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from dbwire.backends import registry
from dbwire.config import DatabaseConfig, validate_database
from dbwire.database import Database
from dbwire.errors import DbwireError, describe, scrub
from dbwire.manager import Manager
from dbwire.serve.errors import (
    ConnectionExistsError,
    ConnectionOwnedError,
    UnknownConnectionError,
)
from dbwire.serve.forms import ConnectionType, check_name, connection_type
from dbwire.serve.state import SecretStore, StateFile, StoredConnection
from dbwire.types import HealthResult

logger = logging.getLogger("dbwire.serve")

Status = Literal["healthy", "unhealthy", "unknown"]
Source = Literal["config", "api"]
#: DatabaseConfig fields a connection from the config file shows (never a secret).
_SHOWN_CONFIG_FIELDS = ("url", "backend", "host", "port", "user", "database", "readonly")


@dataclass(frozen=True)
class _Prepared:
    ctype: ConnectionType
    config: DatabaseConfig
    shown: dict[str, Any]
    secrets: dict[str, str] = field(repr=False)


@dataclass
class Connection:
    """What the API knows of one connection (secrets are only flags here)."""

    name: str
    type: str
    config: dict[str, Any]
    secret_fields: dict[str, bool]
    readonly: bool
    source: Source
    status: Status = "unknown"
    error: str | None = None
    response_time_ms: float | None = None
    _secrets: dict[str, str] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The connection object of the API contract."""
        return {
            "name": self.name,
            "type": self.type,
            "config": dict(self.config),
            "secrets": dict(self.secret_fields),
            "readonly": self.readonly,
            "status": self.status,
            "error": self.error,
            "response_time_ms": self.response_time_ms,
            "source": self.source,
        }


class Connections:
    """The registry of served connections, over a Manager (which owns the Databases)."""

    def __init__(
        self,
        manager: Manager,
        state: StateFile,
        secrets: SecretStore,
        *,
        on_remove: Callable[[str], None] | None = None,
    ) -> None:
        self.manager = manager
        self.state = state
        self.secrets = secrets
        self._on_remove = on_remove or (lambda _name: None)
        self._lock = threading.RLock()
        self._items: dict[str, Connection] = {}
        for name in manager.list_databases():
            self._items[name] = self._from_config(name, manager.config.database(name))

    # -- reading -----------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every connection name, config-file ones first."""
        with self._lock:
            return list(self._items)

    def all(self) -> list[Connection]:
        """Every connection."""
        with self._lock:
            return list(self._items.values())

    def get(self, name: str) -> Connection:
        """The connection called name; UnknownConnectionError lists the known ones."""
        with self._lock:
            found = self._items.get(name)
            if found is None:
                known = ", ".join(self._items) or "none"
                raise UnknownConnectionError(
                    f"no connection named {name!r}; known: {known}",
                    database=name,
                    fix="create it with POST /api/connections",
                )
            return found

    def database(self, name: str) -> Database:
        """The Database behind a connection."""
        self.get(name)
        return self.manager.db(name)

    def known_secrets(self) -> list[str]:
        """Every secret of every connection, to scrub text before it is shown."""
        found: list[str] = []
        with self._lock:
            items = list(self._items.values())
        for item in items:
            found.extend(item._secrets.values())
            try:
                found.extend(self.manager.config.database(item.name).secret_values())
                # The Database's own list also has what env_prefix, password_file or a
                # password command gave it.
                found.extend(s for s in self.manager.db(item.name).known_secrets() if s)
            except DbwireError:
                continue
        return [s for s in found if s]

    # -- changing ------------------------------------------------------------------------
    def create(self, name: object, kind: object, config: object) -> Connection:
        """Validate, build, persist and connect a new connection; 409 if the name is taken."""
        checked = check_name(name)
        ctype = connection_type(checked, kind)
        values = ctype.parse(checked, config)
        with self._lock:
            if checked in self._items:
                raise ConnectionExistsError(
                    f"a connection named {checked!r} exists already",
                    database=checked,
                    field="name",
                    fix=f"use PUT /api/connections/{checked} to change it, or another name",
                )
            item = self._install(checked, ctype, values)
            self._save()
        self.check(checked)
        return item

    def update(self, name: str, kind: object, config: object) -> Connection:
        """Replace an API-made connection; an omitted secret keeps the stored one, null clears."""
        current = self.get(name)
        if current.source == "config":
            raise self._owned(name)
        ctype = connection_type(name, kind)
        given = dict(config) if isinstance(config, dict) else config
        if isinstance(given, dict):
            for secret in ctype.secret_fields():
                if secret not in given and secret in current._secrets:
                    given[secret] = current._secrets[secret]
        ready = self._prepare(name, ctype, ctype.parse(name, given))
        with self._lock:
            self._uninstall(name)
            item = self._commit(name, ready)
            self._save()
        self.check(name)
        return item

    def delete(self, name: str) -> None:
        """Remove an API-made connection and its secrets; nothing to do is fine."""
        with self._lock:
            current = self._items.get(name)
            if current is None:
                return
            if current.source == "config":
                raise self._owned(name)
            self._uninstall(name)
            self._save()

    def check(self, name: str, timeout: float | None = None) -> HealthResult:
        """Connect and run the health query; the outcome becomes the connection's status."""
        item = self.get(name)
        try:
            db = self.manager.db(name)
            result = db.health_check(timeout)
        except DbwireError as exc:
            result = HealthResult(name, "unhealthy", 0.0, describe(exc, self.known_secrets()))
        self.record(name, result)
        return self._clean(result) if item else result

    def record(self, name: str, result: HealthResult) -> None:
        """Keep the latest health outcome of a connection (the sampler calls this too)."""
        with self._lock:
            item = self._items.get(name)
            if item is None:
                return
            item.status = "healthy" if result.healthy else "unhealthy"
            item.error = None if result.healthy else self._scrubbed(result.error or "unhealthy")
            item.response_time_ms = round(result.response_time_ms, 3) if result.healthy else None

    def restore(self) -> list[str]:
        """Rebuild the connections of the state file; names that could not be restored."""
        failed: list[str] = []
        for stored in self.state.load():
            try:
                ctype = connection_type(stored.name, stored.type)
                values = dict(stored.config)
                for secret, where in stored.secrets.items():
                    value = self.secrets.get(stored.name, secret) if where else None
                    if value is not None:
                        values[secret] = value
                with self._lock:
                    if stored.name in self._items:
                        logger.warning(
                            "dbwire serve: connection %r of the state file is also in the "
                            "config; the config's wins",
                            stored.name,
                        )
                        continue
                    self._install(stored.name, ctype, ctype.parse(stored.name, values))
            except DbwireError as exc:
                failed.append(stored.name)
                logger.warning(
                    "dbwire serve: could not restore connection %r: %s",
                    stored.name,
                    describe(exc, self.known_secrets()),
                )
        return failed

    # -- internals ------------------------------------------------------------------------
    def _prepare(self, name: str, ctype: ConnectionType, values: dict[str, Any]) -> _Prepared:
        """Everything that can refuse the values, done before anything is changed."""
        secrets = {
            k: str(v) for k, v in values.items() if ctype.is_secret(k) and v not in (None, "")
        }
        shown = {k: v for k, v in values.items() if not ctype.is_secret(k)}
        config = validate_database(ctype.database_fields(values), name=name, origin="dbwire serve")
        registry.get(ctype.name)(config).validate()  # the driver's rules, without any IO
        return _Prepared(ctype, config, shown, secrets)

    def _install(self, name: str, ctype: ConnectionType, values: dict[str, Any]) -> Connection:
        return self._commit(name, self._prepare(name, ctype, values))

    def _commit(self, name: str, ready: _Prepared) -> Connection:
        self.manager.add_database(name, ready.config)
        for key, value in ready.secrets.items():
            self.secrets.set(name, key, value)
        item = Connection(
            name=name,
            type=ready.ctype.name,
            config=ready.shown,
            secret_fields={k: k in ready.secrets for k in ready.ctype.secret_fields()},
            readonly=bool(ready.config.readonly),
            source="api",
            _secrets=ready.secrets,
        )
        self._items[name] = item
        return item

    def _uninstall(self, name: str) -> None:
        item = self._items.pop(name, None)
        try:
            self._on_remove(name)  # detach from the store before the Database closes
        finally:
            self.manager.remove_database(name)
            if item is not None:
                for key in item.secret_fields:
                    self.secrets.delete(name, key)

    def _save(self) -> None:
        self.state.save(
            [
                StoredConnection(
                    name=i.name,
                    type=i.type,
                    config=i.config,
                    secrets={k: self.secrets.kind for k, on in i.secret_fields.items() if on},
                )
                for i in self._items.values()
                if i.source == "api"
            ]
        )

    def _from_config(self, name: str, cfg: DatabaseConfig) -> Connection:
        dumped = cfg.model_dump(include=set(_SHOWN_CONFIG_FIELDS), exclude_none=True)
        kind = cfg.backend or cfg.scheme or "unknown"
        return Connection(
            name=name,
            type=kind,
            config=dumped,
            secret_fields={
                "password": cfg.password is not None or bool(cfg.secret_values()),
                "password_command": cfg.password_command is not None,
            },
            readonly=cfg.readonly,
            source="config",
        )

    def _owned(self, name: str) -> ConnectionOwnedError:
        where = self.manager.config.source or "the config"
        return ConnectionOwnedError(
            f"connection {name!r} is defined in {where}; the API changes only connections "
            "it created",
            database=name,
            fix=f"edit [databases.{name}] in {where} and restart dbwire serve",
        )

    def _scrubbed(self, text: str) -> str:
        return scrub(text, self.known_secrets())

    def _clean(self, result: HealthResult) -> HealthResult:
        if result.error is None:
            return result
        return HealthResult(
            result.name, result.status, result.response_time_ms, self._scrubbed(result.error)
        )
