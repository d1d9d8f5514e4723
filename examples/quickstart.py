"""dbwire's main job on the embedded default: load the config, write and read every database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

import dbwire

CONFIG = Path(__file__).with_name("dbwire.toml")


def main() -> None:
    config = dbwire.load_config(CONFIG)
    for name in config.databases:
        db = dbwire.connect(name, config=config)
        with db.session() as s:
            s.execute(text("CREATE TABLE IF NOT EXISTS visits (n INTEGER)"))
            s.execute(text("INSERT INTO visits VALUES (1)"))
        _, rows = db.execute_query("SELECT count(*) AS visits FROM visits")
        readonly = "was allowed: a bug"
        try:
            with db.session(readonly=True) as s:
                s.execute(text("INSERT INTO visits VALUES (2)"))
        except dbwire.ReadOnlyError:
            readonly = "refused by the database"
        print(f"{db!r}: {rows[0]['visits']} visit(s); read-only write {readonly}")
        db.close()


if __name__ == "__main__":
    main()
