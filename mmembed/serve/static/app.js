// mmembed's page: search as you type, search by image, filters, a grid with infinite scroll,
// a detail view, keyboard navigation, and the query in the URL. Every string from the server
// is written with textContent or as an attribute value, never as HTML.
"use strict";

const PAGE = 50;
const DEBOUNCE_MS = 250;
const FIELDS = ["q", "target", "mode", "image_weight", "not", "cutoff", "folder", "format", "date_field", "date_from", "date_to", "where"];

const $ = (id) => document.getElementById(id);
const state = {
  info: null, hits: [], offset: 0, more: false, loading: false, seq: 0,
  retry: new Set(), retryTimer: 0, detailOffline: null, statsShown: "",
  uploads: new Map(), uploadCount: 0, detailIndex: -1, lastParams: "", tags: [],
  settled: true,  // the query on screen is a finished one: the next typing adds a history entry
  composing: false,  // an IME composition is under way: no search until it ends
  shownKey: null,  // the search the grid shows (its URL less the open photo), for a Back that only closes a photo
};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, String(v));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

// ---------------------------------------------------------------- URL state
function readForm() {
  const params = new URLSearchParams();
  for (const name of FIELDS) {
    const input = $(name);
    const value = input.value.trim();
    if (!value) continue;
    if (name === "image_weight" && (value === "0.5" || !hasImage())) continue;
    if (name === "date_field" && value === "taken") continue;
    params.set(name, value);
  }
  for (const input of document.querySelectorAll("[data-column]")) {
    if (input.value.trim()) params.set("col." + input.dataset.column, input.value.trim());
  }
  for (const tag of state.tags) params.append("tag", tag);
  const url = new URLSearchParams(location.search);
  if (url.get("like") && !state.dropLike) params.set("like", url.get("like"));
  if (state.upload) params.set("upload", state.upload.key);
  if (window.mmWhere) window.mmWhere.addParams(params);  // where.js: near, taken_after, sort...
  return params;
}

function hasImage() {
  return Boolean(state.upload) || Boolean(new URLSearchParams(location.search).get("like"));
}

// A field is written only where it says something else than the URL: what the user typed (its
// spaces included) stays as typed; the trimmed value goes to the URL and the request only.
function setField(input, value) {
  if (input.value === value || (input.type !== "select-one" && input.value.trim() === value)) return;
  input.value = value;
}

function writeForm(params) {
  for (const name of FIELDS) {
    setField($(name), params.get(name) || (name === "image_weight" ? "0.5" : name === "date_field" ? "taken" : ""));
  }
  for (const input of document.querySelectorAll("[data-column]")) {
    setField(input, params.get("col." + input.dataset.column) || "");
  }
  $("weight-out").textContent = $("image_weight").value;
  state.tags = params.getAll("tag");
  for (const chip of $("chips").children) chip.setAttribute("aria-pressed", String(state.tags.includes(chip.dataset.tag)));
  const key = params.get("upload");
  state.upload = key ? state.uploads.get(key) || null : null;
  state.lostUpload = Boolean(key && !state.upload);  // a reload forgets dropped images
}

function commit({ push = true } = {}) {
  const params = readForm();
  state.dropLike = false;
  const query = params.toString();
  if (query !== location.search.replace(/^\?/, "")) {
    const url = query ? "?" + query : location.pathname;
    if (push) history.pushState(null, "", url); else history.replaceState(null, "", url);
  }
  state.settled = push || state.settled;
  run({ toTop: true });
}

// A search while typing (the box or a text field of the panel, after a pause): one history entry
// per query, not one per pause. The first pause after a finished query (Enter, leaving the field,
// a chip, a photo opened, Back) adds an entry; later pauses replace it, unless the words were
// replaced by others (neither begins the other) rather than typed on or corrected at the end.
function commitTyped() {
  if (state.composing) return;  // an IME: the syllables are not words yet
  const before = new URLSearchParams(location.search).get("q") || "";
  const now = readForm().get("q") || "";
  // an emptied box is not the old query corrected: what is typed next is another query
  const other = (before !== "" && now === "") || !(now.startsWith(before) || before.startsWith(now));
  const push = state.settled || other;
  commit({ push });
  state.settled = false;
}

// The pause after typing: one timer for the box and the panel's text fields.
const typing = {
  timer: 0,
  schedule(ms) { clearTimeout(this.timer); this.timer = setTimeout(() => { this.timer = 0; commitTyped(); }, ms); },
  cancel() { clearTimeout(this.timer); this.timer = 0; },
  flush() { if (this.timer) { this.cancel(); commitTyped(); } },
};

// The query typed is finished (the field left): a pending search runs now, the next typing
// starts a new history entry.
function settle() {
  if (state.composing) return;
  typing.flush();
  state.settled = true;
}

// Enter: the query as it stands, searched now (again, if it already was).
function finishQuery() {
  if (state.composing) return;
  typing.cancel();
  commitTyped();
  state.settled = true;
}

// ---------------------------------------------------------------- searching
// What the API reads (app.py SEARCH_PARAMS and BROWSE_PARAMS): anything else in the address (utm_source=..., say) stays out of
// the request, which the API would refuse by name.
const API_KEYS = new Set([...FIELDS, "like", "tag", "near", "radius", "taken_after", "taken_before", "sort", "literal"]);

function searchUrl(params, offset) {
  const p = new URLSearchParams();
  for (const [k, v] of new URLSearchParams(params)) if (API_KEYS.has(k) || k.startsWith("col.")) p.append(k, v);
  p.set("n", PAGE);
  if (offset) p.set("offset", offset);
  return p;
}

