// Dialtone console: plain JS over the API (/api/...); live figures by Server-Sent Events.
"use strict";
let csrf = "", current = null, stream = null, lastJob = null;
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
const pct = (x) => (100 * (x || 0)).toFixed(1) + " %";
const dur = (s) => s == null ? "–" : s < 90 ? Math.round(s) + " s" : s < 5400 ? Math.round(s / 60) + " min" : (s / 3600).toFixed(1) + " h";

async function api(method, path, body) {
  const opts = {method, headers: {}, credentials: "same-origin"};
  if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
  if (body instanceof FormData) opts.body = body;
  else if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  const r = await fetch(path, opts);
  const data = r.status === 204 ? null : (r.headers.get("content-type") || "").includes("json") ? await r.json() : await r.text();
  if (!r.ok) { const e = new Error((data && data.detail) || r.statusText); e.data = data; e.status = r.status; throw e; }
  return data;
}

function show(view) {
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== view;
  if (view !== "live" && stream) { stream.close(); stream = null; }
  if (view !== "live" && nodeStream) { nodeStream.close(); nodeStream = null; }
  if (view === "campaigns") loadCampaigns();
  if (view === "ivr") loadIvr();
}

async function boot() {
  try { const me = await api("GET", "/api/auth/me"); loggedIn(me); } catch { show("login"); }
}
function loggedIn(me) {
  csrf = me.csrf_token; $("who").textContent = `${me.name} (${me.role})`; $("nav").hidden = false; show("campaigns");
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try { loggedIn(await api("POST", "/api/auth/login", {name: f.get("name"), password: f.get("password")})); }
  catch (e) { $("login-error").textContent = e.message; }
});
$("logout").addEventListener("click", async () => { await api("POST", "/api/auth/logout"); location.reload(); });
for (const b of document.querySelectorAll("nav [data-view]")) b.addEventListener("click", () => show(b.dataset.view));

async function loadCampaigns() {
  const list = await api("GET", "/api/campaigns");
  $("campaign-rows").innerHTML = list.map((c) => `<tr><td>${esc(c.name)}</td><td>${esc(c.status)}</td><td>${esc(c.settings.pacing)}</td><td><button data-open="${esc(c.name)}">Open</button></td></tr>`).join("");
  for (const b of document.querySelectorAll("[data-open]")) b.addEventListener("click", () => openLive(b.dataset.open));
}

function openLive(name) {
  current = name; $("live-name").textContent = name; $("live-error").textContent = ""; show("live");
  if (stream) stream.close();
  history_ = [];
  api("GET", `/api/campaigns/${encodeURIComponent(name)}/live`).then((f) => { history_ = f.history || []; render(f); });
  stream = new EventSource(`/api/campaigns/${encodeURIComponent(name)}/stream`);
  watchAgents();
  stream.addEventListener("figures", (ev) => { const f = JSON.parse(ev.data); history_.push({t: f.at, dial_level: f.dial_level, agents_busy: f.agents.busy, abandon_rate_1h: f.abandonment["1h"].rate}); render(f); });
}
let history_ = [];

const renderTimes = [];   // ms per update, read by benchmarks/bench_console.py
window.dialtoneRenderTimes = renderTimes;
function render(f) {
  const t0 = performance.now();
  renderFigures(f);
  renderTimes.push(performance.now() - t0);
  if (renderTimes.length > 600) renderTimes.shift();
}
function renderFigures(f) {
  if (f.missing) return;
  $("live-status").textContent = f.status;
  $("btn-start").disabled = f.status !== "created"; $("btn-pause").disabled = f.status !== "running"; $("btn-resume").disabled = f.status !== "paused";
  $("f-dial").textContent = f.dial_level.toFixed(2);
  $("f-calls").innerHTML = Object.entries(f.calls).map(([k, v]) => `<dt>${esc(k)}</dt><dd data-state="${esc(k)}">${v}</dd>`).join("");
  $("f-amd").textContent = pct(f.amd_share);
  $("f-times").textContent = `${dur(f.avg_wait_s)} / ${dur(f.avg_talk_s)} / ${dur(f.avg_wrap_s)}`;
  $("f-contacts").textContent = `${f.contacts.dialled} dialled, ${f.contacts.left} left`;
  $("f-runout").textContent = f.run_out_s == null ? "–" : "in " + dur(f.run_out_s);
  $("f-reg").textContent = regText(f.registration);
  $("f-cap").textContent = pct(f.cap);
  $("gauges").innerHTML = ["1h", "24h", "30d"].map((w) => {
    const a = f.abandonment[w], r = a.rate, cls = r >= f.cap ? "at" : r >= 0.8 * f.cap ? "near" : "ok";
    const word = cls === "at" ? "at the cap" : cls === "near" ? "near the cap" : "under the cap";
    return `<div class="gauge ${cls}" role="meter" aria-label="abandonment ${w}" aria-valuenow="${r}" aria-valuemin="0" aria-valuemax="${2 * f.cap}"><div>${w}: ${pct(r)} (${a.abandoned}/${a.live}) ${word}</div><div class="bar"><div class="fill" style="width:${Math.min(100, 50 * r / (f.cap || 0.03))}%"></div></div></div>`;
  }).join("");
  chart();
}

