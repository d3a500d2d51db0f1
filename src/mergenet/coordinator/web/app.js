// The live page. The main chart is the core's score over time (/api/feed): the current core
// measured on fresh held-out rows every feed_seconds (points with their 95% band), a step line
// per accepted version at its accumulated level (with its band), and a ★ per version listing
// the contributions it merged. Candidate evaluations (S, noisy by design: each on its own
// 16-row sample) are a faint second chart. After the first draw the page follows
// /api/events (server-sent events): a feed point or a new version re-reads /api/feed and
// redraws; candidate points are appended. Everything from the network is set as text or
// escaped (NUM.esc) before it reaches a hover label.
"use strict";

const COLORS = ["#58a6ff", "#3fb950", "#d29922", "#bc8cff", "#ff7b72", "#39c5cf", "#f778ba", "#a5d6ff"];
const LAYOUT = {
  paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
  font: { color: "#c9d1d9", size: 12 },
  margin: { l: 56, r: 24, t: 10, b: 40 },
  legend: { orientation: "h", y: 1.12, x: 0, bgcolor: "rgba(0,0,0,0)" },
  hoverlabel: {
    bgcolor: "#0d1117", bordercolor: "#58a6ff", align: "left",
    font: { color: "#e6edf3", family: "ui-monospace, DejaVu Sans Mono, monospace", size: 12 },
  },
  uirevision: "keep",
};
const AXIS = { gridcolor: "#21262d", zerolinecolor: "#30363d", linecolor: "#30363d" };
const CONFIG = { displaylogo: false, responsive: true };
const PANEL = {
  ...LAYOUT, margin: { l: 52, r: 16, t: 36, b: 48 },
  legend: { ...LAYOUT.legend, y: 1.02, yanchor: "bottom" },
};
const CANDIDATE_PURPOSES = new Set(["selection", "confirmation"]);

const state = { candidates: 0, versions: [], feed: null, cursor: null, refresh: null, redraw: null };
const $ = (id) => document.getElementById(id);
const { short, pct, fmt, signed, esc } = NUM;

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.json();
}

// ---------------------------------------------------------------- the core's chart

function versionHover(v, level) {
  const contribs = v.contributions.map(
    (c) => `  ${esc(short(c.sha256))} ×${fmt(c.weight, 2)}${c.address ? " · " + esc(c.address.slice(0, 10)) + "…" : ""}`
  );
  const params = Object.entries(v.params || {}).map(([k, x]) => `${esc(k)}=${typeof x === "number" ? fmt(x, 3) : esc(JSON.stringify(x))}`);
  const lv = level && level.macro !== null
    ? `core ${pct(level.macro)} (95% ${pct(level.low)}–${pct(level.high)}, ${level.rows} fresh rows)`
    : "core not measured yet";
  return `<b>★ version ${esc(short(v.hash))}</b><br>strategy <b>${esc(v.strategy)}</b>` +
    (params.length ? `<br>recipe ${params.join(", ")}` : "") +
    `<br>${lv}<br>gain G ${signed(v.gain)} vs parent version (confirmation sample)` +
    `<br>merged ${contribs.length} contribution${contribs.length === 1 ? "" : "s"}:<br>${contribs.slice(0, 8).join("<br>")}` +
    (contribs.length > 8 ? `<br>  … ${contribs.length - 8} more` : "");
}

function levelMap() {
  const m = new Map();
  for (const lv of (state.feed ? state.feed.levels : [])) m.set(lv.hash, lv);
  return m;
}

// the step line: each version's accumulated level from its acceptance (or its first feed
// point, whichever is earlier) to the next version's; the band as one closed shape per version
function steps(levels, points, end) {
  const first = new Map();
  for (const p of points) if (!first.has(p.version)) first.set(p.version, p.at);
  const x = [], y = [], bx = [], by = [];
  const at = (lv) => [lv.at, first.get(lv.hash)].filter(Boolean).sort()[0];
  levels.forEach((lv, i) => {
    if (lv.macro === null) return;
    const from = at(lv);
    const until = i + 1 < levels.length ? at(levels[i + 1]) : end;
    x.push(from, until, null); y.push(lv.macro, lv.macro, null);
    bx.push(from, until, until, from, from, null); by.push(lv.high, lv.high, lv.low, lv.low, lv.high, null);
  });
  return { x, y, bx, by };
}

