"""`pooler = "pgbouncer"`: what the engines change to be safe behind transaction pooling.

Behind PgBouncer in transaction mode, consecutive transactions of one client connection
run on different server connections, so nothing may outlive a transaction on the server:

- no named prepared statements: psycopg gets `prepare_threshold=None` (it would prepare
  a statement run five times); asyncpg gets `statement_cache_size=0`, and SQLAlchemy's
  asyncpg dialect `prepared_statement_cache_size=0` and a unique name for each statement
  it prepares (it prepares every statement to learn its columns; asyncpg's own names
  count from 1 on every client connection, so two clients would collide on one server);
- no session state: a `readonly = true` database does not log in with
  `default_transaction_read_only=on` (PgBouncer refuses such startup parameters, and a
  session-level SET would stay on whichever server connection ran it); every
  transaction begins with `SET TRANSACTION READ ONLY` instead, and execute_query() takes
  the transaction path, not the autocommit one;
- pings are `SELECT 1` / `;` on drivers that prepare nothing;
- `pooler_pool = "null"` gives the engine SQLAlchemy's NullPool: a connection per
  checkout, closed at checkin, pooling left to PgBouncer.
"""

from __future__ import annotations

import uuid
from typing import Any

from dbwire.config import DatabaseConfig
from dbwire.errors import ConfigError

__all__ = ["adjust", "keeps_session_state", "statement_name", "validate"]

# create_engine() arguments that configure a queue pool and mean nothing to NullPool.
_QUEUE_POOL_ARGS = ("pool_size", "max_overflow", "pool_timeout", "pool_use_lifo")


def statement_name() -> str:
    """A prepared-statement name no other client of the same server connection uses."""
    return f"__dbwire_{uuid.uuid4().hex}__"


def keeps_session_state(config: DatabaseConfig) -> bool:
    """False behind a transaction pooler: session settings and statements do not last."""
    return config.pooler is None


def validate(config: DatabaseConfig) -> None:
    """Refuse pool settings that contradict pooler_pool = "null" (before any connect)."""
    if config.pooler_pool == "null" and config.pool_min_size > 0:
        raise ConfigError(
            f"database {config.name!r}: pool_min_size = {config.pool_min_size} keeps "
            'connections open, and pooler_pool = "null" closes each one at checkin; remove '
            'pool_min_size (PgBouncer keeps the server connections) or set pooler_pool = "queue"',
            database=config.name,
        )


def adjust(config: DatabaseConfig, options: dict[str, Any], *, is_async: bool) -> None:
    """Change create_engine() options in place for config's pooler (none: no change)."""
    if config.pooler is None:
        return
    if (config.backend or config.scheme or "").startswith("postgres"):
        connect_args = options.setdefault("connect_args", {})
        given = config.connect_args  # the user's own driver arguments win
        if is_async:
            for key, value in (
                ("statement_cache_size", 0),
                ("prepared_statement_cache_size", 0),
                ("prepared_statement_name_func", statement_name),
            ):
                if key not in given:
                    connect_args[key] = value
        elif "prepare_threshold" not in given:
            connect_args["prepare_threshold"] = None
    if config.pooler_pool == "null":
        from sqlalchemy.pool import NullPool  # with the engine, not with the config check

        options["poolclass"] = NullPool
        for key in _QUEUE_POOL_ARGS:
            options.pop(key, None)
