// The live page: draws /api/live once, then follows /api/events (server-sent events).
// New evaluations are appended to the score chart with Plotly.extendTraces; a new accepted
// version adds a ★ mark and refreshes the panels that depend on it (H(s), tasks, leaderboard).
"use strict";

const COLORS = ["#58a6ff", "#3fb950", "#d29922", "#bc8cff", "#ff7b72", "#39c5cf", "#f778ba", "#a5d6ff"];
const LAYOUT = {
  paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
  font: { color: "#c9d1d9", size: 12 },
  margin: { l: 52, r: 56, t: 10, b: 40 },
  legend: { orientation: "h", y: 1.12, x: 0, bgcolor: "rgba(0,0,0,0)" },
  hoverlabel: {
    bgcolor: "#0d1117", bordercolor: "#58a6ff", align: "left",
    font: { color: "#e6edf3", family: "ui-monospace, DejaVu Sans Mono, monospace", size: 12 },
  },
  uirevision: "keep",
};
const AXIS = { gridcolor: "#21262d", zerolinecolor: "#30363d", linecolor: "#30363d" };
const CONFIG = { displaylogo: false, responsive: true };
// the two side panels: legend above the plot, room for category labels below
const PANEL = {
  ...LAYOUT, margin: { l: 52, r: 16, t: 36, b: 48 },
  legend: { ...LAYOUT.legend, y: 1.02, yanchor: "bottom" },
};
const CORE_PURPOSES = new Set(["selection", "confirmation"]);

const state = { points: 0, versions: [], cursor: null, refresh: null };
const $ = (id) => document.getElementById(id);
const short = (h) => (h ? h.slice(0, 10) : "–");
const pct = (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)}%`);
const fmt = (x, d = 3) => (x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(d));

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.json();
}

// ---------------------------------------------------------------- score chart

function pointHover(p) {
  return `<b>${p.purpose}</b> · candidate ${p.candidate}<br>strategy ${p.strategy} (${p.kind})` +
    `<br>S ${fmt(p.score, 4)} · gain ${fmt(p.gain, 4)}<br>Dharma ${pct(p.dharma)}`;
}

function versionHover(v) {
  const contribs = v.contributions.map(
    (c) => `  ${short(c.sha256)} ×${fmt(c.weight, 2)}${c.address ? " · " + c.address.slice(0, 10) + "…" : ""}`
  );
  const params = Object.entries(v.params || {}).map(([k, x]) => `${k}=${typeof x === "number" ? fmt(x, 3) : JSON.stringify(x)}`);
  return `<b>★ version ${short(v.hash)}</b><br>strategy <b>${v.strategy}</b>` +
    (params.length ? `<br>recipe ${params.join(", ")}` : "") +
    `<br>S ${fmt(v.score, 4)} · gain ${fmt(v.gain, 4)} · Dharma ${pct(v.dharma)}` +
    `<br>contributions (${contribs.length}):<br>${contribs.slice(0, 8).join("<br>")}` +
    (contribs.length > 8 ? `<br>  … ${contribs.length - 8} more` : "");
}

function pointColumns(points) {
  const core = points.filter((p) => CORE_PURPOSES.has(p.purpose));
  return {
    x: core.map((p) => p.at), s: core.map((p) => p.score), d: core.map((p) => p.dharma),
    text: core.map(pointHover), n: core.length,
  };
}

function markColumns(versions) {
  const acc = versions.filter((v) => !v.is_base);
  return {
    x: acc.map((v) => v.at), y: acc.map((v) => v.score),
    text: acc.map(versionHover), n: acc.length,
  };
}

function drawScore(points, versions) {
  const c = pointColumns(points);
  const m = markColumns(versions);
  const traces = [
    { name: "S (merge evaluations)", x: c.x, y: c.s, text: c.text, hovertemplate: "%{text}<extra></extra>",
      type: "scatter", mode: "lines+markers", line: { color: "#58a6ff", width: 1.5, shape: "linear" },
      marker: { size: 5, color: "#58a6ff" } },
    { name: "macro Dharma accuracy", x: c.x, y: c.d, yaxis: "y2", hovertemplate: "Dharma %{y:.1%}<extra></extra>",
      type: "scatter", mode: "lines", line: { color: "#3fb950", width: 1.5, dash: "dot" } },
    { name: "accepted versions", x: m.x, y: m.y, text: m.text, hovertemplate: "%{text}<extra></extra>",
      type: "scatter", mode: "markers",
      marker: { symbol: "star", size: 18, color: "#f0b429", line: { color: "#0d1117", width: 1 } } },
  ];
  const layout = {
    ...LAYOUT,
    xaxis: { ...AXIS, type: "date" },
    yaxis: { ...AXIS, title: { text: "S" } },
    yaxis2: {
      ...AXIS, title: { text: "macro Dharma accuracy" }, overlaying: "y", side: "right", showgrid: false,
      range: [0, 1], tickmode: "linear", tick0: 0, dtick: 0.2, tickformat: ".0%",
    },
    hovermode: "closest",
  };
  Plotly.react($("score-chart"), traces, layout, CONFIG);
  state.points = c.n;
}

function appendPoints(points) {
  const c = pointColumns(points);
  if (!c.n) return;
  // one call per trace: extendTraces needs every key it is given to exist on every trace
  Plotly.extendTraces($("score-chart"), { x: [c.x], y: [c.s], text: [c.text] }, [0]);
  Plotly.extendTraces($("score-chart"), { x: [c.x], y: [c.d] }, [1]);
  state.points += c.n;
}

function markVersions() {
  const m = markColumns(state.versions);
  Plotly.restyle($("score-chart"), { x: [m.x], y: [m.y], text: [m.text] }, [2]);
}

// ---------------------------------------------------------------- side panels

async function drawStrategies() {
  const h = await getJSON("/api/strategies");
  const names = [...new Set(h.history.flatMap((e) => Object.keys(e.weights)))].sort();
  const traces = names.map((name, i) => ({
    name, x: h.history.map((e) => e.step), y: h.history.map((e) => e.weights[name] ?? 0),
    type: "scatter", mode: "lines", stackgroup: "h", line: { width: 0.5, color: COLORS[i % COLORS.length] },
    hovertemplate: `${name} %{y:.3f}<extra></extra>`,
  }));
  Plotly.react($("strategy-chart"), traces, {
    ...PANEL, hovermode: "x unified",
    xaxis: { ...AXIS, title: { text: "update" } }, yaxis: { ...AXIS, range: [0, 1], title: { text: "H(s)" } },
  }, CONFIG);
}

async function drawTasks() {
  const t = await getJSON("/api/tasks");
  const names = Object.keys(t.tasks);
  const bar = (key, name, color) => ({
    name, type: "bar", x: names, y: names.map((n) => t.tasks[n][key]), marker: { color },
    hovertemplate: `${name} %{x}: %{y:.3f}<extra></extra>`,
  });
  Plotly.react($("task-chart"), [
    bar("base", `base ${short(t.base)}`, "#6e7681"),
    bar("current", `current ${short(t.current)}`, "#58a6ff"),
  ], {
    ...PANEL, barmode: "group", bargap: 0.25,
    xaxis: { ...AXIS, tickangle: 0, automargin: true, tickfont: { size: 11 } },
    yaxis: { ...AXIS, range: [0, 1], tickformat: ".0%", title: { text: "accuracy" } },
  }, CONFIG);
}

async function drawLeaderboard() {
  const rows = await getJSON("/api/leaderboard");
  const body = $("leaderboard").querySelector("tbody");
  $("stat-contributors").textContent = rows.length;
  if (!rows.length) return;
  body.replaceChildren(...rows.map((r, i) => {
    const tr = document.createElement("tr");
    const cells = [
      [i + 1, "rank"], [r.address, "mono"], [r.contributions, "num"], [r.merged, "num"],
      [fmt(r.best_score, 4), "num"], [fmt(r.best_gain, 4), "num"],
      [r.accrued.tokens, "num"], [r.claimed.tokens, "num"],
    ];
    for (const [text, cls] of cells) {
      const td = document.createElement("td");
      td.textContent = text; td.className = cls;
      tr.appendChild(td);
    }
    return tr;
  }));
}

function refreshPanels() {
  // many events can arrive at once: redraw the panels at most once per second
  clearTimeout(state.refresh);
  state.refresh = setTimeout(() => Promise.all([drawStrategies(), drawTasks(), drawLeaderboard()]).catch(console.error), 300);
}

function updateStats(latest) {
  const cur = state.versions[state.versions.length - 1];
  $("stat-version").textContent = short(cur && cur.hash);
  $("stat-versions").textContent = state.versions.filter((v) => !v.is_base).length;
  $("stat-evals").textContent = state.points;
  if (cur && !cur.is_base) $("stat-score").textContent = fmt(cur.score, 4);
  const d = cur && cur.dharma !== null && cur.dharma !== undefined ? cur.dharma : latest;
  if (d !== null && d !== undefined) $("stat-dharma").textContent = pct(d);
}

function toast(text, at) {
  // the newest accepted version stays in the header (a page left open shows what happened last)
  const t = $("toast");
  const when = at ? new Date(at) : new Date();
  t.textContent = `${text} · ${when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
  t.hidden = false;
  t.style.animation = "none"; void t.offsetWidth; t.style.animation = "";  // replay the arrival
}

