// ulb's web status page: renders /api/status, refreshes it on every event of /events
// (and every few seconds, for the connection counters), and, once logged in, sends the
// offline / online / drain actions with the CSRF token of /api/session.
"use strict";

const POLL_MS = 5000;     // counters change without events
const MAX_EVENTS = 30;    // events kept in the list
const ACTIONS = [
  ["offline", "Offline", "take the server out of rotation: no new flows (disable-server)"],
  ["online", "Online", "put the server back in rotation (enable-server)"],
  ["drain", "Drain", "no new flows, existing ones finish (drain-server)"],
];

let session = { auth: false };
let loading = null;
let again = false;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function showError(msg) {
  const p = document.getElementById("error");
  p.textContent = msg || "";
  p.hidden = !msg;
}

function age(t) {
  if (!t) return "";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(t)) / 1000));
  return s < 60 ? s + "s ago" : Math.round(s / 60) + "m ago";
}

function rtt(us) {
  if (!us) return "";
  return us < 1000 ? us + " µs" : (us / 1000).toFixed(1) + " ms";
}

async function loadSession() {
  try {
    const r = await fetch("/api/session", { cache: "no-store" });
    if (r.ok) session = await r.json();
    else session = { auth: true };
  } catch (e) {
    session = { auth: false };
  }
  document.getElementById("who").textContent = session.user ? "logged in as " + session.user : (session.auth ? "read-only until you log in" : "read-only");
  document.getElementById("login").hidden = !session.auth || !!session.user;
  document.body.dataset.user = session.user || "";
}

// refresh loads /api/status and renders it; calls while one is under way make one more
// afterwards, so that the last event is always reflected.
async function refresh() {
  if (loading) { again = true; return loading; }
  loading = (async () => {
    do {
      again = false;
      try {
        const r = await fetch("/api/status", { cache: "no-store" });
        if (!r.ok) throw new Error("/api/status: " + r.status);
        render(await r.json());
        showError("");
      } catch (e) {
        showError("cannot read the status: " + e.message);
      }
    } while (again);
    loading = null;
  })();
  return loading;
}

function render(st) {
  document.getElementById("host").textContent = st.hostname || "ulb";
  document.title = (st.hostname || "ulb") + " · System Overview";
  const rules = document.getElementById("rules");
  rules.replaceChildren();
  if (st.rules.length === 0) rules.append(el("p", { class: "muted", text: "No rules." }));
  for (const r of st.rules) rules.append(renderRule(r));
  const tb = document.querySelector("#routers tbody");
  tb.replaceChildren();
  if (st.routers.length === 0) tb.append(el("tr", {}, el("td", { colspan: 7, class: "muted", text: "No VRRP instances." })));
  for (const v of st.routers) {
    const prio = v.effective_priority === v.priority ? String(v.priority) : v.effective_priority + " (configured " + v.priority + ")";
    tb.append(el("tr", { id: "router-" + v.name, "data-state": v.state },
      el("td", { text: v.name }), el("td", { text: v.vrid }), el("td", { text: v.port }),
      el("td", { class: "state " + v.state, text: v.state + (v.fault ? " (" + v.fault + ")" : "") }),
      el("td", { class: "num", text: prio }), el("td", { class: "addr", text: v.master || "" }),
      el("td", { class: "addr", text: (v.addresses || []).join(", ") })));
  }
  const n = Number(document.body.dataset.renders || 0) + 1;
  document.body.dataset.renders = n;
  document.getElementById("updated").textContent = "updated " + new Date(st.time).toLocaleTimeString();
}

function renderRule(r) {
  const vip = (r.vip.includes(":") ? "[" + r.vip + "]" : r.vip) + ":" + r.ports + "/" + r.protocol;
  const head = el("div", { class: "head" },
    el("span", { class: "name", text: r.name }),
    el("span", { class: "vip", text: vip }),
    el("span", { text: r.algorithm + ", " + r.topology + (r.enabled ? "" : ", disabled") }),
    el("span", { class: "summary", text: r.summary }),
    el("span", { class: "conns", text: "connections: " + r.conns_active + " active, " + r.conns_total + " total" }));
  const table = el("table", {},
    el("thead", {}, el("tr", {},
      el("th", { text: "Server" }), el("th", { text: "State" }), el("th", { text: "Weight" }),
      el("th", { text: "Last check" }), el("th", { text: "Active" }), el("th", { text: "Total" }),
      session.user ? el("th", { text: "Actions" }) : null)));
  const tb = el("tbody");
  for (const s of r.servers) tb.append(renderServer(r, s));
  table.append(tb);
  return el("div", { class: "rule " + r.colour, id: "rule-" + r.name, "data-colour": r.colour }, head, table);
}

function renderServer(r, s) {
  const weight = s.effective_weight === s.weight ? String(s.weight) : s.effective_weight + " / " + s.weight;
  let check = "";
  if (s.check) {
    check = s.check + ": " + (s.last_result || "not yet");
    if (s.last_result === "ok" && s.rtt_us) check += " (" + rtt(s.rtt_us) + ")";
    if (s.last_check) check += ", " + age(s.last_check);
  }
  const row = el("tr", { class: s.colour, "data-rule": r.name, "data-server": s.endpoint, "data-health": s.health, "data-admin": s.admin },
    el("td", { class: "addr", text: s.endpoint }),
    el("td", { class: "state", text: s.health + " · " + s.admin }),
    el("td", { class: "num", text: weight }),
    el("td", { class: "check", text: check }),
    el("td", { class: "num", text: s.conns_active }),
    el("td", { class: "num", text: s.conns_total }));
  if (session.user) {
    const td = el("td", { class: "actions" });
    for (const [action, label, title] of ACTIONS) {
      const current = (action === "offline" && s.admin === "disabled") || (action === "online" && s.admin === "enabled") || (action === "drain" && s.admin === "draining");
      td.append(el("button", { type: "button", "data-action": action, title: title, disabled: current,
        onclick: () => act(action, r.name, s.endpoint) }, label));
    }
    row.append(td);
  }
  return row;
}

async function act(action, rule, server) {
  try {
    const r = await fetch("/api/server/" + action, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-ULB-CSRF": session.csrf || "" },
      body: JSON.stringify({ rule: rule, server: server }),
    });
    if (!r.ok) {
      let msg = r.status + " " + r.statusText;
      try { msg = (await r.json()).error || msg; } catch (e) { }
      showError(action + " " + server + ": " + msg);
      if (r.status === 401 || r.status === 403) await loadSession();
    }
  } catch (e) {
    showError(action + " " + server + ": " + e.message);
  }
  await refresh();
}

function addEvent(ev) {
  const list = document.getElementById("events");
  let text = new Date(ev.time).toLocaleTimeString() + " " + ev.kind;
  if (ev.kind === "lost") text += ": " + ev.missed + " events missed";
  else {
    if (ev.name) text += " " + ev.name;
    if (ev.from || ev.to) text += ": " + (ev.from || "-") + " → " + (ev.to || "-");
    if (ev.reason) text += " (" + ev.reason + ")";
    if (ev.master) text += " master " + ev.master;
  }
  list.prepend(el("li", { class: "event " + ev.kind, text: text }));
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
}

function listen() {
  const live = document.getElementById("live");
  const es = new EventSource("/events");
  es.onopen = () => { live.textContent = "live"; live.className = "live on"; refresh(); };
  es.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
  es.onmessage = (m) => {
    try { addEvent(JSON.parse(m.data)); } catch (e) { }
    refresh();
  };
}

async function main() {
  await loadSession();
  await refresh();
  listen();
  setInterval(refresh, POLL_MS);
}

main();
