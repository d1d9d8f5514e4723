"""ServeContext: what the routes of one `dbwire serve` app use (`app.state.serve`)."""

from __future__ import annotations

from dataclasses import dataclass

from dbwire.manager import Manager
from dbwire.serve.connections import Connections
from dbwire.serve.query import QueryRunner
from dbwire.serve.sampler import Sampler
from dbwire.serve.security import Guard
from dbwire.serve.store_hub import StoreHub


@dataclass
class ServeContext:
    """Everything the routes use; `app.state.serve`."""

    manager: Manager
    connections: Connections
    queries: QueryRunner
    hub: StoreHub
    sampler: Sampler
    guard: Guard
    version: str
    login_url: str

    def known_secrets(self) -> list[str]:
        """Every secret to scrub from anything shown (the token included)."""
        return [self.guard.token, *self.connections.known_secrets()]

    def start(self) -> None:
        """Start the background sampler (idempotent)."""
        self.sampler.start()

    def stop(self) -> None:
        """Stop sampling, cancel open queries and close the store; the Manager stays open."""
        self.sampler.stop()
        self.queries.close()
        self.hub.close()
