// The connection list: live status, error text, test/edit/delete, and each schema tree.

import { api, seg, events } from "./api.js";
import { formatMs, h, replaceChildren } from "./dom.js";

const STATUSES = new Set(["healthy", "unhealthy", "unknown"]);
let treeCount = 0;

/** Double-quote an identifier for DuckDB (the store): " doubles inside. */
export function quoteIdent(name) {
  return `"${String(name).replaceAll('"', '""')}"`;
}

class ConnectionRow {
  constructor(list, connection) {
    this.list = list;
    this.name = connection.name;
    this.schemaLoaded = false;
    const name = connection.name;
    this.dot = h("span", { class: "dot", "aria-hidden": "true" });
    this.statusText = h("span", { class: "conn-status" });
    this.badges = h("span", { class: "badges" });
    this.error = h("p", { class: "conn-error", "data-testid": `connection-error-${name}`, role: "status", hidden: true });
    this.testButton = h("button", { type: "button", "data-testid": `test-connection-${name}`, on: { click: () => this.test() } }, "Test");
    this.schemaButton = h("button", { type: "button", "aria-expanded": "false", "data-testid": `schema-toggle-${name}`, on: { click: () => this.toggleSchema() } }, "Schema");
    this.editButton = h("button", { type: "button", "data-testid": `edit-connection-${name}`, on: { click: () => list.edit(this.connection) } }, "Edit");
    this.deleteButton = h("button", { type: "button", class: "danger", "data-testid": `delete-connection-${name}`, on: { click: () => this.remove() } }, "Delete");
    this.tree = h("div", { class: "schema-tree", "data-testid": `schema-tree-${name}`, hidden: true });
    this.tree.id = `schema-tree-${++treeCount}`;
    this.schemaButton.setAttribute("aria-controls", this.tree.id);
    this.el = h(
      "li",
      { class: "conn-row", "data-testid": `connection-row-${name}` },
      h("div", { class: "conn-head" }, this.dot, h("span", { class: "conn-name" }, name), this.badges, this.statusText),
      this.error,
      h("div", { class: "conn-actions" }, this.testButton, this.schemaButton, this.editButton, this.deleteButton),
      this.tree,
    );
    this.update(connection);
  }

  update(connection) {
    this.connection = connection;
    const status = STATUSES.has(connection.status) ? connection.status : "unknown";
    this.el.dataset.status = status;
    const type = this.list.typeTitle(connection.type);
    replaceChildren(
      this.badges,
      h("span", { class: "badge" }, type),
      connection.readonly ? h("span", { class: "badge badge-ro", title: "queries cannot write" }, "read-only") : null,
      connection.source === "config" ? h("span", { class: "badge", title: "defined in the config file" }, "config") : null,
    );
    const latency = connection.response_time_ms;
    this.statusText.textContent =
      status === "healthy" && latency !== null && latency !== undefined ? `${status} · ${formatMs(latency)}` : status;
    const fromConfig = connection.source === "config";
    this.editButton.hidden = fromConfig;
    this.deleteButton.hidden = fromConfig;
    this.showError(connection.error);
  }

  showError(message) {
    // A live region: rewritten only when the text changes, so each poll is not re-announced.
    const text = message || "";
    if (this.error.textContent !== text) this.error.textContent = text;
    this.error.hidden = !text;
  }

  async test() {
    this.testButton.disabled = true;
    this.testButton.textContent = "Testing…";
    try {
      const result = await api("POST", `/api/connections/${seg(this.name)}/test`);
      this.update({ ...this.connection, status: result.status, response_time_ms: result.response_time_ms, error: result.error });
    } catch (error) {
      this.showError(error.message);
    } finally {
      this.testButton.disabled = false;
      this.testButton.textContent = "Test";
    }
  }

  async toggleSchema() {
    const opening = this.tree.hidden;
    this.tree.hidden = !opening;
    this.schemaButton.setAttribute("aria-expanded", String(opening));
    if (opening && !this.schemaLoaded) await this.loadSchema();
  }

  async loadSchema() {
    replaceChildren(this.tree, h("p", { class: "muted" }, "Loading schema…"));
    try {
      const tables = await api("GET", `/api/connections/${seg(this.name)}/schema`);
      this.schemaLoaded = true;
      this.renderSchema(tables ?? []);
    } catch (error) {
      replaceChildren(
        this.tree,
        h("p", { class: "error", role: "alert" }, error.message, error.fix ? ` ${error.fix}` : ""),
        h("button", { type: "button", on: { click: () => this.loadSchema() } }, "Retry"),
      );
    }
  }

