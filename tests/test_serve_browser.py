"""The `dbwire serve` page in headless Chromium, against real PostgreSQL and MariaDB.

One app per module: `create_app` on the test's own Manager, served by uvicorn on a thread,
so the test can hold that Manager's pooled connections and watch the page chart them.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import expect

from dbwire import Manager
from servers import DatabaseServer, free_port
from servers.web import ThreadedUvicorn

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


pytestmark = [pytest.mark.postgres, pytest.mark.mysql]

TOKEN = secrets.token_urlsafe(32)
HOSTILE = "<img src=x onerror=alert(1)>"
ARTIFACTS = Path(__file__).parent / "artifacts"
SAMPLE_INTERVAL = 0.4

CROSS_JOIN = (
    "SELECT u.name, o.total FROM pg1.public.serve_web_users u "
    "JOIN my1.{mydb}.serve_web_orders o ON o.user_id = u.id ORDER BY o.id"
)


# Visible controls without an accessible name (a <label>, aria-label or text of a button).
UNLABELLED = """
[...document.querySelectorAll("input, select, textarea, button")]
  .filter(el => el.checkVisibility())
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                && !(el.tagName === "BUTTON" && el.textContent.trim()))
  .map(el => el.outerHTML.slice(0, 120))
"""

# --------------------------------------------------------------------------- fixtures


def _pg_exec(server: DatabaseServer, sql: str) -> None:
    import psycopg

    with psycopg.connect(
        host=server.host,
        port=server.port,
        user=server.user,
        password=server.password,
        dbname=server.database,
        autocommit=True,
    ) as conn:
        conn.execute(sql.encode())


def _mysql_exec(server: DatabaseServer, *statements: str) -> None:
    import pymysql

    conn = pymysql.connect(
        host=server.host,
        port=server.port,
        user=server.user,
        password=server.password,
        database=server.database,
        autocommit=True,
    )
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def tables(pg_server: DatabaseServer, mysql_server: DatabaseServer) -> Iterator[None]:
    """Users in PostgreSQL, their orders in MariaDB, and a table with a hostile name."""
    hostile = '"' + HOSTILE.replace('"', '""') + '"'
    _pg_exec(
        pg_server,
        "DROP TABLE IF EXISTS serve_web_users, " + hostile + ";"
        "CREATE TABLE serve_web_users (id integer PRIMARY KEY, name text NOT NULL);"
        "INSERT INTO serve_web_users VALUES (1, 'ada'), (2, 'grace'), (3, 'edsger');"
        f"CREATE TABLE {hostile} ({hostile} integer PRIMARY KEY);",
    )
    _mysql_exec(
        mysql_server,
        "DROP TABLE IF EXISTS serve_web_orders",
        "CREATE TABLE serve_web_orders (id int PRIMARY KEY, user_id int NOT NULL,"
        " total decimal(8,2) NOT NULL)",
        "INSERT INTO serve_web_orders VALUES (10, 2, 7.50), (11, 1, 99.00), (12, 3, 12.25)",
    )
    yield
    _pg_exec(pg_server, f"DROP TABLE IF EXISTS serve_web_users, {hostile}")
    _mysql_exec(mysql_server, "DROP TABLE IF EXISTS serve_web_orders")


@dataclass
class Served:
    manager: Manager
    server: ThreadedUvicorn
    pg: DatabaseServer
    mysql: DatabaseServer

    @property
    def origin(self) -> str:
        return self.server.origin

    def api(self) -> httpx.Client:
        """A bearer-token client for setting the scene (the page is what is tested)."""
        return httpx.Client(
            base_url=self.origin, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )

    def fields(self, server: DatabaseServer) -> dict[str, str]:
        return {
            "host": server.host,
            "port": str(server.port),
            "user": server.user,
            "password": server.password,
            "database": server.database,
        }

    def ensure(self, name: str, kind: str) -> None:
        """Create the connection through the API unless a test already made it."""
        server = self.pg if kind == "postgresql" else self.mysql
        config: dict[str, Any] = self.fields(server)
        config["port"] = server.port
        with self.api() as client:
            if client.get(f"/api/connections/{name}").status_code == 200:
                return
            response = client.post(
                "/api/connections", json={"name": name, "type": kind, "config": config}
            )
            assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def served(
    tables: None,
    pg_server: DatabaseServer,
    mysql_server: DatabaseServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    from dbwire.serve import create_app

    folder = tmp_path_factory.mktemp("serve-web")
    # One database from the config file: listed, queried, but edited only in that file.
    manager = Manager({"databases": {"notes": {"url": f"sqlite:///{folder / 'notes.db'}"}}})
    state = folder / "state.json"
    port = free_port()
    app = create_app(
        manager,
        token=TOKEN,
        state_path=state,
        sample_interval=SAMPLE_INTERVAL,
        host="127.0.0.1",
        port=port,
        secret_backend="file",
    )
    try:
        with ThreadedUvicorn(app, port=port) as server:
            yield Served(manager, server, pg_server, mysql_server)
    finally:
        manager.close_all()


@dataclass
class Watched:
    """A page plus what it must never do: script errors and dialogs are recorded."""

    page: Page
    errors: list[str]
    dialogs: list[str]
    accept_dialogs: bool = False


@pytest.fixture
def open_page(chromium: Browser, served: Served) -> Iterator[Callable[..., Watched]]:
    contexts = []

    def make(width: int = 1280, height: int = 800, *, login: bool = True) -> Watched:
        context = chromium.new_context(
            viewport={"width": width, "height": height}, base_url=served.origin
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        watched = Watched(page, [], [])
        page.on("pageerror", lambda exc: watched.errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: watched.errors.append(msg.text) if msg.type == "error" else None,
        )

        def on_dialog(dialog: Any) -> None:
            watched.dialogs.append(dialog.message)
            if watched.accept_dialogs:
                dialog.accept()
            else:
                dialog.dismiss()

        page.on("dialog", on_dialog)
        if login:
            page.goto(f"/login?token={TOKEN}")
            expect(page.get_by_test_id("add-connection")).to_be_visible()
        return watched

    yield make
    for context in contexts:
        context.close()


# --------------------------------------------------------------------------- helpers


def add_through_form(page: Page, name: str, kind: str, fields: dict[str, str]) -> None:
    page.get_by_test_id("add-connection").click()
    dialog = page.get_by_test_id("connection-dialog")
    expect(dialog).to_be_visible()
    page.get_by_test_id("connection-name").fill(name)
    page.get_by_test_id("type-select").select_option(kind)
    for field, value in fields.items():
        page.get_by_test_id(f"field-{field}").fill(value)
    expect(page.get_by_test_id("field-password")).to_have_attribute("type", "password")
    page.get_by_test_id("save-connection").click()
    expect(dialog).to_be_hidden()


def drawn(page: Page, name: str) -> int:
    """How many samples a connection's status chart draws."""
    return int(page.get_by_test_id(f"status-chart-{name}").get_attribute("data-samples") or 0)


