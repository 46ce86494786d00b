// Sluice dashboard: live views of the runs list and of one run, fed by server-sent events
// (/api/v1/watch, /api/v1/runs/ID/watch) that send a fresh snapshot on every change. Every
// string from a run is set as text, never parsed as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const body = document.body;
const runID = body.dataset.run;
const authOn = body.dataset.auth === "true";
const app = document.getElementById("app");
const live = document.getElementById("live");
let selected = null;
let lastRun = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// short turns STAGE_STATUS_WAITING_APPROVAL into waiting_approval.
function short(enumName) {
  return (enumName || "").replace(/^(STAGE|RUN|ROLLOUT_PHASE|VERDICT_OUTCOME|OUTCOME)_(STATUS_)?/, "").toLowerCase() || "pending";
}

function ms(from, to) {
  if (!from) return null;
  return (to ? Date.parse(to) : Date.now()) - Date.parse(from);
}

function fmtDur(d) {
  if (d == null || d < 0) return "";
  if (d < 1000) return d + "ms";
  if (d < 60000) return (d / 1000).toFixed(1) + "s";
  return Math.floor(d / 60000) + "m" + Math.round((d % 60000) / 1000) + "s";
}

function ago(t) {
  return t ? fmtDur(Date.now() - Date.parse(t)) + " ago" : "";
}

function token() {
  let t = sessionStorage.getItem("sluice-token");
  if (!t) {
    t = prompt("Paste a token of a role that may do this (from sluice auth init or add-user):");
    if (t) sessionStorage.setItem("sluice-token", t.trim());
  }
  return t;
}

// act calls a mutation of the HTTP API with the token in the Authorization header, which
// is what keeps other sites' pages from acting through a signed-in browser.
async function act(path, body) {
  const t = token();
  if (!t) return;
  const resp = await fetch(path, {method: "POST", headers: {"Authorization": "Bearer " + t, "Content-Type": "application/json"}, body: JSON.stringify(body || {})});
  if (!resp.ok) {
    const text = await resp.text();
    if (resp.status === 401) sessionStorage.removeItem("sluice-token");
    alert(resp.status + ": " + text);
  }
}

function connect(path, render) {
  const es = new EventSource(path);
  es.addEventListener("snapshot", (e) => { live.textContent = "live"; live.className = "live"; render(JSON.parse(e.data)); });
  es.addEventListener("end", () => { es.close(); live.textContent = "finished"; live.className = ""; });
  es.addEventListener("failure", (e) => { live.textContent = e.data; live.className = "failed"; });
  es.onerror = () => { if (es.readyState !== EventSource.CLOSED) { live.textContent = "reconnecting"; live.className = "stale"; } };
}

function renderList(resp) {
  const rows = (resp.runs || []).map((r) => el("tr", {"data-run": r.id},
    el("td", {}, el("a", {href: "/runs/" + encodeURIComponent(r.id)}, r.id)),
    el("td", {}, r.pipeline), el("td", {class: "s " + short(r.status)}, short(r.status)), el("td", {}, r.ref || ""),
    el("td", {}, (r.stagesPassed || 0) + "/" + (r.stagesTotal || 0) + " passed" + (r.stagesFailed ? ", " + r.stagesFailed + " failed" : "")),
    el("td", {}, ago(r.createdAt))));
  const table = el("table", {id: "runs"}, el("tr", {}, ...["Run", "Pipeline", "Status", "Ref", "Stages", "Age"].map((h) => el("th", {}, h))), ...rows);
  if (!rows.length) table.append(el("tr", {}, el("td", {colspan: 6, class: "msg"}, "No runs yet. Submit one with sluice run PIPELINE.yaml.")));
  app.replaceChildren(table);
}

// layout places each stage in the column after its deepest need.
function layout(specs) {
  const level = {};
  const byName = Object.fromEntries(specs.map((s) => [s.name, s]));
  const depth = (name, seen) => {
    if (level[name] != null) return level[name];
    if (seen.has(name)) return 0;
    seen.add(name);
    const needs = (byName[name] && byName[name].needs) || [];
    level[name] = needs.length ? 1 + Math.max(...needs.map((n) => depth(n, seen))) : 0;
    return level[name];
  };
  specs.forEach((s) => depth(s.name, new Set()));
  const rows = {};
  const pos = {};
  for (const s of specs) {
    const col = level[s.name];
    rows[col] = (rows[col] || 0) + 1;
    pos[s.name] = {col, row: rows[col] - 1};
  }
  return {pos, cols: Math.max(0, ...Object.values(level)) + 1, rows: Math.max(1, ...Object.values(rows))};
}

