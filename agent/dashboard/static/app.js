// trader dashboard: polls the local API and draws the panels. Text is always set with textContent (never as HTML):
// journal reasons, model answers and chat messages are data, not markup.
"use strict";

const TOKEN = document.querySelector('meta[name="trader-token"]').content;
const $ = (sel) => document.querySelector(sel);
const charts = {};
let stateVersion = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v); else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

async function post(path, body = {}) {
  const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json", "X-Trader-Token": TOKEN },
                                body: JSON.stringify(body) });
  const out = await r.json();
  if (!r.ok) throw new Error(out.error || (out.detail && JSON.stringify(out.detail)) || r.statusText);
  return out;
}

const num = (x, d = 2) => (x === null || x === undefined || !isFinite(x)) ? "–" :
  Number(x).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
const sig = (x) => (x === null || x === undefined) ? "–" : Number(x).toPrecision(6).replace(/\.?0+$/, "");
const utc = (t) => new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19);

function kv(target, pairs) {
  target.replaceChildren(...pairs.flatMap(([k, v]) => [el("span", { class: "k" }, k), el("span", {}, v)]));
}

function chart(id, opts, data) {
  const node = $(id);
  const width = Math.max(280, node.clientWidth || 400);
  if (charts[id] && charts[id].series.length === opts.series.length) { charts[id].setData(data); return; }
  if (charts[id]) charts[id].destroy();
  charts[id] = new uPlot({ width, height: 200, ...opts }, data, node);
}

// a y range around the data (uPlot's default may reach down to zero for a flat series)
const tight = (u, min, max) => { const pad = Math.max((max - min) * 0.1, Math.abs(max) * 0.002, 1e-9);
  return [min - pad, max + pad]; };
const axes = [{ stroke: "#8794a3", grid: { stroke: "#2a3440" } },
  { stroke: "#8794a3", grid: { stroke: "#2a3440" }, size: 64 }];  // room for "47,975"

// ---- portfolio, equity, journal (polled) ----------------------------------------------------------------------
function drawState(s) {
  const status = $("#chain-status");
  status.textContent = s.chain ? `${s.network} replica` : "no chain";
  status.className = "pill " + (s.chain ? "ok" : "bad");
  status.title = s.chain_error || "";
  $("#price").textContent = num(s.price);
  $("#block").textContent = s.block ? `block ${s.block} · ${s.venue}` : "";
  $("#updated").textContent = "updated " + utc(s.time).slice(11);
  const p = s.portfolio;
  if (p) {
    kv($("#portfolio"), [["wallet", p.address.slice(0, 10) + "…"], ["ETH", sig(p.eth)], ["WETH", sig(p.weth)],
      ["USDC", num(p.usdc)], ["value", num(p.value_usd) + " USD"]]);
  } else {
    kv($("#portfolio"), [["chain", s.chain_error || "not connected"]]);
  }
  const eq = s.equity;
  if (eq && eq.points.length) {
    const node = $("#equity-chart");
    node.dataset.points = String(eq.points.length);
    node.dataset.fills = String(eq.fills);
    const t = eq.points.map((q) => q.time), v = eq.points.map((q) => q.equity_usd),
      c = eq.points.map((q) => q.costs_usd);
    chart("#equity-chart", { axes: [axes[0], axes[1], { side: 1, scale: "c", stroke: "#8794a3" }],
      scales: { y: { range: tight }, c: {} }, series: [{}, { label: "equity USD", stroke: "#58a6ff", width: 2 },
        { label: "costs USD", stroke: "#d29922", scale: "c" }] }, [t, v, c]);
    const k = eq.costs;
    $("#costs").textContent = `${eq.fills} fills; costs: fee ${num(k.fee_usd)} + impact ${num(k.impact_usd)} + ` +
      `slippage ${num(k.slippage_usd)} + gas ${num(k.gas_usd)} USD. ${eq.note}`;
  }
  $("#execution").textContent = s.journal_error || s.execution;
  const rows = s.journal.map((r) => el("tr", { "data-id": r.id, "data-status": r.status },
    el("td", {}, utc(r.time)), el("td", { class: r.side || "" }, r.side || ""),
    el("td", { class: "num" }, `${sig(r.amount_in)} ${r.asset_in || ""}`),
    el("td", { class: "num" }, `${r.estimated ? "~" : ""}${sig(r.amount_out)} ${r.asset_out || ""}`),
    el("td", { title: r.reason || "" }, r.status), el("td", {}, r.settlement),
    el("td", { class: "num" }, r.slippage_bps === null ? "–" : `${num(r.slippage_bps, 1)} bps`),
    el("td", { class: "num" }, r.gas_usd === null ? "–" : `${num(r.gas_usd)} $`),
    el("td", { class: "num" }, r.block ?? ""), el("td", { title: r.tx_hash || "" }, r.tx_hash ? r.tx_hash.slice(0, 12) + "…" : "")));
  $("#journal tbody").replaceChildren(...rows);
}

