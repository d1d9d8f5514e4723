"""Password providers by name: the built-ins and the `dbwire.credentials` entry points.

`password_provider = {type = "...", ...}` in a database's config names one; the
provider is asked for the password at each new physical connection, through a
CredentialCache (its `ttl`), which forgets the answer when the server rejects it.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

from dbwire.credentials.providers.base import (
    Credential,
    CredentialCache,
    LoginTarget,
    PasswordProvider,
    ProviderOptions,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Credential",
    "CredentialCache",
    "LoginTarget",
    "PasswordProvider",
    "ProviderOptions",
    "build_provider",
    "known_providers",
    "provider_class",
    "register_provider",
    "validate_provider_spec",
]

ENTRY_POINT_GROUP = "dbwire.credentials"

# type -> "module:Class", imported on first use (boto3 and keyring load only when named).
_BUILTIN: dict[str, str] = {
    "env": "dbwire.credentials.providers.env:EnvProvider",
    "file": "dbwire.credentials.providers.file:FileProvider",
    "command": "dbwire.credentials.providers.command:CommandProvider",
    "keyring": "dbwire.credentials.providers.keyring:KeyringProvider",
    "aws_secrets_manager": (
        "dbwire.credentials.providers.aws_secrets_manager:SecretsManagerProvider"
    ),
    "rds_iam": "dbwire.credentials.providers.rds_iam:RdsIamProvider",
}
_registered: dict[str, type[PasswordProvider]] = {}
_lock = threading.Lock()


def register_provider(cls: type[PasswordProvider]) -> type[PasswordProvider]:
    """Register a provider under its `name`, the `type` configs give (a decorator; later wins)."""
    with _lock:
        _registered[cls.name] = cls
    return cls


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_providers() -> list[str]:
    """Every provider type: built-in, registered in this process, and from entry points."""
    return sorted({*_BUILTIN, *_registered, *_entry_points()})


def _unknown(name: str) -> ValueError:
    known = known_providers()
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ValueError(
        f"unknown password provider type {name[:60]!r}{hint}; known: {', '.join(known)} "
        f"(third-party ones register under the {ENTRY_POINT_GROUP!r} entry point group)"
    )


def provider_class(name: str) -> type[PasswordProvider]:
    """The class for a provider type; ValueError with "did you mean" and the known list."""
    with _lock:
        found = _registered.get(name)
    if found is not None:
        return found
    if name in _BUILTIN:
        module_name, _, class_name = _BUILTIN[name].partition(":")
        cls: type[PasswordProvider] = getattr(importlib.import_module(module_name), class_name)
        return cls
    point = _entry_points().get(name)
    if point is None:
        raise _unknown(name)
    failure: str | None = None
    try:
        loaded = point.load()
    except Exception as exc:  # a broken plugin: name it, keep its traceback out
        failure = type(exc).__name__
    if failure is not None:
        raise ValueError(
            f"password provider {name!r} (entry point {point.value}) failed to load "
            f"({failure}); reinstall the distribution that provides it"
        )
    if not (isinstance(loaded, type) and issubclass(loaded, PasswordProvider)):
        raise ValueError(
            f"password provider {name!r} (entry point {point.value}) is not a "
            "dbwire.credentials.providers.PasswordProvider subclass"
        )
    return register_provider(loaded)


def validate_provider_spec(spec: Mapping[str, Any]) -> ProviderOptions:
    """The provider's options, validated; ValueError naming each bad key, never a value."""
    if not isinstance(spec, Mapping):
        raise ValueError(
            'must be a table such as {type = "env", variable = "APP_DB_PASSWORD"}, '
            f"not a {type(spec).__name__}"
        )
    name = spec.get("type")
    if not isinstance(name, str) or not name:
        raise ValueError(f"needs a `type`; known: {', '.join(known_providers())}")
    cls = provider_class(name)
    try:
        return cls.Options.model_validate(dict(spec))
    except ValidationError as exc:
        errors = exc.errors()
    problems = []
    for err in errors:
        key = ".".join(str(p) for p in err["loc"]) or "?"
        if err["type"] == "extra_forbidden":
            fields = [f for f in cls.Options.model_fields if f != "type"]
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown key {key!r}{hint}; {name!r} takes {', '.join(fields)}")
        elif err["type"] == "missing":
            problems.append(f"{name!r} needs {key!r}")
        else:
            # err["msg"] says what is accepted; the input is never echoed (it may be a secret).
            problems.append(f"{key!r}: {err['msg']}")
    raise ValueError(f"password provider {name!r}: " + "; ".join(problems))


def build_provider(spec: Mapping[str, Any], *, database: str) -> CredentialCache:
    """The provider a spec names, behind its TTL cache."""
    options = validate_provider_spec(spec)
    provider = provider_class(options.type)(options, database=database)
    return CredentialCache(provider, options.ttl)