function renderGraph(st) {
  const specs = (st.spec && st.spec.stages) || [];
  const states = Object.fromEntries((st.stages || []).map((s) => [s.name, s]));
  const W = 180, H = 54, GX = 60, GY = 18;
  const {pos, cols, rows} = layout(specs);
  const g = svg("svg", {id: "dag", width: 6 + cols * (W + GX), height: 6 + rows * (H + GY), role: "img", "aria-label": "stages of the run"});
  const at = (name) => ({x: 3 + pos[name].col * (W + GX), y: 3 + pos[name].row * (H + GY)});
  for (const s of specs) {
    for (const n of s.needs || []) {
      if (!pos[n]) continue;
      const a = at(n), b = at(s.name);
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
      g.append(svg("path", {class: "edge", "data-from": n, "data-to": s.name, d: `M${x1},${y1} C${x1 + GX / 2},${y1} ${x2 - GX / 2},${y2} ${x2},${y2}`}));
    }
  }
  for (const s of specs) {
    const state = states[s.name] || {};
    const status = short(state.status);
    const p = at(s.name);
    const dur = fmtDur(ms(state.startedAt, state.finishedAt));
    const node = svg("g", {class: "node " + status + (selected === s.name ? " selected" : ""), "data-stage": s.name, "data-status": status, transform: `translate(${p.x},${p.y})`, tabindex: 0},
      svg("rect", {width: W, height: H, rx: 8}),
      svg("text", {x: 10, y: 21, class: "name"}, s.name),
      svg("text", {x: 10, y: 41, class: "meta"}, status.replace("_", " ") + (state.attempt > 1 ? " #" + state.attempt : "") + (dur ? " · " + dur : "")));
    node.addEventListener("click", () => { selected = s.name; renderRun({run: lastRun}); });
    g.append(node);
  }
  return g;
}

// rolloutControls are the verbs of a rollout in progress: promote skips the current pause or
// analysis, pause holds it before its next step (resume lets it go on), abort rolls it back.
function rolloutControls(st, s) {
  const ro = s.rollout;
  if (!authOn || ["promoted", "rolled_back"].includes(short(ro.phase)) || ["passed", "failed", "cancelled"].includes(short(s.status))) return "";
  const verb = (action, label, cls) => el("button", {class: cls || "", "data-action": action, "data-stage": s.name,
    onclick: () => act(`/api/v1/runs/${encodeURIComponent(st.id)}/rollout/${action}`, {stage: s.name, reason: "from the dashboard"})}, label);
  return el("p", {class: "actions"}, verb("promote", "Promote"), ro.held ? verb("resume", "Resume") : verb("pause", "Pause"), verb("abort", "Abort", "danger"));
}

function renderRollout(st, s) {
  const ro = s.rollout;
  const verdicts = ro.verdicts || [];
  const points = verdicts.map((v) => ({t: Date.parse(v.at), w: v.weight || 0, v}));
  points.push({t: Date.now(), w: ro.weight || 0});
  const t0 = Date.parse(s.startedAt || s.queuedAt) || points[0].t;
  const t1 = Math.max(t0 + 1000, ...points.map((p) => p.t));
  const W = 520, H = 160, P = 30;
  const x = (t) => P + (W - 2 * P) * (t - t0) / (t1 - t0);
  const y = (w) => H - P - (H - 2 * P) * w / 100;
  let d = `M${x(t0)},${y(0)}`;
  let prev = 0;
  for (const p of points) { d += ` L${x(p.t)},${y(prev)} L${x(p.t)},${y(p.w)}`; prev = p.w; }
  const chart = svg("svg", {class: "rollout", "data-stage": s.name, width: W, height: H},
    svg("line", {x1: P, y1: y(0), x2: W - P, y2: y(0), class: "axis"}),
    svg("line", {x1: P, y1: y(100), x2: W - P, y2: y(100), class: "grid"}),
    svg("text", {x: 2, y: y(100) + 4, class: "meta"}, "100%"), svg("text", {x: 2, y: y(0) + 4, class: "meta"}, "0%"),
    svg("path", {d, class: "weight"}));
  for (const p of points.filter((p) => p.v)) {
    chart.append(svg("circle", {cx: x(p.t), cy: y(p.w), r: 4, class: "verdict " + short(p.v.verdict && p.v.verdict.outcome)}));
  }
  const rows = verdicts.map((v) => el("tr", {},
    el("td", {}, "step " + ((v.step || 0) + 1)), el("td", {}, (v.weight || 0) + "%"),
    el("td", {class: "s " + short(v.verdict && v.verdict.outcome)}, short(v.verdict && v.verdict.outcome)),
    el("td", {class: "msg"}, ((v.verdict && v.verdict.metrics) || []).map((m) =>
      `${m.name}: canary ${+(m.canary || 0).toPrecision(4)} vs baseline ${+(m.baseline || 0).toPrecision(4)} (limit ${+(m.limit || 0).toPrecision(4)}, ${m.rule || ""})`).join("; ") || (v.verdict && v.verdict.message) || "")));
  return el("section", {class: "panel"}, el("h3", {}, "Rollout of " + s.name + ": " + short(ro.phase).replace("_", " ") + ", canary at " + (ro.weight || 0) + "%" +
    (ro.held ? ", paused by " + (ro.heldBy || "someone") : "")), rolloutControls(st, s),
    chart, el("table", {class: "verdicts"}, el("tr", {}, ...["Step", "Weight", "Verdict", "Numbers"].map((h) => el("th", {}, h))), ...rows));
}

