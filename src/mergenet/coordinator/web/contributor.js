// The contributor page: /api/contributors/{address} as a table. The address comes from the
// URL and goes back to the API URL-encoded; everything shown is set with textContent (the
// server never writes participant data into HTML).
"use strict";

const $ = (id) => document.getElementById(id);
const { short, pct, fmt, signed } = NUM;

function td(tr, text, cls) {
  const el = document.createElement("td");
  el.textContent = text ?? "–";
  if (cls) el.className = cls;
  tr.appendChild(el);
  return el;
}

function lineage(el, versions) {
  el.className = "lineage mono";
  if (!versions.length) { el.textContent = "–"; return; }
  for (const v of versions) {
    const span = document.createElement("span");
    span.textContent = `${short(v.hash)} ×${fmt(v.weight, 2)}`;
    span.title = `version ${v.hash} · ${v.strategy ?? ""} · weight ${v.weight} · version gain G ${signed(v.gain)} vs its parent version · ${v.at ?? ""}`;
    el.appendChild(span);
    el.appendChild(document.createTextNode(" "));
  }
}

function row(c) {
  const tr = document.createElement("tr");
  tr.dataset.sha = c.sha256;
  const sha = td(tr, short(c.sha256), "mono");
  sha.title = c.sha256;
  td(tr, c.created_at ? new Date(c.created_at).toLocaleString() : "–");
  td(tr, c.status + (c.in_pool ? " · in pool" : ""));
  td(tr, fmt(c.score, 4), "num");
  td(tr, signed(c.gain), "num").title = `relative to the ${c.gain_relative_to}`;
  const im = c.impact;
  const imp = td(tr, im && im.impact !== null ? fmt(im.impact, 3) : "–", "num");
  if (im) imp.title = `ΔPerformance ${pct(im.delta_performance)} answer-loss drop on moved tasks ÷ ΔParameters ${fmt(im.delta_parameters, 4)} × coverage ${fmt(im.coverage, 2)}`;
  const cov = td(tr, im ? `${im.tasks_moved.length}/${Object.keys(im.tasks).length}` : "–", "num");
  if (im) cov.title = im.tasks_moved.length ? `answer loss fell ≥${pct(im.min_task_gain, 0)} on ${im.tasks_moved.join(", ")}` : "no task moved";
  lineage(td(tr, ""), c.versions);
  NUM.amount(td(tr, "", "num"), c.reward);
  td(tr, c.reason ?? "", c.reason ? "reason" : "ok");
  return tr;
}

async function main() {
  const address = decodeURIComponent(location.pathname.split("/").pop() || "");
  $("address").textContent = address;
  const r = await fetch(`/api/contributors/${encodeURIComponent(address)}`, { cache: "no-store" });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    $("error").textContent = typeof body.detail === "string" ? body.detail : `error ${r.status}`;
    $("error").hidden = false;
    $("contributions").querySelector("tbody").replaceChildren();
    document.body.dataset.ready = "1";
    return;
  }
  $("address").textContent = body.address;
  document.title = `mergenet · ${body.address}`;
  $("sum-contributions").textContent = body.contributions.length;
  $("sum-merged").textContent = body.merged;
  NUM.amount($("sum-accrued"), body.rewards.accrued);
  NUM.amount($("sum-published"), body.rewards.published);
  NUM.amount($("sum-claimed"), body.rewards.claimed);
  $("contributions").querySelector("tbody").replaceChildren(...body.contributions.map(row));
  document.body.dataset.ready = "1";
}

main().catch((err) => { $("error").textContent = String(err); $("error").hidden = false; });
