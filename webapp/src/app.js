// The owner's page (firmware/page.py serves it and its JSON). No framework: plain DOM,
// uPlot for the two charts. Everything comes from the dongle; nothing from the internet.
import uPlot from "uplot";

const $ = (id) => document.getElementById(id);
let csrf = "";
let setup = false;

// One request at a time: the dongle serves two clients at once and closes a third at once
// (firmware/httpd.py, _CLIENTS_MAX), so the page never has more than one request open
// itself (besides the live stream, which holds no client place), and tries again after a
// close.
let queue = Promise.resolve();
function call(path, body) {
  const run = queue.then(() => send(path, body));
  queue = run.catch(() => null);
  return run;
}

async function send(path, body) {
  const opt = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF": csrf || "login" },
    body: JSON.stringify(body),
  };
  for (let i = 0; ; i++) {
    let r;
    try {
      r = await fetch(path, { credentials: "same-origin", cache: "no-store", ...opt });
    } catch (e) {
      if (i >= 4) return { status: 0, data: null };
      await new Promise((ok) => setTimeout(ok, 300 * (i + 1)));
      continue;
    }
    // 500: no memory for the answer just now (the meter comes first): asked again.
    if (r.status === 500 && i < 4) {
      await new Promise((ok) => setTimeout(ok, 300 * (i + 1)));
      continue;
    }
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    return { status: r.status, data };
  }
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) {
    if (k === "text") e.textContent = attrs[k];
    else e.setAttribute(k, attrs[k]);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
}

// Units from the canonical names (README, "Canonical reading").
function unit(f) {
  if (/^active_power/.test(f)) return "W";
  if (/^reactive_power/.test(f)) return "var";
  if (/^active_energy/.test(f)) return "kWh";
  if (/^reactive_energy/.test(f)) return "kvarh";
  if (/^voltage/.test(f)) return "V";
  if (/^current/.test(f)) return "A";
  if (f === "frequency") return "Hz";
  return "";
}

function showLogin(why) {
  $("app").hidden = $("settings").hidden = $("logout").hidden = $("restart").hidden = true;
  $("login").hidden = false;
  $("login-problem").textContent = why || "";
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const r = await call("/page/login", { password: $("password").value });
  $("password").value = "";
  if (r.status === 200) {
    csrf = r.data.csrf;
    start();
  } else {
    $("login-problem").textContent = (r.data && r.data.error && r.data.error.description) || "refused (" + r.status + ")";
  }
});

$("logout").addEventListener("click", async () => {
  const token = csrf;
  stop(); // first: the stream's end must not start polling into a 401
  csrf = token; // the log-out request still carries it
  await call("/page/logout", {});
  csrf = "";
  showLogin("logged out");
});

$("restart").addEventListener("click", async () => {
  if (!confirm("Restart the dongle?")) return;
  const r = await call("/page/restart", {});
  if (r.status === 200) { stop(); showLogin("restarting; log in again in a few seconds"); }
});

let timer = null;
let chartTimer = null;
async function start() {
  const s = await call("/page/session");
  if (s.status !== 200) return showLogin();
  csrf = s.data.csrf;
  setup = s.data.setup;
  $("version").textContent = s.data.version ? "firmware " + s.data.version : "setup";
  $("login").hidden = true;
  $("settings").hidden = false;
  if (setup) {
    $("settings-title").textContent = "Set up this dongle";
  } else {
    $("app").hidden = $("logout").hidden = $("restart").hidden = false;
    watch();
    if (!counters) counters = setInterval(status, 5000);
    status();
    charts();
    if (!chartTimer) chartTimer = setInterval(charts, 60000);
  }
  settings();
}

