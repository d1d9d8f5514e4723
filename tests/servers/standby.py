"""A PostgreSQL primary and a streaming standby cloned from it with ``pg_basebackup -R``.

``ReplicationPrimary`` is a ``PostgresServer`` configured for physical replication
(``wal_level=replica``, WAL senders, a ``replication`` line in ``pg_hba.conf``).
``StandbyServer`` clones a running primary into its own temp directory and starts it in
hot-standby mode on its own free port; roles, passwords and databases come from the
primary, so the same URL (with the standby's port) logs in to both. Both inherit the
lifecycle of ``servers.local``: atexit cleanup, the watchdog and the reaping of leftovers.
"""

from __future__ import annotations

import time

from servers.local import PostgresServer

__all__ = ["ReplicationPrimary", "StandbyServer"]

_PRIMARY_SETTINGS = (
    "\n# dbwire test primary: physical replication\n"
    "wal_level = replica\n"
    "max_wal_senders = 5\n"
    "wal_keep_size = 64MB\n"
)
# The standby connects over the primary's private socket directory (local trust, no
# password in primary_conninfo); the TCP line lets a test replicate over loopback too.
_HBA_LINES = (
    "\n# dbwire test primary: replication\n"
    "local   replication     all                     trust\n"
    "host    replication     all     127.0.0.1/32    scram-sha-256\n"
)


class ReplicationPrimary(PostgresServer):
    """A throwaway PostgreSQL cluster that accepts streaming standbys."""

    def _initialize(self) -> None:
        super()._initialize()
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(_PRIMARY_SETTINGS)
        with (self.data_dir / "pg_hba.conf").open("a") as hba:
            hba.write(_HBA_LINES)


class StandbyServer(PostgresServer):
    """A hot standby of ``primary``, made with ``pg_basebackup -R`` on first start."""

    def __init__(self, primary: PostgresServer) -> None:
        self.primary = primary
        super().__init__(user=primary.user, database=primary.database)
        # Roles and their passwords are replicated: the standby's logins are the primary's.
        self.password = primary.password
        self.admin_password = primary.admin_password

    def _initialize(self) -> None:
        if not self.primary.is_running():
            raise RuntimeError(f"{self.primary!r} must run before a standby is cloned from it")
        self._run(
            self._as_account(
                [
                    str(self.bindir / "pg_basebackup"),
                    "-h",
                    self.primary.socket_dir,
                    "-p",
                    str(self.primary.port),
                    "-U",
                    self.primary.admin_user,
                    "-D",
                    str(self.data_dir),
                    "-R",  # standby.signal and primary_conninfo
                    "-X",
                    "stream",
                    "--no-sync",
                    "-c",
                    "fast",
                ]
            ),
            "pg_basebackup",
        )

    def _bootstrap(self) -> None:
        """Nothing to create: the roles and databases arrived with the base backup."""

    # -- replication controls ------------------------------------------------------

    def in_recovery(self) -> bool:
        """True while the server runs as a standby."""
        return bool(self.query_admin("SELECT pg_is_in_recovery()")[0][0])

    def pause_replay(self) -> None:
        """Stop applying WAL (it is still received): the standby's data stops moving."""
        self.run_sql_admin("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        """Apply WAL again."""
        self.run_sql_admin("SELECT pg_wal_replay_resume()")

    def wait_caught_up(self, timeout: float = 30.0) -> None:
        """Block until the standby has replayed everything the primary has written so far."""
        target = self.primary.query_admin("SELECT pg_current_wal_lsn()::text")[0][0]
        deadline = time.monotonic() + timeout
        while True:
            done = self.query_admin(
                f"SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '{target}') >= 0"
            )[0][0]
            if done:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self!r} did not replay up to {target} in {timeout} s")
            time.sleep(0.05)