const OFFLINE = "The server does not answer; is mmembed serve still running?";

// fetch, and the answer's JSON: a server that cannot be reached is said so in words (the results
// on screen stay), not as the browser's "Failed to fetch".
async function getJson(url, init) {
  let r;
  try {
    r = await fetch(url, init);
  } catch (err) {
    const offline = new Error(OFFLINE);
    offline.offline = true;
    throw offline;
  }
  let data;
  try { data = await r.json(); } catch (err) { data = { error: `the server answered ${r.status} ${r.statusText}`.trim() }; }
  return { r, data };
}

// The search a URL asks for, less the photo open over it: a Back or Forward that only opens or
// closes a photo does not search again.
function searchKey(params) {
  const p = new URLSearchParams(params);
  p.delete("item");
  p.sort();
  return p.toString();
}

async function fetchPage(params, offset) {
  const upload = state.upload;
  const hasQuery = params.get("q") || params.get("like") || upload;
  if (!hasQuery) {
    const p = searchUrl(params, offset);
    for (const k of ["q", "target", "mode", "image_weight", "not", "like", "cutoff"]) p.delete(k);
    const { r, data } = await getJson("/api/items?" + p);
    if (!r.ok) throw new Error(data.error || r.statusText);
    return { hits: data.items, more: data.more, where: data.where, took: data.took_ms, browse: true, total: data.total };
  }
  const init = upload ? { method: "POST", body: upload.blob, headers: { "Content-Type": upload.blob.type || "application/octet-stream" } } : {};
  const { r, data } = await getJson("/api/search?" + searchUrl(params, offset), init);
  if (!r.ok) throw new Error(data.error || r.statusText);
  return { hits: data.hits, more: data.more, where: data.where, took: data.took_ms, target: data.target, parsed: data.parsed, note: data.note };
}

async function run({ toTop = false } = {}) {
  const params = new URLSearchParams(location.search);
  writeForm(params);
  showViewLink(params.get("view") === "dupes");
  document.body.classList.toggle("dupes-view", params.get("view") === "dupes");  // no place/date chips or lists there
  if (params.get("view") === "dupes") return runDupes();
  renderQueryImage(params);
  const seq = ++state.seq;
  state.loading = true;
  document.body.dataset.state = "loading";  // "ready" or "error" when this search is drawn
  hideMessage();
  if (state.lostUpload) {
    showMessage(params.get("q")
      ? "The image of this search is no longer in memory (a reload forgets it): these results are for the words alone. Drop the image again to search with both."
      : "The image of this search is no longer in memory (a reload forgets it); drop it again.");
  }
  $("stats").textContent = "searching…";
  try {
    const page = await fetchPage(params, 0);
    if (seq !== state.seq) return;
    state.hits = page.hits;
    state.offset = page.hits.length;
    state.more = page.more;
    state.browse = page.browse;
    state.shownKey = searchKey(params);
    renderGrid(true);
    if (window.mmWhere) window.mmWhere.show(page.parsed);  // where.js: the place/date chips
    $("stats").textContent = page.browse
      ? `${page.total.toLocaleString()} photos`
      : `${resultCount(state.hits.length, state.more)} · ${page.took} ms`;
    state.statsShown = $("stats").textContent;
    $("applied-where").textContent = page.where ? "where " + page.where : "";
    if (toTop) window.scrollTo(0, 0);  // a new query starts at its first results
    if (state.retry.size) serverBack();
    if (!state.hits.length) showEnd(page.browse ? "No photos match these filters." : nothingFound(page.note));
    document.body.dataset.state = "ready";
  } catch (err) {
    if (seq !== state.seq) return;
    if (err.offline) {  // the last results stay on screen, and say so
      showMessage(OFFLINE + (state.hits.length ? " The photos below are from the last search that reached it." : ""));
      $("stats").textContent = state.hits.length ? state.statsShown : "";
    } else {
      state.hits = []; state.more = false; state.shownKey = null;
      renderGrid(true);
      $("stats").textContent = "";
      $("applied-where").textContent = "";  // the filter that failed is not applied; the previous one neither
      showMessage(err.message);
    }
    document.body.dataset.state = "error";
  } finally {
    if (seq === state.seq) state.loading = false;
  }
  syncDetail();
}

function resultCount(n, more) {  // 1 result, 2 results, 50+ results
  return `${n}${more ? "+" : ""} result${n === 1 && !more ? "" : "s"}`;
}

function inDupes() { return new URLSearchParams(location.search).get("view") === "dupes"; }

async function loadMore() {
  if (state.loading || !state.more || inDupes()) return;
  const seq = state.seq;
  state.loading = true;
  try {
    const page = await fetchPage(new URLSearchParams(location.search), state.offset);
    if (seq !== state.seq || inDupes()) return;
    const start = state.hits.length;
    state.hits.push(...page.hits);
    state.offset += page.hits.length;
    state.more = page.more && page.hits.length > 0;
    renderGrid(false, start);
    if (!state.browse) $("stats").textContent = $("stats").textContent.replace(/^\d+\+? results?/, resultCount(state.hits.length, state.more));
  } catch (err) {
    if (seq !== state.seq) return;
    showMessage(err.message);
    if (!err.offline) state.more = false;  // a server back again: scrolling asks once more
  } finally {
    if (seq === state.seq) state.loading = false;
  }
}

