"""create_app(): the `dbwire serve` application, also mountable in an existing one.

```python
from dbwire.serve import create_app

app = create_app(dbwire.Manager.from_config("dbwire.toml"))
print(app.state.login_url)        # open it once in the browser: it sets the session cookie
```
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from dbwire.database import Database
from dbwire.errors import DbwireError, describe
from dbwire.manager import Manager
from dbwire.serve.connections import Connections
from dbwire.serve.context import ServeContext
from dbwire.serve.query import QueryRunner
from dbwire.serve.sampler import Sample, Sampler, sample_of
from dbwire.serve.security import make_guard, new_token
from dbwire.serve.state import (
    DEFAULT_STATE_NAME,
    SecretBackend,
    StateFile,
    open_secret_store,
)
from dbwire.serve.store_hub import StoreHub

try:
    from fastapi import FastAPI
except ImportError as exc:  # pragma: no cover - exercised without the extra only
    from dbwire.errors import MissingDependencyError

    raise MissingDependencyError(
        "dbwire serve needs FastAPI and uvicorn; run: pip install 'dbwire[serve]'"
    ) from exc

logger = logging.getLogger("dbwire.serve")


def default_state_path(manager: Manager) -> Path | None:
    """The state file beside the manager's config file, or None for a config without one."""
    source = manager.config.source
    if source and source not in ("dict", "DATABASE_URL") and os.path.isfile(source):
        return Path(source).resolve().parent / DEFAULT_STATE_NAME
    return None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dbwire")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "0+unknown"


def static_dir() -> Path | None:
    """The page's files shipped in the package, if present."""
    folder = Path(str(resources.files("dbwire.serve"))) / "static"
    return folder if folder.is_dir() else None


def create_app(
    manager: Manager,
    *,
    token: str | None = None,
    state_path: str | os.PathLike[str] | None = None,
    sample_interval: float = 5.0,
    host: str = "127.0.0.1",
    port: int | None = 8765,
    allowed_hosts: tuple[str, ...] = (),
    secret_backend: SecretBackend = "auto",
    query_ttl: float = 300.0,
) -> FastAPI:
    """The dbwire serve application over a Manager.

    Args:
        manager: the databases to serve; connections made through the API are added to it.
        token: the login token (None: a fresh random one; `app.state.login_url` has it).
        state_path: where API-made connections persist (None: beside the config file, or
            nowhere when the config has no file). Secrets never go into it.
        sample_interval: seconds between status samples of every connection.
        host, port: the address the server is bound to; the Host header must name it
            (port None: any port, for an app mounted in another one).
        allowed_hosts: more Host names to accept (e.g. "myhost:8765" behind a tunnel).
        secret_backend: "auto" (keyring if usable, else a 0600 file), "keyring" or "file".
        query_ttl: seconds an open query may sit unread before its cursor is closed.
    """
    from dbwire.serve import api

    token = token or new_token()
    guard = make_guard(token, host, port, allowed_hosts)
    path = Path(state_path) if state_path is not None else default_state_path(manager)
    state = StateFile(path)
    secrets = open_secret_store(path, secret_backend)
    hub_ref: list[StoreHub] = []

    def on_remove(name: str) -> None:
        context.queries.cancel_for(name)
        hub_ref[0].detach(name)
        context.sampler.forget(name)

    connections = Connections(manager, state, secrets, on_remove=on_remove)
    hub = StoreHub(lambda: context.known_secrets())
    hub_ref.append(hub)

    def measure() -> dict[str, Sample]:
        samples: dict[str, Sample] = {}
        for name, result in manager.health_check().items():
            connections.record(name, result)
            try:
                db: Database | None = manager.db(name)
            except DbwireError:
                db = None
            samples[name] = sample_of(db, result)
        return samples

    sampler = Sampler(connections.names, measure, interval=sample_interval)
    queries = QueryRunner(secrets_of=lambda: context.known_secrets(), ttl=query_ttl)
    shown_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    if host in ("0.0.0.0", "::", "[::]"):
        shown_host = "127.0.0.1"  # a wildcard address is no name a browser can open
    login_url = f"http://{shown_host}:{port or 8765}/login?token={token}"
    context = ServeContext(
        manager=manager,
        connections=connections,
        queries=queries,
        hub=hub,
        sampler=sampler,
        guard=guard,
        version=_version(),
        login_url=login_url,
    )
    failed = connections.restore()
    for name in failed:
        logger.warning("dbwire serve: connection %r was not restored", name)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        context.start()
        try:
            yield
        finally:
            context.stop()

    app = FastAPI(
        title="dbwire serve",
        version=context.version,
        openapi_url="/api/openapi.json",
        # FastAPI's docs page loads its scripts from a CDN; dbwire serve loads nothing
        # from outside, so the document is served and the page is not.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.serve = context
    app.state.login_url = login_url
    api.install(app, context, static_dir())
    return app


def scrubbed(context: ServeContext, exc: BaseException | str) -> str:
    """Text of an error with every known secret masked."""
    return describe(exc, context.known_secrets())


__all__ = ["ServeContext", "create_app", "default_state_path", "scrubbed"]
