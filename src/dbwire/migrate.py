"""Schema lifecycle: Alembic upgrades, creating a missing database, and seeding initial rows."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from dbwire.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from sqlalchemy.orm import DeclarativeBase

    from dbwire.target import Target


def migrate(db: Target, script_location: str | os.PathLike[str], revision: str = "head") -> None:
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


def seed(db: Target, models: type[DeclarativeBase] | Iterable[type[Any]]) -> int:
    """Insert every model's `seed_list` rows in foreign-key order, all or nothing.

    Args:
        db: the database to seed.
        models: a declarative base (all its mapped classes) or the classes themselves.
            A class's `seed_list` holds dicts of column values or ready instances.

    Rows are merged by primary key, so running seed() twice inserts nothing new.
    Returns the number of rows merged.
    """
    from sqlalchemy.orm import DeclarativeBase  # the ORM loads only when seeding

    if isinstance(models, type) and issubclass(models, DeclarativeBase):
        classes = [mapper.class_ for mapper in models.registry.mappers]
    else:
        classes = list(models)
    tables: list[Any] = []
    for cls in classes:
        for table in cls.__table__.metadata.sorted_tables:
            if table not in tables:
                tables.append(table)
    classes.sort(key=lambda cls: tables.index(cls.__table__))
    merged = 0
    with db.session() as session:
        for cls in classes:
            for item in getattr(cls, "seed_list", ()):
                session.merge(cls(**item) if isinstance(item, dict) else item)
                merged += 1
            session.flush()  # parents reach the database before their children
    return merged
