// The status panel: per connection, health latency and pool occupancy over the sampled
// window, drawn as inline SVG (a few polylines need no chart library).

import { formatMs, h, replaceChildren, s } from "./dom.js";

// Drawn in the chart's own pixel width (read at each redraw), so text never scales.
const H = 170;
const LAT_TOP = 18;
const LAT_BOTTOM = 72;
const OCC_TOP = 98;
const OCC_BOTTOM = 150;
const LEFT = 52;
// A chart spans the samples it has (at least ten intervals), up to the server's whole
// window, so a server started a minute ago does not draw everything into the last pixels.
const MIN_SAMPLES_SPANNED = 10;
let W = 600;
let RIGHT = W - 8;

const SERIES = [
  { key: "checked_out", label: "checked out", cls: "line-out" },
  { key: "idle", label: "idle", cls: "line-idle" },
  { key: "waiting", label: "waiting", cls: "line-wait" },
];

function x(t, end, window) {
  return LEFT + ((t - (end - window)) / window) * (RIGHT - LEFT);
}

function y(value, max, top, bottom) {
  return bottom - (max > 0 ? value / max : 0) * (bottom - top);
}

/** Polylines' point lists, split where a value is missing (a break, not a zero). */
function runs(samples, pick, toX, toY) {
  const out = [];
  let current = [];
  for (const sample of samples) {
    const v = pick(sample);
    if (v === null || v === undefined || Number.isNaN(v)) {
      if (current.length) out.push(current);
      current = [];
    } else {
      current.push(`${toX(sample.t).toFixed(1)},${toY(v).toFixed(1)}`);
    }
  }
  if (current.length) out.push(current);
  return out;
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function axisMs(ms) {
  return ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`;
}

function spanLabel(seconds) {
  return seconds >= 120 ? `−${Math.round(seconds / 60)} min` : `−${Math.round(seconds)} s`;
}

export function drawChart(svg, name, samples, windowS, intervalS = 5) {
  W = Math.max(200, Math.round(svg.getBoundingClientRect().width) || 600);
  RIGHT = W - 8;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const end = samples.length ? samples[samples.length - 1].t : Date.now() / 1000;
  const inWindow = samples.filter((p) => p.t >= end - windowS);
  const first = inWindow.length ? inWindow[0].t : end;
  const span = Math.min(windowS, Math.max(MIN_SAMPLES_SPANNED * intervalS, end - first));
  const toX = (t) => x(t, end, span);
  const latencies = inWindow.map((p) => p.latency_ms).filter((v) => v !== null && v !== undefined).sort((a, b) => a - b);
  const peak = latencies.length ? latencies[latencies.length - 1] : 0;
  // One slow check (a first connect, a busy machine) must not flatten all the others: the
  // scale follows the 95th percentile, and a peak above it is drawn clipped and named.
  const typical = latencies.length ? latencies[Math.floor(0.95 * (latencies.length - 1))] : 0;
  const latMax = niceMax(peak > 3 * typical && typical > 0 ? typical * 1.5 : peak);
  const clipped = peak > latMax;
  const latY = (v) => y(Math.min(v, latMax), latMax, LAT_TOP, LAT_BOTTOM);
  const occMax = niceMax(Math.max(1, ...inWindow.flatMap((p) => [p.size ?? 0, p.checked_out ?? 0, p.idle ?? 0, p.waiting ?? 0, (p.checked_out ?? 0) + (p.idle ?? 0)])));
  const last = inWindow[inWindow.length - 1];
  const maxOut = Math.max(0, ...inWindow.map((p) => p.checked_out ?? 0));

  const parts = [
    s("title", {}, `${name}: latency and pool occupancy, last ${Math.round(windowS / 60)} minutes`),
    s("text", { x: 4, y: LAT_TOP - 6, class: "axis-title" }, clipped ? `latency (peak ${formatMs(peak)}, clipped)` : "latency"),
    s("text", { x: LEFT - 4, y: LAT_TOP + 4, class: "axis", "text-anchor": "end" }, axisMs(latMax)),
    s("text", { x: LEFT - 4, y: LAT_BOTTOM, class: "axis", "text-anchor": "end" }, "0"),
    s("line", { x1: LEFT, x2: RIGHT, y1: LAT_BOTTOM, y2: LAT_BOTTOM, class: "baseline" }),
    s("text", { x: 4, y: OCC_TOP - 6, class: "axis-title" }, "pool"),
    s("text", { x: LEFT - 4, y: OCC_TOP + 4, class: "axis", "text-anchor": "end" }, String(occMax)),
    s("text", { x: LEFT - 4, y: OCC_BOTTOM, class: "axis", "text-anchor": "end" }, "0"),
    s("line", { x1: LEFT, x2: RIGHT, y1: OCC_BOTTOM, y2: OCC_BOTTOM, class: "baseline" }),
    s("text", { x: LEFT, y: H - 4, class: "axis" }, spanLabel(span)),
    s("text", { x: RIGHT, y: H - 4, class: "axis", "text-anchor": "end" }, "now"),
  ];
  for (const pts of runs(inWindow, (p) => p.size, toX, (v) => y(v, occMax, OCC_TOP, OCC_BOTTOM))) {
    parts.push(s("polyline", { points: pts.join(" "), class: "line-size" }));
  }
  for (const series of SERIES) {
    for (const pts of runs(inWindow, (p) => p[series.key], toX, (v) => y(v, occMax, OCC_TOP, OCC_BOTTOM))) {
      parts.push(s("polyline", { points: pts.join(" "), class: series.cls }));
    }
  }
  for (const pts of runs(inWindow, (p) => (p.status === "healthy" ? p.latency_ms : null), toX, latY)) {
    parts.push(s("polyline", { points: pts.join(" "), class: "line-latency" }));
  }
  // One mark per sample: a dot for a healthy one, a red bar for a failed check.
  for (const p of inWindow) {
    if (p.status === "healthy" && p.latency_ms !== null && p.latency_ms !== undefined) {
      parts.push(s("circle", { cx: toX(p.t).toFixed(1), cy: latY(p.latency_ms).toFixed(1), r: 1.8, class: "pt-latency" }));
    } else {
      parts.push(s("rect", { x: (toX(p.t) - 1.5).toFixed(1), y: LAT_TOP, width: 3, height: LAT_BOTTOM - LAT_TOP, class: "pt-down" }));
    }
  }
  replaceChildren(svg, parts);
  svg.dataset.samples = String(inWindow.length);
  svg.dataset.spanS = String(Math.round(span));
  svg.dataset.checkedOut = String(last?.checked_out ?? 0);
  svg.dataset.maxCheckedOut = String(maxOut);
  svg.setAttribute(
    "aria-label",
    last
      ? `${name}: ${inWindow.length} samples; last ${last.status}, latency ${formatMs(last.latency_ms)}, ${last.checked_out} checked out, ${last.idle} idle, ${last.waiting} waiting`
      : `${name}: no samples yet`,
  );
}

export class StatusPanel {
  constructor() {
    this.el = document.getElementById("status-charts");
    this.empty = document.getElementById("status-empty");
    this.windowLabel = document.getElementById("status-window");
    this.cards = new Map();
    this.intervalS = 5;
  }

  render(status) {
    this.intervalS = Number(status.interval_s) || 5;
    const windowS = Number(status.window_s) || 900;
    this.windowLabel.textContent = `last ${windowS >= 120 ? `${Math.round(windowS / 60)} minutes` : `${windowS} s`}`;
    const series = status.series ?? {};
    const names = Object.keys(series).sort();
    for (const [name, card] of this.cards) {
      if (!names.includes(name)) {
        card.el.remove();
        this.cards.delete(name);
      }
    }
    for (const name of names) {
      let card = this.cards.get(name);
      if (!card) {
        const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart", "data-testid": `status-chart-${name}` });
        const summary = h("p", { class: "status-summary" });
        card = { svg, summary, el: h("figure", { class: "status-card" }, h("figcaption", {}, name), svg, summary) };
        this.cards.set(name, card);
        this.el.append(card.el);
      }
      const samples = series[name] ?? [];
      drawChart(card.svg, name, samples, windowS, this.intervalS);
      const last = samples[samples.length - 1];
      card.summary.textContent = last
        ? `${last.status} · ${formatMs(last.latency_ms)} · ${last.checked_out} checked out · ${last.idle} idle · ${last.waiting} waiting · pool size ${last.size ?? "–"}`
        : "no samples yet";
    }
    this.empty.hidden = names.length > 0;
  }
}