// ---------------------------------------------------------------- duplicates
async function runDupes() {
  const seq = ++state.seq;
  // the photo list's paging stops here: nothing of it is appended to (or stepped into from) the groups
  state.hits = []; state.more = false; state.browse = false; state.loading = true;
  document.body.dataset.state = "loading";
  hideMessage();
  $("stats").textContent = "finding duplicates…";
  $("grid").replaceChildren();
  state.shownKey = null;
  $("end").hidden = true;
  try {
    let r, data;
    for (;;) {  // 202 while the server searches in the background: show how far it got, ask again
      ({ r, data } = await getJson("/api/duplicates?mode=near", { cache: "no-store" }));
      if (seq !== state.seq) return;
      if (r.status !== 202) break;
      $("stats").textContent = data.total ? `finding duplicates… ${data.percent}%` : "finding duplicates…";
      await new Promise((done) => setTimeout(done, 500));
      if (seq !== state.seq) return;
    }
    if (!r.ok) throw new Error(data.error || r.statusText);
    state.hits = []; state.more = false; state.browse = false;
    state.shownKey = searchKey(new URLSearchParams(location.search));
    const grid = $("grid");
    let extra = 0;
    for (const group of data.groups) {
      grid.append(el("h2", { class: "group", text: `${group.kind} · ${group.files.length} photos · cosine ≥ ${group.score.toFixed(3)}` }));
      for (const file of group.files) {
        state.hits.push(file);
        grid.append(card(file, state.hits.length - 1));
      }
      extra += group.files.length - 1;
    }
    const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
    $("stats").textContent = `${plural(data.groups.length, "group")} · ${plural(extra, "photo")} besides the keepers`;
    if (!data.groups.length) showEnd("No duplicates found.");
    document.body.dataset.state = "ready";
  } catch (err) {
    if (seq !== state.seq) return;
    $("stats").textContent = "";
    showMessage(err.message);
    document.body.dataset.state = "error";
  } finally {
    if (seq === state.seq) state.loading = false;
  }
  syncDetail();
}

function fillChips(tags) {
  const chips = $("chips");
  chips.replaceChildren();
  for (const t of tags) {
    const chip = el("button", { type: "button", class: "chip", "data-tag": t.name, "aria-pressed": String(state.tags.includes(t.name)), title: `${t.count} photo${t.count === 1 ? "" : "s"}` }, document.createTextNode(t.name));
    chip.addEventListener("click", () => {
      state.tags = state.tags.includes(t.name) ? state.tags.filter((x) => x !== t.name) : [...state.tags, t.name];
      commit();
    });
    chips.append(chip);
  }
  chips.hidden = !tags.length;
}

// ---------------------------------------------------------------- rendering
function fmt(x) { return typeof x === "number" ? x.toFixed(3) : "–"; }

function card(hit, index) {
  const why = [];  // why it matched: both parts, where the item has words (else the score says it all)
  if (typeof hit.text_score === "number" && typeof hit.image_score === "number") {
    why.push("image " + fmt(hit.image_score), "text " + fmt(hit.text_score));
  }
  why.push(...wordsScoreParts(hit));  // words.js
  const name = hit.path.split("/").pop();
  const badge = hit.keep === true ? el("span", { class: "badge", text: "keep" }) : null;
  const video = hit.media === "video";
  const thumb = el("img", { src: "/thumbs/" + encodeURIComponent(hit.id), alt: hit.text || name, loading: "lazy", decoding: "async" });
  thumb.addEventListener("error", () => thumbFailed(thumb, hit.id));
  const figure = el("figure", { class: "card", role: "listitem", tabindex: 0, "data-id": hit.id, "data-path": hit.path, "data-index": index, "data-media": hit.media || "image", title: shown(hit.path) },
    el("div", { class: "thumb" },
      thumb,
      video ? el("span", { class: "play", text: "▶ " + clock(hit.frame_time || 0) + (hit.duration ? " / " + clock(hit.duration) : "") }) : null),
    el("figcaption", {},
      hit.score !== undefined && hit.target !== "filter" ? el("span", { class: "score", text: fmt(hit.score) }) : badge,  // a place/time listing has no score
      el("span", { class: "caption", text: hit.text || name }),
      why.length ? el("span", { class: "why", text: why.join(" · ") }) : null,
      wordsSnippet(hit)));
  figure.addEventListener("click", () => openDetail(index));
  return figure;
}

// "Nothing found." and the server's reason ("nothing matched: no row passes tag=beach ..."), in words.
function nothingFound(note) {
  const why = (note || "").replace(/^nothing matched:?\s*/, "");
  return why ? "Nothing found: " + why + "." : "Nothing found.";
}

// A thumbnail that did not load: the file gone (the server says 410, or refuses it otherwise) is
// said in words; a server that did not answer is no reason to give up on it: it is asked again
// when the server answers (the next search, or the next time it is reached).
async function thumbFailed(thumb, id) {
  if (!thumb.isConnected || thumb.dataset.probing) return;
  thumb.dataset.probing = "1";
  let status = 0;
  try { status = (await fetch("/thumbs/" + encodeURIComponent(id), { cache: "no-store" })).status; } catch (err) { status = 0; }
  delete thumb.dataset.probing;
  // refused, or served and still not shown once asked again (a file the browser cannot draw): said so
  if (status >= 400 || (status && thumb.dataset.retried)) { if (thumb.isConnected) thumb.replaceWith(el("p", { class: "gone", text: GONE })); return; }
  if (status) thumb.dataset.retried = "1";
  state.retry.add(thumb);
  watchServer();
}