def checked_out(page: Page, name: str) -> int:
    """The connections checked out in the chart's latest sample."""
    chart = page.get_by_test_id(f"status-chart-{name}")
    return int(chart.get_attribute("data-checked-out") or 0)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still false after {timeout:.0f}s"
        time.sleep(0.1)


def grid_rows(page: Page) -> list[list[str]]:
    rows: list[list[str]] = (
        page.get_by_test_id("results-grid")
        .locator("tbody tr")
        .evaluate_all("rows => rows.map(r => [...r.cells].map(c => c.textContent))")
    )
    return rows


# --------------------------------------------------------------------------- tests


def test_without_the_token_the_page_asks_to_log_in(
    open_page: Callable[..., Watched], served: Served
) -> None:
    watched = open_page(login=False)
    page = watched.page
    page.goto("/")
    expect(page.get_by_test_id("login-required")).to_be_visible()
    expect(page.get_by_test_id("login-required")).to_contain_text("dbwire serve")
    expect(page.get_by_test_id("connection-list")).to_be_hidden()
    response = page.goto("/login?token=" + secrets.token_urlsafe(32))
    assert response is not None and response.status == 401
    assert not page.context.cookies()
    page.goto("/")
    expect(page.get_by_test_id("login-required")).to_be_visible()


def test_add_connections_browse_schema_join_across_databases_and_watch_status(
    open_page: Callable[..., Watched], served: Served, pg_server: DatabaseServer
) -> None:
    began = time.monotonic()
    watched = open_page()
    page = watched.page

    add_through_form(page, "pg1", "postgresql", served.fields(served.pg))
    pg_row = page.get_by_test_id("connection-row-pg1")
    expect(pg_row).to_have_attribute("data-status", "healthy", timeout=20_000)
    expect(page.get_by_test_id("connection-error-pg1")).to_be_hidden()

    # The schema tree: tables, then columns with their types and the primary key.
    page.get_by_test_id("schema-toggle-pg1").click()
    tree = page.get_by_test_id("schema-tree-pg1")
    expect(tree).to_be_visible()
    users = page.get_by_test_id("schema-node-public.serve_web_users")
    users.locator("summary").click()
    id_column = page.get_by_test_id("schema-column-public.serve_web_users.id")
    expect(id_column).to_be_visible()
    expect(id_column).to_contain_text("PK")
    expect(id_column).to_contain_text("integer", ignore_case=True)
    expect(page.get_by_test_id("schema-column-public.serve_web_users.name")).not_to_contain_text(
        "PK"
    )

    # A table and a column named like markup render as text and run nothing.
    hostile = page.get_by_test_id(f"schema-node-public.{HOSTILE}")
    hostile.locator("summary").click()
    expect(hostile).to_contain_text(HOSTILE)
    expect(page.get_by_test_id(f"schema-column-public.{HOSTILE}.{HOSTILE}")).to_be_visible()

    add_through_form(page, "my1", "mysql", served.fields(served.mysql))
    expect(page.get_by_test_id("connection-row-my1")).to_have_attribute(
        "data-status", "healthy", timeout=20_000
    )

    # One query over both servers, through the DuckDB store.
    expect(page.get_by_test_id("connection-picker")).to_have_value("")
    page.get_by_test_id("sql-editor").fill(CROSS_JOIN.format(mydb=served.mysql.database))
    page.get_by_test_id("run-query").click()
    expect(page.get_by_test_id("results-count")).to_have_text("3 rows", timeout=30_000)
    expect(page.get_by_test_id("results-time")).to_contain_text("ms")
    assert [r[0] for r in grid_rows(page)] == ["grace", "ada", "edsger"]
    header = page.get_by_test_id("results-grid").locator("th")
    expect(header.nth(1)).to_contain_text("total")
    header.nth(1).locator("button").click()  # sort by total, ascending
    assert [r[0] for r in grid_rows(page)] == ["grace", "edsger", "ada"]
    expect(header.nth(1)).to_have_attribute("aria-sort", "ascending")
    header.nth(1).locator("button").click()
    assert [r[0] for r in grid_rows(page)] == ["ada", "edsger", "grace"]
    expect(page.get_by_test_id("query-history")).to_contain_text("serve_web_orders")

    # Hold pooled connections in the server's own Manager: the chart must see them.
    chart = page.get_by_test_id("status-chart-pg1")
    expect(chart).to_be_visible()
    before = drawn(page, "pg1")
    assert checked_out(page, "pg1") < 3
    engine = served.manager.db("pg1").engine
    held = [engine.connect() for _ in range(3)]
    try:
        wait_for(lambda: drawn(page, "pg1") >= before + 2 and checked_out(page, "pg1") >= 3)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "serve.png"), full_page=True)
    finally:
        for conn in held:
            conn.close()
    wait_for(lambda: checked_out(page, "pg1") < 3)
    assert int(chart.get_attribute("data-max-checked-out") or 0) >= 3

    # The password went in through the form and never comes back out.
    for secret in (served.pg.password, served.mysql.password):
        assert secret not in page.content()
        with served.api() as client:
            for path in ("/api/connections", "/api/connections/pg1", "/api/status"):
                assert secret not in client.get(path).text

    # Edit: the secret input is empty and says a value is stored; leaving it empty keeps it.
    page.get_by_test_id("edit-connection-pg1").click()
    password = page.get_by_test_id("field-password")
    expect(password).to_have_value("")
    expect(password).to_have_attribute("type", "password")
    expect(password).to_have_attribute("placeholder", re.compile("stored"))
    expect(page.get_by_test_id("field-host")).to_have_value(served.pg.host)
    page.get_by_test_id("field-connect_timeout").fill("7")
    page.get_by_test_id("save-connection").click()
    expect(page.get_by_test_id("connection-dialog")).to_be_hidden()
    page.get_by_test_id("test-connection-pg1").click()
    expect(pg_row).to_have_attribute("data-status", "healthy", timeout=20_000)
    with served.api() as client:
        shown = client.get("/api/connections/pg1").json()
    assert shown["config"]["connect_timeout"] == 7
    assert shown["secrets"]["password"] is True
    page.get_by_test_id("edit-connection-pg1").click()
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("connection-dialog")).to_be_hidden()
    expect(page.get_by_test_id("edit-connection-pg1")).to_be_focused()

    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"horizontal scroll at 1280x800: {width}"
    assert page.locator("img").count() == 0
    assert watched.dialogs == [], watched.dialogs
    assert watched.errors == [], watched.errors
    assert time.monotonic() - began < 60


