// mailbricks webmail: a single page over the JSON API (/api/...). No build
// step, no framework. The bearer token from POST /api/login lives in
// sessionStorage; new mail arrives over /api/events (Server-Sent Events).
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE = 50;

const state = {
  token: sessionStorage.getItem("mb-token") || "",
  user: sessionStorage.getItem("mb-user") || "",
  folders: [],
  folder: "INBOX",
  query: "",          // non-empty: the list shows search hits
  messages: [],       // the list, newest first
  cursor: "",         // next page, "" at the end
  loading: false,
  gen: 0,             // bumps when the list is replaced; stale pages are dropped
  pos: -1,            // keyboard cursor in the list
  open: null,         // the message shown in the reading pane
  events: null,
};

// --- API -------------------------------------------------------------------

class APIError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (state.token) opts.headers["Authorization"] = "Bearer " + state.token;
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  if (resp.status === 401 && path !== "/api/login") {
    signOut("Your session has ended: sign in again.");
    throw new APIError(401, "unauthorized", "signed out");
  }
  if (resp.status === 204) return null;
  let data = null;
  try { data = await resp.json(); } catch (e) { /* not JSON */ }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    throw new APIError(resp.status, err.code || "error", err.message || resp.statusText);
  }
  return data;
}

function withToken(url) {
  return url + (url.includes("?") ? "&" : "?") + "access_token=" + encodeURIComponent(state.token);
}

// --- helpers ---------------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function fmtAddr(a) { return a ? (a.name ? a.name + " <" + a.email + ">" : a.email) : ""; }
function fmtAddrs(l) { return (l || []).map(fmtAddr).join(", "); }
function shortFrom(m) {
  const a = (m.from || [])[0];
  return a ? (a.name || a.email) : "(no sender)";
}
function fmtDate(s) {
  if (!s) return "";
  const d = new Date(s), now = new Date();
  if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (d.getFullYear() === now.getFullYear()) return d.toLocaleDateString([], { month: "short", day: "numeric" });
  return d.toLocaleDateString();
}
function fmtSize(n) {
  if (n < 1024) return n + " B";
  if (n < 1 << 20) return (n / 1024).toFixed(1) + " KB";
  return (n / (1 << 20)).toFixed(1) + " MB";
}

let toastTimer;
function toast(msg) {
  const t = $("toast");
  t.textContent = msg;
  t.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.classList.remove("show"), 3000);
}

function report(e) {
  if (e instanceof APIError && e.status === 401) return;
  toast(e.message || String(e));
  console.error(e);
}

// --- sign in / out ---------------------------------------------------------

function showLogin(msg) {
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = msg || "";
  $("login-user").focus();
}

function signOut(msg) {
  if (state.events) { state.events.close(); state.events = null; }
  state.token = ""; state.user = "";
  sessionStorage.removeItem("mb-token");
  sessionStorage.removeItem("mb-user");
  showLogin(msg);
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    const r = await api("POST", "/api/login", { username: $("login-user").value.trim(), password: $("login-pw").value });
    state.token = r.token; state.user = r.user;
    sessionStorage.setItem("mb-token", r.token);
    sessionStorage.setItem("mb-user", r.user);
    $("login-pw").value = "";
    start();
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});

$("logout-btn").addEventListener("click", () => signOut(""));

async function start() {
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("me").textContent = state.user;
  try {
    await loadFolders();
    await showFolder(state.folder);
    connectEvents();
  } catch (e) { report(e); }
}

// --- folders ---------------------------------------------------------------

const folderOrder = ["INBOX", "Drafts", "Sent", "Archive", "Junk", "Trash"];
function folderRank(f) {
  const i = folderOrder.indexOf(f.name);
  return i < 0 ? folderOrder.length : i;
}

async function loadFolders() {
  const r = await api("GET", "/api/folders");
  state.folders = r.folders.sort((a, b) => folderRank(a) - folderRank(b) || a.name.localeCompare(b.name));
  renderFolders();
}

function renderFolders() {
  const ul = $("folder-list");
  ul.replaceChildren();
  for (const f of state.folders) {
    const a = el("a", { href: "#", "data-folder": f.name, class: (!state.query && f.name === state.folder) ? "current" : "" },
      el("span", { text: f.name === "INBOX" ? "Inbox" : f.name }),
      f.unread > 0 ? el("span", { class: "count", text: String(f.unread), "aria-label": f.unread + " unread" }) : null);
    a.addEventListener("click", (ev) => { ev.preventDefault(); $("app-view").classList.remove("show-folders"); showFolder(f.name).catch(report); });
    ul.append(el("li", {}, a));
  }
  const sel = $("move-select");
  sel.replaceChildren(el("option", { value: "", text: "—" }));
  const names = new Set(state.folders.map((f) => f.name));
  for (const n of ["Archive", "Junk"]) names.add(n);
  for (const n of names) sel.append(el("option", { value: n, text: n === "INBOX" ? "Inbox" : n }));
}

