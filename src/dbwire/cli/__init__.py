"""The `dbwire` command: typer + rich, one module per command group."""

from __future__ import annotations

from typing import Annotated

import typer

from dbwire.cli import init as init_commands
from dbwire.cli import inspect as inspect_commands
from dbwire.cli import query as query_commands
from dbwire.cli import schema_lifecycle as lifecycle_commands
from dbwire.cli import serve as serve_commands
from dbwire.cli import shell as shell_commands
from dbwire.cli import store as store_commands

app = typer.Typer(
    name="dbwire",
    help="Inspect, check and query the databases of a dbwire configuration.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"dbwire {version('dbwire')}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Inspect, check and query the databases of a dbwire configuration."""


inspect_commands.register(app)
query_commands.register(app)
store_commands.register(app)
lifecycle_commands.register(app)
init_commands.register(app)
shell_commands.register(app)
serve_commands.register(app)


def main() -> None:
    """Entry point of the `dbwire` console script."""
    app()