def test_a_connection_that_cannot_connect_shows_its_error(
    open_page: Callable[..., Watched], served: Served
) -> None:
    closed_port = free_port()
    canary = "canary-" + secrets.token_urlsafe(12)
    with served.api() as client:
        response = client.post(
            "/api/connections",
            json={
                "name": "down1",
                "type": "postgresql",
                "config": {
                    "host": "127.0.0.1",
                    "port": closed_port,
                    "user": "nobody",
                    "password": canary,
                    "database": "nothing",
                },
            },
        )
    assert response.status_code == 201, response.text
    try:
        watched = open_page()
        page = watched.page
        row = page.get_by_test_id("connection-row-down1")
        expect(row).to_have_attribute("data-status", "unhealthy", timeout=20_000)
        error = page.get_by_test_id("connection-error-down1")
        expect(error).to_be_visible()
        expect(error).to_contain_text(str(closed_port))
        page.get_by_test_id("test-connection-down1").click()
        expect(row).to_have_attribute("data-status", "unhealthy")
        assert canary not in page.content()
        # its failed checks are charted as such
        failed = page.get_by_test_id("status-chart-down1").locator("rect.pt-down")
        expect(failed.first).to_be_attached(timeout=10_000)
        watched.accept_dialogs = True
        page.get_by_test_id("delete-connection-down1").click()
        expect(row).to_have_count(0)
        assert watched.dialogs and "down1" in watched.dialogs[0]
        with served.api() as client:
            assert client.get("/api/connections/down1").status_code == 404
    finally:
        with served.api() as client:
            assert client.delete("/api/connections/down1").status_code == 204


