// The SQL editor, the results grid (sortable, paged with `next`), cancel, and the history.

import { api, events, newQueryId } from "./api.js";
import { cellText, formatMs, h, replaceChildren } from "./dom.js";

const STORE_LABEL = "All databases (DuckDB store)";
const QUERY_TIMEOUT_S = 30;
const NUMERIC_TYPE = /^((U?(TINY|SMALL|MEDIUM|BIG|HUGE)|U)?INT(EGER)?\d*|DECIMAL|NUMERIC|DOUBLE( PRECISION)?|FLOAT\d*|REAL)\b/i;

/** Order two cell values: numbers as numbers, NULL last, the rest as text. */
function compare(a, b) {
  const aNull = a === null || a === undefined;
  const bNull = b === null || b === undefined;
  if (aNull || bNull) return aNull === bNull ? 0 : aNull ? 1 : -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "boolean" && typeof b === "boolean") return Number(a) - Number(b);
  const na = Number(a);
  const nb = Number(b);
  if (typeof a === "string" && typeof b === "string" && a.trim() !== "" && b.trim() !== "" && Number.isFinite(na) && Number.isFinite(nb)) {
    return na - nb; // DECIMAL arrives as text: still sort it as a number
  }
  return cellText(a).localeCompare(cellText(b), undefined, { numeric: true });
}