let folderTimer;
function refreshFoldersSoon() {
  clearTimeout(folderTimer);
  folderTimer = setTimeout(() => loadFolders().catch(report), 150);
}

$("menu-btn").addEventListener("click", () => $("app-view").classList.toggle("show-folders"));

// --- the message list --------------------------------------------------------

async function showFolder(name) {
  state.folder = name;
  state.query = "";
  $("search").value = "";
  $("list-title").textContent = name === "INBOX" ? "Inbox" : name;
  renderFolders();
  await resetList();
}

async function showSearch(q) {
  state.query = q;
  $("list-title").textContent = "Search: " + q;
  renderFolders();
  await resetList();
}

async function resetList() {
  state.gen++;
  state.messages = [];
  state.cursor = "";
  state.pos = -1;
  $("msg-list").replaceChildren();
  closeMessage();
  await loadMore(true);
}

async function loadMore(first) {
  if (state.loading || (!first && !state.cursor)) return;
  state.loading = true;
  const gen = state.gen;
  $("list-more").textContent = "Loading…";
  try {
    let msgs, cursor;
    const c = state.cursor ? "&cursor=" + encodeURIComponent(state.cursor) : "";
    if (state.query) {
      const r = await api("GET", "/api/search?limit=" + PAGE + "&q=" + encodeURIComponent(state.query) + c);
      msgs = r.hits; cursor = r.cursor;
      if (gen === state.gen) $("list-title").textContent = "Search: " + state.query + " — " + r.total + (r.total === 1 ? " message" : " messages");
    } else {
      const r = await api("GET", "/api/messages?limit=" + PAGE + "&folder=" + encodeURIComponent(state.folder) + c);
      msgs = r.messages; cursor = r.cursor;
    }
    if (gen !== state.gen) return;
    state.cursor = cursor || "";
    for (const m of msgs) {
      if (state.messages.some((x) => x.id === m.id)) continue;
      state.messages.push(m);
      $("msg-list").append(renderItem(m));
    }
    $("list-more").textContent = state.messages.length === 0 ? (state.query ? "No messages match." : "No messages.") : (state.cursor ? "" : "");
  } finally {
    if (gen === state.gen) state.loading = false;
    else state.loading = false;
  }
  // Fill the pane: keep loading while there is no scroll bar yet.
  const pane = $("list-pane");
  if (state.cursor && pane.scrollHeight <= pane.clientHeight + 40) await loadMore(false);
}

$("list-pane").addEventListener("scroll", () => {
  const p = $("list-pane");
  if (p.scrollTop + p.clientHeight >= p.scrollHeight - 200) loadMore(false).catch(report);
});

function renderItem(m) {
  const li = el("li", { role: "option", "data-id": m.id, tabindex: "-1", class: m.unread ? "unread" : "" },
    el("span", { class: "from", text: shortFrom(m) }),
    el("span", { class: "date", text: fmtDate(m.date || m.received) }),
    el("span", { class: "subject" }, m.has_attachments ? el("span", { class: "clip", text: "📎 ", "aria-label": "has attachments" }) : null, m.subject || "(no subject)"),
    el("span", { class: "snippet", text: m.snippet || "" }));
  li.addEventListener("click", () => openMessage(m.id).catch(report));
  return li;
}

function itemFor(id) { return $("msg-list").querySelector('li[data-id="' + CSS.escape(id) + '"]'); }

function updateItem(m) {
  const i = state.messages.findIndex((x) => x.id === m.id);
  if (i < 0) return;
  state.messages[i] = Object.assign(state.messages[i], m);
  const li = itemFor(m.id);
  if (li) li.classList.toggle("unread", !!state.messages[i].unread);
}

function removeItem(id) {
  const i = state.messages.findIndex((x) => x.id === id);
  if (i < 0) return;
  state.messages.splice(i, 1);
  const li = itemFor(id);
  if (li) li.remove();
  if (state.pos >= state.messages.length) state.pos = state.messages.length - 1;
  if (state.messages.length === 0 && !state.cursor) $("list-more").textContent = "No messages.";
}

function prependItem(m) {
  if (state.messages.some((x) => x.id === m.id)) return;
  state.messages.unshift(m);
  if (state.pos >= 0) state.pos++;
  $("msg-list").prepend(renderItem(m));
  $("list-more").textContent = "";
}