let polling = false;
async function pollState() {
  if (polling) return;  // one request in flight at a time: a slow chain must not pile them up
  polling = true;
  try {
    const s = await getJSON("/api/state");
    if (s.version !== stateVersion) { stateVersion = s.version; drawState(s); }
  } catch (e) { $("#chain-status").textContent = "dashboard unreachable"; } finally { polling = false; }
}

// ---- signal ------------------------------------------------------------------------------------------------------
async function loadSignal() {
  let v;
  try { v = await getJSON("/api/signal"); } catch (e) { $("#signal").textContent = e.message; return; }
  if (v.error) { $("#signal").textContent = v.error; return; }
  const s = v.signal;
  kv($("#signal"), [["decision", el("span", { class: "action " + s.action.toLowerCase(), id: "signal-action" }, s.action)],
    ["agreement", `${Math.round(s.agreement * 100)}%`], ["policy chose", `${s.policy_action} (${s.raw_action})`],
    ["bar", `${utc(s.bar_time)} UTC${s.stale ? " (stale)" : ""}`], ["data", s.data],
    ["bars", `${s.continuous_bars} continuous, needs ${s.needed_bars}`], ["wallet", `${Math.round(s.position * 100)}% ETH (${s.wallet})`],
    ["why hold", s.reason || "–"]]);
  const f = v.full_view, seen = f || s;
  const on = f ? `live bars do not cover the look-back yet; on its history's last bar (${utc(f.bar_time)} UTC, ` +
    `${f.data}) the ensemble votes: ` : "ensemble vote: ";
  $("#votes").replaceChildren(el("span", { class: "muted" }, v.votes.length ? on : "ensemble vote: none (no observation)"),
    ...v.votes.map((m) => el("span", { class: "votes" }, el("span", {}, `#${m.member} ${m.action}`))));
  $("#observation").replaceChildren(...Object.entries(seen.observation).map(([k, x]) =>
    el("tr", {}, el("td", {}, k), el("td", { class: "num" }, sig(x)))));
  $("#price-source").textContent = `${v.price_source}; ${v.fills.length} of our fills marked`;
  const times = [...new Set([...v.prices.map((p) => p[0]), ...v.fills.map((f) => f.time)])].sort((a, b) => a - b);
  const at = new Map(v.prices.map((p) => [p[0], p[1]]));
  const mark = (side) => { const m = new Map(v.fills.filter((f) => f.side === side).map((f) => [f.time, f.price]));
    return times.map((t) => m.has(t) ? m.get(t) : null); };
  const dots = (color) => ({ stroke: color, width: 0, points: { show: true, size: 9, fill: color } });
  if (times.length) {
    chart("#price-chart", { axes, scales: { y: { range: tight } }, series: [{}, { label: "price", stroke: "#d8dee6", spanGaps: true },
      { label: "our buys", ...dots("#3fb950") }, { label: "our sells", ...dots("#f85149") }] },
      [times, times.map((t) => at.has(t) ? at.get(t) : null), mark("buy"), mark("sell")]);
  }
}

async function explain() {
  const out = $("#explanation");
  $("#explain").disabled = true;
  out.textContent = "asking the trader model (the first answer loads it: this can take a while)…";
  try {
    const r = await post("/api/explain");
    out.textContent = r.error ? r.error : `${r.model} (${num(r.seconds, 1)} s) on ${r.bar || "the latest bar"}: ${r.answer}`;
  } catch (e) { out.textContent = e.message; } finally { $("#explain").disabled = false; }
}

// ---- learner and search ----------------------------------------------------------------------------------------
async function loadLearner() {
  let v;
  try { v = await getJSON("/api/learner"); } catch (e) { return; }
  if (!v.available) { kv($("#learner"), [["run", v.message]]); return; }
  const cur = v.serving.current, L = v.learner;
  kv($("#learner"), [["run", v.run], ["serving", `${cur.kind}${cur.checkpoint ? " " + cur.checkpoint : ""} (v${v.serving.version})`],
    ["learner", L.step !== undefined ? `step ${L.step}, buffer ${L.buffer}, loss ${sig(L.loss)}` : (L.learner_error || "not started")],
    ["gates", `${v.events.filter((e) => e.kind === "gate").length}, ${v.promotions} promotions, ${v.rollbacks} rollbacks`]]);
  $("#gate-events").replaceChildren(...v.events.slice(-12).reverse().map((e) => el("tr", {},
    el("td", {}, utc(e.time)), el("td", {}, e.kind === "gate" ? `step ${e.step}` : "rollback"),
    el("td", { class: e.promoted ? "buy" : "" }, e.summary),
    el("td", { class: "num" }, e.candidate_sharpe === null ? "" : `${num(e.candidate_sharpe)} vs ${num(e.incumbent_sharpe)}`))));
  const d = v.decisions;
  if (d.length) {
    const t = d.map((x) => x.bar_time), pick = (a) => d.map((x) => x.action === a && x.status !== "refused" ? x.price : null);
    chart("#decisions-chart", { axes, scales: { y: { range: tight } }, series: [{}, { label: "run price", stroke: "#d8dee6" },
      { label: "policy BUY", stroke: "#3fb950", width: 0, points: { show: true, size: 8, fill: "#3fb950" } },
      { label: "policy SELL", stroke: "#f85149", width: 0, points: { show: true, size: 8, fill: "#f85149" } }] },
      [t, d.map((x) => x.price), pick("BUY"), pick("SELL")]);
  }
}

