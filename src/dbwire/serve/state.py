"""Persistence of API-made connections: a JSON state file without secrets, and a secret store.

Secrets go to the system keyring when the `keyring` package finds a real backend there,
otherwise to a 0600 JSON file beside the state file; the state file records only which
secret fields are set and where they are kept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from dbwire.errors import ConfigError

logger = logging.getLogger("dbwire.serve")

STATE_VERSION = 1
DEFAULT_STATE_NAME = "dbwire-serve.json"
SecretBackend = Literal["auto", "keyring", "file"]


@dataclass
class StoredConnection:
    """One API-made connection as the state file keeps it."""

    name: str
    type: str
    config: dict[str, Any]
    secrets: dict[str, str] = field(default_factory=dict)  # field -> "keyring" | "file"


class SecretStore(Protocol):
    """Where connection secrets are kept; `kind` is written in the state file."""

    kind: str

    def get(self, connection: str, field: str) -> str | None:
        """The stored secret, or None."""

    def set(self, connection: str, field: str, value: str) -> None:
        """Store (or replace) a secret."""

    def delete(self, connection: str, field: str) -> None:
        """Forget a secret; nothing happens when there is none."""


def _write_private(path: Path, text: str) -> None:
    """Write text to path atomically, readable and writable by this user only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class FileSecrets:
    """Secrets in one JSON file, mode 0600, rewritten atomically on every change."""

    kind = "file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            mode = self.path.stat().st_mode & 0o077
        except FileNotFoundError:
            return {}
        if mode:
            raise ConfigError(
                f"secret file {str(self.path)!r} is readable by other users; "
                f"run: chmod 600 {self.path}"
            )
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"secret file {str(self.path)!r} cannot be read ({type(exc).__name__}); "
                "remove it and enter the passwords again"
            ) from None
        return data if isinstance(data, dict) else {}

    def get(self, connection: str, field: str) -> str | None:
        with self._lock:
            value = self._read().get(connection, {}).get(field)
        return value if isinstance(value, str) else None

    def set(self, connection: str, field: str, value: str) -> None:
        with self._lock:
            data = self._read()
            data.setdefault(connection, {})[field] = value
            _write_private(self.path, json.dumps(data, indent=1))

    def delete(self, connection: str, field: str) -> None:
        with self._lock:
            data = self._read()
            entry = data.get(connection, {})
            if field not in entry:
                return
            del entry[field]
            if not entry:
                data.pop(connection, None)
            _write_private(self.path, json.dumps(data, indent=1))


class KeyringSecrets:
    """Secrets in the system keyring (the `keyring` package), one item per field."""

    kind = "keyring"

    def __init__(self, service: str) -> None:
        import keyring

        self._keyring = keyring
        self.service = service

    def get(self, connection: str, field: str) -> str | None:
        value = self._keyring.get_password(self.service, f"{connection}/{field}")
        return value if isinstance(value, str) else None

    def set(self, connection: str, field: str, value: str) -> None:
        self._keyring.set_password(self.service, f"{connection}/{field}", value)

    def delete(self, connection: str, field: str) -> None:
        import keyring.errors

        with contextlib.suppress(keyring.errors.PasswordDeleteError):
            self._keyring.delete_password(self.service, f"{connection}/{field}")


def keyring_available(*, trusted_only: bool = True) -> bool:
    """True when `keyring` is installed and has a backend that really stores secrets.

    trusted_only asks for a system keyring (priority >= 1: Secret Service, KWallet, the
    macOS and Windows stores); the file backends of keyrings.alt (priority < 1, one of
    them plain text) count only when asked for by name (secret_backend="keyring").
    """
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return False
    try:
        backend = keyring.get_keyring()
    except Exception:  # a broken keyring configuration counts as none
        return False
    if isinstance(backend, fail.Keyring):
        return False
    chained = getattr(backend, "backends", None)
    candidates = list(chained) if chained is not None else [backend]
    floor = 1.0 if trusted_only else 0.0
    return any(_priority(b) >= floor and not isinstance(b, fail.Keyring) for b in candidates)


def _priority(backend: object) -> float:
    try:
        return float(getattr(backend, "priority", 0))
    except (TypeError, ValueError):
        return 0.0


def secrets_path(state_path: Path) -> Path:
    """The 0600 secret file that goes with a state file."""
    return state_path.with_name(state_path.stem + ".secrets.json")


def open_secret_store(state_path: Path | None, prefer: SecretBackend = "auto") -> SecretStore:
    """The keyring when one works (or is asked for), else the 0600 file beside the state."""
    if prefer != "file" and keyring_available(trusted_only=prefer == "auto"):
        where = str(state_path.resolve()) if state_path is not None else "memory"
        return KeyringSecrets(f"dbwire-serve:{where}")
    if prefer == "keyring":
        raise ConfigError(
            "dbwire serve: no usable system keyring; install 'keyring' with a backend, or "
            "keep secrets in a 0600 file (secret_backend='file')"
        )
    if state_path is None:
        return MemorySecrets()
    return FileSecrets(secrets_path(state_path))


class MemorySecrets:
    """Secrets kept in this process only: no state file was asked for."""

    kind = "memory"

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], str] = {}

    def get(self, connection: str, field: str) -> str | None:
        return self._data.get((connection, field))

    def set(self, connection: str, field: str, value: str) -> None:
        self._data[(connection, field)] = value

    def delete(self, connection: str, field: str) -> None:
        self._data.pop((connection, field), None)


class StateFile:
    """The JSON file of API-made connections (no secret in it), rewritten atomically."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()

    def load(self) -> list[StoredConnection]:
        """The stored connections; none when there is no file yet."""
        if self.path is None or not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"dbwire serve state {str(self.path)!r} cannot be read "
                f"({type(exc).__name__}); fix or remove it"
            ) from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ConfigError(
                f"dbwire serve state {str(self.path)!r}: not a version-{STATE_VERSION} state "
                "file; remove it or point --state elsewhere"
            )
        found = []
        for item in data.get("connections", []):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                continue
            found.append(
                StoredConnection(
                    name=item["name"],
                    type=str(item.get("type", "")),
                    config=dict(item.get("config") or {}),
                    secrets={str(k): str(v) for k, v in (item.get("secrets") or {}).items()},
                )
            )
        return found

    def save(self, connections: list[StoredConnection]) -> None:
        """Replace the file's contents with these connections."""
        if self.path is None:
            return
        payload = {
            "version": STATE_VERSION,
            "connections": [
                {"name": c.name, "type": c.type, "config": c.config, "secrets": c.secrets}
                for c in connections
            ],
        }
        with self._lock:
            _write_private(self.path, json.dumps(payload, indent=1, sort_keys=True))