// While something waits for the server (a thumbnail, the photo open), it is asked every few seconds.
function watchServer() {
  if (state.retryTimer) return;
  state.retryTimer = setInterval(async () => {
    try { if (!(await fetch("/api/info", { cache: "no-store" })).ok) return; } catch (err) { return; }
    serverBack();
  }, 3000);
}

// The server answers (again): what waited for it is asked once more.
function serverBack() {
  clearInterval(state.retryTimer); state.retryTimer = 0;
  const thumbs = [...state.retry];
  state.retry.clear();
  for (const img of thumbs) {
    if (!img.isConnected) continue;
    const src = img.getAttribute("src");
    img.removeAttribute("src");
    img.src = src;
  }
  const hit = state.detailOffline;
  state.detailOffline = null;
  if (hit && state.detailHit === hit && !$("detail").hidden) loadLarge(hit);
}

// What a failed photo or video load means: the file gone (HTTP 410, or another refusal) or the
// server not answering (the request itself failed).
async function whyFailed(hit) {
  try {
    const r = await fetch("/media/" + encodeURIComponent(hit.id), { cache: "no-store" });
    if (r.ok) return { offline: false, gone: false };
    let reason;
    try { reason = (await r.json()).error; } catch (err) { reason = undefined; }
    return { gone: true, reason };
  } catch (err) {
    return { offline: true };
  }
}

async function detailFailed(hit) {
  const why = await whyFailed(hit);
  if (state.detailHit !== hit) return;
  if (why.gone) { showGone(hit, why.reason); return; }
  if (why.offline) {  // said as such, the actions stay: the photo is asked for again when the server answers
    $("detail-gone").textContent = OFFLINE;
    $("detail-gone").hidden = false;
    state.detailOffline = hit;
    watchServer();
  }
}

const GONE = "This photo cannot be shown: its file changed, moved or cannot be read since it was indexed.";

// The detail view of a photo the server will not show (its file changed, went, or cannot be read):
// the server's own reason in place of a broken picture.
// "More like this" and "Open original" are turned off, with the reason said once, in words: the
// path is in the details already.
async function showGone(hit, reason) {
  if (state.detailHit !== hit || state.detailGone === hit) return;
  state.detailGone = hit;
  setActions(false);
  if (!reason) {
    try {
      const r = await fetch("/media/" + encodeURIComponent(hit.id));
      if (!r.ok) reason = (await r.json()).error;
    } catch (e) { /* the generic words */ }
  }
  if (state.detailHit !== hit) return;
  $("detail-image").hidden = true;
  $("detail-video").hidden = true;
  $("detail-gone").textContent = goneWords(hit, reason);
  $("detail-gone").hidden = false;
  $("strip").replaceChildren();
  $("strip-heading").hidden = true;  // nothing to compare: no "Similar" with an error in it
}

// The server's reason ("/home/x/a.jpg: the file is gone since it was indexed (moved or deleted?)")
// without the path, in a sentence.
function goneWords(hit, reason) {
  const why = withoutPath(hit, reason);
  if (!why || why.includes("/")) return GONE + " It cannot be opened or compared with others; run mmembed ingest again to update the library.";
  return "This photo cannot be shown, opened or compared with others: " + why.replace(/\.$/, "") + ".";
}

function withoutPath(hit, reason) {
  let why = String(reason || "").trim();
  for (const prefix of [hit.path + ": ", shown(hit.path) + ": "]) if (why.startsWith(prefix)) why = why.slice(prefix.length);
  return why;
}

function setActions(on) {
  $("more-like").disabled = !on;
  const link = $("open-original");
  if (on) { link.removeAttribute("aria-disabled"); link.removeAttribute("tabindex"); }
  else { link.removeAttribute("href"); link.setAttribute("aria-disabled", "true"); }
}

