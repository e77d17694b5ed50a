/* alphatide dashboard: polls the serving tier's JSON endpoints, listens on /ws/signals, kill/resume. */
"use strict";
const POLL_MS = 3000, MAX_POINTS = 300, KEY_STORE = "alphatide.apiKey";
const state = { signals: new Map(), signalCount: 0, colors: new Map() };
window.dashboard = state;  // read by the browser test
const $ = id => document.getElementById(id);

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function fmt(value, digits = 2) {
  if (value === null || value === undefined || value === "") return "–";
  const n = Number(value);
  return Number.isFinite(n) ? n.toFixed(digits) : String(value);
}

function fillTable(id, rows, cells) {
  const body = $(id).querySelector("tbody");
  body.replaceChildren(...rows.map(row => {
    const tr = document.createElement("tr");
    for (const [text, cls] of cells(row)) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    return tr;
  }));
  if (!rows.length) {
    const tr = document.createElement("tr"), td = document.createElement("td");
    td.colSpan = $(id).querySelectorAll("th").length; td.className = "muted"; td.textContent = "none";
    tr.appendChild(td); body.appendChild(tr);
  }
}

function fillKv(id, pairs) {
  $(id).replaceChildren(...pairs.flatMap(([k, v, cls]) => {
    const b = document.createElement("b"), span = document.createElement("span");
    b.textContent = k; span.textContent = v; if (cls) span.className = cls;
    return [b, span];
  }));
}

function renderStatus(s) {
  const killed = s.manual_kill || s.halted || s.active_switches.length > 0;
  fillKv("state", [
    ["mode", `${s.mode}${s.running ? "" : " (stopped)"}`],
    ["entries allowed", s.entries_allowed ? "yes" : "no", s.entries_allowed ? "good" : "bad"],
    ["kill switch", killed ? `ON: ${s.active_switches.join(", ") || "halted"}` : "off", killed ? "bad" : "good"],
    ["reasons", s.reasons.join("; ") || "–"],
    ["deployment phase", s.deployment_phase ?? "–"],
    ["equity / cash", `${fmt(s.equity)} / ${fmt(s.cash)}`],
    ["peak / day start", `${fmt(s.peak_equity)} / ${fmt(s.day_start_equity)}`],
    ["positions / live orders", `${s.open_positions} / ${s.live_orders}`],
  ]);
  $("kill").dataset.state = s.manual_kill ? "killed" : "running";
  fillTable("strategies", s.strategies, r => [
    [r.strategy_id], [r.kind], [fmt(r.equity), "num"],
    [fmt(r.realized_pnl), Number(r.realized_pnl) < 0 ? "num bad" : "num good"],
    [fmt(r.unrealized_pnl), Number(r.unrealized_pnl) < 0 ? "num bad" : "num good"],
    [fmt(r.exposure), "num"], [r.entries_allowed ? "yes" : `no: ${r.reason}`, r.entries_allowed ? "good" : "bad"],
  ]);
}

function renderEquity(e) {
  const canvas = $("equity-chart"), ctx = Chart.clear(canvas);
  const pts = e.points.map(p => [Date.parse(p.ts), Number(p.equity)]);
  const dd = e.points.map(p => [Date.parse(p.ts), 100 * p.drawdown]);
  const w = canvas.width - 70, top = { x: 60, y: 8, w, h: 120 }, bottom = { x: 60, y: 150, w, h: 50 };
  Chart.drawPanel(ctx, top, [{ points: pts, color: "#58a6ff", step: true }], { label: "equity", format: v => v.toFixed(1) });
  Chart.drawPanel(ctx, bottom, [{ points: dd, color: "#f85149", fill: "rgba(248,81,73,.25)", step: true }],
    { label: "drawdown %", yMax: 0, format: v => v.toFixed(2) });
  $("equity-summary").textContent =
    `${e.points.length} points; max drawdown ${(100 * e.max_drawdown).toFixed(2)} %; engine peak ${fmt(e.peak_equity)}`;
}

function renderModels(champion, versions) {
  const served = champion.served, reg = champion.registry;
  fillKv("champion", [
    ["served", served ? `${served.name} v${served.version} (${served.tower})` : "no model loaded", served ? "" : "bad"],
    ["tradeable", served ? (served.tradeable ? "yes" : "no: signals only") : "–", served && served.tradeable ? "good" : "bad"],
    ["registry champion", reg ? `v${reg.version}` : "none"],
  ]);
  fillTable("history", versions, v => [
    [`v${v.version}`], [v.aliases.join(", ") || "–"], [v.created_at ? v.created_at.slice(0, 19).replace("T", " ") : "–"],
    [v.tradeable ? "yes" : "no", v.tradeable ? "good" : "muted"], [v.promotion.slice(0, 80) || "–"],
  ]);
}