// The live view: the dongle's stream (GET /page/stream, one server-sent event a reading,
// every 2.5-10 s). It serves one browser at a time: another tab, or this one while the
// stream is refused or gone, polls /page/live once a second and tries the stream again
// every 10 s. The counters come every 5 s (which also keeps the session in use).
let stream = null; // the EventSource; true while it is waiting for its turn
let counters = null;
let retry = null; // the one pending try of the stream again
let saving = false; // a save is under way: no stream meanwhile
function later() {
  clearTimeout(retry);
  retry = setTimeout(() => { retry = null; if (timer && csrf) watch(); }, 10000);
}

function unwatch() {
  if (stream && stream !== true) stream.close();
  stream = null;
}

function watch() {
  clearTimeout(retry); retry = null;
  if (stream) return;
  if (saving) return later();
  stream = true;
  // Asked for between two of the page's requests (call()'s queue), never beside one: the
  // dongle keeps one request buffer, and a second, which a stream asked for beside
  // another request needs, is often not there at 96K (the stream then refused, `memory`).
  queue = queue.then(() => new Promise((done) => {
    if (stream !== true) return done(); // stopped meanwhile
    setTimeout(done, 5000); // the queue never waits longer on an answer that does not come
    const es = new EventSource("/page/stream");
    stream = es;
    es.onopen = () => { done(); if (timer) { clearInterval(timer); timer = null; } };
    es.onmessage = (ev) => { try { show(JSON.parse(ev.data)); } catch (e) { /* a cut event */ } };
    es.onerror = () => {
      // Refused (503: another has it; 401: no session), or ended: polled instead, the
      // stream tried again later (a poll's 401 shows the login).
      done();
      es.close();
      if (stream !== es) return; // closed by the page itself meanwhile
      stream = null;
      if (!timer) { timer = setInterval(tick, 1000); tick(); }
      later();
    };
  }));
}

async function tick() {
  const r = await call("/page/live");
  if (r.status === 401) return expired();
  if (r.status === 200) show(r.data);
}

// Logged out, restarting or expired: nothing more is asked until the next login.
function stop() {
  clearInterval(timer); timer = null;
  clearInterval(counters); counters = null;
  clearInterval(chartTimer); chartTimer = null;
  clearTimeout(retry); retry = null;
  unwatch();
  csrf = "";
}

function expired() {
  stop();
  showLogin("session expired; log in again");
}

function show(v) {
  if ("active_power_import" in v) {
    $("power").textContent = Math.round((v.active_power_import - (v.active_power_export || 0)) * 1000) / 1000;
  }
  const t = $("live-table");
  t.textContent = "";
  for (const f in v) {
    t.append(el("tr", {}, el("th", { text: f }),
      el("td", { class: "n", id: "v-" + f, "data-value": JSON.stringify(v[f]), text: String(v[f]) }),
      el("td", { text: unit(f) })));
  }
  $("live-age").textContent = v.meter_time ? "meter time " + v.meter_time : "";
}

// What each counter means, for the owner who wonders why nothing arrives.
const MEANING = {
  version: "the firmware's version",
  uptime_s: "seconds since the dongle started",
  free_heap: "bytes of memory free now; steadily falling means a leak",
  reset_cause: "why the dongle last started (power-on, watchdog, ...)",
  bytes_received: "bytes read from the meter's line: 0 means no signal (cable, wiring, inversion)",
  noise_bytes: "bytes outside any frame: many means a wrong speed or parity",
  frames: "whole frames per kind: HDLC (DLMS), P1 (DSMR), M-Bus",
  readings: "frames decoded into readings",
  fields_dropped: "values past the per-reading limit (a meter sending very many)",
  rejected: "frames refused, by why: checksum = line noise; decrypt/auth = a wrong key",
  last_frame_age_s: "seconds since the last reading",
  line: "the line setting in use (speed, parity, inversion)",
  line_locked: "true once a setting has read good frames",
  line_search: "settings tried while searching",
  local_api_on: "HomeWizard's local API is served",
  web: "this web server's answers and refusals by status code (busy: clients at once)",
};

function fmt(v) {
  return typeof v === "object" && v !== null ? JSON.stringify(v) : String(v);
}