export class QueryPanel {
  constructor() {
    this.editor = document.getElementById("sql-editor");
    this.picker = document.getElementById("connection-picker");
    this.limitInput = document.getElementById("query-limit");
    this.writeBox = document.getElementById("query-write");
    this.runButton = document.getElementById("run-query");
    this.cancelButton = document.getElementById("cancel-query");
    this.errorBox = document.getElementById("query-error");
    this.warningBox = document.getElementById("query-warnings");
    this.grid = document.getElementById("results-grid");
    this.count = document.getElementById("results-count");
    this.time = document.getElementById("results-time");
    this.moreButton = document.getElementById("load-more");
    this.historyList = document.getElementById("query-history");
    this.historyEmpty = document.getElementById("history-empty");
    this.running = null;
    this.result = null;
    this.history = [];

    document.getElementById("query-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.run();
    });
    this.editor.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.run();
      }
    });
    this.cancelButton.addEventListener("click", () => this.cancel());
    this.moreButton.addEventListener("click", () => this.loadMore());
    events.addEventListener("use-sql", (event) => {
      this.editor.value = event.detail.sql;
      this.picker.value = event.detail.connection ?? "";
      this.editor.focus();
    });
  }

  /** Refill the picker from the connection list, keeping the selection. */
  setConnections(connections) {
    const selected = this.picker.value;
    const names = connections.map((c) => c.name);
    const current = [...this.picker.options].map((o) => o.value);
    if (current.length === names.length + 1 && names.every((n, i) => current[i + 1] === n)) return;
    replaceChildren(
      this.picker,
      h("option", { value: "" }, STORE_LABEL),
      names.map((n) => h("option", { value: n }, n)),
    );
    this.picker.value = names.includes(selected) ? selected : "";
  }

  setBusy(busy) {
    this.runButton.disabled = busy;
    this.cancelButton.disabled = !busy;
    this.grid.setAttribute("aria-busy", String(busy));
    this.runButton.textContent = busy ? "Running…" : "Run";
  }

  /** Store queries name the connections that could not be attached. */
  showWarnings(warnings) {
    replaceChildren(this.warningBox, warnings.map((w) => h("li", {}, w)));
    this.warningBox.hidden = warnings.length === 0;
  }

  showError(error) {
    if (!error) {
      this.errorBox.hidden = true;
      replaceChildren(this.errorBox);
      return;
    }
    replaceChildren(
      this.errorBox,
      error.type ? h("span", { class: "error-type" }, error.type.replaceAll("_", " ")) : null,
      h("strong", {}, error.message),
      error.fix ? h("span", { class: "fix" }, error.fix) : null,
    );
    this.errorBox.hidden = false;
  }

  async run() {
    if (this.running) return;
    const sql = this.editor.value.trim();
    if (!sql) {
      this.showError({ message: "Write a query first." });
      this.editor.focus();
      return;
    }
    const limit = Number(this.limitInput.value) || 1000;
    const connection = this.picker.value || null;
    const running = { id: newQueryId(), controller: new AbortController(), cancelled: false };
    this.running = running;
    this.showError(null);
    this.showWarnings([]);
    this.setBusy(true);
    this.count.textContent = "Running…";
    this.time.textContent = "";
    const entry = { sql, connection, at: new Date(), rows: null, elapsed_ms: null, error: null };
    try {
      const page = await api(
        "POST",
        "/api/query",
        { sql, connection, limit, timeout_s: QUERY_TIMEOUT_S, write: this.writeBox.checked, id: running.id },
        // the server stops the statement at timeout_s; the page waits a little longer
        { signal: running.controller.signal, timeoutMs: (QUERY_TIMEOUT_S + 15) * 1000 },
      );
      this.result = { columns: page.columns ?? [], rows: page.rows ?? [], next: page.next, hasMore: page.has_more, elapsed: page.elapsed_ms ?? 0, sort: null };
      this.renderResult();
      this.showWarnings(page.warnings ?? []);
      entry.rows = this.result.rows.length;
      entry.elapsed_ms = page.elapsed_ms;
    } catch (error) {
      const cancelled = running.cancelled || error.name === "AbortError" || error.type === "query_cancelled";
      entry.error = cancelled ? "cancelled" : error.message;
      this.showError(cancelled ? { type: "cancelled", message: "The query was cancelled." } : error);
      this.count.textContent = cancelled ? "Cancelled" : "Failed";
    } finally {
      this.running = null;
      this.setBusy(false);
      this.addHistory(entry);
    }
  }

  /** Stop the running query on the server, then drop the request. */
  async cancel() {
    const running = this.running;
    if (!running) return;
    running.cancelled = true;
    this.cancelButton.disabled = true;
    try {
      await api("DELETE", `/api/query/${encodeURIComponent(running.id)}`);
    } catch {
      // Already finished or never registered: aborting the request below is all that is left.
    }
    running.controller.abort();
  }

  async loadMore() {
    const result = this.result;
    if (!result?.next) return;
    this.moreButton.disabled = true;
    try {
      const page = await api("GET", result.next, undefined, { timeoutMs: (QUERY_TIMEOUT_S + 15) * 1000 });
      result.rows.push(...(page.rows ?? []));
      if (result.sort) this.applySort();
      result.next = page.next;
      result.hasMore = page.has_more;
      result.elapsed += page.elapsed_ms ?? 0;
      this.renderResult();
    } catch (error) {
      this.showError(error);
    } finally {
      this.moreButton.disabled = false;
    }
  }

  sortBy(index) {
    const result = this.result;
    const dir = result.sort?.index === index && result.sort.dir === "ascending" ? "descending" : "ascending";
    result.sort = { index, dir };
    this.applySort();
    this.renderResult();
    this.grid.querySelector(`th[data-index="${index}"] button`)?.focus();
  }

  /** Sort the loaded rows by the chosen column (rows loaded later are sorted in too). */
  applySort() {
    const { index, dir } = this.result.sort;
    const sign = dir === "ascending" ? 1 : -1;
    this.result.rows.sort((a, b) => sign * compare(a[index], b[index]));
  }

  renderResult() {
    const { columns, rows, sort } = this.result;
    const numeric = columns.map((c) => NUMERIC_TYPE.test(c.type ?? ""));
    const head = h(
      "thead",
      {},
      h(
        "tr",
        {},
        columns.map((col, i) =>
          h(
            "th",
            { scope: "col", "data-index": i, "aria-sort": sort?.index === i ? sort.dir : "none" },
            h(
              "button",
              { type: "button", class: "sort", on: { click: () => this.sortBy(i) } },
              h("span", { class: "col-name" }, col.name),
              h("span", { class: "col-type" }, col.type ?? ""),
              h("span", { class: "arrow", "aria-hidden": "true" }, sort?.index === i ? (sort.dir === "ascending" ? "▲" : "▼") : ""),
            ),
          ),
        ),
      ),
    );
    const body = h(
      "tbody",
      {},
      rows.map((row) =>
        h(
          "tr",
          {},
          row.map((value, i) => {
            const text = cellText(value);
            return h(
              "td",
              {
                class: value === null || value === undefined ? "null" : numeric[i] || typeof value === "number" ? "num" : null,
                // a cell cut by the column width shows in full on hover
                title: text.length > 40 ? text.slice(0, 2000) : null,
              },
              text,
            );
          }),
        ),
      ),
    );
    replaceChildren(this.grid, head, body);
    const n = rows.length;
    this.count.textContent = `${n} row${n === 1 ? "" : "s"}${this.result.hasMore ? " (more available)" : ""}`;
    this.count.dataset.rows = String(n);
    this.time.textContent = formatMs(this.result.elapsed);
    this.moreButton.hidden = !this.result.next;
  }

  addHistory(entry) {
    this.history.unshift(entry);
    this.history.length = Math.min(this.history.length, 50);
    replaceChildren(
      this.historyList,
      this.history.map((item, i) =>
        h(
          "li",
          {},
          h(
            "button",
            {
              type: "button",
              class: ["history-item", item.error ? "failed" : null],
              "data-testid": `history-item-${i}`,
              title: "Load this query into the editor",
              on: { click: () => this.reload(item) },
            },
            h("code", { class: "history-sql" }, item.sql.length > 160 ? `${item.sql.slice(0, 160)}…` : item.sql),
            h(
              "span",
              { class: "muted history-meta" },
              `${item.connection ?? "store"} · ${item.at.toLocaleTimeString()} · `,
              item.error ? item.error : `${item.rows} row${item.rows === 1 ? "" : "s"}, ${formatMs(item.elapsed_ms)}`,
            ),
          ),
        ),
      ),
    );
    this.historyEmpty.hidden = this.history.length > 0;
  }

  reload(item) {
    this.editor.value = item.sql;
    this.picker.value = item.connection ?? "";
    if (this.picker.value !== (item.connection ?? "")) this.picker.value = "";
    this.editor.focus();
  }
}
