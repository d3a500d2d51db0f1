// Readable numbers and safe text, shared by the live page and the contributor page.
// Token amounts arrive as exact decimal strings of base units (18 decimals; they exceed JS's
// 2**53): shown with 4 significant digits, the exact value in the element's title (hover).
"use strict";

const NUM = {
  short: (h) => (h ? String(h).slice(0, 10) : "–"),
  pct: (x, d = 1) => (x === null || x === undefined || Number.isNaN(x) ? "–" : `${(100 * x).toFixed(d)}%`),
  fmt: (x, d = 3) => (x === null || x === undefined || Number.isNaN(Number(x)) ? "–" : Number(x).toFixed(d)),
  signed: (x, d = 4) => (x === null || x === undefined ? "–" : `${x >= 0 ? "+" : ""}${Number(x).toFixed(d)}`),
  // 4 significant digits of a base-unit decimal string, as tokens ("6.293", "12,500", "0")
  tokens(baseUnits) {
    if (baseUnits === null || baseUnits === undefined) return "–";
    let units;
    try { units = BigInt(baseUnits); } catch (e) { return "–"; }
    if (units === 0n) return "0";
    const x = Number(units) / 1e18;  // relative error ~1e-16: exact enough for 4 digits
    if (x >= 1e4) return Math.round(x).toLocaleString("en-US");
    return String(Number(x.toPrecision(4)));
  },
  // put an {base_units, tokens} amount into an element: rounded text, exact title
  amount(el, a) {
    el.textContent = a ? NUM.tokens(a.base_units) : "–";
    el.title = a ? `${a.tokens} tokens = ${a.base_units} base units (exact)` : "";
    if (a) el.dataset.baseUnits = a.base_units;
    return el;
  },
  // plotly hover labels render a subset of HTML: escape everything that came from the network
  esc: (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])),
};