async function status() {
  const r = await call("/page/status");
  if (r.status === 401) return expired();
  if (r.status !== 200) return;
  const s = r.data;
  const c = $("counters");
  c.textContent = "";
  for (const k in s) {
    if (k === "destination" || k === "tariff") continue;
    c.append(el("tr", {}, el("th", { text: k }), el("td", { class: "n", id: "c-" + k, text: fmt(s[k]) }),
      el("td", { class: "muted", text: MEANING[k] || "" })));
  }
  const d = $("destinations");
  d.textContent = "";
  d.append(el("tr", {}, ...["name", "state", "published", "queued", "dropped", "failures", "last error"].map((h) => el("th", { text: h }))));
  for (const x of s.destination || []) {
    d.append(el("tr", { id: "d-" + x.name }, el("td", { text: x.name }),
      el("td", { text: x.connected ? "connected" : "down " + x.down_s + " s" }),
      el("td", { class: "n", text: fmt(x.published) }), el("td", { class: "n", text: fmt(x.queued) }),
      el("td", { class: "n", text: fmt(x.dropped) }), el("td", { class: "n", text: fmt(x.failures) }),
      el("td", { text: x.last_error || "" })));
  }
  const t = s.tariff;
  $("tariff").hidden = !t;
  if (t) {
    const tt = $("tariff-table");
    tt.textContent = "";
    for (const k in t) tt.append(el("tr", {}, el("th", { text: k }), el("td", { class: "n", text: fmt(t[k]) })));
  }
}

const plots = {};
function plot(id, label, step, values) {
  const now = Date.now() / 1000;
  const xs = values.map((_, i) => now - (values.length - 1 - i) * step);
  const data = [xs, values];
  if (plots[id]) return plots[id].setData(data);
  const box = $(id);
  plots[id] = new uPlot({
    width: Math.min(box.clientWidth || 600, 900), height: 220,
    series: [{}, { label, stroke: "#24425c", fill: "#24425c22", spanGaps: false }],
  }, data, box);
}

async function charts() {
  const d = await call("/page/day");
  if (d.status === 200) plot("chart-day", "W", d.data.step, d.data.values);
  const w = await call("/page/week");
  if (w.status === 200) plot("chart-week", "Wh", w.data.step, w.data.values);
}

// Settings: the setup form. Each input names its config key path, as the validator's
// messages do ("destinations[0].port: ..."), so each message is shown at its field.
const SHARES = {
  full: ["Everything the meter sends, as it sends it: power, voltages, currents, every energy register, and the meter's id.",
    '{"meter_id": "7359992890941742", "active_power_import": 2345, "voltage_l1": 230.1, "current_l1": 4.52, "active_energy_import": 12345.678, ...}'],
  live: ["Power only (import, export, per phase), at most once per interval; never the meter's id, voltages or energy.",
    '{"meter_time": "2026-12-06T20:15:00", "active_power_import": 2345, "active_power_export": 0}'],
  hourly: ["The energy registers once an hour (kWh, kvarh): what a bill is made of, nothing of the moment.",
    '{"meter_time": "2026-12-06T20:00:00", "active_energy_import": 12345.678, "active_energy_export": 0}'],
};

let base = {};
let nets = [];

function field(path, label, value, opts = {}) {
  const id = "f-" + path;
  let input;
  if (opts.choices) {
    input = el("select", { id, "data-path": path });
    for (const c of opts.choices) input.append(el("option", { value: c, text: c }));
    input.value = value == null ? opts.choices[0] : String(value);
  } else {
    input = el("input", { id, "data-path": path, type: opts.type || "text" });
    if (opts.type === "checkbox") input.checked = !!value;
    else if (opts.secret) input.placeholder = value === true ? "(saved; empty keeps it)" : "";
    else if (value != null) input.value = value;
    if (opts.list) input.setAttribute("list", opts.list);
  }
  return el("div", { class: "field" }, el("label", { for: id, text: label }), input,
    opts.help ? el("div", { class: "muted", text: opts.help }) : null,
    el("div", { class: "problem", "data-for": path }));
}