def test_narrow_window_stacks_panels_without_horizontal_scroll(
    open_page: Callable[..., Watched], served: Served
) -> None:
    served.ensure("pg1", "postgresql")
    page = open_page(400, 800).page
    expect(page.get_by_test_id("connection-row-pg1")).to_be_visible()
    for testid in ("connection-list", "sql-editor", "run-query", "results-grid", "status-panel"):
        box = page.get_by_test_id(testid).bounding_box()
        assert box is not None, testid
        assert box["x"] >= 0 and box["x"] + box["width"] <= 400, (testid, box)
    listed = page.get_by_test_id("connection-list").bounding_box()
    editor = page.get_by_test_id("sql-editor").bounding_box()
    assert listed and editor and editor["y"] > listed["y"]  # stacked, not side by side
    page.get_by_test_id("sql-editor").fill(
        "SELECT 'a rather long text value that would widen a table' AS wide, * "
        "FROM range(20) AS r(n)"
    )
    page.get_by_test_id("run-query").click()
    expect(page.get_by_test_id("results-count")).to_have_text("20 rows", timeout=30_000)
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"horizontal scroll: {width}"
    grid = page.get_by_test_id("results-grid")
    # the wide table scrolls inside its own box, not the page
    assert grid.evaluate("g => g.parentElement.scrollWidth > g.parentElement.clientWidth")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve-narrow.png"), full_page=True)
    page.get_by_test_id("add-connection").click()
    dialog = page.get_by_test_id("connection-dialog").bounding_box()
    assert dialog and dialog["x"] >= 0 and dialog["x"] + dialog["width"] <= 400, dialog
    page.keyboard.press("Escape")


