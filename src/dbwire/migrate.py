"""Alembic migrations on dbwire's connection: upgrade, downgrade, current, history, stamp.

dbwire hands its own Connection to env.py as `config.attributes["connection"]` (Alembic's
documented recipe for sharing a connection), so the password never enters an Alembic
config string. `sqlalchemy.url` is set too, without the password, so the stock env.py of
`alembic init` builds its (unused) engine and renders offline SQL. The stock env.py
needs two lines changed in `run_migrations_online()`; replace

    with connectable.connect() as connection:

with

    connection = config.attributes.get("connection")  # handed over by dbwire
    with connection or connectable.connect() as connection:

`write_env_py()` (and `dbwire migrate NAME --init DIR`) writes an env.py that needs none.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbwire.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from dbwire.target import Target


@dataclass(frozen=True)
class MigrationResult:
    """The revisions before and after a migration command, and offline SQL when asked."""

    before: tuple[str, ...]
    after: tuple[str, ...]
    sql: str | None = None

    @property
    def changed(self) -> bool:
        """True when the database's revision moved."""
        return self.before != self.after

    def describe(self, target: str) -> str:
        """`migrated from 0001 to 0002`, or `already at head (0002)`."""
        before, after = _shown(self.before), _shown(self.after)
        if not self.changed:
            return f"already at {target} ({after})"
        return f"migrated from {before} to {after}"


def _shown(heads: tuple[str, ...]) -> str:
    return ", ".join(heads) if heads else "base"


def _alembic(db: Target) -> Any:
    try:
        from alembic import command
    except ImportError:
        raise MissingDependencyError(
            f"database {db.name!r}: migrations need Alembic; run: pip install 'dbwire[migrate]'",
            database=db.name,
        ) from None
    return command


def _config(db: Target, script_location: str | os.PathLike[str], buffer: Any = None) -> Any:
    from alembic.config import Config as AlembicConfig

    if not os.path.isdir(script_location):
        raise ConfigError(
            f"database {db.name!r}: no Alembic script directory at {str(script_location)!r}; "
            "create one with `alembic init migrations` (or dbwire.migrate.write_env_py) and "
            "pass --scripts",
            database=db.name,
        )
    config = AlembicConfig(output_buffer=buffer)
    config.set_main_option("script_location", os.fspath(script_location))
    # As `alembic init`'s alembic.ini does: env.py may import the project's own models.
    config.set_main_option("prepend_sys_path", ".")
    config.set_main_option("path_separator", "os")
    # No password: the stock env.py builds an engine from it (never connected through
    # dbwire) and offline mode needs only the dialect. '%' is configparser's escape.
    config.set_main_option(
        "sqlalchemy.url",
        db.engine.url.set(password=None).render_as_string(hide_password=False).replace("%", "%%"),
    )
    config.attributes["dbwire_database"] = db
    return config


def _heads(connection: Connection) -> tuple[str, ...]:
    from alembic.runtime.migration import MigrationContext

    return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))


def _run(db: Target, script_location: str | os.PathLike[str], action: Any) -> MigrationResult:
    """Run one Alembic command on a connection of the database, revisions before and after.

    The connection is not in a transaction: env.py's `context.begin_transaction()` begins
    and commits it, as it does under the alembic command.
    """
    config = _config(db, script_location)
    with db.engine.connect() as connection:
        before = _heads(connection)
        connection.commit()  # the lookup's transaction; env.py begins its own
        config.attributes["connection"] = connection
        action(config, before)
        if not connection.closed and connection.in_transaction():
            connection.commit()
    # A fresh connection: the stock env.py's `with connection` closes the one handed over.
    with db.engine.connect() as connection:
        after = _heads(connection)
    return MigrationResult(before, after)


