"""The PostgreSQL backend: psycopg 3 (sync) and asyncpg (async)."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy.engine import URL

from dbwire.backends.base import Backend

# SQLSTATEs: 25006 read_only_sql_transaction; 28P01 invalid_password; 28000 invalid authorization.
_READONLY_SQLSTATE = "25006"
_AUTH_SQLSTATES = {"28P01", "28000"}


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE carried by a psycopg or asyncpg error, however SQLAlchemy wrapped it."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(code, str):
            return code
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


class PostgresBackend(Backend):
    """PostgreSQL through psycopg 3 and asyncpg; read-only via SET TRANSACTION READ ONLY."""

    name: ClassVar[str] = "postgresql"
    dialect_name: ClassVar[str] = "postgresql"
    schemes: ClassVar[tuple[str, ...]] = ("postgresql", "postgres", "pg")
    extra: ClassVar[str] = "postgres"
    sync_driver: ClassVar[str] = "psycopg"
    async_driver: ClassVar[str | None] = "asyncpg"
    sync_modules: ClassVar[tuple[str, ...]] = ("psycopg",)
    async_modules: ClassVar[tuple[str, ...]] = ("asyncpg",)
    default_port: ClassVar[int | None] = 5432

    def engine_url(self, *, is_async: bool) -> URL:
        url = super().engine_url(is_async=is_async)
        if is_async and "sslmode" in url.query:
            # asyncpg takes ssl=, not libpq's sslmode=; connect_args() moves the value over.
            url = url.difference_update_query(["sslmode"])
        return url

    def connect_args(self, *, is_async: bool) -> dict[str, Any]:
        args: dict[str, Any] = {}
        timeout = self.config.connect_timeout or 10.0
        if is_async:
            args["timeout"] = timeout
            sslmode = self.base_url().query.get("sslmode")
            if isinstance(sslmode, str):
                args["ssl"] = sslmode
        else:
            # libpq takes whole seconds and treats values below 2 as 2.
            args["connect_timeout"] = max(2, round(timeout))
        return args

    def begin_readonly(self, dbapi_connection: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SET TRANSACTION READ ONLY")
        finally:
            cursor.close()

    def is_readonly_violation(self, exc: BaseException) -> bool:
        return sqlstate_of(exc) == _READONLY_SQLSTATE

    def is_auth_failure(self, exc: BaseException) -> bool:
        if sqlstate_of(exc) in _AUTH_SQLSTATES:
            return True
        text = str(exc).lower()
        return "password authentication failed" in text or "no password supplied" in text