function coreTraces() {
  const feed = state.feed || { points: [], levels: [] };
  const pts = feed.points;
  const last = pts.length ? pts[pts.length - 1].at : null;
  const end = [last, state.versions.length ? state.versions[state.versions.length - 1].at : null]
    .filter(Boolean).sort().pop();
  const st = steps(feed.levels, pts, end);
  const levels = levelMap();
  const marks = state.versions.filter((v) => !v.is_base);
  let prev = null;
  const markY = [];
  for (const v of state.versions) {  // a mark sits on its level, or where the line was
    const lv = levels.get(v.hash);
    const y = lv && lv.macro !== null ? lv.macro : prev;
    if (!v.is_base) markY.push(y);
    if (y !== null && y !== undefined) prev = y;
  }
  return [
    { name: "version level 95% band", x: st.bx, y: st.by, type: "scatter", mode: "lines",
      line: { width: 0 }, fill: "toself", fillcolor: "rgba(63,185,80,0.15)", hoverinfo: "skip",
      connectgaps: false },
    { name: "core: each version on all its fresh rows", x: st.x, y: st.y, type: "scatter", mode: "lines",
      line: { color: "#3fb950", width: 3 }, connectgaps: false, hovertemplate: "core %{y:.1%}<extra></extra>" },
    { name: "core on fresh rows (95% band)", x: pts.map((p) => p.at), y: pts.map((p) => p.macro),
      type: "scatter", mode: "markers", marker: { size: 6, color: "#58a6ff" },
      error_y: { type: "data", symmetric: false, array: pts.map((p) => p.high - p.macro),
        arrayminus: pts.map((p) => p.macro - p.low), color: "rgba(88,166,255,0.35)", thickness: 1, width: 0 },
      text: pts.map((p) => `core ${esc(short(p.version))} · ${pct(p.macro)} (95% ${pct(p.low)}–${pct(p.high)}) on ${p.rows} fresh rows`),
      hovertemplate: "%{text}<extra></extra>" },
    { name: "accepted versions", x: marks.map((v) => v.at), y: markY,
      text: marks.map((v) => versionHover(v, levels.get(v.hash))), hovertemplate: "%{text}<extra></extra>",
      type: "scatter", mode: "markers",
      marker: { symbol: "star", size: 18, color: "#f0b429", line: { color: "#0d1117", width: 1 } } },
  ];
}

function drawCore() {
  Plotly.react($("score-chart"), coreTraces(), {
    ...LAYOUT,
    xaxis: { ...AXIS, type: "date" },
    yaxis: { ...AXIS, title: { text: "macro Dharma accuracy (fresh rows)" }, tickformat: ".0%", rangemode: "tozero" },
    hovermode: "closest",
  }, CONFIG);
}

// ---------------------------------------------------------------- candidates (secondary)

function pointHover(p) {
  return `<b>${esc(p.purpose)}</b> · candidate ${p.candidate}<br>strategy ${esc(p.strategy)} (${esc(p.kind)})` +
    `<br>S ${fmt(p.score, 4)} · gain G ${signed(p.gain)} vs the version it was built on<br>Dharma ${pct(p.dharma)} on its 16-row sample`;
}

function candidateColumns(points) {
  const c = points.filter((p) => CANDIDATE_PURPOSES.has(p.purpose));
  return { x: c.map((p) => p.at), s: c.map((p) => p.score), text: c.map(pointHover), n: c.length };
}

function drawCandidates(points) {
  const c = candidateColumns(points);
  Plotly.react($("candidate-chart"), [
    { name: "S of candidate merges (each on its own sample)", x: c.x, y: c.s, text: c.text,
      hovertemplate: "%{text}<extra></extra>", type: "scatter", mode: "markers",
      marker: { size: 5, color: "rgba(139,148,158,0.55)" } },
  ], {
    ...PANEL, margin: { l: 52, r: 16, t: 36, b: 40 },
    xaxis: { ...AXIS, type: "date" }, yaxis: { ...AXIS, title: { text: "S" } }, hovermode: "closest",
  }, CONFIG);
  state.candidates = c.n;
}

function appendCandidates(points) {
  const c = candidateColumns(points);
  if (!c.n) return;
  Plotly.extendTraces($("candidate-chart"), { x: [c.x], y: [c.s], text: [c.text] }, [0]);
  state.candidates += c.n;
}

// ---------------------------------------------------------------- side panels

async function drawStrategies() {
  const h = await getJSON("/api/strategies");
  const names = [...new Set(h.history.flatMap((e) => Object.keys(e.weights)))].sort();
  const traces = names.map((name, i) => ({
    name, x: h.history.map((e) => e.step), y: h.history.map((e) => e.weights[name] ?? 0),
    type: "scatter", mode: "lines", stackgroup: "h", line: { width: 0.5, color: COLORS[i % COLORS.length] },
    hovertemplate: `${esc(name)} %{y:.3f}<extra></extra>`,
  }));
  Plotly.react($("strategy-chart"), traces, {
    ...PANEL, hovermode: "x unified",
    xaxis: { ...AXIS, title: { text: "update" } }, yaxis: { ...AXIS, range: [0, 1], title: { text: "H(s)" } },
  }, CONFIG);
}

