// dbwire serve: the page's entry point. Checks the session, then polls the connections
// and the status samples and wires the panels together.

import { api, ApiError, events } from "./api.js";
import { ConnectionList } from "./connections.js";
import { ConnectionDialog } from "./form.js";
import { QueryPanel } from "./query.js";
import { StatusPanel } from "./status.js";

const CONNECTIONS_EVERY_MS = 3000;

const timers = [];
let stopped = false;

function showLogin() {
  stopped = true;
  for (const t of timers) clearTimeout(t);
  document.getElementById("app").hidden = true;
  document.getElementById("connection-dialog").close?.();
  document.getElementById("login-required").hidden = false;
}

function showPageError(message) {
  const box = document.getElementById("page-error");
  box.textContent = message;
  box.hidden = !message;
}

/** Run `task` now and then every `everyMs()` ms, skipping ticks while the tab is hidden. */
function poll(task, everyMs) {
  const tick = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await task();
        showPageError("");
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 401)) {
          showPageError(`Cannot reach the dbwire server: ${error.message}`);
        }
      }
    }
    if (!stopped) timers.push(setTimeout(tick, everyMs()));
  };
  tick();
}

async function main() {
  let me;
  try {
    me = await api("GET", "/api/me");
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      showPageError(`Cannot reach the dbwire server: ${error.message}`);
      setTimeout(main, CONNECTIONS_EVERY_MS); // a server still starting: try again
    }
    return;
  }
  showPageError("");
  document.getElementById("version").textContent = me?.version ? `v${me.version}` : "";
  document.getElementById("app").hidden = false;

  const query = new QueryPanel();
  const status = new StatusPanel();
  let list = null;
  const dialog = new ConnectionDialog(() => list.refresh());
  list = new ConnectionList(dialog, (connections) => query.setConnections(connections));
  const loadTypes = async () => {
    const types = (await api("GET", "/api/types")) ?? [];
    dialog.setTypes(types);
    list.setTypes(types);
  };
  document.getElementById("add-connection").addEventListener("click", async () => {
    if (dialog.types.length === 0) {
      try {
        await loadTypes(); // the first load failed: try again before building the form
      } catch (error) {
        showPageError(`Cannot load the connection types: ${error.message}`);
        return;
      }
    }
    dialog.open();
  });

  try {
    await loadTypes();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    showPageError(`Cannot load the connection types: ${error.message}`);
  }

  poll(() => list.refresh(), () => CONNECTIONS_EVERY_MS);
  poll(async () => status.render(await api("GET", "/api/status")), () => Math.max(1, status.intervalS) * 1000);
}

events.addEventListener("unauthorized", showLogin);
main();