// the dialer's PBX registration (dialer/registration.py snapshot); null: a trunk or no engine
function regText(r) {
  if (!r) return "none (trunk)";
  const answer = r.status ? `${r.status} ${r.reason}` : (r.reason || "no answer yet");
  let text = r.registered ? `registered as ${r.aor} (${answer}, expires in ${dur(r.expires_in)})`
    : `${r.state}: ${r.aor} (${answer})`;
  const lf = r.last_failure;
  if (lf) text += `; last failure ${lf.status ? lf.status + " " + lf.reason : "no answer"}, ${dur(lf.ago_s)} ago`;
  return text;
}

function agentsRender(agents) {
  const t0 = performance.now();
  agentsRenderRows(agents);
  renderTimes.push(performance.now() - t0);
}
function agentsRenderRows(agents) {
  $("agent-rows").innerHTML = agents.map((a) => {
    const age = a.in_state_s < 60 ? 1 : a.in_state_s < 300 ? 2 : 3;   // Vicidial's colours: longer is hotter
    return `<tr class="age-${age}"><td>${esc(a.id)}</td><td>${esc(a.state)}</td><td>${dur(a.in_state_s)}</td></tr>`;
  }).join("");
}
// agents come pushed with the node's figures every second (one list for every campaign)
let nodeStream = null;
function watchAgents() {
  if (nodeStream) return;
  api("GET", "/api/agents").then(agentsRender).catch(() => {});
  nodeStream = new EventSource("/api/stream");
  nodeStream.addEventListener("node_figures", (ev) => agentsRender(JSON.parse(ev.data).agents));
}

function line(points, key, max, color) {
  if (!points.length) return "";
  // the x axis spans what has been seen, up to the last hour
  const tn = points[points.length - 1].t, span = Math.max(60, Math.min(3600, tn - points[0].t)), t0 = tn - span;
  const d = points.map((p) => `${(600 * (p.t - t0) / span).toFixed(1)},${(150 - 140 * (p[key] || 0) / max).toFixed(1)}`).join(" ");
  return `<polyline fill="none" stroke="${color}" stroke-width="2" points="${d}"/>`;
}
function chart() {
  const h = history_.slice(-3600);
  const maxL = Math.max(1, ...h.map((p) => p.dial_level), ...h.map((p) => p.agents_busy));
  const span = h.length ? Math.max(60, Math.min(3600, h[h.length - 1].t - h[0].t)) : 3600;
  const maxA = Math.max(0.1, ...h.map((p) => p.abandon_rate_1h));
  const axis = `<text x="2" y="12" font-size="10">${maxL.toFixed(1)} / ${pct(maxA)}</text><text x="2" y="158" font-size="10">−${dur(span)}</text><text x="598" y="158" font-size="10" text-anchor="end">now</text>`;
  $("chart").innerHTML = axis + line(h, "dial_level", maxL, "#1f77b4") + line(h, "agents_busy", maxL, "#2ca02c") + line(h, "abandon_rate_1h", maxA, "#d62728");
}

async function act(action) {
  if (!confirm(`${action} campaign ${current}?`)) return;
  try { await api("POST", `/api/campaigns/${encodeURIComponent(current)}/${action}`); $("live-error").textContent = ""; }
  catch (e) { $("live-error").textContent = e.data && e.data.reasons ? "Cannot " + action + ": " + e.data.reasons.join("; ") : e.message; }
  const f = await api("GET", `/api/campaigns/${encodeURIComponent(current)}/live`); render(f);
}
$("btn-start").addEventListener("click", () => act("start"));
$("btn-pause").addEventListener("click", () => act("pause"));
$("btn-resume").addEventListener("click", () => act("resume"));
$("btn-report").addEventListener("click", () => loadReports(current));