def test_keyboard_reaches_run_and_ctrl_enter_runs(
    open_page: Callable[..., Watched], served: Served
) -> None:
    page = open_page().page
    editor = page.get_by_test_id("sql-editor")
    editor.focus()
    page.keyboard.type("SELECT 41 + 1 AS answer")
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.testid") == "run-query":
            break
    assert page.evaluate("document.activeElement.dataset.testid") == "run-query"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused button has no visible focus"
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("results-count")).to_have_text("1 row", timeout=30_000)

    editor.fill("SELECT 6 * 7 AS answer, 'again' AS how")
    editor.focus()
    page.keyboard.press("Control+Enter")
    expect(page.get_by_test_id("results-grid").locator("tbody")).to_contain_text("again")
    assert grid_rows(page) == [["42", "again"]]

    # History: the latest first; a click loads it back into the editor.
    history = page.get_by_test_id("query-history").locator("button")
    expect(history).to_have_count(2)
    history.nth(1).click()
    expect(editor).to_have_value("SELECT 41 + 1 AS answer")
    expect(editor).to_be_focused()

    # Every control has a name a screen reader can say: on the page and in the dialog.
    assert page.evaluate(UNLABELLED) == []
    # The add dialog: focus moves in, Escape closes it, focus comes back.
    add = page.get_by_test_id("add-connection")
    add.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("connection-name")).to_be_focused()
    expect(page.get_by_test_id("field-host")).to_be_visible()
    assert page.evaluate(UNLABELLED) == []
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("connection-dialog")).to_be_hidden()
    expect(add).to_be_focused()


def test_hostile_values_in_results_render_as_text(
    open_page: Callable[..., Watched], served: Served
) -> None:
    watched = open_page()
    page = watched.page
    page.get_by_test_id("sql-editor").fill(
        f"SELECT '{HOSTILE}' AS \"{HOSTILE}\", '<script>alert(2)</script>' AS s"
    )
    page.get_by_test_id("run-query").click()
    expect(page.get_by_test_id("results-count")).to_have_text("1 row", timeout=30_000)
    header = page.get_by_test_id("results-grid").locator("th").first
    expect(header).to_contain_text(HOSTILE)
    assert grid_rows(page) == [[HOSTILE, "<script>alert(2)</script>"]]
    history = page.get_by_test_id("query-history")
    expect(history).to_contain_text(HOSTILE)
    assert page.locator("img, #results-grid script").count() == 0
    assert watched.dialogs == []
    assert watched.errors == []


def test_load_more_pages_through_next(open_page: Callable[..., Watched], served: Served) -> None:
    page = open_page().page
    page.get_by_test_id("sql-editor").fill("SELECT n FROM range(2500) AS r(n) ORDER BY n")
    page.locator("#query-limit").fill("1000")
    page.get_by_test_id("run-query").click()
    count = page.get_by_test_id("results-count")
    expect(count).to_have_text("1000 rows (more available)", timeout=30_000)
    page.get_by_test_id("load-more").click()
    expect(count).to_have_text("2000 rows (more available)")
    rows = grid_rows(page)
    assert rows[0] == ["0"] and rows[-1] == ["1999"]
    header = page.get_by_test_id("results-grid").locator("th button")
    header.click()
    header.click()  # descending: a number sort, not a text one ("999" > "1999")
    assert grid_rows(page)[:2] == [["1999"], ["1998"]]
    page.get_by_test_id("load-more").click()
    expect(count).to_have_text("2500 rows")
    expect(page.get_by_test_id("load-more")).to_be_hidden()
    rows = grid_rows(page)
    assert len(rows) == 2500
    assert rows[0] == ["2499"] and rows[-1] == ["0"]  # the last page is sorted in