async function poll() {
  const jobs = {
    status: getJson("/trading/status").then(renderStatus),
    positions: getJson("/positions").then(rows => fillTable("positions", rows, p => [
      [p.strategy_id], [p.symbol], [fmt(p.size, 6), "num"], [fmt(p.entry_price, 4), "num"],
      [fmt(p.mark, 4), "num"], [fmt(p.unrealized_pnl), Number(p.unrealized_pnl) < 0 ? "num bad" : "num good"]])),
    orders: getJson("/orders?live_only=true&limit=100").then(rows => fillTable("orders", rows, o => [
      [o.strategy_id], [o.symbol], [o.side], [fmt(o.price, 4), "num"], [fmt(o.size, 6), "num"],
      [fmt(o.filled, 6), "num"], [o.state]])),
    fills: getJson("/trading/fills?limit=100").then(rows => fillTable("fills", rows.slice(0, 50), f => [
      [f.ts.slice(11, 19)], [f.strategy_id], [f.symbol], [f.side], [fmt(f.price, 4), "num"],
      [fmt(f.size, 6), "num"], [fmt(f.fee, 4), "num"]])),
    equity: getJson("/trading/equity").then(renderEquity),
    models: Promise.all([getJson("/models/champion"), getJson("/models/history")]).then(([c, h]) => renderModels(c, h)),
  };
  const results = await Promise.allSettled(Object.values(jobs));
  const failed = Object.keys(jobs).filter((_, i) => results[i].status === "rejected");
  $("updated").textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC` +
    (failed.length ? `; unavailable: ${failed.join(", ")}` : "");
}

function drawSignals() {
  const canvas = $("pup-chart"), ctx = Chart.clear(canvas);
  const series = [...state.signals.entries()].map(([symbol, points]) => ({ name: symbol, points, color: state.colors.get(symbol) }));
  Chart.drawPanel(ctx, { x: 50, y: 8, w: canvas.width - 60, h: canvas.height - 30 }, series,
    { yMin: 0, yMax: 1, label: "p_up", format: v => v.toFixed(2) });
  $("pup-legend").replaceChildren(...series.map(s => {
    const span = document.createElement("span"), swatch = document.createElement("i");
    swatch.style.background = s.color;
    span.append(swatch, `${s.name} ${s.points[s.points.length - 1][1].toFixed(3)} (${s.points.length})`);
    span.dataset.symbol = s.name;
    return span;
  }));
}

function onSignal(m) {
  if (!state.signals.has(m.symbol)) {
    state.signals.set(m.symbol, []);
    state.colors.set(m.symbol, Chart.PALETTE[state.colors.size % Chart.PALETTE.length]);
  }
  const points = state.signals.get(m.symbol);
  points.push([Date.parse(m.published_at) || Date.now(), Number(m.p_up)]);
  if (points.length > MAX_POINTS) points.shift();
  state.signalCount += 1;
  drawSignals();
}

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/signals`);
  const pill = $("ws-state");
  ws.onopen = () => { pill.textContent = "stream: connected"; pill.className = "pill on"; };
  ws.onmessage = event => {
    const message = JSON.parse(event.data);
    if (message.type === "signal") onSignal(message);
  };
  ws.onclose = () => { pill.textContent = "stream: reconnecting"; pill.className = "pill off"; setTimeout(connect, 2000); };
}

async function control(path) {
  const key = $("api-key").value;
  sessionStorage.setItem(KEY_STORE, key);
  const init = { method: "POST", headers: { "X-API-Key": key, "Content-Type": "application/json" } };
  if (path === "/kill") init.body = JSON.stringify({ reason: "kill from the dashboard" });
  const response = await fetch(path, init);
  const body = await response.json().catch(() => ({}));
  $("control-msg").textContent = response.ok ? `${path.slice(1)}: done` : `${path.slice(1)} refused (${response.status}): ${body.detail || ""}`;
  $("control-msg").className = response.ok ? "good" : "bad";
  if (response.ok) renderStatus(body);
}

$("api-key").value = sessionStorage.getItem(KEY_STORE) || "";
$("kill").addEventListener("click", () => control("/kill"));
$("resume").addEventListener("click", () => control("/resume"));
drawSignals();
connect();
poll();
setInterval(poll, POLL_MS);