function drawTasks() {
  const t = state.feed.tasks;
  const names = Object.keys(t.tasks);
  const bar = (key, name, color) => {
    const s = names.map((n) => t.tasks[n][key]);
    return {
      name, type: "bar", x: names, y: s.map((v) => (v ? v.acc : null)), marker: { color }, textposition: "none",
      error_y: { type: "data", symmetric: false, array: s.map((v) => (v ? v.high - v.acc : 0)),
        arrayminus: s.map((v) => (v ? v.acc - v.low : 0)), color: "#c9d1d9", thickness: 1 },
      text: s.map((v) => (v ? `${pct(v.acc)} (95% ${pct(v.low)}–${pct(v.high)}, ${v.rows} rows)` : "not measured")),
      hovertemplate: `${esc(name)} %{x}: %{text}<extra></extra>`,
    };
  };
  Plotly.react($("task-chart"), [
    bar("base", `base ${short(t.base)} · ${t.base_rows} rows`, "#6e7681"),
    bar("current", `current ${short(t.current)} · ${t.current_rows} rows`, "#58a6ff"),
  ], {
    ...PANEL, barmode: "group", bargap: 0.25,
    xaxis: { ...AXIS, tickangle: 0, automargin: true, tickfont: { size: 11 } },
    yaxis: { ...AXIS, range: [0, 1.05], tickformat: ".0%", title: { text: "accuracy" } },
  }, CONFIG);
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text; td.className = cls || "";
  tr.appendChild(td);
  return td;
}

async function drawLeaderboard() {
  const rows = await getJSON("/api/leaderboard");
  const body = $("leaderboard").querySelector("tbody");
  $("stat-contributors").textContent = rows.length;
  if (!rows.length) return;
  body.replaceChildren(...rows.map((r, i) => {
    const tr = document.createElement("tr");
    cell(tr, i + 1, "rank");
    const a = document.createElement("a");
    a.href = `/contributors/${encodeURIComponent(r.address)}`;
    a.textContent = r.address;
    cell(tr, "", "mono").appendChild(a);
    cell(tr, r.contributions, "num"); cell(tr, r.merged, "num");
    cell(tr, fmt(r.best_score, 4), "num"); cell(tr, signed(r.best_gain), "num");
    cell(tr, fmt(r.best_impact, 2), "num");
    NUM.amount(cell(tr, "", "num"), r.accrued);
    NUM.amount(cell(tr, "", "num"), r.claimed);
    return tr;
  }));
}

function updateStats() {
  const cur = state.versions[state.versions.length - 1];
  $("stat-version").textContent = short(cur && cur.hash);
  $("stat-versions").textContent = state.versions.filter((v) => !v.is_base).length;
  $("stat-evals").textContent = state.candidates;
  const lv = cur ? levelMap().get(cur.hash) : null;
  const pts = state.feed ? state.feed.points : [];
  $("stat-points").textContent = pts.length;
  if (lv && lv.macro !== null) {
    $("stat-dharma").textContent = pct(lv.macro);
    $("stat-dharma").title = `95% ${pct(lv.low)}–${pct(lv.high)} on ${lv.rows} fresh rows`;
  }
  const base = state.feed && state.feed.levels.length ? state.feed.levels[0] : null;
  if (base && lv && base.macro !== null && lv.macro !== null && base.hash !== lv.hash) {
    $("stat-gain").textContent = `${lv.macro >= base.macro ? "+" : ""}${(100 * (lv.macro - base.macro)).toFixed(1)} pts`;
  }
}

async function redrawCore() {
  state.feed = await getJSON("/api/feed");
  drawCore(); drawTasks(); updateStats();
}

function schedule(key, fn) {
  // many events can arrive at once: redraw at most every 300 ms
  clearTimeout(state[key]);
  state[key] = setTimeout(() => fn().catch(console.error), 300);
}

function toast(text, at) {
  const t = $("toast");
  const when = at ? new Date(at) : new Date();
  t.textContent = `${text} · ${when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
  t.hidden = false;
  t.style.animation = "none"; void t.offsetWidth; t.style.animation = "";
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
    appendCandidates(points);
    if (points.some((p) => p.purpose === "feed")) schedule("redraw", redrawCore);
    updateStats();
    schedule("refresh", () => Promise.all([drawStrategies(), drawLeaderboard()]));
  });
  es.addEventListener("versions", (e) => {
    const versions = JSON.parse(e.data);
    state.versions.push(...versions);
    drawCore();  // the mark appears at once, on the line where it was
    schedule("redraw", redrawCore);
    updateStats();
    schedule("refresh", () => Promise.all([drawStrategies(), drawLeaderboard()]));
    const v = versions[versions.length - 1];
    toast(`★ new version ${short(v.hash)} · ${v.strategy} · merged ${v.contributions.length}`, v.at);
  });
  es.onerror = () => setStatus("down", "reconnecting…");  // EventSource retries by itself
}

async function main() {
  const [live, feed] = await Promise.all([getJSON("/api/live"), getJSON("/api/feed")]);
  state.versions = live.versions;
  state.cursor = live.cursor;
  state.feed = feed;
  drawCore(); drawTasks(); drawCandidates(live.points);
  updateStats();
  await Promise.all([drawStrategies(), drawLeaderboard()]);
  connect();
  document.body.dataset.ready = "1";
}

main().catch((err) => { setStatus("down", String(err)); console.error(err); });