def test_cancel_stops_a_running_query_on_the_server(
    open_page: Callable[..., Watched], served: Served, pg_server: DatabaseServer
) -> None:
    served.ensure("pg1", "postgresql")
    page = open_page().page
    page.get_by_test_id("connection-picker").select_option("pg1")
    page.get_by_test_id("sql-editor").fill("SELECT pg_sleep(60) AS slept")
    page.get_by_test_id("run-query").click()
    cancel = page.get_by_test_id("cancel-query")
    expect(cancel).to_be_enabled()

    def sleeping() -> int:
        rows = pg_server.query_admin(
            # by what the backend waits on: through a server-side cursor its text is a FETCH
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
        )
        return int(rows[0][0])

    deadline = time.monotonic() + 15
    while sleeping() == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sleeping() == 1
    began = time.monotonic()
    cancel.click()
    expect(page.get_by_test_id("results-count")).to_have_text("Cancelled", timeout=10_000)
    while sleeping() and time.monotonic() - began < 10:
        time.sleep(0.1)
    assert sleeping() == 0, "the query still runs on the server after Cancel"
    expect(page.get_by_test_id("run-query")).to_be_enabled()


def test_an_unreachable_server_is_reported_and_the_page_recovers(
    open_page: Callable[..., Watched], served: Served
) -> None:
    served.ensure("pg1", "postgresql")
    watched = open_page()
    page = watched.page
    row = page.get_by_test_id("connection-row-pg1")
    expect(row).to_be_visible()
    banner = page.locator("#page-error")
    page.context.set_offline(True)
    expect(banner).to_be_visible(timeout=10_000)
    expect(banner).to_contain_text("Cannot reach the dbwire server")
    expect(row).to_be_visible()  # the last known state stays on screen
    page.context.set_offline(False)
    expect(banner).to_be_hidden(timeout=10_000)
    expect(row).to_have_attribute("data-status", "healthy")


def test_a_lost_session_brings_back_the_login_message(
    open_page: Callable[..., Watched], served: Served
) -> None:
    page = open_page().page
    expect(page.get_by_test_id("login-required")).to_be_hidden()
    page.context.clear_cookies()  # as after a restart of `dbwire serve` with a new token
    expect(page.get_by_test_id("login-required")).to_be_visible(timeout=10_000)
    expect(page.get_by_test_id("sql-editor")).to_be_hidden()


def test_form_errors_name_the_field_and_keep_the_dialog_open(
    open_page: Callable[..., Watched], served: Served
) -> None:
    served.ensure("pg1", "postgresql")
    page = open_page().page
    types = page.get_by_test_id("type-select")
    page.get_by_test_id("add-connection").click()
    # every backend of the registry is offered, a third-party one included
    for kind in ("postgresql", "mysql", "mariadb", "sqlite", "duckdb", "testlite"):
        expect(types.locator(f"option[value={kind}]")).to_have_count(1)
    types.select_option("sqlite")
    expect(page.get_by_test_id("field-path")).to_be_visible()
    expect(page.get_by_test_id("field-host")).to_have_count(0)
    types.select_option("postgresql")
    expect(page.get_by_test_id("field-readonly")).to_be_checked()  # the schema's default

    error = page.locator("#connection-form-error")
    name = page.get_by_test_id("connection-name")
    name.fill("pg1")  # taken
    page.get_by_test_id("field-database").fill("x")
    page.get_by_test_id("save-connection").click()
    expect(error).to_be_visible()
    expect(error).to_contain_text("pg1")
    expect(page.get_by_test_id("connection-dialog")).to_be_visible()

    name.fill("Not A Name")
    page.get_by_test_id("save-connection").click()
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_be_focused()

    name.fill("pg_bad_port")
    page.get_by_test_id("field-port").fill("0")
    page.get_by_test_id("save-connection").click()
    port = page.get_by_test_id("field-port")
    expect(port).to_have_attribute("aria-invalid", "true")
    expect(error).to_contain_text("port", ignore_case=True)  # the browser's own check

    port.fill("5432")
    timeout = page.get_by_test_id("field-connect_timeout")
    timeout.fill("0")  # the server's check: it must be > 0
    page.get_by_test_id("save-connection").click()
    expect(timeout).to_have_attribute("aria-invalid", "true")
    expect(port).not_to_have_attribute("aria-invalid", "true")
    expect(error).to_contain_text("connect_timeout")
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("connection-dialog")).to_be_hidden()
    expect(page.get_by_test_id("connection-row-pg_bad_port")).to_have_count(0)