function destinationBox(i, d) {
  const p = "destinations[" + i + "]";
  const share = typeof d.share === "string" ? d.share : "full";
  const ex = el("pre", { id: "f-" + p + ".example" });
  const help = el("div", { class: "muted" });
  const box = el("fieldset", { "data-dest": i }, el("legend", { text: "Destination " + (i + 1) + " (MQTT broker)" }),
    field(p + ".name", "Name", d.name),
    field(p + ".host", "Broker host", d.host),
    field(p + ".port", "Port", d.port == null ? 1883 : d.port),
    field(p + ".user", "User", d.user),
    field(p + ".password", "Password", d.password, { type: "password", secret: true }),
    field(p + ".share", "What it receives", share, { choices: Object.keys(SHARES) }),
    help, el("div", { class: "muted", text: "Exactly what this destination will receive, for example:" }), ex);
  const sel = box.querySelector("select");
  const show = () => { help.textContent = SHARES[sel.value][0]; ex.textContent = SHARES[sel.value][1]; };
  sel.addEventListener("change", show);
  show();
  return box;
}

async function settings() {
  const [c, s] = await Promise.all([call("/page/config"), call("/page/scan")]);
  base = c.status === 200 && c.data ? c.data.config || {} : {};
  const refused = c.status === 200 && c.data ? c.data.problems : null;
  nets = s.status === 200 && s.data ? s.data : [];
  const f = $("settings-form");
  f.textContent = "";
  const list = el("datalist", { id: "ssids" });
  for (const [ssid, rssi, secure] of nets) list.append(el("option", { value: ssid, text: ssid + " (" + rssi + " dBm" + (secure ? ", secured" : ", open") + ")" }));
  f.append(list);
  const w = (base.wifi || [])[0] || {};
  const m = base.meter || {};
  const pg = base.page || {};
  f.append(
    field("hostname", "Name of this dongle on the network", base.hostname || "hanport"),
    el("fieldset", {}, el("legend", { text: "Wi-Fi" }),
      field("wifi[0].ssid", "Network (from the scan, or type it)", w.ssid, { list: "ssids" }),
      field("wifi[0].password", "Wi-Fi password", w.password, { type: "password", secret: true })),
    el("fieldset", {}, el("legend", { text: "This page" }),
      field("page.password", "The page's password" + (pg.password_hash ? " (empty keeps it)" : ""), null, { type: "password", help: "at least 8 characters; kept on the dongle only as a salted hash" })),
    el("fieldset", {}, el("legend", { text: "Meter" }),
      field("meter.baud", "Speed", m.baud == null ? "auto" : m.baud, { choices: ["auto", "2400", "9600", "115200"] }),
      field("meter.parity", "Parity", m.parity || "auto", { choices: ["auto", "8N1", "8E1"] }),
      field("meter.key", "Encryption key (only if your meter encrypts; from the grid company)", m.key, { type: "password", secret: true }),
      field("meter.auth_key", "Authentication key", m.auth_key, { type: "password", secret: true })),
  );
  const dests = el("div", { id: "dests" });
  (base.destinations || []).forEach((d, i) => dests.append(destinationBox(i, d)));
  const add = el("button", { type: "button", text: "Add a destination" });
  add.addEventListener("click", () => {
    const i = dests.children.length;
    if (i < 4) dests.append(destinationBox(i, {}));
  });
  f.append(el("fieldset", {}, el("legend", { text: "Destinations" }), dests, add),
    el("fieldset", {}, el("legend", { text: "HomeWizard local API (no password: anyone on your network reads it)" }),
      field("local_api.enabled", "Serve it", base.local_api && base.local_api.enabled, { type: "checkbox" }),
      field("local_api.share", "What it shows", (base.local_api && base.local_api.share) || "live", { choices: Object.keys(SHARES) })),
    el("button", { class: "main", type: "submit", id: "save", text: "Save and restart" }));
  if (refused) {
    $("settings-problem").textContent = "Your last save was not taken: the dongle runs on the settings before it. Fix what is marked and save again.\n";
    showProblems(refused);
    $("settings").scrollIntoView();
  }
}

