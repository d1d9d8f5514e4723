"""The front door: dbwire/__init__.py exports exactly its __all__."""

from __future__ import annotations

import dbwire


def test_all_is_complete() -> None:
    public = [n for n in vars(dbwire) if not n.startswith("_")]
    # Submodules imported as a side effect of loading the package are not API.
    modules = {n for n in public if type(getattr(dbwire, n)).__name__ == "module"}
    exported = set(dbwire.__all__)
    assert exported >= set(public) - modules, "public name missing from __all__"
    assert len(dbwire.__all__) == len(exported), "duplicate in __all__"
    # The order of __all__ is ruff's (RUF022, checked by the test command).
    for name in dbwire.__all__:
        assert hasattr(dbwire, name), name


def test_names_load_on_first_use_in_a_fresh_interpreter() -> None:
    import subprocess
    import sys

    code = (
        "import sys, dbwire\n"
        "assert 'sqlalchemy.orm' not in sys.modules, 'the ORM loaded at import'\n"
        "assert 'dbwire.store' not in sys.modules\n"
        "assert dbwire.credentials.resolve_pg and dbwire.Manager and dbwire.connect\n"
        "assert callable(dbwire.get_duckdb_connection)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_dbwire_and_its_errors_leave_sqlalchemy_unloaded() -> None:
    """`import dbwire` and every error class but one load without SQLAlchemy; the one
    whose base is SQLAlchemy's loads it on first use, once, as that subclass."""
    import subprocess
    import sys

    code = (
        "import sys, threading, dbwire\n"
        "from dbwire import ConfigError, ConnectError, DbwireError, ReadOnlyError\n"
        "assert 'sqlalchemy' not in sys.modules, 'import dbwire loaded SQLAlchemy'\n"
        "seen = []\n"
        "def take(): seen.append(dbwire.errors.PoolTimeoutError)\n"
        "threads = [threading.Thread(target=take) for _ in range(8)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "import sqlalchemy.exc\n"
        "assert len({id(c) for c in seen}) == 1, 'two PoolTimeoutError classes'\n"
        "assert seen[0] is dbwire.PoolTimeoutError\n"
        "assert issubclass(seen[0], (sqlalchemy.exc.TimeoutError, TimeoutError, DbwireError))\n"
        "assert seen[0].__module__ == 'dbwire.errors' and seen[0].__doc__\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
