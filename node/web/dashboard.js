// The swarm dashboard: snapshots from /v1/dashboard/*, then the node's live event stream.
//
// The stream is read with fetch() rather than EventSource, which cannot send the Authorization header.
// What the page keeps is capped (rounds, points per series) and it redraws at most once a frame, a
// panel at a time, so a round a second stays smooth.
"use strict";

const MAX_ROUNDS = 40; // rounds kept on the page
const MAX_POINTS = 300; // samples per series kept on the page
const SVG = "http://www.w3.org/2000/svg";
// A round's phases, by the names of its timings, and what the page calls them.
const PHASES = [
  ["routing", "Routing"],
  ["generation", "Answering"],
  ["commit_reveal", "Revealing"],
  ["judging", "Judging"],
  ["aggregation", "Bradley-Terry"],
];

const S = {
  key: sessionStorage.getItem("swarm-api-key") || "",
  cursor: 0, // the last event seen: a new stream starts after it
  node: null,
  network: null,
  ledger: undefined, // undefined: not loaded yet; null: this node keeps no ledger
  accel: null,
  routing: null,
  rounds: new Map(), // round id -> its view, oldest first
  modelSeries: {}, // model -> {at: [], values: {waiting, running, tokens_per_s, ttft_s}}
  asked: null, // {question, roundId} while a question asked here is in flight
  shown: null, // the round id the dialog shows
  displayed: null, // the round id the round panel shows
  stream: null, // AbortController of the live stream
};

// ---- small helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "onclick") el.addEventListener("click", v);
    else if (k === "style") el.style.cssText = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

function fill(id, ...children) {
  const el = typeof id === "string" ? document.getElementById(id) : id;
  el.replaceChildren();
  append(el, children);
  return el;
}

const short = (id) => (id ? id.slice(-6) : "?");
const pct = (x) => (x === null || x === undefined ? "–" : `${Math.round(x * 100)}%`);
const num = (x, digits = 1) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));

function ms(x) {
  if (x === null || x === undefined) return "–";
  if (x < 1) return "<1 ms";
  return x >= 1000 ? `${(x / 1000).toFixed(x >= 10000 ? 0 : 1)} s` : `${Math.round(x)} ms`;
}

function duration(seconds) {
  const t = Math.max(0, Math.round(seconds));
  if (t < 60) return `${t} s`;
  if (t < 3600) return `${Math.floor(t / 60)} m ${t % 60} s`;
  return `${Math.floor(t / 3600)} h ${Math.floor((t % 3600) / 60)} m`;
}