async function renderDetails(st, name, box) {
  const s = (st.stages || []).find((x) => x.name === name);
  if (!s) return;
  const id = encodeURIComponent(st.id), stage = encodeURIComponent(name);
  const arts = (s.artifacts || []).map((a) => el("li", {}, el("a", {href: `/api/v1/runs/${id}/artifacts/${stage}/${encodeURIComponent(a.name)}`}, a.name), " (" + (a.size || 0) + " bytes)"));
  const pre = el("pre", {class: "logs"}, "loading the logs…");
  box.replaceChildren(el("h3", {}, name + ": " + short(s.status) + (s.attempt ? ", attempt " + s.attempt : "")),
    el("p", {class: "msg"}, s.message || ""), arts.length ? el("ul", {class: "artifacts"}, ...arts) : "", pre);
  try {
    const resp = await fetch(`/api/v1/runs/${id}/logs/${stage}`);
    pre.textContent = resp.ok ? ((await resp.text()) || "(no output)") : resp.status + ": " + (await resp.text());
  } catch (e) {
    pre.textContent = "logs unavailable: " + e;
  }
}

function renderRun(resp) {
  const st = resp.run;
  lastRun = st;
  const status = short(st.status);
  document.getElementById("title").textContent = " · " + st.pipeline + " · " + st.id;
  const terminal = ["passed", "failed", "cancelled"].includes(status);
  const buttons = el("span", {class: "actions"});
  if (authOn) {
    for (const s of st.stages || []) {
      if (short(s.status) === "waiting_approval" || (s.rollout && short(s.rollout.phase) === "waiting_approval")) {
        buttons.append(el("button", {"data-action": "approve", "data-stage": s.name, onclick: () => act(`/api/v1/runs/${encodeURIComponent(st.id)}/stages/${encodeURIComponent(s.name)}/approve`)}, "Approve " + s.name));
      }
    }
    if ((st.stages || []).some((s) => s.rollout && !["promoted", "rolled_back"].includes(short(s.rollout.phase)) && !["passed", "failed", "cancelled"].includes(short(s.status)))) {
      buttons.append(el("button", {class: "danger", "data-action": "rollback", onclick: () => act(`/api/v1/runs/${encodeURIComponent(st.id)}/rollback`, {reason: "from the dashboard"})}, "Roll back"));
    }
    if (terminal && status !== "passed") {
      for (const s of st.stages || []) {
        if (["failed", "cancelled"].includes(short(s.status))) {
          buttons.append(el("button", {"data-action": "retry", "data-stage": s.name, onclick: () => act(`/api/v1/runs/${encodeURIComponent(st.id)}/stages/${encodeURIComponent(s.name)}/retry`)}, "Retry " + s.name));
        }
      }
    }
    if (!terminal) {
      buttons.append(el("button", {class: "danger", "data-action": "cancel", onclick: () => act(`/api/v1/runs/${encodeURIComponent(st.id)}/cancel`, {reason: "from the dashboard"})}, "Cancel run"));
    }
  }
  const summary = el("p", {id: "summary"}, "Status ", el("span", {class: "s " + status, id: "run-status"}, status), " · ref " + (st.ref || "-") + " · started " + ago(st.createdAt) +
    " · " + fmtDur(ms(st.createdAt, st.finishedAt)) + (st.message ? " · " + st.message : ""), buttons);
  const details = el("section", {class: "panel", id: "details"}, el("p", {class: "msg"}, "Select a stage for its logs and artifacts."));
  const rollouts = (st.stages || []).filter((s) => s.rollout).map((s) => renderRollout(st, s));
  app.replaceChildren(summary, el("div", {class: "graph"}, renderGraph(st)), ...rollouts, details);
  if (selected) renderDetails(st, selected, details);
}

if (runID) connect(`/api/v1/runs/${encodeURIComponent(runID)}/watch`, renderRun); else connect("/api/v1/watch", renderList);