// -- new campaign ------------------------------------------------------------------
let file = null;
async function takeFile(f) {
  file = f;
  const fd = new FormData(); fd.append("file", f);
  try {
    const p = await api("POST", "/api/lists/preview", fd);
    const opts = p.columns.map((c) => `<option>${esc(c)}</option>`).join("");
    $("map-phone").innerHTML = opts; $("map-tz").innerHTML = `<option value="">(from the number)</option>` + opts;
    for (const o of $("map-phone").options) o.selected = /phone|mobile|tel/i.test(o.value);
    for (const o of $("map-tz").options) if (/^(tz|time.?zone)$/i.test(o.value)) o.selected = true;
    $("preview").innerHTML = `<thead><tr>${p.columns.map((c) => `<th>${esc(c)}</th>`).join("")}</tr></thead><tbody>` + p.rows.map((r) => `<tr>${r.map((x) => `<td>${esc(x)}</td>`).join("")}</tr>`).join("") + "</tbody>";
    $("mapping").hidden = false; $("new-error").textContent = "";
  } catch (e) { $("new-error").textContent = e.message; }
}
$("file").addEventListener("change", (ev) => ev.target.files[0] && takeFile(ev.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => { ev.preventDefault(); drop.classList.remove("over"); if (ev.dataTransfer.files[0]) takeFile(ev.dataTransfer.files[0]); });
drop.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") $("file").click(); });

$("new-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target), s = {};
  for (const k of ["region", "caller_id", "pacing", "kind", "flow"]) if (f.get(k)) s[k] = f.get(k);
  s.max_attempts = Number(f.get("max_attempts"));
  s.retries = {busy: 60 * Number(f.get("retry_busy")), no_answer: 3600 * Number(f.get("retry_no_answer")), machine: 3600 * Number(f.get("retry_machine"))};
  const w = f.get("window").trim(); s.window = w.startsWith("{") ? JSON.parse(w) : w;
  try {
    await api("POST", "/api/campaigns", {name: f.get("name"), settings: s});
    if (file) {
      const phones = [...$("map-phone").selectedOptions].map((o) => o.value);
      const fd = new FormData(); fd.append("file", file);
      fd.append("mapping", `phone=${phones.join(",")}` + ($("map-tz").value ? `;timezone=${$("map-tz").value}` : ""));
      lastJob = await api("POST", `/api/campaigns/${encodeURIComponent(f.get("name"))}/lists`, fd);
      current = f.get("name"); $("import").hidden = false; pollImport();
    } else openLive(f.get("name"));
  } catch (e) { $("new-error").textContent = e.message; }
});
async function pollImport() {
  const j = await api("GET", `/api/lists/${lastJob.id}`);
  $("import-bar").value = j.progress;
  $("import-text").textContent = `${j.state}: ${j.imported} imported, ${j.bad_rows} bad rows` + (j.error ? ` (${j.error})` : "");
  if (j.state === "running") { setTimeout(pollImport, 300); return; }
  const bad = await api("GET", `/api/lists/${lastJob.id}/bad-rows`);
  $("bad-rows").innerHTML = bad.map((b) => `<tr><td>${b.row}</td><td>${esc(b.column)}</td><td>${esc(b.reason)}</td><td>${esc(b.value)}</td></tr>`).join("");
  $("bad-csv").href = `/api/lists/${lastJob.id}/bad-rows.csv`;
}
$("open-new").addEventListener("click", () => openLive(current));