function setCursor(i) {
  if (state.messages.length === 0) return;
  i = Math.max(0, Math.min(state.messages.length - 1, i));
  const old = $("msg-list").querySelector("li.cursor");
  if (old) old.classList.remove("cursor");
  state.pos = i;
  const li = itemFor(state.messages[i].id);
  if (li) { li.classList.add("cursor"); li.scrollIntoView({ block: "nearest" }); li.focus({ preventScroll: true }); }
  if (i >= state.messages.length - 5) loadMore(false).catch(report);
}

// --- reading -------------------------------------------------------------------

async function openMessage(id) {
  const [m, body] = await Promise.all([api("GET", "/api/messages/" + id), api("GET", "/api/messages/" + id + "/body")]);
  state.open = m;
  const i = state.messages.findIndex((x) => x.id === id);
  if (i >= 0) setCursor(i);
  for (const li of $("msg-list").querySelectorAll("li.selected")) li.classList.remove("selected");
  const li = itemFor(id);
  if (li) li.classList.add("selected");

  $("msg-subject").textContent = m.subject || "(no subject)";
  const meta = $("msg-meta");
  meta.replaceChildren(...[
    el("div", { text: "From: " + fmtAddrs(m.from) }),
    el("div", { text: "To: " + fmtAddrs(m.to) }),
    m.cc && m.cc.length ? el("div", { text: "Cc: " + fmtAddrs(m.cc) }) : null,
    el("div", { text: "Date: " + new Date(m.date || m.received).toLocaleString() + " · " + fmtSize(m.size) + " · " + m.folder }),
  ].filter(Boolean));
  const atts = $("msg-attachments");
  atts.replaceChildren();
  for (const a of m.attachments || []) {
    atts.append(el("li", {}, el("a", { href: withToken(a.url), download: a.filename || "attachment", class: "attachment", text: (a.filename || "attachment") + " (" + fmtSize(a.size) + ")" })));
  }
  $("raw-link").href = withToken("/api/messages/" + id + "/raw");

  const frame = $("msg-html"), pre = $("msg-text"), remote = $("msg-remote");
  if (body.html) {
    // sandbox="" (set in index.html): no scripts, no forms, no same
    // origin. The CSP below, and the page's own, block every remote load.
    frame.srcdoc = '<!doctype html><meta charset="utf-8">' +
      '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; img-src data:; font-src data:">' +
      '<base target="_blank"><style>body{font:15px/1.45 system-ui,sans-serif;margin:0;overflow-wrap:anywhere}img{max-width:100%;height:auto}</style>' +
      body.html;
    frame.hidden = false; pre.hidden = true;
  } else {
    frame.removeAttribute("srcdoc"); frame.hidden = true;
    pre.textContent = body.text; pre.hidden = false;
  }
  remote.hidden = !body.remote_blocked;
  remote.textContent = body.remote_blocked ? "Remote content blocked (" + body.remote_blocked + ")." : "";

  $("read-pane").hidden = false;
  $("app-view").classList.add("reading");
  $("read-pane").scrollTop = 0;
  if (m.unread) {
    const r = await api("POST", "/api/messages/" + id + "/read");
    state.open = Object.assign(m, r);
    updateItem(r);
    refreshFoldersSoon();
  }
  renderReadButton();
}

function renderReadButton() {
  if (!state.open) return;
  $("toggle-read-btn").textContent = state.open.unread ? "Mark read" : "Mark unread";
}

function closeMessage() {
  state.open = null;
  $("read-pane").hidden = true;
  $("msg-html").removeAttribute("srcdoc");
  $("app-view").classList.remove("reading");
  const li = state.pos >= 0 && state.messages[state.pos] ? itemFor(state.messages[state.pos].id) : null;
  if (li) li.focus({ preventScroll: true });
}

async function setRead(read) {
  const m = state.open;
  if (!m || m.unread === !read) return;
  const r = await api("POST", "/api/messages/" + m.id + (read ? "/read" : "/unread"));
  Object.assign(m, r);
  updateItem(r);
  renderReadButton();
  refreshFoldersSoon();
  toast(read ? "Marked read" : "Marked unread");
}

async function moveOpen(folder) {
  const m = state.open;
  if (!m || !folder || folder === m.folder) return;
  await api("POST", "/api/messages/" + m.id + "/move", { folder });
  afterRemoval(m.id);
  toast("Moved to " + folder);
}

async function deleteOpen() {
  const m = state.open;
  if (!m) return;
  await api("DELETE", "/api/messages/" + m.id);
  afterRemoval(m.id);
  toast(m.folder === "Trash" ? "Deleted for good" : "Moved to Trash");
}

function afterRemoval(id) {
  const i = state.messages.findIndex((x) => x.id === id);
  if (!state.query) removeItem(id);
  closeMessage();
  refreshFoldersSoon();
  if (state.messages.length) setCursor(Math.min(i < 0 ? 0 : i, state.messages.length - 1));
}