def _is_below(config: Any, target: str, heads: tuple[str, ...]) -> bool:
    """True when `target` is base or an ancestor of a current head: a downgrade."""
    if target == "base":
        return True
    if not heads or target in ("head", "heads") or target.startswith(("+", "-")):
        return target.startswith("-")
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config)
    try:
        wanted = script.get_revision(target)
    except Exception:
        return False  # let Alembic's own upgrade report the unknown revision
    if wanted is None:
        return True
    ancestors = {rev.revision for rev in script.iterate_revisions(heads, "base")}
    return wanted.revision in ancestors and wanted.revision not in heads


def migrate(
    db: Target,
    script_location: str | os.PathLike[str],
    revision: str = "head",
    *,
    sql: bool = False,
) -> MigrationResult:
    """Bring the schema to `revision`: up, or down when it is base or below the current one.

    With `sql=True` nothing runs: the SQL Alembic would send is returned (`revision` may be
    `from:to`, as Alembic's offline mode wants for a downgrade).
    """
    command = _alembic(db)
    if sql:
        buffer = io.StringIO()
        config = _config(db, script_location, buffer)
        if revision.endswith(":base") or revision == "base":
            command.downgrade(config, revision, sql=True)
        else:
            command.upgrade(config, revision, sql=True)
        return MigrationResult((), (), buffer.getvalue())

    def action(config: Any, heads: tuple[str, ...]) -> None:
        if _is_below(config, revision, heads):
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)

    return _run(db, script_location, action)


def downgrade(
    db: Target, script_location: str | os.PathLike[str], revision: str = "-1"
) -> MigrationResult:
    """Downgrade the schema to `revision` (`-1` for one step, `base` for all)."""
    command = _alembic(db)
    return _run(db, script_location, lambda config, _: command.downgrade(config, revision))


def stamp(db: Target, script_location: str | os.PathLike[str], revision: str) -> MigrationResult:
    """Record `revision` as the database's current one without running migrations."""
    command = _alembic(db)
    return _run(db, script_location, lambda config, _: command.stamp(config, revision))


def current(db: Target, script_location: str | os.PathLike[str]) -> tuple[str, ...]:
    """The database's current revisions (empty: at base, or never migrated)."""
    _alembic(db)
    _config(db, script_location)  # the same checks as the other commands
    with db.engine.connect() as connection:
        return _heads(connection)


def history(db: Target, script_location: str | os.PathLike[str]) -> list[str]:
    """Every revision of the scripts, newest first: `0002 (head): add orders`."""
    _alembic(db)
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config(db, script_location))
    heads = set(script.get_heads())
    lines = []
    for rev in script.walk_revisions():
        tag = " (head)" if rev.revision in heads else ""
        lines.append(f"{rev.revision}{tag}: {rev.doc or ''}".rstrip(": "))
    return lines


ENV_PY = '''"""Alembic env.py written by dbwire: runs on the connection dbwire hands over."""

from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
target_metadata = None  # your models' MetaData, for autogenerate


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")  # handed over by dbwire
    if connection is None:  # plain `alembic upgrade`: sqlalchemy.url of alembic.ini
        engine = engine_from_config(
            config.get_section(config.config_ini_section, {}),
            prefix="sqlalchemy.",
            poolclass=pool.NullPool,
        )
        with engine.connect() as connection:
            _migrate(connection)
    else:
        _migrate(connection)


def _migrate(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''


def write_env_py(directory: str | os.PathLike[str]) -> Path:
    """Write an Alembic script directory (env.py, script.py.mako, versions/) that runs on
    dbwire's connection with no change; an existing env.py is left alone (ConfigError)."""
    from importlib import resources

    target = Path(directory)
    env = target / "env.py"
    if env.exists():
        raise ConfigError(
            f"{env} already exists; apply the two-line change of dbwire.migrate's docs to it, "
            "or pick another directory"
        )
    (target / "versions").mkdir(parents=True, exist_ok=True)
    env.write_text(ENV_PY, encoding="utf-8")
    mako = target / "script.py.mako"
    if not mako.exists():
        template = resources.files("alembic") / "templates" / "generic" / "script.py.mako"
        mako.write_text(template.read_text(encoding="utf-8"), encoding="utf-8")
    return env
