"""`python -m dbwire.cli` runs the dbwire command."""

from dbwire.cli import main

main()
