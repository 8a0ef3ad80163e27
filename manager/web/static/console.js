// The SnapLab web console: plain DOM code, no framework, no build step. Served by the manager
// (manager/web/server.py); all data comes from its JSON API and the event stream (/api/events).
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;        // state refresh when nothing runs
const FAST_POLL_MS = 250;    // while a restore runs: its progress figure moves smoothly
const MAX_EVENTS = 2000;     // events kept in the page (the filters work on these)
const UNUSED = "snap/deleted";
const RESTORING = "rst/exec";
const ASYNC_WARNING = "Operations from the management server run asynchronously to business: " +
  "make sure no server is using the volume (quiesce or unmount it first).";

let csrf = null;
let state = null;
let events = [];
let stream = null;
let pollTimer = null;
let tracking = null;  // the operation the progress panel follows
let lastStateText = "";
window.snaplabSeen = {};  // event seq -> Date.now() when shown (the console benchmark reads it)

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "style") e.style.cssText = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined) continue;
    e.append(typeof kid === "string" ? document.createTextNode(kid) : kid);
  }
  return e;
}

function mib(bytes) {
  const n = bytes / 1048576;
  return n >= 1024 ? `${(n / 1024).toFixed(1)} GiB` : `${n.toFixed(n < 10 ? 1 : 0)} MiB`;
}

class ApiError extends Error {
  constructor(status, body) { super(body.error || `HTTP ${status}`); this.status = status; this.body = body; }
}

async function api(path, body) {
  const opts = { credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    if (csrf) opts.headers["X-CSRF-Token"] = csrf;
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    if (r.status === 401 && path !== "/api/login") showLogin();
    throw new ApiError(r.status, data);
  }
  return data;
}

// -- login --------------------------------------------------------------------------------------
function showLogin(message) {
  csrf = null;
  if (stream) { stream.close(); stream = null; }
  if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; }
  $("main").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
}

async function showMain() {
  $("login").hidden = true;
  $("main").hidden = false;
  $("logout").hidden = false;
  openEvents();
  await refresh();
}

async function login(ev) {
  ev.preventDefault();
  try {
    csrf = (await api("/api/login", { token: $("token").value })).csrf;
    $("token").value = "";
    await showMain();
  } catch (e) {
    showLogin(e.message);
  }
}

async function logout() {
  try { await api("/api/logout", {}); } catch (e) { /* gone already */ }
  showLogin("Logged out.");
}

// -- state --------------------------------------------------------------------------------------
async function refresh() {
  if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; }
  try {
    const text = JSON.stringify(await api("/api/state"));
    if (text !== lastStateText) {  // redraw only what changed: a click or a chosen LV survives a quiet poll
      lastStateText = text;
      state = JSON.parse(text);
      render();
    } else {
      renderProgress();
    }
  } catch (e) {
    if (e.status === 401) return;
    $("op-error").textContent = `State monitoring: ${e.message}`;
  }
  if (csrf) pollTimer = setTimeout(refresh, anyRestore() ? FAST_POLL_MS : POLL_MS);
}

let refreshSoon = null;
function refreshAfterEvent() {
  if (refreshSoon) return;
  refreshSoon = setTimeout(() => { refreshSoon = null; refresh(); }, 150);
}

function anyRestore() {
  return (state?.arrays || []).some((a) => a.snapshots.some((q) => q.generations.some((g) => g.state === RESTORING)));
}

function render() {
  renderArrays();
  renderTree();
  renderHosts();
  fillSelects();
  renderProgress();
}

function faultIcon(bad, title) {
  return bad ? el("span", { class: "fault-icon", title, text: "!", "data-icon": "fault" })
    : el("span", { class: "ok-icon", title, text: "\u2713", "data-icon": "ok" });
}

function gauge(used, capacity, warning, label) {
  const pct = capacity > 0 ? (100 * used) / capacity : 0;
  return el("span", {},
    el("span", { class: `gauge${pct >= warning ? " over" : ""}`, role: "meter", "aria-label": label,
      "aria-valuenow": pct.toFixed(1), "data-percent": pct.toFixed(1) },
      el("span", { class: "fill", style: `width:${Math.min(100, pct)}%` }),
      el("span", { class: "mark", style: `left:${warning}%`, title: `warning at ${warning}%` })),
    ` ${pct.toFixed(pct < 1 ? 2 : 1)}% of ${mib(capacity)} used` + (pct >= warning ? ` (over the ${warning}% warning)` : ""));
}

