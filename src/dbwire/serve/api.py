"""The HTTP routes of `dbwire serve` (the contract in README's "dbwire serve" section),
its security middleware and its error answers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from dbwire.errors import DbwireError, describe
from dbwire.serve.errors import (
    BadRequestError,
    error_body,
    kind_of,
    status_of,
)
from dbwire.serve.query import (
    EngineCursor,
    StoreCursor,
    check_read,
    refuse_write,
)
from dbwire.serve.security import COOKIE_NAME, SAFE_METHODS

if TYPE_CHECKING:
    from dbwire.serve.context import ServeContext

logger = logging.getLogger("dbwire.serve")

#: Paths under /api/ anyone may read: the API's own description, which holds no data.
_PUBLIC_API = frozenset({"/api/openapi.json"})
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


# -- request bodies ------------------------------------------------------------------------
class ConnectionBody(BaseModel):
    """POST/PUT /api/connections: a name, a type from /api/types and its form's fields."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200)
    type: str = Field(max_length=200)
    config: dict[str, Any] = Field(default_factory=dict)


class QueryBody(BaseModel):
    """POST /api/query."""

    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, max_length=1_000_000)
    connection: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=1000, ge=1, le=10_000)
    timeout_s: float = Field(default=30.0, gt=0, le=3600)
    write: bool = False
    id: str | None = Field(
        default=None,
        max_length=80,
        description="A client-chosen id (q_ + 8-64 URL-safe characters), so the page can "
        "cancel the query while it still runs",
    )


# -- middleware ----------------------------------------------------------------------------
def app_path(request: Request) -> str:
    """The path inside this app: mounted under /db, '/db/api/me' is '/api/me' here.

    Starlette keeps the full path in scope["path"] and the mount point in root_path; the
    checks must look at what the router will route, or a mounted app would skip them.
    """
    path: str = request.scope.get("path", "")
    root: str = request.scope.get("root_path", "") or ""
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def _json_error(status: int, kind: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(kind, message, **extra), status_code=status)


class SecurityMiddleware(BaseHTTPMiddleware):
    """Host check for every request; cross-site refusal for state changes; auth for /api."""

    def __init__(self, app: Any, context: ServeContext) -> None:
        super().__init__(app)
        self.context = context

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        guard = self.context.guard
        host = request.headers.get("host")
        if not guard.host_ok(host):
            # A DNS-rebinding page reaches us under its own name: answer nothing useful.
            return _json_error(
                421,
                "misdirected_request",
                "this server answers only to the address it was started on",
                fix="open the URL dbwire serve printed",
            )
        if request.method not in SAFE_METHODS and guard.cross_site(
            host, request.headers.get("origin"), request.headers.get("sec-fetch-site")
        ):
            return _json_error(
                403,
                "cross_site",
                "state-changing requests from another site are refused",
                fix="use the dbwire serve page itself",
            )
        path = app_path(request)
        if (
            path.startswith("/api/")
            and path not in _PUBLIC_API
            and not guard.authorized(
                request.cookies.get(COOKIE_NAME), request.headers.get("authorization")
            )
        ):
            return _json_error(
                401,
                "unauthorized",
                "log in with the URL dbwire serve printed when it started",
                fix="open http://HOST:PORT/login?token=... from the server's output",
            )
        self.context.start()  # mounted apps get no lifespan of their own
        response = await call_next(request)
        for key, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        response.headers.setdefault("Content-Security-Policy", _PAGE_CSP)
        if path.startswith("/api/") or path == "/login":
            response.headers.setdefault("Cache-Control", "no-store")
        return response


# -- install -------------------------------------------------------------------------------
def install(app: FastAPI, context: ServeContext, static: Path | None) -> None:
    """Add the routes, the middleware, the error handlers and the page to app."""
    app.add_middleware(SecurityMiddleware, context=context)
    _install_errors(app, context)
    app.include_router(_api_router(context))
    _install_page(app, context, static)