function clock(seconds) {  // 6.5 -> "0:06"; 3725 -> "1:02:05"
  const s = Math.floor(seconds), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, r = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${r}` : `${m}:${r}`;
}

function renderGrid(replace, start = 0) {
  const grid = $("grid");
  if (replace) { grid.replaceChildren(); $("end").hidden = true; }
  const fragment = document.createDocumentFragment();
  for (let i = start; i < state.hits.length; i++) fragment.append(card(state.hits[i], i));
  grid.append(fragment);
  if (!state.more && state.hits.length) showEnd(state.hits.length >= 2000 ? "That is as far as results go; refine the query." : "");
}

// The header's link: to the Duplicates, or (there) back to all photos.
function showViewLink(dupes) {
  const link = $("dupes-link");
  link.textContent = dupes ? "← All photos" : "Duplicates";
  link.href = dupes ? location.pathname : "?view=dupes";
  link.title = dupes ? "Back to all photos" : "Groups of duplicate photos";
}

// A horizontal swipe on the photo steps to the previous or next result (a phone has no arrow keys).
function listenSwipe(detail) {
  let from = null;
  detail.addEventListener("touchstart", (e) => {  // on the photo (or the ‹ › over it)
    const onPhoto = e.target instanceof Element && e.target.closest(".stage, .nav");
    from = onPhoto && e.touches.length === 1 ? { x: e.touches[0].clientX, y: e.touches[0].clientY, t: Date.now() } : null;
  }, { passive: true });
  detail.addEventListener("touchcancel", () => { from = null; }, { passive: true });
  detail.addEventListener("touchend", (e) => {
    if (!from || e.changedTouches.length !== 1) return;
    const dx = e.changedTouches[0].clientX - from.x, dy = e.changedTouches[0].clientY - from.y;
    const quick = Date.now() - from.t < 1000;
    from = null;
    if (quick && Math.abs(dx) >= 50 && Math.abs(dx) > 1.5 * Math.abs(dy)) step(dx < 0 ? 1 : -1);
  }, { passive: true });
}

function showEnd(text) { $("end").textContent = text; $("end").hidden = !text; }
function showMessage(text) { $("message").textContent = text; $("message").hidden = false; }
function hideMessage() { $("message").hidden = true; }

function renderQueryImage(params) {
  const like = params.get("like");
  const chip = $("query-image");
  if (state.upload) {
    $("query-image-thumb").src = state.upload.url;
    $("query-image-label").textContent = state.upload.name;
  } else if (like) {
    $("query-image-thumb").src = "/thumbs/" + encodeURIComponent(like);
    $("query-image-label").textContent = "more like this";
  }
  chip.hidden = !(state.upload || like);
  $("weight-label").classList.toggle("dim", chip.hidden);
}

// ---------------------------------------------------------------- detail view
function openDetail(index, { push = true } = {}) {
  const hit = state.hits[index];
  if (hit) openItem(hit, index, { push });
}

// The photo view is a modal dialog: the page behind it is inert while it is open (no focus, no
// clicks), and Tab cycles through the view's own controls.
function setModal(open) {
  for (const node of document.body.children) {
    if (node === $("detail") || node.tagName === "SCRIPT") continue;
    if (open) node.setAttribute("inert", ""); else node.removeAttribute("inert");
  }
  document.body.classList.toggle("noscroll", open);
}

function focusables() {
  return [...$("detail").querySelectorAll("button, a[href], [tabindex], video[controls], input, select, textarea")]
    .filter((n) => !n.disabled && n.tabIndex >= 0 && n.getClientRects().length && getComputedStyle(n).visibility !== "hidden");
}

function trapTab(e) {
  const list = focusables();
  if (!list.length) { e.preventDefault(); return; }
  const first = list[0], last = list[list.length - 1], active = document.activeElement;
  if (!$("detail").contains(active)) { e.preventDefault(); (e.shiftKey ? last : first).focus(); }
  else if (e.shiftKey && active === first) { e.preventDefault(); last.focus(); }
  else if (!e.shiftKey && active === last) { e.preventDefault(); first.focus(); }
}

// A step to the previous or next result from the photo view (arrows, buttons, a swipe).
function step(delta) {
  const i = state.detailIndex + delta;
  if (state.detailIndex >= 0 && i >= 0 && i < state.hits.length) openDetail(i);
  if (delta > 0 && i >= state.hits.length - 3) loadMore();  // the next page, before the last photo
}

// index: the hit's place in the results (← → step from it), or -1 for a photo from elsewhere
function openItem(hit, index, { push = true } = {}) {
  if ($("detail").hidden) state.returnIndex = index;  // where focus goes back to on close
  state.detailIndex = index;
  state.detailHit = hit;
  const params = new URLSearchParams(location.search);
  if (params.get("item") !== hit.id) {
    params.set("item", hit.id);
    if (push && !$("detail").hidden) history.replaceState(null, "", "?" + params);
    else if (push) { history.pushState(null, "", "?" + params); state.detailPushed = true; }
  }
  showDetail(hit);
}

function requestClose() {
  // Back, if opening the photo added the history entry; else (a shared link) just drop it from the URL
  if (state.detailPushed) history.back(); else closeDetail({ push: true });
}

function showDetail(hit) {
  const detail = $("detail");
  const opening = detail.hidden;
  detail.hidden = false;
  setModal(true);
  if (opening) detail.scrollTop = 0;
  const img = $("detail-image"), player = $("detail-video");
  const video = hit.media === "video";
  img.hidden = video;
  player.hidden = !video;
  if (video) {  // plays from the frame that matched
    player.onerror = () => { if (state.detailHit === hit) detailFailed(hit); };
    player.poster = "/media/" + encodeURIComponent(hit.id);
    player.src = "/files/" + encodeURIComponent(hit.id) + "#t=" + (hit.frame_time || 0);
  } else {
    if (!player.paused) player.pause();
    player.removeAttribute("src");
    img.src = "/thumbs/" + encodeURIComponent(hit.id);
  }
  $("detail-gone").hidden = true;
  state.detailGone = null;
  state.detailOffline = null;
  if (!video) loadLarge(hit);
  setActions(true);
  $("strip-heading").hidden = false;
  img.alt = hit.text || hit.path;
  $("detail-caption").textContent = hit.text || hit.path.split("/").pop();
  $("detail-caption").title = $("detail-caption").textContent;
  $("detail-caption").classList.remove("full");
  $("open-original").href = "/files/" + encodeURIComponent(hit.id);
  $("prev").hidden = state.detailIndex <= 0;
  $("next").hidden = state.detailIndex < 0 || state.detailIndex >= state.hits.length - 1;
  fillMeta(hit, null);
  Promise.all([fetch("/api/items/" + encodeURIComponent(hit.id)).then((r) => r.ok ? r.json() : null), state.infoReady])
    .then(([item]) => { if (item && state.detailHit === hit) fillMeta(hit, item); })
    .catch(() => { /* the server does not answer: the details known from the grid stay */ });
  fillStrip(hit);
  $("close").focus({ preventScroll: true });
}

function loadLarge(hit) {
  const img = $("detail-image");
  const large = new Image();
  large.onload = () => {
    if (state.detailHit !== hit) return;
    img.src = large.src;
    if (state.detailOffline !== hit && !state.detailGone) $("detail-gone").hidden = true;
  };
  large.onerror = () => { if (state.detailHit === hit) detailFailed(hit); };
  large.src = "/media/" + encodeURIComponent(hit.id);
}

function fillMeta(hit, item) {
  const dl = $("detail-meta");
  dl.replaceChildren();
  const add = (k, v) => { if (v !== null && v !== undefined && v !== "") dl.append(el("dt", { text: k }), el("dd", { text: String(v) })); };
  const row = item || hit;
  add("Path", shown(row.path));
  if (row.width) add("Size", `${row.width} × ${row.height} px${row.size ? " · " + bytes(row.size) : ""}`);
  add("Format", row.format);
  if (row.media === "video") add("Video", `frame at ${clock(row.frame_time || 0)}` + (row.duration ? ` of ${clock(row.duration)}` : ""));
  if (item && item.taken_ns) add("Taken", cameraTime(item.taken_ns) + " (camera's clock)");
  if (item && item.mtime_ns) add("File date", new Date(item.mtime_ns / 1e6).toLocaleString());
  add("Text source", row.text_source);
  if (item && item.tags && item.tags.length) add("Tags", item.tags.map((t, i) => `${t} ${fmt(item.tag_scores[i])}`).join(" · "));
  if (item && item.texts && item.texts.length > 1) add("All texts", item.texts.join(" · "));
  if (hit.score !== undefined) add("Score", `${fmt(hit.score)} (image ${fmt(hit.image_score)}, text ${fmt(hit.text_score)}${wordsScoreParts(hit).map((p) => ", " + p).join("")})`);
  const core = new Set(["id", "path", "size", "mtime_ns", "content_hash", "width", "height", "format", "taken_ns", "text", "texts", "text_source", "tags", "tag_scores", "media", "frame_time", "duration", "ocr_text", "ocr_lines", "ocr_engine", "words"]);
  if (item) for (const [k, v] of Object.entries(item)) if (!core.has(k)) add(k, v);
  if (typeof mmembedOcr !== "undefined") { mmembedOcr.clear(); if (item) mmembedOcr.show(item); }  // ocr.js
}

async function fillStrip(hit) {
  const strip = $("strip");
  strip.replaceChildren(el("span", { class: "muted", text: "…" }));
  try {
    const { r, data } = await getJson("/api/search?" + new URLSearchParams({ like: hit.id, n: 12 }));
    if (state.detailHit !== hit || state.detailGone === hit) return;
    if (r.status === 410) { showGone(hit, data.error); return; }  // the file changed or went since it was indexed
    strip.replaceChildren();
    if (!r.ok) { strip.append(el("span", { class: "muted", text: "No similar photos: " + withoutPath(hit, data.error) })); return; }
    for (const other of data.hits) {
      // alt="" and a label: a thumbnail that cannot load keeps its square cell instead of spilling its text
      const thumb = el("img", { src: "/thumbs/" + encodeURIComponent(other.id), alt: "", "aria-label": other.text || other.path, title: other.text || other.path, tabindex: 0, "data-id": other.id, role: "button" });
      const open = () => { const at = state.hits.findIndex((h) => h.id === other.id); openItem(at >= 0 ? state.hits[at] : other, at); };
      thumb.addEventListener("click", open);
      thumb.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
      strip.append(thumb);
    }
  } catch (err) {
    if (state.detailHit === hit && state.detailGone !== hit) strip.replaceChildren(el("span", { class: "muted", text: err.message }));
  }
}

function closeDetail({ push = true } = {}) {
  if ($("detail").hidden) return;
  $("detail").hidden = true;
  if (typeof mmembedOcr !== "undefined") mmembedOcr.clear();  // ocr.js
  const player = $("detail-video");
  if (!player.paused) player.pause();
  setModal(false);
  const index = state.detailIndex >= 0 ? state.detailIndex : state.returnIndex;
  state.detailIndex = -1;
  state.detailHit = null;
  state.detailPushed = false;
  const params = new URLSearchParams(location.search);
  if (push && params.has("item")) {
    params.delete("item");
    history.replaceState(null, "", params.toString() ? "?" + params : location.pathname);
  }
  const cardNode = index >= 0 ? document.querySelector(`.card[data-index="${index}"]`) : null;
  if (cardNode) cardNode.focus({ preventScroll: false });  // the photo that was open, scrolled to if it is not on screen
  else { const first = document.querySelector(".card"); if (first) first.focus({ preventScroll: true }); else $("q").focus({ preventScroll: true }); }
}

function syncDetail() {
  const id = new URLSearchParams(location.search).get("item");
  if (!id) { closeDetail({ push: false }); return; }
  const index = state.hits.findIndex((h) => h.id === id);
  if (index < 0) {
    if (state.more && !inDupes() && state.hits.length < 2000 && !state.seekFailed) {
      // a link to a photo further down the results: the next pages, until it is among them
      if (state.loading) { setTimeout(() => { if (new URLSearchParams(location.search).get("item") === id) syncDetail(); }, 150); return; }
      const before = state.hits.length;
      loadMore().then(() => {
        if (state.hits.length === before) state.seekFailed = true;
        if (new URLSearchParams(location.search).get("item") === id) syncDetail();
      });
      return;
    }
    state.seekFailed = false;
    fetch("/api/items/" + encodeURIComponent(id)).then((r) => r.ok ? r.json() : null).then((item) => {
      if (item) openItem(item, -1, { push: false });
      else showMessage("No photo in this library has the id " + id + " (a link from another library, or one re-indexed since?).");
    }).catch(() => showMessage(OFFLINE));
    return;
  }
  openDetail(index, { push: false });
}

function moreLikeThis(id) {
  state.upload = null;
  $("q").value = "";
  const params = readForm();
  params.delete("q");
  params.delete("upload");
  params.set("like", id);
  $("detail").hidden = true;
  setModal(false);
  state.detailIndex = -1;
  state.detailHit = null;
  state.detailPushed = false;
  history.pushState(null, "", "?" + params);
  window.scrollTo(0, 0);
  run();
}

// ---------------------------------------------------------------- image queries
function useImage(file) {
  if (!file) return;
  if (!file.type.startsWith("image/") && !/\.(heic|heif|avif|jxl)$/i.test(file.name)) {
    showMessage(`${file.name} is not an image; drop a photo (JPEG, PNG, HEIC, …).`);
    return;
  }
  if (file.size > 20 * 1024 * 1024) {
    showMessage(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB; the limit is 20 MB.`);
    return;
  }
  const key = "u" + (++state.uploadCount);
  const upload = { key, blob: file, name: file.name || "pasted image", url: URL.createObjectURL(file) };
  state.uploads.set(key, upload);
  state.upload = upload;
  state.dropLike = true;
  commit();
}