function renderArrays() {
  const box = $("arrays");
  box.replaceChildren();
  for (const a of state.arrays) {
    const s = a.state;
    const faults = s.faults || [];
    const lic = Object.entries(s.licences || {}).sort(([a], [b]) => a.localeCompare(b));
    box.append(el("div", { class: "array", "data-array": s.name },
      el("h3", {}, faultIcon(a.resource_state !== "ready", a.resource_state), s.name,
        ` (${s.product_id || "D1-10"}, ${a.target}) `,
        el("span", { class: `state-${a.resource_state}`, "data-role": "resource-state", text: a.resource_state }),
        `, monitoring ${a.monitoring}`),
      faults.length ? el("p", { class: "error", "data-role": "faults" }, `Faults: ${faults.join(", ")}`) : null,
      el("p", {}, "Licences: ", lic.length ? lic.map(([p, v]) => `${p}: ${v}`).join("; ") : "none"),
      el("table", {}, el("thead", {}, el("tr", {}, ["Pool", "Kind", "Capacity", "Used", "Snapshot reserve area (SRA)"]
        .map((t) => el("th", { text: t })))),
      el("tbody", {}, (s.pools || []).map((p) => el("tr", { "data-pool": p.name },
        el("td", { text: `${p.number} ${p.name}` }), el("td", { text: p.kind }), el("td", { text: mib(p.capacity) }),
        el("td", { text: mib(p.used) }),
        el("td", {}, p.sra_capacity > 0 ? gauge(p.sra_used, p.sra_capacity, state.sra_warning_percent,
          `SRA of ${p.name}`) : "no SRA")))))));
  }
}

function genRow(a, q, g) {
  const array = a.state.name;
  const live = g.state !== UNUSED;
  const base = { array, bv: q.bv, sv: g.sv };
  const freeLvs = (q.lvs || []).filter((l) => l.link !== "link");
  const actions = [];
  if (!live) {
    actions.push(el("button", { class: "op-create", onclick: () => operate("create", base,
      `Create a snapshot of ${q.bv} in ${g.sv}?`) }, "Create"));
  } else {
    actions.push(el("button", { class: "op-delete", onclick: () => operate("delete", base,
      `Delete snapshot ${g.sv} of ${q.bv}?`) }, "Delete"));
    actions.push(el("button", { class: "op-restore", onclick: () => operate("restore", base,
      `Restore ${q.bv} from ${g.sv}? Everything written to ${q.bv} since the snapshot is lost.`) }, "Restore"));
    actions.push(el("button", { class: g.guard ? "op-unguard" : "op-guard", onclick: () => operate("guard",
      { ...base, on: !g.guard }, `${g.guard ? "Cancel the guard of" : "Guard"} ${g.sv}?`) },
      g.guard ? "Cancel guard" : "Guard"));
    if (g.link === "link") {
      actions.push(el("button", { class: "op-unlink", onclick: () => operate("unlink", { array, lv: g.lv },
        `Unlink ${g.lv} from ${g.sv}?`) }, "Unlink"));
    } else if (freeLvs.length) {
      const lvSel = el("select", { class: "lv-select", "aria-label": "LV" }, freeLvs.map((l) => el("option", { text: l.lv })));
      const modeSel = el("select", { class: "mode-select", "aria-label": "LV access" },
        ["rw", "ro", "nr", "na"].map((m) => el("option", { text: m })));
      actions.push(lvSel, modeSel, el("button", { class: "op-link", onclick: () => operate("link",
        { array, lv: lvSel.value, sv: g.sv, mode: modeSel.value }, `Link ${lvSel.value} to ${g.sv} (${modeSel.value})?`) },
        "Link"));
    }
  }
  let st = g.state;
  let bar = null;
  if (g.state === RESTORING && g.restore_total > 0) {
    const pct = (100 * g.restore_done) / g.restore_total;
    st += ` ${pct.toFixed(0)}%`;
    bar = el("span", { class: "bar mini" }, el("span", { class: "fill", style: `display:block;width:${pct}%` }));
  }
  return el("tr", { class: live ? "live" : "unused", "data-sv": g.sv, "data-relgen": g.has_relgen ? String(g.relgen) : "" },
    el("td", { text: g.sv }), el("td", { text: g.has_relgen ? String(g.relgen) : "-" }),
    el("td", { "data-role": "state" }, st, bar), el("td", { text: live ? g.create_time : "" }),
    el("td", { text: g.guard ? "guard" : "-" }), el("td", { text: g.link === "link" ? `link ${g.lv}` : "unlink" }),
    el("td", { text: g.link === "link" ? g.lv_mode : "-" }), el("td", {}, actions));
}