def _install_errors(app: FastAPI, context: ServeContext) -> None:
    @app.exception_handler(DbwireError)
    async def _dbwire_error(_request: Request, exc: DbwireError) -> JSONResponse:
        message = describe(exc, context.known_secrets(), limit=2000)
        return _json_error(
            status_of(exc),
            kind_of(exc),
            message,
            field=getattr(exc, "field", None),
            fix=getattr(exc, "fix", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer echoes the input, which may be a password: name the field only.
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body",)]
        field = ".".join(loc) or None
        message = describe(str(first.get("msg", "invalid request")), context.known_secrets())
        where = f"field {field!r}: " if field else ""
        return _json_error(400, "validation", f"{where}{message}", field=field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "not_found", 405: "method_not_allowed"}
        return _json_error(
            exc.status_code, kinds.get(exc.status_code, "http"), str(exc.detail)[:200]
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        text = describe(exc, context.known_secrets(), first_line=True)
        logger.error("dbwire serve: unexpected error: %s", text)
        return _json_error(500, "internal", "unexpected server error: " + text)


def _api_router(context: ServeContext) -> APIRouter:
    router = APIRouter(prefix="/api")
    connections = context.connections

    @router.get("/me")
    def me() -> dict[str, Any]:
        """Whether this request is logged in (401 otherwise), and the server's version."""
        return {"ok": True, "version": context.version}

    @router.get("/types")
    def types() -> list[dict[str, Any]]:
        """Every connection type with the JSON schema of its form."""
        from dbwire.serve.forms import connection_types

        return [
            {"type": t.name, "title": t.title, "description": t.description, "schema": t.schema()}
            for t in connection_types()
        ]

    @router.get("/connections")
    def list_connections() -> list[dict[str, Any]]:
        """Every connection (never a secret: only which secret fields are set)."""
        return [c.as_dict() for c in connections.all()]

    @router.post("/connections", status_code=201)
    def create_connection(body: ConnectionBody) -> dict[str, Any]:
        """Create, persist and connect; a failed connect is kept as the connection's error."""
        return connections.create(body.name, body.type, body.config).as_dict()

    @router.get("/connections/{name}")
    def get_connection(name: str) -> dict[str, Any]:
        """One connection."""
        return connections.get(name).as_dict()

    @router.put("/connections/{name}")
    def update_connection(name: str, body: ConnectionBody) -> dict[str, Any]:
        """Replace a connection made through the API (omit a secret to keep it, null clears)."""
        if body.name != name:
            raise BadRequestError(
                f"the body names connection {body.name!r} but the URL {name!r}; renaming is "
                "not supported",
                field="name",
                fix="create the new name and delete the old one",
            )
        return connections.update(name, body.type, body.config).as_dict()

    @router.delete("/connections/{name}", status_code=204)
    def delete_connection(name: str) -> Response:
        """Delete a connection made through the API; a missing one is fine."""
        connections.delete(name)
        return Response(status_code=204)

    @router.post("/connections/{name}/test")
    def test_connection(name: str) -> dict[str, Any]:
        """Connect now and run the health query."""
        result = connections.check(name)
        return {
            "name": name,
            "status": result.status,
            "response_time_ms": round(result.response_time_ms, 3) if result.healthy else None,
            "error": result.error,
        }

    @router.get("/connections/{name}/schema")
    def schema(name: str) -> list[dict[str, Any]]:
        """Tables with their columns and foreign keys."""
        tables = connections.database(name).get_schema()
        return [
            {
                "schema": t.schema,
                "name": t.name,
                "kind": t.kind,
                "columns": [
                    {
                        "name": c.name,
                        "type": c.type,
                        "nullable": c.nullable,
                        "default": c.default,
                        "primary_key": c.primary_key,
                    }
                    for c in t.columns
                ],
                "foreign_keys": [
                    {
                        "column": fk.column,
                        "referred_schema": fk.referenced_schema,
                        "referred_table": fk.referenced_table,
                        "referred_column": fk.referenced_column,
                    }
                    for fk in t.foreign_keys
                ],
            }
            for t in tables
        ]

    @router.get("/health")
    def health() -> dict[str, Any]:
        """Every connection's health, checked now, concurrently."""
        results = context.manager.health_check()
        out: dict[str, Any] = {}
        known = set(connections.names())
        for name, result in results.items():
            if name not in known:
                continue  # removed while it was being checked
            connections.record(name, result)
            item = connections.get(name)
            out[name] = {
                "status": item.status,
                "response_time_ms": item.response_time_ms,
                "error": item.error,
            }
        return {"databases": out}

    @router.get("/status")
    def status() -> dict[str, Any]:
        """The sampled series of every connection for the last 15 minutes."""
        return context.sampler.snapshot()

    @router.post("/query")
    def run_query(body: QueryBody) -> dict[str, Any]:
        """Run one statement on a connection, or across all of them in the DuckDB store."""
        queries = context.queries
        warnings: list[str] = []
        if body.connection is None:
            if body.write:
                raise refuse_write("store", "the DuckDB store attaches every connection read-only")
            check_read(body.sql, database="store", dialect="duckdb")
            hub = context.hub
            built: dict[str, Any] = {}
            for name in connections.names():
                try:
                    built[name] = context.manager.db(name)
                except DbwireError as exc:
                    built[name] = exc
            warnings = hub.attach_all(built)

            def make_store() -> StoreCursor:
                return StoreCursor(hub.store())

            page = queries.run(
                make_store,
                body.sql,
                limit=body.limit,
                timeout_s=body.timeout_s,
                query_id=body.id,
                database="store",
                warnings=warnings,
            )
            return page.as_dict(body.limit)
        item = connections.get(body.connection)
        db = context.manager.db(item.name)
        if body.write and db.config.readonly:
            raise refuse_write(
                item.name,
                "the connection is read-only; writes need readonly = false on the "
                'connection and "write": true in the request',
            )
        if not body.write:
            check_read(body.sql, database=item.name, dialect=db.backend.dialect_name)

        def make_engine() -> EngineCursor:
            return EngineCursor(db, write=body.write)

        page = queries.run(
            make_engine,
            body.sql,
            limit=body.limit,
            timeout_s=body.timeout_s,
            query_id=body.id,
            database=item.name,
        )
        return page.as_dict(body.limit)

    @router.get("/query/{query_id}/rows")
    def query_rows(
        query_id: str,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> dict[str, Any]:
        """The next page of an open query (404 once it was read to the end or expired)."""
        return context.queries.rows(query_id, offset=offset, limit=limit).as_dict(limit)

    @router.delete("/query/{query_id}", status_code=204)
    def cancel_query(query_id: str) -> Response:
        """Cancel a running query on its server and free its cursor; unknown ids are fine."""
        context.queries.cancel(query_id)
        return Response(status_code=204)

    return router


_LOGIN_FAILED = """<!doctype html><html><head><meta charset="utf-8"><title>dbwire serve</title>
</head><body><h1>Not logged in</h1><p>That login link is not valid. Open the URL that
<code>dbwire serve</code> printed when it started.</p></body></html>"""

_NO_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>dbwire serve</title>
</head><body><h1>dbwire serve</h1><p data-testid="login-required">The API runs; the page
is not installed in this build; the API is described at /api/openapi.json.</p></body></html>"""


def _install_page(app: FastAPI, context: ServeContext, static: Path | None) -> None:
    guard = context.guard

    @app.get("/login", include_in_schema=False)
    def login(request: Request, token: str | None = None) -> Response:
        if not guard.token_ok(token):
            return HTMLResponse(_LOGIN_FAILED, status_code=401)
        root = str(request.scope.get("root_path", "") or "").rstrip("/")
        response = RedirectResponse(f"{root}/", status_code=303)
        response.set_cookie(
            COOKIE_NAME,
            guard.session_value,
            httponly=True,
            samesite="strict",
            path=f"{root}/",
        )
        return response

    if static is not None and (static / "index.html").is_file():
        from fastapi.staticfiles import StaticFiles

        index = (static / "index.html").read_text(encoding="utf-8")

        @app.get("/", include_in_schema=False)
        def page() -> HTMLResponse:
            return HTMLResponse(index)

        app.mount("/static", StaticFiles(directory=static), name="static")
    else:

        @app.get("/", include_in_schema=False)
        def no_page() -> HTMLResponse:
            return HTMLResponse(_NO_PAGE)