// ---------------------------------------------------------------- live

function setStatus(kind, text) {
  $("status").className = `status ${kind}`;
  $("status-text").textContent = text;
}

function connect() {
  const es = new EventSource(`/api/events?after=${encodeURIComponent(state.cursor)}`);
  es.addEventListener("hello", () => setStatus("live", "live"));
  es.addEventListener("evaluations", (e) => {
    const points = JSON.parse(e.data);
    appendPoints(points);
    updateStats(points.length ? points[points.length - 1].dharma : null);
    refreshPanels();
  });
  es.addEventListener("versions", (e) => {
    const versions = JSON.parse(e.data);
    state.versions.push(...versions);
    markVersions();
    updateStats(null);
    refreshPanels();
    const v = versions[versions.length - 1];
    toast(`★ new version ${short(v.hash)} · ${v.strategy} · gain ${fmt(v.gain, 4)}`, v.at);
  });
  es.onerror = () => setStatus("down", "reconnecting…");  // EventSource retries by itself
}

async function main() {
  const live = await getJSON("/api/live");
  state.versions = live.versions;
  state.cursor = live.cursor;
  drawScore(live.points, live.versions);
  const last = live.points.filter((p) => CORE_PURPOSES.has(p.purpose)).pop();
  updateStats(last ? last.dharma : null);
  await Promise.all([drawStrategies(), drawTasks(), drawLeaderboard()]);
  connect();
  document.body.dataset.ready = "1";
}

main().catch((err) => { setStatus("down", String(err)); console.error(err); });
