"""Alembic migrations on dbwire's connection."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dbwire.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from dbwire.database import Database


def migrate(db: Database, script_location: str | os.PathLike[str], revision: str = "head") -> None:
    """Run Alembic's upgrade to `revision` on the database, in one transaction.

    The connection is handed to Alembic as `config.attributes["connection"]` (Alembic's
    documented recipe for sharing a connection), so the password never goes into an
    Alembic config string. The script directory's env.py must use it::

        connection = context.config.attributes["connection"]
        context.configure(connection=connection, target_metadata=...)
        with context.begin_transaction():
            context.run_migrations()
    """
    try:
        from alembic import command
        from alembic.config import Config as AlembicConfig
    except ImportError as exc:
        raise MissingDependencyError(
            f"database {db.name!r}: migrate() needs Alembic; run: pip install 'dbwire[migrate]'",
            database=db.name,
        ) from exc
    if not os.path.isdir(script_location):
        raise ConfigError(
            f"database {db.name!r}: no Alembic script directory at {str(script_location)!r}; "
            "create one with `alembic init` and point migrate() at it",
            database=db.name,
        )
    config = AlembicConfig()
    config.set_main_option("script_location", os.fspath(script_location))
    # As `alembic init`'s alembic.ini does: env.py may import the project's own models.
    config.set_main_option("prepend_sys_path", ".")
    config.set_main_option("path_separator", "os")
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        config.attributes["dbwire_database"] = db
        command.upgrade(config, revision)