def test_refused_and_failed_queries_say_why(
    open_page: Callable[..., Watched], served: Served, pg_server: DatabaseServer
) -> None:
    served.ensure("pg1", "postgresql")
    page = open_page().page
    error = page.locator("#query-error")
    page.get_by_test_id("connection-picker").select_option("pg1")
    page.get_by_test_id("query-write").check()
    page.get_by_test_id("sql-editor").fill("DELETE FROM serve_web_users")
    page.get_by_test_id("run-query").click()
    expect(error).to_be_visible()
    expect(error).to_contain_text("read only")  # the type, spelled for people
    expect(page.get_by_test_id("results-count")).to_have_text("Failed")
    assert pg_server.query_admin("SELECT 1")  # the server is fine
    with served.api() as client:
        rows = client.post(
            "/api/query", json={"sql": "SELECT count(*) FROM serve_web_users", "connection": "pg1"}
        ).json()["rows"]
    assert rows == [[3]]

    page.get_by_test_id("query-write").uncheck()
    page.get_by_test_id("sql-editor").fill("SELEC nothing")
    page.get_by_test_id("run-query").click()
    expect(error).to_contain_text("SELEC")
    failed = page.get_by_test_id("query-history").locator("button.failed")
    expect(failed).to_have_count(2)


def test_a_config_file_connection_is_listed_but_not_editable_here(
    open_page: Callable[..., Watched], served: Served
) -> None:
    page = open_page().page
    row = page.get_by_test_id("connection-row-notes")
    expect(row).to_contain_text("config")
    expect(page.get_by_test_id("test-connection-notes")).to_be_visible()
    expect(page.get_by_test_id("edit-connection-notes")).to_be_hidden()
    expect(page.get_by_test_id("delete-connection-notes")).to_be_hidden()
    expect(page.get_by_test_id("connection-picker").locator("option[value=notes]")).to_have_count(1)


def test_clearing_a_stored_password_sends_null(
    open_page: Callable[..., Watched], served: Served
) -> None:
    served.ensure("pg_clear", "postgresql")
    try:
        page = open_page().page
        page.get_by_test_id("edit-connection-pg_clear").click()
        expect(page.get_by_test_id("field-password")).to_have_value("")
        page.get_by_test_id("field-password-clear").check()
        page.get_by_test_id("save-connection").click()
        expect(page.get_by_test_id("connection-dialog")).to_be_hidden()
        with served.api() as client:
            shown = client.get("/api/connections/pg_clear").json()
        assert shown["secrets"]["password"] is False
        # nothing stored any more: the edit form offers no "clear" box and no "stored" hint
        page.get_by_test_id("edit-connection-pg_clear").click()
        expect(page.get_by_test_id("field-password-clear")).to_have_count(0)
        expect(page.get_by_test_id("field-password")).to_have_attribute("placeholder", "")
        page.keyboard.press("Escape")
    finally:
        with served.api() as client:
            client.delete("/api/connections/pg_clear")