  renderSchema(tables) {
    const bySchema = new Map();
    for (const table of tables) {
      const key = table.schema ?? "";
      if (!bySchema.has(key)) bySchema.set(key, []);
      bySchema.get(key).push(table);
    }
    const groups = [...bySchema.entries()].map(([schema, list]) =>
      h(
        "details",
        { class: "schema-group", open: true },
        h("summary", {}, schema || "(default)", h("span", { class: "muted" }, ` ${list.length} table${list.length === 1 ? "" : "s"}`)),
        h("ul", { class: "tables" }, list.map((t) => h("li", {}, this.renderTable(t)))),
      ),
    );
    replaceChildren(
      this.tree,
      h("div", { class: "tree-tools" },
        h("button", { type: "button", class: "small", on: { click: () => this.loadSchema() } }, "Refresh")),
      tables.length ? groups : h("p", { class: "muted" }, "No tables."),
    );
  }

  renderTable(table) {
    const schema = table.schema ?? "";
    const columns = table.columns ?? [];
    const fks = new Map((table.foreign_keys ?? []).map((fk) => [fk.column, fk]));
    const query = () => {
      const parts = [this.name, schema, table.name].filter((p) => p !== "").map(quoteIdent);
      events.dispatchEvent(new CustomEvent("use-sql", { detail: { sql: `SELECT * FROM ${parts.join(".")} LIMIT 100`, connection: "" } }));
    };
    return h(
      "details",
      { class: "table-node", "data-testid": `schema-node-${schema}.${table.name}` },
      h(
        "summary",
        {},
        h("span", { class: "tname" }, table.name),
        table.kind === "view" ? h("span", { class: "badge" }, "view") : null,
        h("span", { class: "muted" }, ` ${columns.length} col${columns.length === 1 ? "" : "s"}`),
      ),
      h(
        "ul",
        { class: "columns" },
        columns.map((c) => {
          const fk = fks.get(c.name);
          return h(
            "li",
            { class: "column", "data-testid": `schema-column-${schema}.${table.name}.${c.name}` },
            c.primary_key ? h("abbr", { class: "pk", title: "primary key" }, "PK") : null,
            h("span", { class: "cname" }, c.name),
            h("span", { class: "ctype" }, c.type ?? ""),
            c.nullable === false ? h("span", { class: "muted" }, "not null") : null,
            c.default !== null && c.default !== undefined ? h("span", { class: "muted" }, `default ${c.default}`) : null,
            fk ? h("span", { class: "fk", title: "foreign key" }, `→ ${[fk.referred_schema, fk.referred_table, fk.referred_column].filter(Boolean).join(".")}`) : null,
          );
        }),
      ),
      h("button", { type: "button", class: "small", on: { click: query } }, "Query this table"),
    );
  }

  async remove() {
    if (!window.confirm(`Delete the connection ${this.name}? Its stored secret is removed too.`)) return;
    try {
      await api("DELETE", `/api/connections/${seg(this.name)}`);
      this.list.refresh();
    } catch (error) {
      this.showError(error.message);
    }
  }
}

export class ConnectionList {
  constructor(dialog, onChange) {
    this.dialog = dialog;
    this.onChange = onChange;
    this.rows = new Map();
    this.types = new Map();
    this.el = document.getElementById("connection-list");
    this.empty = document.getElementById("connection-empty");
  }

  setTypes(types) {
    this.types = new Map(types.map((t) => [t.type, t]));
  }

  typeTitle(type) {
    return this.types.get(type)?.title || type;
  }

  edit(connection) {
    this.dialog.open(connection);
  }

  async refresh() {
    const connections = await api("GET", "/api/connections");
    this.render(connections ?? []);
    return connections;
  }

  render(connections) {
    const seen = new Set();
    for (const connection of connections) {
      seen.add(connection.name);
      const row = this.rows.get(connection.name);
      if (row) row.update(connection);
      else this.rows.set(connection.name, new ConnectionRow(this, connection));
    }
    for (const [name, row] of this.rows) {
      if (!seen.has(name)) {
        row.el.remove();
        this.rows.delete(name);
      }
    }
    // Keep the server's order without re-creating rows (focus and open trees survive a poll).
    connections.forEach((c, i) => {
      const el = this.rows.get(c.name).el;
      if (this.el.children[i] !== el) this.el.insertBefore(el, this.el.children[i] ?? null);
    });
    this.empty.hidden = connections.length > 0;
    this.onChange(connections);
  }
}
