"""`python -m dbwire` runs the dbwire command."""

from dbwire.cli import main

main()