function clock(epoch) {
  return new Date(epoch * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// One colour per peer, the same in every panel: distinct ones in the order peers are first seen.
const PALETTE = ["#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2", "#dc2626", "#65a30d", "#475569", "#c026d3"];
const colours = new Map();

function colour(id) {
  if (!colours.has(id)) {
    let x = 2166136261;
    for (const c of id || "") x = Math.imul(x ^ c.charCodeAt(0), 16777619) >>> 0;
    colours.set(id, colours.size < PALETTE.length ? PALETTE[colours.size] : `hsl(${x % 360}, 60%, 42%)`);
  }
  return colours.get(id);
}

function modelsOf(peerId) {
  const n = S.network;
  if (!n) return [];
  if (n.self && n.self.peer_id === peerId) return n.self.models.map((m) => m.name);
  const p = n.peers.find((x) => x.peer_id === peerId);
  return p ? p.models.map((m) => m.name) : [];
}

function peer(id, withModels = true) {
  const models = withModels ? modelsOf(id) : [];
  const me = S.node && id === S.node.node_id;
  return h(
    "span",
    { class: "peer", title: id },
    h("span", { class: "dot", style: `background:${colour(id)}` }),
    short(id),
    me ? h("span", { class: "tag accent" }, "this node") : null,
    models.length ? h("span", { class: "muted" }, models.join(", ")) : null,
  );
}

const tag = (text, kind = "") => h("span", { class: `tag ${kind}` }, text);
const empty = (text) => h("div", { class: "empty" }, text);

function notice(text) {
  fill("notice", text || "");
}

// ---- talking to the node

class AuthNeeded extends Error {}

function headers(extra) {
  const out = { ...(extra || {}) };
  if (S.key) out.Authorization = `Bearer ${S.key}`;
  return out;
}

async function api(path, options = {}) {
  for (;;) {
    const init = { method: options.method || "GET", headers: headers(options.body ? { "Content-Type": "application/json" } : {}) };
    if (options.body) init.body = JSON.stringify(options.body);
    const res = await fetch(path, init);
    if (res.status === 401) {
      await askForKey();
      continue;
    }
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error((body.error && body.error.message) || `${res.status} ${res.statusText}`);
    return body;
  }
}

let keyWaiters = null;

function askForKey() {
  // Every call that met a 401 waits for the same answer.
  if (!keyWaiters) {
    keyWaiters = [];
    const dialog = document.getElementById("keydialog");
    document.getElementById("key-input").value = "";
    dialog.showModal();
  }
  return new Promise((resolve) => keyWaiters.push(resolve));
}

function keyGiven(event) {
  event.preventDefault();
  S.key = document.getElementById("key-input").value.trim();
  sessionStorage.setItem("swarm-api-key", S.key);
  document.getElementById("keydialog").close();
  document.getElementById("key-button").hidden = false;
  const waiters = keyWaiters || [];
  keyWaiters = null;
  waiters.forEach((resolve) => resolve());
}

// ---- drawing, at most once a frame per panel

const dirty = new Set();
let frame = 0;

function mark(...panels) {
  panels.forEach((p) => dirty.add(p));
  if (!frame) frame = requestAnimationFrame(flush);
}

function flush() {
  frame = 0;
  const panels = [...dirty];
  dirty.clear();
  for (const p of panels) {
    try {
      RENDER[p]();
    } catch (err) {
      console.error(`could not draw ${p}:`, err); // one panel's fault leaves the others drawn
    }
  }
}

const RENDER = {
  header: renderHeader,
  round: renderRound,
  rounds: renderRounds,
  network: renderNetwork,
  reputation: renderReputation,
  models: renderModels,
  accel: renderAccel,
  routing: renderRouting,
};

// ---- the header

function renderHeader() {
  const n = S.node;
  if (!n) return;
  fill("node-id", short(n.node_id)).title = n.node_id || "";
  fill("node-version", n.version);
  fill("node-uptime", duration(Date.now() / 1000 - n.started));
  fill("node-peers", S.network ? String(S.network.peers.length) : "…");
}

function setLive(state, text) {
  const el = document.getElementById("live");
  el.className = `live ${state}`;
  el.textContent = text;
}

// ---- rounds

function keepRound(view) {
  const id = view.round_id;
  const kept = S.rounds.get(id);
  if (kept) S.rounds.set(id, Object.assign(kept, view));
  else {
    S.rounds.set(id, { started_at: Date.now() / 1000, ...view });
    while (S.rounds.size > MAX_ROUNDS) S.rounds.delete(S.rounds.keys().next().value);
  }
  const r = S.rounds.get(id);
  if ((r.phase === "finished" || r.phase === "failed") && !r.ended_at) r.ended_at = Date.now() / 1000;
  return r;
}

function onRound(view) {
  const r = keepRound(view);
  // A question asked here is followed by the first round that starts with that question.
  if (S.asked && !S.asked.roundId && r.phase === "started" && S.asked.question.startsWith(r.question.replace(/…$/, ""))) {
    S.asked.roundId = r.round_id;
  }
  if (S.asked && S.asked.roundId === r.round_id && r.report) showWinner(r.report, r);
  mark("round", "rounds");
}

// The round panel follows a round to its end and shows its outcome a while before it moves on to the
// newest round: with a round a second, it would otherwise never show a finished one.
// The round asked here is shown longer.
const DWELL_S = 4;
const ASKED_DWELL_S = 60;

function holds(r, seconds) {
  const over = r.phase === "finished" || r.phase === "failed";
  return !over || Date.now() / 1000 - r.ended_at < seconds;
}

function currentRound() {
  const asked = S.asked && S.rounds.get(S.asked.roundId);
  if (asked && holds(asked, ASKED_DWELL_S)) return asked;
  const shown = S.rounds.get(S.displayed);
  if (shown && shown !== asked && holds(shown, DWELL_S)) return shown;
  let newest = null;
  for (const r of S.rounds.values()) newest = r;
  S.displayed = newest ? newest.round_id : null;
  return newest;
}

function phaseStates(r) {
  const t = { ...(r.timings_ms || {}) };
  const routingMs = r.report ? r.report.timings_ms.routing : r.routing ? r.routing.decision_ms : undefined;
  if (routingMs !== undefined) t.routing = routingMs;
  const over = r.phase === "finished" || r.phase === "failed";
  let activeGiven = false;
  return PHASES.map(([key, label]) => {
    let state = "pending";
    if (t[key] !== undefined) state = "done";
    else if (over) state = r.phase === "failed" && !activeGiven ? "failed" : "skipped";
    else if (!activeGiven) state = "active";
    if (state === "active" || state === "failed") activeGiven = true;
    if (key === "aggregation" && r.mode === "vote") label = "Majority vote";
    return { key, label, state, ms: t[key] };
  });
}

function totalMs(r) {
  const t = r.report ? r.report.timings_ms : r.timings_ms || {};
  return Object.values(t).reduce((a, b) => a + (b || 0), 0);
}

function renderRound() {
  const r = currentRound();
  if (!r) return;
  const report = r.report;
  fill("round-sub", `${r.mode} · round ${short(r.round_id)} · ${clock(r.started_at)}`);
  fill(
    "round-actions",
    h("button", { type: "button", onclick: () => openProvenance(r.round_id) }, "Provenance & signatures"),
  );
  const parts = [h("div", { class: "question" }, r.question)];
  parts.push(
    h(
      "div",
      { class: "phases" },
      phaseStates(r).map((p) =>
        h("div", { class: `phase ${p.state}` }, h("b", {}, p.label), p.state === "done" ? ms(p.ms) : p.state === "active" ? "in progress…" : p.state),
      ),
    ),
  );
  if (report) parts.push(winnerLine(report, r));
  else if (r.phase === "failed") parts.push(h("div", { class: "answer error" }, r.error || "no answer"));
  parts.push(expertsTable(r));
  parts.push(candidatesTable(r));
  if (report && report.votes.length) parts.push(h("h3", {}, "Votes"), voteMatrix(report));
  else if (r.phase === "judged") parts.push(h("div", { class: "facts" }, `${r.ballots} ballots from ${Object.keys(r.judges).length} judges, ${r.votes} votes: aggregating…`));
  parts.push(missedList(r.missed));
  fill("round-body", parts);
}

function winnerLine(report, r) {
  const w = report.candidates.find((c) => c.id === report.answered_by.candidate);
  return h(
    "div",
    { class: "answer" },
    h("div", { class: "facts" }, tag("winner", "good"), h("b", {}, report.answered_by.candidate), peer(report.answered_by.peer_id), report.confidence !== null ? h("span", {}, "confidence ", h("b", {}, pct(report.confidence))) : null, h("span", {}, "round took ", h("b", {}, ms(totalMs(r)))), report.degraded ? tag(report.degraded, "warn") : null),
    w ? h("div", { class: "text", id: "round-winner" }, w.answer.trim()) : null,
    report.bt_winner && report.bt_winner !== report.answered_by.candidate
      ? h("div", { class: "reason" }, `${report.bt_winner} is the strongest alone; ${report.answered_by.candidate} wins as the strongest of the answers the judges found GOOD, answers that say the same pooling their strength.`)
      : null,
  );
}

function expertsTable(r) {
  const routing = r.routing || (r.report && r.report.routing);
  if (!routing) {
    if (!r.answerers) return null;
    return [h("h3", {}, "Experts"), h("div", { class: "facts" }, r.answerers.map((a) => [h("b", {}, a.model), peer(a.peer_id, false)]))];
  }
  const chosen = new Set(routing.selection.chosen);
  return [
    h("h3", {}, `Experts · routed on ${routing.basis}${routing.table_version ? ` of table ${routing.table_version.slice(0, 8)}` : ""}`),
    h(
      "table",
      {},
      h("tr", {}, h("th", {}, "model"), h("th", {}, "node"), h("th", { class: "num" }, "p(right)"), h("th", { class: "num" }, "latency"), h("th", {}, "why")),
      routing.experts.map((e) =>
        h(
          "tr",
          {},
          h("td", {}, chosen.has(e.model) ? tag(e.model, "accent") : e.model),
          h("td", {}, peer(e.peer_id, false)),
          h("td", { class: "num" }, pct(e.quality)),
          h("td", { class: "num" }, e.predicted_latency_s === null ? "–" : `${num(e.predicted_latency_s)} s`),
          h("td", { class: "reason" }, e.reason),
        ),
      ),
    ),
  ];
}

function candidatesTable(r) {
  const report = r.report;
  const rows = report ? report.candidates : r.candidates;
  if (!rows) {
    if (r.committed) return h("div", { class: "facts" }, `commitments in: ${r.committed.length} of ${(r.answerers || []).length}; revealing…`);
    return h("div", { class: "facts" }, "the experts are answering and committing…");
  }
  const top = Math.max(...rows.map((c) => c.bt_score || 0), 1e-9);
  const winner = report ? report.answered_by.candidate : null;
  return [
    h("h3", {}, report ? "Candidates, anonymised for the judges" : "Candidates revealed, judging…"),
    h(
      "table",
      {},
      h("tr", {}, h("th", {}, "id"), h("th", {}, "model"), h("th", {}, "node"), h("th", {}, "Bradley-Terry strength"), h("th", { class: "num" }, "GOOD"), h("th", {}, "answer")),
      rows.map((c) =>
        h(
          "tr",
          { class: c.id === winner ? "winner" : "" },
          h("td", {}, h("b", {}, c.id), c.id === winner ? [" ", tag("winner", "good")] : null),
          h("td", {}, c.model),
          h("td", {}, peer(c.peer_id, false)),
          h("td", {}, c.bt_score === null || c.bt_score === undefined ? "–" : h("div", { class: "facts" }, h("div", { class: "bar" + (c.id === winner ? " good" : ""), style: "width:90px" }, h("i", { style: `width:${(100 * c.bt_score) / top}%` })), num(c.bt_score, 2))),
          h("td", { class: "num" }, c.checks !== undefined ? `${c.good}/${c.checks}` : "–"),
          h("td", {}, c.answer !== undefined ? h("div", { class: "answer-text" }, c.answer.trim()) : h("span", { class: "muted" }, "…")),
        ),
      ),
    ),
  ];
}

function voteMatrix(report) {
  const ids = report.candidates.map((c) => c.id);
  const wins = Object.fromEntries(ids.map((a) => [a, Object.fromEntries(ids.map((b) => [b, 0]))]));
  for (const v of report.votes) {
    if (v.outcome === "first") wins[v.a][v.b] += 1;
    else if (v.outcome === "second") wins[v.b][v.a] += 1;
    else {
      wins[v.a][v.b] += 0.5;
      wins[v.b][v.a] += 0.5;
    }
  }
  const show = (x) => (x % 1 ? `${Math.floor(x) || ""}½` : String(x));
  const judges = new Set(report.votes.map((v) => v.judge)).size;
  const table = h(
    "table",
    { class: "matrix", style: "width:auto" },
    h("tr", {}, h("th", {}, ""), ids.map((b) => h("th", {}, b))),
    ids.map((a) =>
      h(
        "tr",
        {},
        h("th", {}, a),
        ids.map((b) => {
          if (a === b) return h("td", { class: "self" }, "—");
          const games = wins[a][b] + wins[b][a];
          const share = games ? wins[a][b] / games : 0.5;
          const style = games ? `background: rgba(37, 99, 235, ${(0.08 + 0.5 * share).toFixed(2)})` : "";
          return h("td", { style, title: `${a} over ${b}: ${wins[a][b]} of ${games}` }, games ? show(wins[a][b]) : "·");
        }),
      ),
    ),
  );
  return h(
    "div",
    { class: "matrix-box" },
    table,
    h("div", { class: "reason" }, `How often the row was preferred over the column: ${report.votes.length} votes by ${judges} judges, each judging only pairs without its own answer; a tie counts ½ to each. Strengths above are the Bradley-Terry fit of these votes, weighted by each judge's reputation.`),
  );
}

function missedList(missed) {
  if (!missed || !missed.length) return null;
  return [
    h("h3", {}, "Missed or rejected"),
    h(
      "ul",
      { class: "missed" },
      missed.map((m) => h("li", {}, m.malformed ? tag("rejected", "bad") : tag("missed", "warn"), " ", peer(m.peer_id), ` in ${m.phase}: `, h("span", { class: "reason" }, m.reason))),
    ),
  ];
}

function roundStatus(r) {
  if (r.phase === "failed") return tag("failed", "bad");
  if (r.phase !== "finished") return tag(r.phase, "accent");
  if (r.degraded || (r.report && r.report.degraded)) return tag("degraded", "warn");
  return tag("done", "good");
}

function renderRounds() {
  const rounds = [...S.rounds.values()].reverse();
  if (!rounds.length) return;
  fill(
    "rounds-body",
    h(
      "table",
      {},
      h("tr", {}, h("th", {}, "time"), h("th", {}, "question"), h("th", {}, "winner"), h("th", { class: "num" }, "took"), h("th", {}, "")),
      rounds.map((r) => {
        const by = r.report ? r.report.answered_by : r.answered_by;
        return h(
          "tr",
          { class: "click", "data-round": r.round_id, onclick: () => openProvenance(r.round_id) },
          h("td", { class: "num" }, clock(r.started_at)),
          h("td", { class: "clip", title: r.question }, r.question),
          h("td", { class: "nowrap" }, by ? by.model : h("span", { class: "muted" }, "…")),
          h("td", { class: "num" }, r.phase === "finished" ? ms(totalMs(r)) : "…"),
          h("td", {}, roundStatus(r), r.missed && r.missed.length ? [" ", tag(`${r.missed.length} missed`, "warn")] : null),
        );
      }),
    ),
  );
}

// ---- a round's provenance

async function openProvenance(roundId) {
  const dialog = document.getElementById("provenance");
  S.shown = roundId;
  fill("prov-title", "Provenance");
  fill("prov-sub", roundId);
  fill("prov-body", empty("loading…"));
  if (!dialog.open) dialog.showModal();
  try {
    const view = await api(`/v1/dashboard/rounds/${encodeURIComponent(roundId)}`);
    if (S.shown === roundId) fill("prov-body", provenance(view));
  } catch (err) {
    fill("prov-body", h("div", { class: "answer error" }, err.message));
  }
}

function provenance(view) {
  const report = view.report;
  const out = [h("div", { class: "question" }, view.question)];
  if (!report) {
    out.push(h("div", { class: "facts" }, `phase ${view.phase}`, view.error ? h("span", { class: "reason" }, view.error) : null));
    out.push(missedList(view.missed));
    return out;
  }
  out.push(
    h("div", { class: "facts" }, h("span", {}, "answered by ", h("b", {}, report.answered_by.candidate)), peer(report.answered_by.peer_id), h("span", {}, `mode ${report.mode}`), report.confidence !== null ? h("span", {}, `confidence ${pct(report.confidence)}`) : null, report.bt_winner ? h("span", {}, `strongest alone ${report.bt_winner}`) : null, report.majority ? h("span", {}, `majority "${report.majority}"`) : null, report.degraded ? tag(report.degraded, "warn") : null),
    h("h3", {}, "Timings"),
    h("div", { class: "facts" }, Object.entries(report.timings_ms).map(([k, v]) => [h("span", {}, `${k} `, h("b", {}, ms(v)))])),
    h("h3", {}, "Candidates, each with its signed commitment and the reveal's signature"),
    report.candidates.map((c) =>
      h(
        "div",
        { style: "border-top:1px solid var(--rule-soft);padding:6px 0" },
        h("div", { class: "facts" }, h("b", {}, c.id), h("span", {}, c.model), peer(c.peer_id, false), h("span", {}, `strength ${num(c.bt_score, 3)}`), h("span", {}, `GOOD ${c.good}/${c.checks}`), c.id === report.answered_by.candidate ? tag("winner", "good") : null),
        h("pre", {}, c.answer),
        h("div", { class: "sig" }, `commitment digest ${c.commitment.body.digest}`),
        h("div", { class: "sig" }, `commitment signature ${c.commitment.signature}`),
        h("div", { class: "sig" }, `reveal signature ${c.reveal_signature}`),
      ),
    ),
    h("h3", {}, "Judges and their weights"),
    h("div", { class: "facts" }, report.judges.map((j) => [peer(j.peer_id), h("b", {}, num(j.weight, 2))])),
    h("h3", {}, "Votes"),
    report.votes.length ? voteMatrix(report) : empty("none"),
    h("h3", {}, "Signed ballots"),
    report.ballots.length
      ? report.ballots.map((b) =>
          h("div", { style: "padding:4px 0" }, peer(b.signer), h("pre", {}, JSON.stringify(b.body)), h("div", { class: "sig" }, `signature ${b.signature}`)),
        )
      : empty("none"),
    missedList(view.missed),
    expertsTable({ report }),
    h("details", {}, h("summary", {}, "the whole report, as the chat completion returned it"), h("pre", {}, JSON.stringify(report, null, 1))),
  );
  return out;
}

// ---- asking

async function ask(event) {
  event.preventDefault();
  const question = document.getElementById("ask-question").value.trim();
  if (!question) return;
  const mode = document.getElementById("ask-mode").value;
  const maxTokens = Number(document.getElementById("ask-tokens").value) || 48;
  const button = document.getElementById("ask-button");
  button.disabled = true;
  button.textContent = "Asking…";
  S.asked = { question, roundId: null };
  fill("ask-answer", h("div", { class: "muted" }, mode === "route" ? "routing to the best expert…" : "the round is on: watch it on the right"));
  document.getElementById("ask-answer").className = "answer";
  try {
    const body = await api("/v1/chat/completions", {
      method: "POST",
      body: { model: "swarm", messages: [{ role: "user", content: question }], max_tokens: maxTokens, temperature: 0, swarm: { mode } },
    });
    const text = body.choices[0].message.content;
    const report = body.swarm;
    if (report && report.round_id) {
      S.asked.roundId = report.round_id;
      const r = keepRound({ round_id: report.round_id, phase: "finished", mode: report.mode, question, report });
      showWinner(report, r, text);
      mark("round", "rounds");
    } else {
      fill("ask-answer", h("div", { class: "facts" }, tag("answered", "good"), h("b", {}, body.model), report ? peer(report.answered_by.peer_id) : null), h("div", { class: "text" }, text.trim()), report ? h("div", { class: "reason" }, (report.experts.find((e) => e.model === body.model) || {}).reason || "") : null);
    }
  } catch (err) {
    document.getElementById("ask-answer").className = "answer error";
    fill("ask-answer", err.message);
  } finally {
    button.disabled = false;
    button.textContent = "Ask";
  }
}

function showWinner(report, r, text) {
  const w = report.candidates.find((c) => c.id === report.answered_by.candidate);
  fill(
    "ask-answer",
    h("div", { class: "facts" }, tag("winner", "good"), h("b", {}, report.answered_by.model), peer(report.answered_by.peer_id, false), h("span", {}, `in ${ms(totalMs(r))}`)),
    h("div", { class: "text", id: "ask-winner" }, (text || (w ? w.answer : "")).trim()),
    h("button", { type: "button", class: "link", onclick: () => openProvenance(report.round_id) }, `round ${short(report.round_id)}: provenance and signatures`),
  );
}

// ---- the network

function renderNetwork() {
  const n = S.network;
  if (!n) return;
  const up = n.peers.filter((p) => p.state === "up").length;
  fill("network-sub", `${n.peers.length} peers in the table, ${up} answering heartbeats`);
  drawGraph(n);
  const rows = [];
  if (n.self) rows.push({ ...n.self, self: true });
  rows.push(...n.peers);
  fill(
    "peers-body",
    h(
      "table",
      {},
      h("tr", {}, h("th", {}, "peer"), h("th", {}, "models"), h("th", {}, "hardware"), h("th", { class: "num" }, "tok/s"), h("th", { class: "num" }, "load"), h("th", { class: "num" }, "round trip"), h("th", {}, "reachable"), h("th", {}, "say")),
      rows.map((p) => {
        const load = p.models.reduce((a, m) => a + ((p.load[m.name] || {}).running || 0) + ((p.load[m.name] || {}).waiting || 0), 0);
        const slots = p.models.reduce((a, m) => a + (m.parallel || 1), 0);
        const speed = p.models.map((m) => m.tokens_per_second).filter((x) => x);
        return h(
          "tr",
          {},
          h("td", {}, peer(p.peer_id, false)),
          h("td", {}, p.models.length ? p.models.map((m) => h("div", {}, m.name, " ", h("span", { class: "muted" }, m.backend))) : h("span", { class: "muted" }, "none")),
          h("td", { class: "reason" }, p.hardware || "–"),
          h("td", { class: "num" }, speed.length ? speed.map((x) => num(x)).join(", ") : "–"),
          h("td", { class: "num" }, `${load}/${slots}`),
          h("td", { class: "num" }, p.self ? "–" : p.rtt_ms === null ? "–" : `${num(p.rtt_ms)} ms`),
          h("td", {}, p.self ? tag("this node", "accent") : [tag(p.state, p.state === "up" ? "good" : p.state === "down" ? "bad" : ""), h("span", { class: "muted" }, ` seen ${num(p.seen_s_ago, 0)} s ago`)]),
          h("td", {}, p.say === null ? tag("everyone", "") : p.say ? tag(p.eligible ? "proven" : "bootstrap", "good") : tag("no say", "warn")),
        );
      }),
    ),
  );
}

function drawGraph(n) {
  const svg = document.getElementById("graph");
  const width = svg.clientWidth || 600;
  const height = svg.clientHeight || 230;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const ids = [];
  const add = (id) => ids.includes(id) || ids.push(id);
  if (n.self) add(n.self.peer_id);
  n.peers.forEach((p) => add(p.peer_id));
  Object.keys(n.heartbeat || {}).forEach(add);
  Object.values(n.links || {}).forEach((seen) => (seen || []).forEach(add));
  const shown = ids.slice(0, 24);
  const cx = width / 2;
  const cy = height / 2;
  const rx = Math.max(60, width / 2 - 90);
  const ry = Math.max(40, height / 2 - 42); // room for two lines of label above and below
  const at = {};
  shown.forEach((id, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / shown.length;
    at[id] = shown.length === 1 ? [cx, cy] : [cx + rx * Math.cos(a), cy + ry * Math.sin(a)];
  });
  const edges = [];
  const me = n.self ? n.self.peer_id : null;
  const seenPairs = new Set();
  const edge = (a, b, cls) => {
    const k = [a, b].sort().join(" ");
    if (!at[a] || !at[b] || seenPairs.has(k)) return;
    seenPairs.add(k);
    edges.push(s("line", { class: `edge ${cls}`, x1: at[a][0], y1: at[a][1], x2: at[b][0], y2: at[b][1] }));
  };
  const states = { ...(n.heartbeat || {}) };
  n.peers.forEach((p) => (states[p.peer_id] = p.state));
  if (me) Object.keys(states).forEach((id) => edge(me, id, `mine ${states[id] === "up" ? "up" : states[id] === "down" ? "down" : "suspect"}`));
  for (const [from, seen] of Object.entries(n.links || {})) (seen || []).forEach((to) => edge(from, to, ""));
  const dots = shown.map((id) => {
    const [x, y] = at[id];
    const models = modelsOf(id);
    const down = states[id] === "down";
    return s(
      "g",
      {},
      s("title", {}, id),
      s("circle", { cx: x, cy: y, r: id === me ? 11 : 8, fill: down ? "#d0d5dd" : colour(id), stroke: "#fff", "stroke-width": 2 }),
      s("text", { class: "label", x, y: y + (y < cy ? -30 : 24), "text-anchor": "middle" }, id === me ? `${short(id)} (this node)` : short(id)),
      models.length ? s("text", { class: "label small", x, y: y + (y < cy ? -17 : 37), "text-anchor": "middle" }, models.join(", ")) : null,
    );
  });
  svg.replaceChildren(...edges, ...dots);
}

// ---- reputation and the ledger

function renderReputation() {
  const L = S.ledger;
  if (L === undefined) return;
  if (L === null) {
    fill("rep-body", empty("This node keeps no ledger (--no-ledger): every node has an equal say."));
    return;
  }
  fill("ledger-sub", `${L.entries} entries`);
  const v = L.verified;
  fill(
    "ledger-facts",
    h("span", {}, "head ", h("b", { class: "mono", title: L.head }, L.head.slice(0, 12))),
    h("span", {}, "entries ", h("b", {}, L.entries)),
    L.waiting ? h("span", {}, "waiting ", h("b", {}, L.waiting)) : null,
    h("span", {}, "rejected ", h("b", {}, L.rejected)),
    L.bootstrapping ? tag("bootstrapping: nobody has a say yet", "warn") : null,
    v ? h("span", {}, v.ok ? tag(`verifies: ${v.entries} entries`, "good") : tag(`fails: ${v.failures[0]}`, "bad"), h("span", { class: "muted" }, ` checked ${clock(v.at)}${v.head !== L.head ? ", since moved on" : ""}`)) : tag("not checked yet"),
    h("button", { type: "button", id: "verify-button", onclick: verifyNow }, "Verify now"),
  );
  drawReputationChart(L);
  fill(
    "rep-body",
    L.reputation.length
      ? h(
          "table",
          {},
          h("tr", {}, h("th", {}, "peer"), h("th", { class: "num" }, "score"), h("th", { class: "num" }, "free"), h("th", { class: "num" }, "stakes: answer / judge"), h("th", {}, "say per domain (green: earned; plain: open domain)")),
          L.reputation.map((r) =>
            h(
              "tr",
              {},
              h("td", {}, peer(r.peer_id)),
              h("td", { class: "num" }, h("b", {}, num(r.score, 2))),
              h("td", { class: "num" }, num(r.free, 2)),
              h("td", { class: "num" }, `${num(r.answer_stake, 2)} / ${num(r.judge_stake, 2)}`),
              h("td", {}, ...Object.entries(r.domains).map(([d, s]) => tag(d, s.holds ? "good" : s.say ? "" : "warn"))),
            ),
          ),
        )
      : empty("No reputation earned yet: peers earn it by passing challenges."),
  );
}

async function verifyNow() {
  const button = document.getElementById("verify-button");
  button.disabled = true;
  button.textContent = "Verifying…";
  try {
    S.ledger.verified = await api("/v1/dashboard/ledger/verify", { method: "POST" });
  } catch (err) {
    notice(`could not verify the ledger: ${err.message}`);
  }
  mark("reputation");
}

// A round step for an axis of about four steps: 1, 2, 2.5 or 5 times a power of ten.
function niceStep(top) {
  const rough = Math.max(top, 1e-9) / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  return power * [1, 2, 2.5, 5, 10].find((m) => m * power >= rough);
}

function drawReputationChart(L) {
  const svg = document.getElementById("rep-chart");
  const width = svg.clientWidth || 400;
  const height = svg.clientHeight || 180;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const at = L.series.at;
  const peers = Object.keys(L.series.values);
  const pad = { l: 34, r: 10, t: 8, b: 20 };
  if (!at.length || !peers.length) {
    svg.replaceChildren(s("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "scores appear here as the ledger moves"));
    fill("rep-legend");
    return;
  }
  const now = Date.now() / 1000;
  const t0 = Math.min(at[0], now - 60);
  let top = 0;
  peers.forEach((p) => L.series.values[p].forEach((v) => (top = Math.max(top, v || 0))));
  let step = niceStep(top * 1.05);
  if (top <= 100 && top * 1.05 > 100) step = 25; // scores stop at 100: so does the axis
  top = Math.min(Math.ceil((top * 1.05) / step) * step || step, Math.max(100, top));
  const x = (t) => pad.l + ((t - t0) / Math.max(1, now - t0)) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - (v / top) * (height - pad.t - pad.b);
  const parts = [];
  for (let v = 0; v <= top + step / 2; v += step) {
    parts.push(s("line", { class: "grid", x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v) }));
    parts.push(s("text", { x: pad.l - 5, y: y(v) + 4, "text-anchor": "end" }, Number(v.toFixed(2)).toString()));
  }
  parts.push(s("text", { x: pad.l, y: height - 4 }, `${duration(now - t0)} ago`));
  parts.push(s("text", { x: width - pad.r, y: height - 4, "text-anchor": "end" }, "now"));
  for (const p of peers) {
    // A score holds until the next sample: steps, carried on to now.
    const vals = L.series.values[p];
    let d = "";
    let last = null;
    vals.forEach((v, i) => {
      if (v === null || v === undefined) return;
      d += last === null ? `M${x(at[i]).toFixed(1)},${y(v).toFixed(1)}` : `H${x(at[i]).toFixed(1)}V${y(v).toFixed(1)}`;
      last = v;
    });
    if (last === null) continue;
    d += `H${x(now).toFixed(1)}`;
    parts.push(s("path", { d, fill: "none", stroke: colour(p), "stroke-width": 2, "data-peer": p }));
  }
  svg.replaceChildren(...parts);
  svg.dataset.last = String(at[at.length - 1]);
  fill("rep-legend", peers.map((p) => peer(p)));
}

// ---- this node

function pushSample(name, at, values) {
  const series = (S.modelSeries[name] = S.modelSeries[name] || { at: [], values: {} });
  if (series.at.length && at <= series.at[series.at.length - 1]) return; // replayed: already had it
  series.at.push(at);
  for (const key of ["waiting", "running", "tokens_per_s", "ttft_s"]) {
    const column = (series.values[key] = series.values[key] || []);
    column.push(values[key] === undefined ? null : values[key]);
  }
  if (series.at.length > MAX_POINTS) {
    series.at.splice(0, series.at.length - MAX_POINTS);
    for (const key of Object.keys(series.values)) series.values[key].splice(0, series.values[key].length - MAX_POINTS);
  }
}

function spark(label, values, colourOf, format) {
  const width = 240;
  const height = 36;
  const present = values.filter((v) => v !== null && v !== undefined);
  const last = present.length ? present[present.length - 1] : null;
  const top = Math.max(...present, 1e-9);
  let d = "";
  values.forEach((v, i) => {
    if (v === null || v === undefined) return;
    const px = (i / Math.max(1, values.length - 1)) * (width - 2) + 1;
    const py = height - 3 - (v / top) * (height - 8);
    d += `${d ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`;
  });
  const svg = s("svg", { class: "spark", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none" }, s("line", { class: "axis", x1: 0, x2: width, y1: height - 2, y2: height - 2 }));
  if (d) svg.append(s("path", { d, fill: "none", stroke: colourOf, "stroke-width": 1.6, "vector-effect": "non-scaling-stroke" }));
  return h("div", {}, h("div", { class: "spark-head" }, h("span", {}, label), h("b", {}, last === null ? "–" : format(last))), svg);
}

function renderModels() {
  const n = S.node;
  if (!n) return;
  if (!n.models.length) {
    fill("models-body", empty("This node hosts no model: it routes and forwards only."));
    return;
  }
  fill(
    "models-body",
    n.models.map((m) => {
      const v = (S.modelSeries[m.name] || { values: {} }).values;
      const queue = (v.waiting || []).map((w, i) => (w === null ? null : w + ((v.running || [])[i] || 0)));
      return h(
        "div",
        { class: "model" },
        h("div", { class: "facts" }, h("b", {}, m.name), h("span", {}, `${m.backend} · ${m.parallel} slot${m.parallel === 1 ? "" : "s"} · context ${m.context_length}`), m.state === "ready" ? tag("ready", "good") : tag(m.state, "warn")),
        h(
          "div",
          { class: "model-charts" },
          spark("queue (running + waiting)", queue, "#2563eb", (x) => String(x)),
          spark("tokens/s", v.tokens_per_s || [], "#059669", (x) => num(x)),
          spark("time to first token", v.ttft_s || [], "#d97706", (x) => ms(x * 1000)),
        ),
      );
    }),
  );
}

function renderAccel() {
  const a = S.accel;
  if (!a) return;
  const learned = a.learned || [];
  fill(
    "accel-body",
    h("div", { class: "facts" }, a.enabled ? tag("learning", "good") : tag("off (--no-accel)", ""), h("span", {}, "records ", h("b", {}, a.records)), a.enabled ? h("span", {}, "exploration ", h("b", {}, pct(a.exploration))) : null),
    learned.length
      ? h(
          "table",
          {},
          h("tr", {}, h("th", {}, "model"), h("th", {}, "task kind"), h("th", {}, "method"), h("th", { class: "num" }, "speed-up")),
          learned.map((k) =>
            h("tr", {}, h("td", {}, k.model), h("td", {}, k.kind), h("td", {}, k.method), h("td", { class: "num" }, k.expected_speedup ? `×${num(k.expected_speedup, 2)}` : "–")),
          ),
        )
      : empty("Nothing learnt yet: every request runs with the engine's defaults."),
  );
}

function renderRouting() {
  const r = S.routing;
  if (!r) return;
  if (!r.table) {
    fill("routing-body", empty("No routing table yet (run `swarm calibrate`): every model is equal and the fastest answers."));
    return;
  }
  const t = r.table;
  fill(
    "routing-body",
    h("div", { class: "facts" }, h("span", {}, "version ", h("b", { class: "mono" }, t.version.slice(0, 10))), h("span", {}, "clusters ", h("b", {}, t.clusters)), h("span", {}, "built ", h("b", {}, new Date(t.created_at * 1000).toLocaleDateString()))),
    h(
      "table",
      {},
      h("tr", {}, h("th", { class: "num" }, "cluster"), h("th", { class: "num" }, "questions"), h("th", {}, "leads it"), h("th", { class: "num" }, "right")),
      r.clusters.map((c) => h("tr", {}, h("td", { class: "num" }, c.cluster), h("td", { class: "num" }, c.questions), h("td", {}, c.leader || h("span", { class: "muted" }, "no data")), h("td", { class: "num" }, pct(c.accuracy)))),
    ),
  );
}

// ---- loading, and the live stream

async function loadNode() {
  S.node = await api("/v1/dashboard/node");
  for (const m of S.node.models) {
    const series = m.series;
    S.modelSeries[m.name] = { at: [], values: {} };
    series.at.forEach((at, i) => pushSample(m.name, at, Object.fromEntries(Object.entries(series.values).map(([k, col]) => [k, col[i]]))));
  }
  mark("header", "models");
  return S.node.cursor;
}

async function loadNetwork() {
  S.network = await api("/v1/dashboard/network");
  if (S.network.self) colour(S.network.self.peer_id);
  S.network.peers.map((p) => p.peer_id).sort().forEach(colour);
  mark("network", "header", "round", "rounds", "reputation");
  return S.network.cursor;
}

async function loadReputation() {
  const body = await api("/v1/dashboard/reputation");
  S.ledger = body.ledger;
  mark("reputation");
  return body.cursor;
}

async function loadRounds() {
  const body = await api("/v1/dashboard/rounds");
  S.rounds.clear();
  [...body.rounds].reverse().forEach(keepRound);
  const newest = body.rounds[0];
  if (newest) keepRound(await api(`/v1/dashboard/rounds/${encodeURIComponent(newest.round_id)}`));
  mark("round", "rounds");
  return body.cursor;
}

async function loadAccel() {
  S.accel = await api("/v1/accel");
  mark("accel");
}

async function loadRouting() {
  S.routing = await api("/v1/dashboard/routing");
  mark("routing");
}

async function loadAll() {
  // The network first: it gives the peers their colours, this node the first.
  const cursors = [await loadNetwork(), ...(await Promise.all([loadNode(), loadReputation(), loadRounds()]))];
  // Events since the oldest snapshot are replayed; taking one twice changes nothing.
  S.cursor = Math.min(...cursors);
  await Promise.all([loadAccel(), loadRouting()]);
}

function onEvent(kind, data) {
  if (kind === "round") onRound(data);
  else if (kind === "node") {
    for (const [name, values] of Object.entries(data.models)) pushSample(name, data.at, values);
    mark("models");
  } else if (kind === "ledger") {
    S.ledger = data;
    mark("reputation");
  } else if (kind === "verify") {
    if (S.ledger) S.ledger.verified = data;
    mark("reputation");
  }
}

async function readStream(controller) {
  const res = await fetch(`/v1/dashboard/events?after=${S.cursor}`, { headers: headers(), signal: controller.signal });
  if (res.status === 401) {
    await askForKey();
    return "again";
  }
  if (!res.ok) throw new Error(`the live stream answered ${res.status}`);
  setLive("on", "live");
  notice("");
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return "ended";
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let kind = "message";
      let data = "";
      let id = null;
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
        else if (line.startsWith("id: ")) id = Number(line.slice(4));
      }
      if (!data) continue; // a keep-alive comment
      if (id !== null) S.cursor = Math.max(S.cursor, id);
      const body = JSON.parse(data);
      if (kind === "dropped") {
        notice(`The live stream fell behind (${body.reason}): reloading the state.`);
        return "dropped";
      }
      onEvent(kind, body);
    }
  }
}

async function live() {
  let wait = 500;
  for (;;) {
    const controller = new AbortController();
    S.stream = controller;
    let outcome;
    try {
      outcome = await readStream(controller);
    } catch (err) {
      outcome = "failed";
      setLive("off", "reconnecting");
    }
    if (outcome !== "again") {
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, 10000);
      try {
        await loadAll();
        wait = 500;
      } catch (err) {
        notice(`The node does not answer: ${err.message}`);
      }
    }
  }
}

function every(seconds, load) {
  setInterval(() => load().catch((err) => notice(`The node does not answer: ${err.message}`)), seconds * 1000);
}

async function start() {
  document.getElementById("ask-form").addEventListener("submit", ask);
  document.getElementById("keyform").addEventListener("submit", keyGiven);
  document.getElementById("key-button").addEventListener("click", () => askForKey().then(() => S.stream && S.stream.abort()));
  document.getElementById("key-button").hidden = !S.key;
  document.getElementById("prov-close").addEventListener("click", () => document.getElementById("provenance").close());
  window.addEventListener("resize", () => mark("network", "reputation"));
  try {
    await loadAll();
  } catch (err) {
    notice(`The node does not answer: ${err.message}`);
  }
  live();
  every(4, loadNetwork);
  every(30, loadAccel);
  every(30, loadRouting);
  setInterval(() => mark("header", "reputation", "round"), 1000);
}

start();
