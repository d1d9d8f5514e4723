"""dbwire's bytecode, written before a fresh-process row is timed.

An installed package has its .pyc files (pip compiles them at install), and so do the
peers every fresh-process row compares with (SQLAlchemy, DuckDB, connectorx). A source
checkout run with PYTHONDONTWRITEBYTECODE set (as CI and this machine do) has none, so
each child would compile every dbwire module it imports again: about 50 ms of a collect
child, charged to dbwire and to nothing a user of the package pays.
"""

from __future__ import annotations

import functools
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "src" / "dbwire"


@functools.cache
def compile_dbwire() -> None:
    """Write the bytecode of every dbwire module (once per bench run; an up-to-date .pyc
    is left as it is)."""
    import compileall

    if not compileall.compile_dir(str(SOURCE), quiet=1):
        raise RuntimeError(f"could not compile {SOURCE}")