// ---------------------------------------------------------------- filters
function fillFilters(info) {
  const folder = $("folder");
  const root = commonFolder(info.folders.map((f) => f.path));
  for (const f of info.folders) {
    const label = root && f.path !== root ? "…/" + f.path.slice(root.length).replace(/^\//, "") : shown(f.path);
    folder.append(el("option", { value: f.path, title: f.path, text: `${label} (${f.count})` }));
  }
  const format = $("format");
  for (const f of info.formats) format.append(el("option", { value: f.name, text: `${f.name} (${f.count})` }));
  const columns = $("columns");
  for (const name of info.columns) {
    columns.append(el("label", {}, document.createTextNode(name + " "),
      el("input", { type: "text", "data-column": name, name: "col." + name, placeholder: "any" })));
  }
  for (const input of document.querySelectorAll("#filters input, #filters select")) {
    if (input.type === "text" || input.type === "range") {  // typed: searched after a pause, as the box is
      input.addEventListener("input", (e) => { if (!e.isComposing && !state.composing) typing.schedule(DEBOUNCE_MS * 2); });
      input.addEventListener("change", () => settle());
      listenComposition(input, DEBOUNCE_MS * 2);
    } else input.addEventListener("change", () => commit());
  }
  $("date_field").disabled = !info.has_taken;
}

function shown(path) {  // a path under the server's home folder as ~/...: no machine's layout on screen
  const home = state.info && state.info.home;
  return home && path.startsWith(home + "/") ? "~" + path.slice(home.length) : path;
}

function commonFolder(paths) {
  if (paths.length < 2) return "";
  let prefix = paths[0];
  for (const p of paths) while (prefix && !(p === prefix || p.startsWith(prefix + "/"))) prefix = prefix.slice(0, prefix.lastIndexOf("/"));
  return prefix;
}

// An IME (pinyin, kana, …): nothing is searched while a composition is under way; its end is typing.
function listenComposition(input, ms) {
  input.addEventListener("compositionstart", () => { state.composing = true; typing.cancel(); });
  input.addEventListener("compositionend", () => { state.composing = false; typing.schedule(ms); });
  input.addEventListener("blur", () => { state.composing = false; });
}

function bytes(n) {
  return n > 1e6 ? (n / 1e6).toFixed(1) + " MB" : n > 1e3 ? Math.round(n / 1e3) + " kB" : n + " B";
}

function cameraTime(ns) {  // EXIF dates are the camera's local time, stored as if UTC
  return new Date(ns / 1e6).toISOString().replace("T", " ").slice(0, 19);
}

// ---------------------------------------------------------------- keyboard
function columnsInGrid() {
  const cards = $("grid").querySelectorAll(".card");  // not the Duplicates view's group headings
  if (!cards.length) return 1;
  const top = cards[0].offsetTop;
  let n = 0;
  while (n < cards.length && cards[n].offsetTop === top) n++;
  return Math.max(1, n);
}

// The card a row below (dir 1) or above (dir -1) `from`, in the column nearest its own: rows as
// drawn, so the Duplicates view's groups (each starting a row of its own) step as they look.
function cardInNextRow(from, dir) {
  const cards = [...$("grid").querySelectorAll(".card")];
  const at = cards.indexOf(from);
  const top = from.offsetTop, left = from.offsetLeft;
  let rowTop = null, best = null;
  for (let i = at + dir; i >= 0 && i < cards.length; i += dir) {
    const t = cards[i].offsetTop;
    if (t === top) continue;
    if (rowTop === null) rowTop = t;
    if (t !== rowTop) break;
    if (!best || Math.abs(cards[i].offsetLeft - left) < Math.abs(best.offsetLeft - left)) best = cards[i];
  }
  return best;
}

function onKey(e) {
  const detailOpen = !$("detail").hidden;
  if (detailOpen) {
    if (e.key === "Escape") { e.preventDefault(); requestClose(); }
    else if (e.key === "Tab") trapTab(e);
    else if (e.target instanceof HTMLVideoElement) return;  // the player's own arrows seek
    else if (e.key === "ArrowLeft") step(-1);
    else if (e.key === "ArrowRight") step(1);
    return;
  }
  if (e.isComposing || state.composing) return;  // an IME's Enter and arrows pick its syllables
  const active = document.activeElement;
  if (e.key === "/" && active !== $("q") && !(active instanceof HTMLInputElement)) { e.preventDefault(); $("q").focus(); return; }
  if (active === $("q")) {
    if (e.key === "ArrowDown" || e.key === "Enter") {
      e.preventDefault();
      if (e.key === "Enter") finishQuery();
      const first = $("grid").firstElementChild;
      if (first && e.key === "ArrowDown") first.focus();
    } else if (e.key === "Escape") { $("q").blur(); }
    return;
  }
  if ((!active || active === document.body) && (e.key === "ArrowDown" || e.key === "ArrowRight")) {
    const first = document.querySelector(".card");  // nothing focused yet (the page just loaded): the arrows start at the first photo
    if (first) { e.preventDefault(); first.focus(); }
    return;
  }
  if (!active || !active.classList.contains("card")) return;
  const index = Number(active.dataset.index);
  const move = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: 1, ArrowUp: -1 }[e.key];
  if (move) {
    e.preventDefault();
    const vertical = e.key === "ArrowDown" || e.key === "ArrowUp";
    const target = vertical ? cardInNextRow(active, move) : document.querySelector(`.card[data-index="${index + move}"]`);
    if (target) target.focus();
    else if (move < 0) $("q").focus();
    const reached = target ? Number(target.dataset.index) : index;
    if (reached >= state.hits.length - columnsInGrid() * 2) loadMore();
  } else if (e.key === "Enter") { e.preventDefault(); openDetail(index); }
  else if (e.key === "Escape") { $("q").focus(); }
}

