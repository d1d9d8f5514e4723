// The one door to the server's JSON API: same-origin fetch with the session cookie, errors
// turned into ApiError carrying the contract's {type, message, field, fix}.

export const events = new EventTarget();

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.type = error?.type || `http_${status}`;
    this.field = error?.field ?? null;
    this.fix = error?.fix ?? null;
  }
}

// A server that accepts and never answers must not freeze the page: every call ends.
const DEFAULT_TIMEOUT_MS = 20_000;

/**
 * Call the API. `body` (when given) is sent as JSON. Resolves to the parsed JSON (null for
 * 204), rejects with ApiError (a timeout is one, type "timeout"); a 401 also fires
 * "unauthorized" on `events`.
 */
export async function api(method, path, body, { signal, timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  const timeout = AbortSignal.timeout(timeoutMs);
  const init = {
    method,
    headers: { Accept: "application/json" },
    credentials: "same-origin",
    cache: "no-store",
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (timeout.aborted && !signal?.aborted) {
      throw new ApiError(0, { type: "timeout", message: `no answer from the server in ${timeoutMs / 1000} s` });
    }
    throw error;
  }
  if (response.status === 401) events.dispatchEvent(new Event("unauthorized"));
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    throw new ApiError(response.status, data?.error ?? { message: response.statusText });
  }
  return data;
}

/** The path segment for a connection name. */
export function seg(name) {
  return encodeURIComponent(name);
}

/** A fresh client-chosen query id, so a running query can be cancelled by id. */
export function newQueryId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  const b64 = btoa(String.fromCharCode(...bytes));
  return `q_${b64.replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "")}`;
}