async function loadSearch() {
  let v;
  try { v = await getJSON("/api/search"); } catch (e) { return; }
  if (!v.available) { kv($("#search"), [["search", v.message]]); return; }
  const fs = v.fold_summary.policy || {}, bh = v.fold_summary.buy_and_hold || {};
  kv($("#search"), [["folder", v.folder], ["study", `${v.study} (${Object.entries(v.trials).map(([k, n]) => `${n} ${k}`).join(", ")})`],
    ["best", `trial ${v.best.number}: ${num(v.best.value)} (${(v.best.params || {}).algo})`],
    ["folds", `median Sharpe ${num(fs.median_sharpe)} vs buy-and-hold ${num(bh.median_sharpe)}`],
    ["deflated Sharpe", num(v.deflated_sharpe, 3)], ["studies", v.optuna_dashboard || "–"]]);
  const nf = Math.max(0, ...v.top.map((t) => t.fold_sharpes.length));
  $("#trials").replaceChildren(el("tr", {}, el("th", {}, "trial"), el("th", {}, "score"), el("th", {}, "algo"),
    ...Array.from({ length: nf }, (_, i) => el("th", {}, `fold ${i}`))),
    ...v.top.map((t) => el("tr", {}, el("td", {}, `#${t.number}`), el("td", { class: "num" }, num(t.value)),
      el("td", {}, t.algo || ""), ...t.fold_sharpes.map((x) => el("td", { class: "num" }, num(x))))));
  $("#folds").replaceChildren(el("tr", {}, ...["window", "data", "policy", "buy & hold", "SMA"].map((h) => el("th", {}, h))),
    ...v.folds.map((f) => el("tr", {}, el("td", {}, String(f.fold)), el("td", {}, f.dataset || ""),
      el("td", { class: "num" }, num(f.policy)), el("td", { class: "num" }, num(f.buy_and_hold)), el("td", { class: "num" }, num(f.sma)))));
}

// ---- chat --------------------------------------------------------------------------------------------------------
function say(cls, text) {
  const node = el("div", { class: "msg " + cls }, text);
  $("#chat-log").append(node);
  $("#chat-log").scrollTop = $("#chat-log").scrollHeight;
  return node;
}

function proposalCard(p) {
  const q = p.quote;
  const status = el("div", { class: "status" }, p.risk.ok ? "awaiting your confirmation" : "refused by the risk check");
  const yes = el("button", { class: "confirm", type: "button", disabled: !p.risk.ok }, "confirm swap");
  const no = el("button", { class: "decline", type: "button", disabled: !p.risk.ok }, "decline");
  const card = el("div", { class: "proposal-card", "data-proposal": p.id },
    el("div", {}, `proposal ${p.id}: ${q.side} ${sig(q.amount_in)} ${q.asset_in} → ≥ ${sig(p.min_amount_out)} ${q.asset_out} on ${q.venue}`),
    el("div", { class: "muted" }, `quote ${sig(q.amount_out)} ${q.asset_out} at ${num(q.price)}; impact ${num(p.price_impact_bps, 1)} bps; ` +
      `max slippage ${p.max_slippage_bps} bps; gas ${p.gas_estimate ?? "?"}` + (p.risk.ok ? "" : `; ${p.risk.reasons.join("; ")}`)),
    el("div", {}, yes, " ", no), status);
  const settle = async (path, doing) => {
    yes.disabled = no.disabled = true;
    status.textContent = doing;
    try {
      const r = await post(path, { proposal_id: p.id });
      status.textContent = r.message;
      card.dataset.result = r.ok ? (path.endsWith("confirm") ? "confirmed" : "declined") : "refused";
    } catch (e) { status.textContent = e.message; card.dataset.result = "error"; }
    pollState();
  };
  yes.onclick = () => settle("/api/confirm", "sending…");
  no.onclick = () => settle("/api/decline", "declining…");
  return card;
}

async function send(ev) {
  ev.preventDefault();
  const input = $("#chat-input"), text = input.value.trim();
  if (!text) return;
  input.value = "";
  say("user", "you> " + text);
  const pending = say("tools", "thinking…");
  $("#chat-send").disabled = true;
  try {
    const r = await post("/api/chat", { message: text });
    pending.textContent = r.tools.length ? "tools: " + r.tools.map((c) => c.name + (c.result && c.result.error ? " (error)" : "")).join(", ") : `(${r.model})`;
    say("agent", r.answer).dataset.role = "answer";
    if (r.proposal) $("#chat-log").append(proposalCard(r.proposal));
  } catch (e) { pending.remove(); say("error", "error: " + e.message); } finally { $("#chat-send").disabled = false; }
}

$("#chat-form").addEventListener("submit", send);
$("#explain").addEventListener("click", explain);
$("#refresh-signal").addEventListener("click", loadSignal);
pollState(); loadSignal(); loadLearner(); loadSearch();
setInterval(pollState, 2000);
setInterval(loadSignal, 30000);
setInterval(loadLearner, 10000);
