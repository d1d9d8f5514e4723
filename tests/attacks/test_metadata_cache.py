"""The metadata disk cache cannot run code when loaded, and a file others can write is not read.

Each attack plants a file where `metadata_cache` points and checks that the Database
reflects the real database instead, that nothing planted ran, and that a warning says why.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path

import pytest
from sqlalchemy import text

from dbwire import Database, DatabaseConfig
from dbwire import metadata_cache as cache_format

DECOY = "planted_table"


class _Boom:
    """Unpickling this runs a shell command that leaves a file behind."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _sqlite(tmp_path: Path, cache: Path) -> Database:
    url = f"sqlite:///{tmp_path / 'real.db'}"
    db = Database(DatabaseConfig(name="cache_attack", url=url, metadata_cache=str(cache)))
    with db.session() as s:
        s.execute(text("CREATE TABLE IF NOT EXISTS real_table (id INTEGER PRIMARY KEY)"))
    return db


def _valid_cache_naming_a_decoy(tmp_path: Path, cache: Path) -> None:
    """A well-formed cache for this very Database, listing a table that does not exist."""
    db = _sqlite(tmp_path, cache)
    try:
        db.metadata  # noqa: B018 - writes the genuine cache
    finally:
        db.close()
    data = json.loads(cache.read_text())
    data["tables"][0]["name"] = DECOY
    cache.write_text(json.dumps(data))


def test_a_planted_pickle_is_never_unpickled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "meta.pickle"
    marker = tmp_path / "pwned"
    db = _sqlite(tmp_path, cache)
    key = f"{db.url}#"
    cache.write_bytes(pickle.dumps((key, _Boom(marker))))
    os.chmod(cache, 0o600)
    try:
        with caplog.at_level(logging.WARNING, logger="dbwire"):
            assert set(db.metadata.tables) == {"real_table"}
    finally:
        db.close()
    assert not marker.exists(), "loading the cache ran the planted pickle"
    assert "unreadable" in caplog.text
    # The file was replaced by the JSON cache, which holds no code.
    assert json.loads(cache.read_text())["format"] == cache_format.FORMAT


def test_the_cache_written_is_json_readable_only_by_its_user(tmp_path: Path) -> None:
    cache = tmp_path / "dir" / "meta.json"
    db = _sqlite(tmp_path, cache)
    try:
        db.metadata  # noqa: B018
    finally:
        db.close()
    data = json.loads(cache.read_text())
    assert [t["name"] for t in data["tables"]] == ["real_table"]
    assert cache.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("where", ["file", "folder"])
def test_a_cache_others_can_write_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    cache = folder / "meta.json"
    _valid_cache_naming_a_decoy(tmp_path, cache)
    # The decoy is served while the file is private: the attack below is what changes.
    db = _sqlite(tmp_path, cache)
    try:
        assert DECOY in db.metadata.tables
    finally:
        db.close()
    os.chmod(cache if where == "file" else folder, 0o777 if where == "folder" else 0o666)
    db = _sqlite(tmp_path, cache)
    try:
        with caplog.at_level(logging.WARNING, logger="dbwire"):
            assert set(db.metadata.tables) == {"real_table"}
    finally:
        db.close()
    assert f"can be written by other users (mode {'777' if where == 'folder' else '666'})" in (
        caplog.text
    )


@pytest.mark.parametrize(
    "cls",
    ["os:system", "builtins:eval", "subprocess:Popen", "sqlalchemy.sql.expression:text"],
)
def test_a_cache_naming_a_class_outside_sqlalchemy_types_is_not_built(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cls: str
) -> None:
    cache = tmp_path / "meta.json"
    _valid_cache_naming_a_decoy(tmp_path, cache)
    data = json.loads(cache.read_text())
    marker = tmp_path / "pwned"
    data["tables"][0]["columns"][0]["type"] = {
        "class": cls,
        "args": {"args": f"touch {marker}", "command": f"touch {marker}", "source": "1"},
    }
    cache.write_text(json.dumps(data))
    os.chmod(cache, 0o600)
    db = _sqlite(tmp_path, cache)
    try:
        with caplog.at_level(logging.WARNING, logger="dbwire"):
            assert set(db.metadata.tables) == {"real_table"}
    finally:
        db.close()
    assert not marker.exists()
    assert "unreadable" in caplog.text


def test_postgresql_tables_survive_the_cache_with_types_keys_and_indexes(
    pg_url: str, tmp_path: Path
) -> None:
    cache = tmp_path / "pg.json"
    db = Database(DatabaseConfig(name="pg_cache", url=pg_url, metadata_cache=str(cache)))
    try:
        with db.session() as s:
            s.execute(text("DROP TABLE IF EXISTS cache_child, cache_parent"))
            s.execute(text("DROP TYPE IF EXISTS cache_mood"))
            s.execute(text("CREATE TYPE cache_mood AS ENUM ('ok', 'sad')"))
            s.execute(
                text(
                    "CREATE TABLE cache_parent (id bigserial PRIMARY KEY, "
                    "code varchar(12) NOT NULL UNIQUE, price numeric(10, 2) DEFAULT 0, "
                    "seen timestamptz, tags text[], mood cache_mood, doc jsonb, "
                    "uid uuid, CHECK (price >= 0))"
                )
            )
            s.execute(
                text(
                    "CREATE TABLE cache_child (id int PRIMARY KEY, "
                    "parent_id bigint NOT NULL REFERENCES cache_parent(id) ON DELETE CASCADE)"
                )
            )
            s.execute(text("CREATE INDEX cache_child_parent ON cache_child (parent_id)"))
        reflected = db.refresh_metadata()
    finally:
        db.close()
    again = Database(DatabaseConfig(name="pg_cache", url=pg_url, metadata_cache=str(cache)))
    try:
        cached = again.metadata
        assert cached is not reflected
        for name in ("cache_parent", "cache_child"):
            want, got = reflected.tables[name], cached.tables[name]
            assert [(c.name, repr(c.type), c.nullable) for c in got.columns] == [
                (c.name, repr(c.type), c.nullable) for c in want.columns
            ]
            assert [c.name for c in got.primary_key] == [c.name for c in want.primary_key]
            assert {fk.target_fullname for fk in got.foreign_keys} == {
                fk.target_fullname for fk in want.foreign_keys
            }
            assert {(i.name, i.unique) for i in got.indexes} == {
                (i.name, i.unique) for i in want.indexes
            }
        child = cached.tables["cache_child"]
        fk = next(iter(child.foreign_keys))
        assert fk.column.table is cached.tables["cache_parent"]
        assert fk.ondelete == "CASCADE"
        parent = cached.tables["cache_parent"]
        assert str(parent.c.price.server_default.arg) == str(  # type: ignore[union-attr]
            reflected.tables["cache_parent"].c.price.server_default.arg  # type: ignore[union-attr]
        )
        # The rebuilt MetaData is usable: a query built on it runs.
        with again.connect() as conn:
            assert conn.execute(parent.select().where(parent.c.code == "x")).all() == []
        with again.session() as s:
            s.execute(text("DROP TABLE cache_child, cache_parent"))
            s.execute(text("DROP TYPE cache_mood"))
    finally:
        again.close()
