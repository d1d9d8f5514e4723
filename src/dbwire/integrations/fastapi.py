"""FastAPI integration: session dependencies, a lifespan, health and metrics routers, error
handlers.

The dependencies import nothing from FastAPI (a dependency is any callable), so they
work and type-check without it; the router and the handlers import it when called
(`pip install 'dbwire[fastapi]'`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from dbwire.database import Database, connect
from dbwire.errors import ConnectError, PoolTimeoutError, ReadOnlyError

if TYPE_CHECKING:
    from dbwire.manager import Manager

Target = Database | str


def _database(target: Any) -> Database:
    if isinstance(target, Database):
        return target
    if isinstance(target, str):
        return connect(target)
    return default_database(target)


def default_database(manager: Manager) -> Database:
    """The Manager's database a bare `Depends(manager.get_db)` means (Manager.default_db)."""
    return manager.default_db()


def get_db(
    target: Target | Manager, *, auto_commit: bool = True, readonly: bool = False
) -> Callable[[], Iterator[Session]]:
    """A dependency yielding a Session: committed after the endpoint returns, rolled back if
    it raises, always closed. Use as `Depends(get_db(db))` (a Database, a configured name
    or a Manager's default database).

    The options are bound here, not read from the request: FastAPI would otherwise
    expose `auto_commit` as a query parameter anyone could set.
    """

    def dependency() -> Iterator[Session]:
        with _database(target).session(readonly=readonly, auto_commit=auto_commit) as session:
            yield session

    return dependency


def get_async_db(
    target: Target | Manager, *, auto_commit: bool = True, readonly: bool = False
) -> Callable[[], AsyncIterator[AsyncSession]]:
    """The async twin of get_db(): `Depends(get_async_db(db))` yields an AsyncSession."""

    async def dependency() -> AsyncIterator[AsyncSession]:
        database = _database(target)
        async with database.async_session(readonly=readonly, auto_commit=auto_commit) as session:
            yield session

    return dependency


def lifespan(manager: Manager) -> Callable[[Any], Any]:
    """`FastAPI(lifespan=lifespan(manager))`: sets every database up before the first
    request (failures go to manager.errors, as setup() does) and closes them all at shutdown."""

    @asynccontextmanager
    async def run(_app: Any) -> AsyncIterator[None]:
        await asyncio.to_thread(manager.setup)  # connects with retries: not on the loop
        try:
            yield
        finally:
            await manager.aclose_all()

    return run


def create_health_router(
    manager: Manager, *, path: str = "/health/db", timeout: float | None = None
) -> Any:
    """An APIRouter with GET `path`: 200 when every database is healthy, else 503, with
    each database's status, response time and (secret-free) error."""
    from fastapi import APIRouter
    from fastapi.responses import JSONResponse

    router = APIRouter()

    @router.get(path)
    async def health() -> JSONResponse:
        results = await manager.async_health_check(timeout=timeout)
        healthy = all(result.healthy for result in results.values())
        body = {
            "status": "healthy" if healthy else "unhealthy",
            "databases": {name: result.as_dict() for name, result in results.items()},
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

    return router


def create_metrics_router(
    manager: Manager, *, path: str = "/metrics", check_health: bool = False
) -> Any:
    """An APIRouter with GET `path`: `manager.metrics()` in Prometheus' text format (needs
    dbwire[metrics]). check_health=True runs the health checks first, on each scrape."""
    from fastapi import APIRouter
    from fastapi.responses import Response

    from dbwire.observe.metrics import PrometheusExporter

    router = APIRouter()

    @router.get(path)
    async def metrics() -> Response:
        if check_health:
            await manager.async_health_check()
        return Response(manager.metrics(), media_type=PrometheusExporter.CONTENT_TYPE)

    return router


def install_exception_handlers(app: Any, *, retry_after: int = 5) -> None:
    """ReadOnlyError -> 403; ConnectError and PoolTimeoutError -> 503 with Retry-After.

    The 503 body names the database only: the server's address and the driver's text
    stay in the application's log.
    """
    from fastapi.responses import JSONResponse

    async def read_only(_request: Any, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    async def unavailable(_request: Any, exc: Exception) -> JSONResponse:
        database = getattr(exc, "database", None)
        what = f"database {database!r}" if database else "the database"
        return JSONResponse(
            {"detail": f"{what} is unavailable; retry later"},
            status_code=503,
            headers={"Retry-After": str(retry_after)},
        )

    app.add_exception_handler(ReadOnlyError, read_only)
    app.add_exception_handler(ConnectError, unavailable)
    app.add_exception_handler(PoolTimeoutError, unavailable)