// -- reports -----------------------------------------------------------------------
async function loadReports(name) {
  show("reports"); $("rep-name").textContent = name;
  const base = `/api/campaigns/${encodeURIComponent(name)}/reports`;
  const d = await api("GET", `${base}/dispositions`), c = await api("GET", `${base}/compliance`);
  $("rep-rows").innerHTML = Object.entries(d.total).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${v}</td></tr>`).join("");
  const hours = d.per_hour, max = Math.max(1, ...hours.map((h) => Object.values(h.counts).reduce((a, b) => a + b, 0)));
  const bw = 600 / Math.max(1, hours.length);
  $("rep-chart").innerHTML = hours.map((h, i) => { const n = Object.values(h.counts).reduce((a, b) => a + b, 0); const ht = 140 * n / max; return `<rect x="${i * bw + 2}" y="${150 - ht}" width="${bw - 4}" height="${ht}" fill="#1f77b4"><title>${esc(h.hour)}: ${n}</title></rect>`; }).join("");
  $("rep-comp").textContent = `Last 24 h: ${pct(c.last_24h.rate)} (${c.last_24h.abandoned} of ${c.last_24h.live}); 30-day period: ${pct(c.period_30d.rate)} (${c.period_30d.abandoned} of ${c.period_30d.live}); cap ${pct(c.cap)}; ${c.abandoned_calls.length} abandoned calls listed in the CSV.`;
  $("rep-csv").href = `${base}/dispositions.csv`; $("comp-csv").href = `${base}/compliance.csv`; $("contacts-csv").href = `${base}/contacts.csv`;
}

// -- what if -----------------------------------------------------------------------
$("whatif-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const body = {population: f.get("population"), agents: Number(f.get("agents")), hours: Number(f.get("hours")), pacing_a: f.get("pacing_a"), pacing_b: f.get("pacing_b")};
  if (f.get("campaign")) body.campaign = f.get("campaign");
  $("whatif-error").textContent = ""; $("whatif-out").innerHTML = "<tr><td>running…</td></tr>";
  try {
    const r = await api("POST", "/api/simulate", body);
    const rows = [["talk min per agent-hour", "talk_min_per_agent_hour", (x) => x.toFixed(1)], ["abandonment", "abandon_rate", pct], ["worst 24 h abandonment", "abandon_rate_max_24h", pct], ["calls placed", "calls_placed", String], ["contacts per hour", "contacts_per_hour", (x) => x.toFixed(0)], ["agent wait", "agent_wait_s_mean", dur]];
    $("whatif-out").innerHTML = `<thead><tr><th></th><th>${esc(r.a.pacing)}</th><th>${esc(r.b.pacing)}</th></tr></thead><tbody>` + rows.map(([l, k, fmt]) => `<tr><td>${l}</td><td>${fmt(r.a[k])}</td><td>${fmt(r.b[k])}</td></tr>`).join("") + "</tbody>";
  } catch (e) { $("whatif-error").textContent = e.message; $("whatif-out").innerHTML = ""; }
});

// -- IVR ---------------------------------------------------------------------------
async function loadIvr() {
  const now = Date.now() / 1000, st = await api("GET", `/api/ivr/stats?since=${now - Number($("ivr-period").value)}&until=${now}`);
  $("ivr-now").textContent = st.now.in_ivr;
  // layered layout: a node's depth is its shortest distance from start
  const depth = {start: 0}, q = ["start"];
  while (q.length) { const n = q.shift(); for (const e of st.edges) if (e.from === n && depth[e.to] === undefined) { depth[e.to] = depth[n] + 1; q.push(e.to); } }
  for (const nd of st.nodes) if (depth[nd.id] === undefined) depth[nd.id] = 1;
  const cols = {}, pos = {};
  for (const [id, d] of Object.entries(depth)) (cols[d] = cols[d] || []).push(id);
  const ncol = Object.keys(cols).length;
  for (const [d, ids] of Object.entries(cols)) ids.forEach((id, i) => { pos[id] = {x: 60 + d * (580 / Math.max(1, ncol - 1)), y: 40 + i * (290 / Math.max(1, ids.length - 1 || 1))}; });
  const hang = Object.fromEntries(st.hangups.map((h) => [h.node, h.count]));
  const maxE = Math.max(1, ...st.edges.map((e) => e.count));
  let svg = `<defs><marker id="arr" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="10" markerHeight="10" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0L10,5L0,10z"/></marker></defs>`;
  const rad = (id) => 14 + Math.min(16, hang[id] || 0);
  for (const e of st.edges) {
    const a = pos[e.from], b = pos[e.to]; if (!a || !b) continue;
    const len = Math.hypot(b.x - a.x, b.y - a.y) || 1, ux = (b.x - a.x) / len, uy = (b.y - a.y) / len;
    const x1 = a.x + ux * rad(e.from), y1 = a.y + uy * rad(e.from), x2 = b.x - ux * (rad(e.to) + 2), y2 = b.y - uy * (rad(e.to) + 2);
    svg += `<line x1="${x1}" y1="${y1}" x2="${x2}" y2="${y2}" stroke="#555" stroke-width="${1 + 5 * e.count / maxE}" marker-end="url(#arr)"/><text x="${(a.x + b.x) / 2}" y="${(a.y + b.y) / 2 - 6}" font-size="12">${e.count} ${esc(e.edge)}</text>`;
  }
  for (const [id, p] of Object.entries(pos)) { const h = hang[id] || 0; svg += `<circle cx="${p.x}" cy="${p.y}" r="${14 + Math.min(16, h)}" fill="${h ? "#f8d7da" : "#dde"}" stroke="#333"/><text x="${p.x}" y="${p.y + 30 + Math.min(16, h)}" text-anchor="middle" font-size="12">${esc(id)}${h ? ` ✕${h}` : ""}</text>`; }
  $("ivr-graph").innerHTML = svg;
  $("ivr-hangups").innerHTML = st.hangups.map((h) => `<tr><td>${esc(h.node)}</td><td>${h.count}</td></tr>`).join("");
}
$("ivr-period").addEventListener("change", loadIvr);

boot();
