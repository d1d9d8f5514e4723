"""`dbwire serve`: the connection manager's API and page on 127.0.0.1 (extra `serve`)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated

import typer

from dbwire.cli.inspect import (
    EXIT_CONFIG,
    ConfigOption,
    DebugOption,
    Output,
    _handled,
    _load,
)
from dbwire.errors import MissingDependencyError


def register(app: typer.Typer) -> None:
    """Add `dbwire serve` to the app."""
    app.command("serve")(serve)


def user_state_path() -> Path:
    """Where API-made connections persist when no config file is in use."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dbwire" / "dbwire-serve.json"


def serve(
    config: ConfigOption = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; anything but loopback warns.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8765,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="File for connections made in the page (default: beside the config file).",
        ),
    ] = None,
    sample_interval: Annotated[
        float, typer.Option("--sample-interval", help="Seconds between status samples.")
    ] = 5.0,
    debug: DebugOption = False,
) -> None:
    """Serve the databases' API and web page; prints the one login URL."""
    output = Output()
    if not (math.isfinite(sample_interval) and sample_interval > 0):
        output.error("--sample-interval must be a positive number of seconds")
        raise typer.Exit(EXIT_CONFIG)
    with _handled(output, debug):
        try:
            import uvicorn

            from dbwire.serve.app import create_app, default_state_path
            from dbwire.serve.security import is_loopback
        except ImportError:
            raise MissingDependencyError(
                "dbwire serve needs FastAPI and uvicorn; run: pip install 'dbwire[serve]'"
            ) from None
        from dbwire.manager import Manager

        manager = Manager(_load(output, config))
        state_path = state or default_state_path(manager) or user_state_path()
        app = create_app(
            manager, state_path=state_path, sample_interval=sample_interval, host=host, port=port
        )
        output.learn([app.state.serve.guard.token])
        if not is_loopback(host):
            output.err.print(
                f"WARNING: dbwire serve listens on {host!r}, not only on this machine: anyone "
                "who can reach it and learns the login URL can read every database here. "
                "Use --host 127.0.0.1 unless you mean it.",
                style="bold red",
                markup=False,
                soft_wrap=True,
            )
        # The one place the token is shown; the access log (which would show it) is off.
        typer.echo(f"dbwire serve: open {app.state.login_url}")
        try:
            uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
        finally:
            manager.close_all()