const treeOpen = {};  // "array/bv" -> open, as the operator left it (default: open if it holds a snapshot)

function renderTree() {
  const box = $("tree");
  box.replaceChildren();
  for (const a of state.arrays) {
    const node = el("div", { class: "tree-array", "data-array": a.state.name }, el("h3", {}, a.state.name));
    for (const q of a.snapshots || []) {
      const key = `${a.state.name}/${q.bv}`;
      const live = q.generations.filter((g) => g.state !== UNUSED).length;
      const open = treeOpen[key] ?? live > 0;
      const details = el("details", { class: "bv", "data-bv": q.bv, open },
        el("summary", {}, el("strong", { text: `BV ${q.bv}` }),
          ` (${q.bv_number}) ${q.state}, ${live} of ${q.generations.length} generations, SRA ${q.reserve_area} `,
          el("button", { class: "op-cyclic", onclick: () => operate("create", { array: a.state.name, bv: q.bv, cyclic: true },
            `Create a snapshot of ${q.bv} in the oldest generation (cyclic)?`) }, "Create (cyclic)")),
        el("table", { class: "gens" }, el("thead", {}, el("tr", {}, ["SV", "Rel. gen.", "State", "Created", "Guard",
          "Link", "LV access", ""].map((t) => el("th", { text: t })))),
        el("tbody", {}, q.generations.map((g) => genRow(a, q, g)))));
      details.addEventListener("toggle", () => { treeOpen[key] = details.open; });
      node.append(details);
    }
    box.append(node);
  }
}

function renderHosts() {
  const body = $("hosts").tBodies[0];
  const broken = {};
  for (const a of state.arrays) {
    for (const f of a.state.faults || []) {
      if (f.startsWith("path:")) (broken[f.slice(5)] ||= []).push(a.state.name);
    }
  }
  body.replaceChildren(...state.hosts.map((h) => {
    const agent = (state.host_states || {})[h.name];
    const down = agent === "stopped" || agent === "crashed";
    const bad = down || Boolean(broken[h.name]);
    let reach = down ? `down (${agent})` : broken[h.name] ? `path broken to ${broken[h.name].join(", ")}` : "reachable";
    if (h.cluster && h.heartbeat_age >= 0) reach += `; heard ${h.heartbeat_age.toFixed(1)} s ago`;
    return el("tr", { "data-host": h.name }, el("td", { text: h.name }), el("td", { text: h.role }),
      el("td", { text: h.platform }), el("td", { text: h.cluster ? `${h.cluster} (${h.cluster_role})` : "-" }),
      el("td", { text: h.enrolled }), el("td", { text: reach, class: bad ? "error" : "" }));
  }));
}

function setOptions(sel, values, first) {
  const keep = sel.value;
  sel.replaceChildren(...(first ? [el("option", { value: "", text: first })] : []),
    ...values.map((v) => el("option", { text: v })));
  if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
}

function fillSelects() {
  const arrays = state.arrays.map((a) => a.state.name);
  setOptions($("fault-array"), arrays);
  setOptions($("f-array"), arrays, "all arrays");
  const sources = new Set(["manager", "admin", ...state.hosts.map((h) => h.name)]);
  for (const e of events) sources.add(e.source);
  setOptions($("f-host"), [...sources].sort(), "all sources");
}

// -- operations ---------------------------------------------------------------------------------
function confirmDialog(text, warning) {
  const d = $("confirm");
  $("confirm-text").textContent = text;
  $("confirm-warning").textContent = warning || "";
  d.returnValue = "";
  d.showModal();
  return new Promise((resolve) => d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true }));
}

const ASYNC_OPS = new Set(["create", "delete", "restore"]);

async function operate(op, fields, question) {
  $("op-error").textContent = "";
  if (!(await confirmDialog(question, ASYNC_OPS.has(op) ? ASYNC_WARNING : ""))) return;
  if (op === "restore" || op === "delete") {
    tracking = { op, ...fields, done: false, label: `${op === "restore" ? "Restore of" : "Delete of"} ${fields.sv}` };
    renderProgress();
  }
  try {
    await api("/api/op", { op, ...fields });
    if (tracking && op === "delete") tracking.done = true;
  } catch (e) {
    $("op-error").textContent = e.message;
    if (tracking && tracking.op === op) tracking = null;
  }
  await refresh();
}