// ---------------------------------------------------------------- start
function start() {
  $("q").addEventListener("input", (e) => { if (!e.isComposing && !state.composing) typing.schedule(DEBOUNCE_MS); });
  listenComposition($("q"), DEBOUNCE_MS);
  $("q").addEventListener("blur", () => settle());
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); finishQuery(); });
  $("pick").addEventListener("click", () => $("file").click());
  $("file").addEventListener("change", () => { useImage($("file").files[0]); $("file").value = ""; });
  $("query-image-clear").addEventListener("click", () => {
    state.upload = null; state.dropLike = true;
    commit();
  });
  $("toggle-filters").addEventListener("click", () => {
    const panel = $("filters");
    panel.hidden = !panel.hidden;
    $("toggle-filters").setAttribute("aria-expanded", String(!panel.hidden));
  });
  $("image_weight").addEventListener("input", () => { $("weight-out").textContent = $("image_weight").value; });
  $("reset").addEventListener("click", () => { history.pushState(null, "", location.pathname); state.upload = null; run(); });
  $("dupes-link").addEventListener("click", (e) => {
    e.preventDefault();
    const dupes = new URLSearchParams(location.search).get("view") === "dupes";
    history.pushState(null, "", dupes ? location.pathname : "?view=dupes");  // from the Duplicates: back to all photos
    state.settled = true;
    window.scrollTo(0, 0);
    run();
  });
  $("close").addEventListener("click", () => requestClose());
  $("prev").addEventListener("click", () => step(-1));
  $("next").addEventListener("click", () => step(1));
  $("more-like").addEventListener("click", () => { if (state.detailHit && !state.detailGone) moreLikeThis(state.detailHit.id); });
  $("open-original").addEventListener("click", (e) => { if (state.detailGone) e.preventDefault(); });
  $("detail-caption").addEventListener("click", () => $("detail-caption").classList.toggle("full"));  // a long name, clamped: a tap shows it whole
  listenSwipe($("detail"));
  $("detail").addEventListener("click", (e) => { if (e.target === $("detail") || e.target.classList.contains("stage")) requestClose(); });
  document.addEventListener("keydown", onKey);
  window.addEventListener("popstate", () => {
    state.settled = true;
    typing.cancel();
    const params = new URLSearchParams(location.search);
    // only a photo opened or closed (Back after a photo, Forward to it): the grid stays as it is,
    // scrolled where it was, with what was loaded
    if (!state.loading && state.shownKey !== null && searchKey(params) === state.shownKey) { writeForm(params); syncDetail(); return; }
    run();
  });

  let depth = 0;
  document.addEventListener("dragenter", (e) => { if (e.dataTransfer.types.includes("Files")) { depth++; $("drop").hidden = false; } });
  document.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) $("drop").hidden = true; });
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", (e) => {
    e.preventDefault(); depth = 0; $("drop").hidden = true;
    if (e.dataTransfer.files.length) useImage(e.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (e) => {
    const file = [...(e.clipboardData ? e.clipboardData.files : [])].find((f) => f.type.startsWith("image/"));
    if (file) { e.preventDefault(); useImage(file); }
  });

  new IntersectionObserver((entries) => { if (entries.some((x) => x.isIntersecting)) loadMore(); },
    { rootMargin: "800px" }).observe($("sentinel"));

  const info = fetch("/api/info").then((r) => r.json());
  state.infoReady = info.then((i) => { state.info = i; return i; }).catch(() => null);
  run();  // the query in the URL at once; the filters fill in when the table's info arrives
  info.then((info) => {
    state.info = info;
    if (info.problem) { showMessage(info.problem); $("stats").textContent = ""; document.body.classList.add("empty"); return; }
    fillFilters(info);
    fillChips(info.tags || []);
    // the URL's folder, format and columns, now that they are options (the rest may be mid-typing)
    const params = new URLSearchParams(location.search);
    for (const name of ["folder", "format"]) $(name).value = params.get(name) || "";
    for (const input of document.querySelectorAll("[data-column]")) input.value = params.get("col." + input.dataset.column) || "";
    $("q").placeholder = `Search ${info.rows.toLocaleString()} photos: a dog running on grass`;
  }).catch(() => showMessage(OFFLINE));
}

document.addEventListener("DOMContentLoaded", start);