function value(path) {
  const e = document.querySelector('[data-path="' + path + '"]');
  if (!e) return undefined;
  if (e.type === "checkbox") return e.checked;
  return e.value;
}

function collect() {
  const cfg = JSON.parse(JSON.stringify(base));
  cfg.hostname = value("hostname");
  const w = Object.assign({}, (base.wifi || [])[0] || {});
  w.ssid = value("wifi[0].ssid");
  const wp = value("wifi[0].password");
  if (wp) w.password = wp; else if (w.ssid !== ((base.wifi || [])[0] || {}).ssid) delete w.password;
  cfg.wifi = w.ssid ? [w].concat((base.wifi || []).slice(1)) : [];
  cfg.page = Object.assign({}, base.page || {}, { enabled: true });
  const pp = value("page.password");
  if (pp) cfg.page.password = pp;
  const m = Object.assign({}, base.meter || {});
  for (const k of ["baud", "parity"]) {
    const v = value("meter." + k);
    m[k] = /^\d+$/.test(v) ? Number(v) : v;
  }
  for (const k of ["key", "auth_key"]) { const v = value("meter." + k); if (v) m[k] = v; }
  cfg.meter = m;
  const dests = [];
  document.querySelectorAll("[data-dest]").forEach((box, i) => {
    const p = "destinations[" + i + "]";
    const d = Object.assign({}, (base.destinations || [])[i] || {});
    d.name = value(p + ".name");
    d.host = value(p + ".host");
    const port = value(p + ".port");
    d.port = /^\d+$/.test(port) ? Number(port) : port;
    const u = value(p + ".user");
    if (u) d.user = u; else delete d.user;
    const pw = value(p + ".password");
    if (pw) d.password = pw;
    d.share = value(p + ".share");
    if (d.share !== "live") delete d.interval;
    dests.push(d);
  });
  cfg.destinations = dests;
  if (value("local_api.enabled")) {
    cfg.local_api = Object.assign({}, base.local_api || {}, { enabled: true, share: value("local_api.share") });
    if (cfg.local_api.share !== "live") delete cfg.local_api.interval;
  } else delete cfg.local_api;
  return cfg;
}

$("settings-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  document.querySelectorAll(".problem[data-for]").forEach((e) => { e.textContent = ""; });
  $("settings-problem").textContent = $("settings-ok").textContent = "";
  // A save needs most of what a dongle with 96K has free: the live stream goes first (the
  // dongle sees it closed within 100 ms and drops its code), and comes back after a refusal.
  const watching = !!stream;
  saving = true;
  if (stream) { unwatch(); await new Promise((ok) => setTimeout(ok, 300)); }
  const r = await call("/page/save", collect());
  saving = false;
  if (r.status === 200) {
    $("settings-ok").textContent = "Saved. The dongle checks the settings as it restarts; log in again in a few seconds (a setting it refuses is shown here, at its field).";
    return;
  }
  if (watching && csrf) watch();
  showProblems((r.data && r.data.problems) || [(r.data && r.data.error && r.data.error.description) || "refused (" + r.status + ")"]);
});

function showProblems(lines) {
  const rest = [];
  for (const line of lines) {
    const i = line.indexOf(": ");
    let path = i > 0 ? line.slice(0, i) : "";
    let at = null;
    // The message's key path, or the nearest enclosing one that has a field.
    while (path && !(at = document.querySelector('.problem[data-for="' + path + '"]'))) {
      const j = Math.max(path.lastIndexOf("."), path.lastIndexOf("["));
      path = j > 0 ? path.slice(0, j) : "";
    }
    if (at) at.textContent += (at.textContent ? " " : "") + line.slice(i + 2);
    else rest.push(line);
  }
  $("settings-problem").textContent += rest.join("\n");
}

start();
