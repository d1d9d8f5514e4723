"""The process-wide registry of open Databases: one per target, whoever asks for it."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar, cast

from dbwire.config import DatabaseConfig

__all__ = ["forget", "key_of", "shared"]


class _Closable(Protocol):
    @property
    def closed(self) -> bool: ...


T = TypeVar("T", bound=_Closable)

# Keyed by (name, fingerprint of the configuration): dbwire.connect() and every Manager
# look here, so one target never gets two pools in one process.
_open: dict[tuple[str, str], _Closable] = {}
_lock = threading.Lock()


def _reset_lock() -> None:
    # A thread of the parent may have held the lock at the moment of fork.
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock)


def key_of(config: DatabaseConfig) -> tuple[str, str]:
    """The registry key: the name and a digest of every setting, the password included."""
    # connect_args may hold objects JSON cannot hold (an ssl.SSLContext): identity stands in.
    digest = hashlib.sha256(config.model_dump_json(fallback=_identity).encode())
    # model_dump_json() masks secrets; two passwords are two targets.
    digest.update(b"\0" + config.secret_fingerprint().encode())
    if config.environ is not None:
        # A given environment is part of the target: its PG* variables decide the server.
        for key, value in sorted(config.environ.items()):
            digest.update(f"\0{key}={value}".encode("utf-8", "surrogateescape"))
    return config.name, digest.hexdigest()


def _identity(value: object) -> str:
    return f"{type(value).__qualname__}@{id(value)}"


def shared(config: DatabaseConfig, build: Callable[[DatabaseConfig], T]) -> T:
    """The open instance for config, or build(config), registered, when there is none.

    The first caller's build wins (its logger, say); a closed instance is replaced.
    """
    # A DatabaseConfig built in code (Manager(Config(...))) reads its env_prefix here.
    config = config.with_env_prefix()
    key = key_of(config)
    with _lock:
        existing = _open.get(key)
        if existing is not None and not existing.closed:
            return cast(T, existing)  # only build() results are stored
        made = build(config)
        _open[key] = made
        return made


def forget(instance: _Closable) -> None:
    """Drop instance from the registry (called by close()); unknown instances are ignored."""
    with _lock:
        for key, value in list(_open.items()):
            if value is instance:
                del _open[key]