$("back-btn").addEventListener("click", closeMessage);
$("toggle-read-btn").addEventListener("click", () => state.open && setRead(state.open.unread).catch(report));
$("archive-btn").addEventListener("click", () => moveOpen("Archive").catch(report));
$("delete-btn").addEventListener("click", () => deleteOpen().catch(report));
$("move-select").addEventListener("change", (ev) => {
  const f = ev.target.value;
  ev.target.value = "";
  moveOpen(f).catch(report);
});

// --- search ---------------------------------------------------------------------

$("search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = $("search").value.trim();
  (q ? showSearch(q) : showFolder(state.folder)).catch(report);
  $("msg-list").focus();
});

// --- compose -------------------------------------------------------------------

function splitAddrs(s) { return s.split(/[,;]/).map((x) => x.trim()).filter(Boolean); }

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).replace(/^data:[^,]*,/, ""));
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}

function openCompose() {
  $("compose-form").reset();
  $("compose-error").textContent = "";
  $("compose").showModal();
  $("c-to").focus();
}

$("compose-btn").addEventListener("click", openCompose);
$("c-cancel").addEventListener("click", () => $("compose").close());

$("compose-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const btn = $("c-send");
  btn.disabled = true;
  $("compose-error").textContent = "";
  try {
    const attachments = [];
    for (const f of $("c-files").files) {
      attachments.push({ filename: f.name, content_type: f.type || "application/octet-stream", content: await readBase64(f) });
    }
    const req = { to: splitAddrs($("c-to").value), cc: splitAddrs($("c-cc").value), subject: $("c-subject").value, text: $("c-text").value };
    if (attachments.length) req.attachments = attachments;
    await api("POST", "/api/send", req);
    $("compose").close();
    toast("Sent");
    refreshFoldersSoon();
  } catch (e) {
    $("compose-error").textContent = e.message;
  } finally {
    btn.disabled = false;
  }
});

// --- live events -------------------------------------------------------------

function connectEvents() {
  if (state.events) state.events.close();
  const es = new EventSource(withToken("/api/events"));
  state.events = es;
  es.addEventListener("append", (ev) => {
    const e = JSON.parse(ev.data);
    if (e.message && !state.query && e.folder === state.folder) {
      prependItem(e.message);
      if (e.message.unread && e.folder === "INBOX") toast("New mail: " + (e.message.subject || "(no subject)"));
    }
    refreshFoldersSoon();
  });
  es.addEventListener("flags", (ev) => {
    const e = JSON.parse(ev.data);
    const unread = !(e.flags || []).includes("\\Seen");
    updateItem({ id: e.id, unread, flags: e.flags || [] });
    if (state.open && state.open.id === e.id) { state.open.unread = unread; renderReadButton(); }
    refreshFoldersSoon();
  });
  es.addEventListener("expunge", (ev) => {
    const e = JSON.parse(ev.data);
    if (!state.query && e.folder === state.folder) removeItem(e.id);
    refreshFoldersSoon();
  });
  es.addEventListener("folder", refreshFoldersSoon);
  es.addEventListener("overflow", () => { refreshFoldersSoon(); resetList().catch(report); });
  es.addEventListener("ready", () => document.body.setAttribute("data-live", "1"));
  es.onerror = () => {
    // EventSource reconnects by itself; on a dead token sign out.
    if (es.readyState === EventSource.CLOSED) {
      api("GET", "/api/me").then(() => setTimeout(connectEvents, 2000)).catch(() => {});
    }
  };
}

// --- keyboard --------------------------------------------------------------------

document.addEventListener("keydown", (ev) => {
  if ($("app-view").hidden || $("compose").open) return;
  const t = ev.target;
  const typing = t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement;
  if (ev.key === "Escape") {
    if (typing) { t.blur(); return; }
    closeMessage();
    return;
  }
  if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const act = {
    "j": () => setCursor(state.pos + 1),
    "ArrowDown": () => setCursor(state.pos + 1),
    "k": () => setCursor(state.pos - 1),
    "ArrowUp": () => setCursor(state.pos - 1),
    "o": () => state.messages[state.pos] && openMessage(state.messages[state.pos].id).catch(report),
    "Enter": () => state.messages[state.pos] && openMessage(state.messages[state.pos].id).catch(report),
    "u": closeMessage,
    "/": () => $("search").focus(),
    "c": openCompose,
    "e": () => moveOpen("Archive").catch(report),
    "#": () => deleteOpen().catch(report),
    "U": () => setRead(false).catch(report),
    "I": () => setRead(true).catch(report),
  }[ev.key];
  if (!act) return;
  if (ev.key === "Enter" && (t instanceof HTMLButtonElement || t instanceof HTMLAnchorElement)) return;
  ev.preventDefault();
  act();
});

// --- boot --------------------------------------------------------------------------

if (state.token) start(); else showLogin("");