async function fault(op) {
  const fields = { op, array: $("fault-array").value, kind: $("fault-kind").value, target: $("fault-target").value };
  $("op-error").textContent = "";
  const what = op === "fault_inject" ? "Inject" : "Clear";
  if (!(await confirmDialog(`${what} fault ${fields.kind}:${fields.target} on ${fields.array}?`, ""))) return;
  try { await api("/api/op", fields); } catch (e) { $("op-error").textContent = e.message; }
  await refresh();
}

// The progress panel of the last restore or delete: blocks copied of the total, from the array.
function renderProgress() {
  const box = $("progress");
  if (!tracking) { box.hidden = true; return; }
  box.hidden = false;
  let pct = 0;
  let detail = "starting";
  if (tracking.op === "restore" && state) {
    const a = state.arrays.find((x) => x.state.name === tracking.array) || state.arrays[0];
    const q = a?.snapshots.find((x) => x.bv === tracking.bv);
    const g = q?.generations.find((x) => x.sv === tracking.sv);
    if (g && g.state === RESTORING && g.restore_total > 0) {
      tracking.seen = true;
      pct = (100 * g.restore_done) / g.restore_total;
      detail = `${g.restore_done} of ${g.restore_total} blocks copied`;
    } else if (g && g.state !== RESTORING && (tracking.seen || tracking.answered)) {
      tracking.done = true;
    }
    if (!tracking.answered) tracking.answered = true;
  }
  if (tracking.done) { pct = 100; detail = "completed"; }
  $("progress-label").textContent = `${tracking.label}: ${detail}`;
  $("progress-figure").textContent = `${pct.toFixed(0)}%`;
  $("progress-fill").style.width = `${pct}%`;
  box.dataset.done = tracking.done ? "yes" : "no";
}

// -- event log ----------------------------------------------------------------------------------
function matches(e) {
  const array = $("f-array").value, host = $("f-host").value, cls = $("f-class").value;
  const id = $("f-id").value.trim().toLowerCase();
  if (array && e.source !== array && !e.text.includes(array)) return false;
  if (host && e.source !== host) return false;
  if (cls && e.classification !== cls) return false;
  if (id && !e.msg_id.toLowerCase().startsWith(id)) return false;
  return true;
}

function eventRow(e, fresh) {
  return el("tr", { class: `${e.classification}${fresh ? " new" : ""}`, "data-seq": String(e.seq) },
    el("td", { text: String(e.seq) }), el("td", { text: e.time }), el("td", { text: e.source }),
    el("td", { text: e.classification }), el("td", { text: e.operation }), el("td", { text: e.msg_id }),
    el("td", { class: "text", text: e.text }));
}

function renderEvents() {
  const rows = [];
  for (let i = events.length - 1; i >= 0 && rows.length < 500; i--) {
    if (matches(events[i])) rows.push(eventRow(events[i], false));
  }
  $("events").tBodies[0].replaceChildren(...rows);
}

function openEvents() {
  if (stream) stream.close();
  stream = new EventSource("/api/events");
  stream.onopen = () => { $("live").textContent = "live"; $("live").className = "live on"; };
  let head = Infinity;  // the newest event when the stream opened: those up to it are drawn at once
  stream.addEventListener("head", (m) => {
    head = JSON.parse(m.data).seq;
    if (events.length === 0 || events[events.length - 1].seq >= head) renderEvents();
  });
  stream.onmessage = (m) => {
    const e = JSON.parse(m.data);
    if (events.length && e.seq <= events[events.length - 1].seq) return;  // seen before a reconnect
    events.push(e);
    if (events.length > MAX_EVENTS) events.splice(0, events.length - MAX_EVENTS);
    if (e.seq <= head) {
      if (e.seq === head) renderEvents();
      return;
    }
    if (matches(e)) {
      const body = $("events").tBodies[0];
      body.prepend(eventRow(e, true));
      while (body.rows.length > 500) body.deleteRow(-1);
    }
    window.snaplabSeen[e.seq] = Date.now();
    refreshAfterEvent();
  };
  stream.onerror = async () => {
    $("live").textContent = "reconnecting…"; $("live").className = "live";
    if (stream && stream.readyState === EventSource.CLOSED) {
      try { await api("/api/session"); openEvents(); } catch (e) { /* showLogin ran */ }
    }
  };
}

// -- start --------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("fault-inject").addEventListener("click", () => fault("fault_inject"));
  $("fault-clear").addEventListener("click", () => fault("fault_clear"));
  for (const id of ["f-array", "f-host", "f-class", "f-id"]) $(id).addEventListener("input", renderEvents);
  try {
    csrf = (await api("/api/session")).csrf;
    await showMain();
  } catch (e) {
    showLogin();
  }
});
