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
  uploads: new Map(), uploadCount: 0, detailIndex: -1, lastParams: "", tags: [],
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

function writeForm(params) {
  for (const name of FIELDS) {
    const input = $(name);
    input.value = params.get(name) || (name === "image_weight" ? "0.5" : name === "date_field" ? "taken" : "");
  }
  for (const input of document.querySelectorAll("[data-column]")) {
    input.value = params.get("col." + input.dataset.column) || "";
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
  run();
}

// ---------------------------------------------------------------- searching
// What the API reads (app.py _PARAMS): anything else in the address (utm_source=..., say) stays out of
// the request, which the API would refuse by name.
const API_KEYS = new Set([...FIELDS, "like", "tag", "near", "radius", "taken_after", "taken_before", "sort", "literal"]);

function searchUrl(params, offset) {
  const p = new URLSearchParams();
  for (const [k, v] of new URLSearchParams(params)) if (API_KEYS.has(k) || k.startsWith("col.")) p.append(k, v);
  p.set("n", PAGE);
  if (offset) p.set("offset", offset);
  return p;
}

async function fetchPage(params, offset) {
  const upload = state.upload;
  const hasQuery = params.get("q") || params.get("like") || upload;
  if (!hasQuery) {
    const p = searchUrl(params, offset);
    for (const k of ["q", "target", "mode", "image_weight", "not", "like", "cutoff"]) p.delete(k);
    const r = await fetch("/api/items?" + p);
    const data = await r.json();
    if (!r.ok) throw new Error(data.error || r.statusText);
    return { hits: data.items, more: data.more, where: data.where, took: data.took_ms, browse: true, total: data.total };
  }
  const init = upload ? { method: "POST", body: upload.blob, headers: { "Content-Type": upload.blob.type || "application/octet-stream" } } : {};
  const r = await fetch("/api/search?" + searchUrl(params, offset), init);
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || r.statusText);
  return { hits: data.hits, more: data.more, where: data.where, took: data.took_ms, target: data.target, parsed: data.parsed, note: data.note };
}

async function run() {
  const params = new URLSearchParams(location.search);
  writeForm(params);
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
    renderGrid(true);
    if (window.mmWhere) window.mmWhere.show(page.parsed);  // where.js: the place/date chips
    $("stats").textContent = page.browse
      ? `${page.total.toLocaleString()} photos`
      : `${resultCount(state.hits.length, state.more)} · ${page.took} ms`;
    $("applied-where").textContent = page.where ? "where " + page.where : "";
    if (!state.hits.length) showEnd(page.browse ? "No photos match these filters." : nothingFound(page.note));
    document.body.dataset.state = "ready";
  } catch (err) {
    if (seq !== state.seq) return;
    state.hits = []; state.more = false;
    renderGrid(true);
    $("stats").textContent = "";
    $("applied-where").textContent = "";  // the filter that failed is not applied; the previous one neither
    showMessage(err.message);
    document.body.dataset.state = "error";
  } finally {
    if (seq === state.seq) state.loading = false;
  }
  syncDetail();
}

function resultCount(n, more) {  // 1 result, 2 results, 50+ results
  return `${n}${more ? "+" : ""} result${n === 1 && !more ? "" : "s"}`;
}

async function loadMore() {
  if (state.loading || !state.more) return;
  const seq = state.seq;
  state.loading = true;
  try {
    const page = await fetchPage(new URLSearchParams(location.search), state.offset);
    if (seq !== state.seq) return;
    const start = state.hits.length;
    state.hits.push(...page.hits);
    state.offset += page.hits.length;
    state.more = page.more && page.hits.length > 0;
    renderGrid(false, start);
    if (!state.browse) $("stats").textContent = $("stats").textContent.replace(/^\d+\+? results?/, resultCount(state.hits.length, state.more));
  } catch (err) {
    showMessage(err.message);
    state.more = false;
  } finally {
    if (seq === state.seq) state.loading = false;
  }
}

// ---------------------------------------------------------------- duplicates
async function runDupes() {
  const seq = ++state.seq;
  document.body.dataset.state = "loading";
  hideMessage();
  $("stats").textContent = "finding duplicates…";
  $("grid").replaceChildren();
  $("end").hidden = true;
  try {
    let r, data;
    for (;;) {  // 202 while the server searches in the background: show how far it got, ask again
      r = await fetch("/api/duplicates?mode=near", { cache: "no-store" });
      data = await r.json();
      if (seq !== state.seq) return;
      if (r.status !== 202) break;
      $("stats").textContent = data.total ? `finding duplicates… ${data.percent}%` : "finding duplicates…";
      await new Promise((done) => setTimeout(done, 500));
      if (seq !== state.seq) return;
    }
    if (!r.ok) throw new Error(data.error || r.statusText);
    state.hits = []; state.more = false; state.browse = false;
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
  }
  syncDetail();
}

function fillChips(tags) {
  const chips = $("chips");
  chips.replaceChildren();
  for (const t of tags) {
    const chip = el("button", { type: "button", class: "chip", "data-tag": t.name, "aria-pressed": String(state.tags.includes(t.name)), title: `${t.count} photos` }, document.createTextNode(t.name));
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
  thumb.addEventListener("error", () => thumb.replaceWith(el("p", { class: "gone", text: GONE })), { once: true });
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

const GONE = "This photo cannot be shown: its file changed, moved or cannot be read since it was indexed.";

// The detail view of a photo the server will not show (its file changed, went, or cannot be read):
// the server's own reason in place of a broken picture.
async function showGone(hit) {
  let reason = GONE;
  try {
    const r = await fetch("/media/" + encodeURIComponent(hit.id));
    if (!r.ok) reason = (await r.json()).error || reason;
  } catch (e) { /* the generic words */ }
  if (state.detailHit !== hit) return;
  $("detail-image").hidden = true;
  $("detail-gone").textContent = reason;
  $("detail-gone").hidden = false;
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

// index: the hit's place in the results (← → step from it), or -1 for a photo from elsewhere
function openItem(hit, index, { push = true } = {}) {
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
  detail.hidden = false;
  document.body.classList.add("noscroll");
  const img = $("detail-image"), player = $("detail-video");
  const video = hit.media === "video";
  img.hidden = video;
  player.hidden = !video;
  if (video) {  // plays from the frame that matched
    player.poster = "/media/" + encodeURIComponent(hit.id);
    player.src = "/files/" + encodeURIComponent(hit.id) + "#t=" + (hit.frame_time || 0);
  } else {
    if (!player.paused) player.pause();
    player.removeAttribute("src");
    img.src = "/thumbs/" + encodeURIComponent(hit.id);
    const large = new Image();
    large.onload = () => { if (state.detailHit === hit) img.src = large.src; };
    large.onerror = () => { if (state.detailHit === hit) showGone(hit); };
    large.src = "/media/" + encodeURIComponent(hit.id);
  }
  $("detail-gone").hidden = true;
  img.alt = hit.text || hit.path;
  $("detail-caption").textContent = hit.text || hit.path.split("/").pop();
  $("open-original").href = "/files/" + encodeURIComponent(hit.id);
  $("prev").hidden = state.detailIndex <= 0;
  $("next").hidden = state.detailIndex < 0 || state.detailIndex >= state.hits.length - 1;
  fillMeta(hit, null);
  Promise.all([fetch("/api/items/" + encodeURIComponent(hit.id)).then((r) => r.ok ? r.json() : null), state.infoReady])
    .then(([item]) => { if (item && state.detailHit === hit) fillMeta(hit, item); });
  fillStrip(hit);
  $("close").focus({ preventScroll: true });
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
    const r = await fetch("/api/search?" + new URLSearchParams({ like: hit.id, n: 12 }));
    const data = await r.json();
    if (state.detailHit !== hit) return;
    strip.replaceChildren();
    if (!r.ok) { strip.append(el("span", { class: "muted", text: data.error })); return; }
    for (const other of data.hits) {
      // alt="" and a label: a thumbnail that cannot load keeps its square cell instead of spilling its text
      const thumb = el("img", { src: "/thumbs/" + encodeURIComponent(other.id), alt: "", "aria-label": other.text || other.path, title: other.text || other.path, tabindex: 0, "data-id": other.id, role: "button" });
      const open = () => { const at = state.hits.findIndex((h) => h.id === other.id); openItem(at >= 0 ? state.hits[at] : other, at); };
      thumb.addEventListener("click", open);
      thumb.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
      strip.append(thumb);
    }
  } catch (err) {
    strip.replaceChildren(el("span", { class: "muted", text: err.message }));
  }
}

function closeDetail({ push = true } = {}) {
  if ($("detail").hidden) return;
  $("detail").hidden = true;
  if (typeof mmembedOcr !== "undefined") mmembedOcr.clear();  // ocr.js
  const player = $("detail-video");
  if (!player.paused) player.pause();
  document.body.classList.remove("noscroll");
  const index = state.detailIndex;
  state.detailIndex = -1;
  state.detailHit = null;
  state.detailPushed = false;
  const params = new URLSearchParams(location.search);
  if (push && params.has("item")) {
    params.delete("item");
    history.replaceState(null, "", params.toString() ? "?" + params : location.pathname);
  }
  const cardNode = document.querySelector(`.card[data-index="${index}"]`);
  if (cardNode) cardNode.focus({ preventScroll: false });
}

function syncDetail() {
  const id = new URLSearchParams(location.search).get("item");
  if (!id) { closeDetail({ push: false }); return; }
  const index = state.hits.findIndex((h) => h.id === id);
  if (index < 0) {
    fetch("/api/items/" + encodeURIComponent(id)).then((r) => r.ok ? r.json() : null).then((item) => {
      if (item) openItem(item, -1, { push: false });
      else showMessage("No photo in this library has the id " + id + " (a link from another library, or one re-indexed since?).");
    });
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
  document.body.classList.remove("noscroll");
  $("detail").hidden = true;
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
    const debounced = input.type === "text" || input.type === "range";
    input.addEventListener(debounced ? "input" : "change", debounced ? debounce(() => commit(), DEBOUNCE_MS * 2) : () => commit());
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

function debounce(fn, ms) {
  let timer = 0;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

function bytes(n) {
  return n > 1e6 ? (n / 1e6).toFixed(1) + " MB" : n > 1e3 ? Math.round(n / 1e3) + " kB" : n + " B";
}

function cameraTime(ns) {  // EXIF dates are the camera's local time, stored as if UTC
  return new Date(ns / 1e6).toISOString().replace("T", " ").slice(0, 19);
}

// ---------------------------------------------------------------- keyboard
function columnsInGrid() {
  const cards = $("grid").children;
  if (!cards.length) return 1;
  const top = cards[0].offsetTop;
  let n = 0;
  while (n < cards.length && cards[n].offsetTop === top) n++;
  return Math.max(1, n);
}

function onKey(e) {
  const detailOpen = !$("detail").hidden;
  if (detailOpen) {
    if (e.key === "Escape") { e.preventDefault(); requestClose(); }
    else if (e.key === "ArrowLeft" && state.detailIndex > 0) openDetail(state.detailIndex - 1);
    else if (e.key === "ArrowRight" && state.detailIndex >= 0 && state.detailIndex < state.hits.length - 1) openDetail(state.detailIndex + 1);
    return;
  }
  const active = document.activeElement;
  if (e.key === "/" && active !== $("q") && !(active instanceof HTMLInputElement)) { e.preventDefault(); $("q").focus(); return; }
  if (active === $("q")) {
    if (e.key === "ArrowDown" || e.key === "Enter") {
      e.preventDefault();
      if (e.key === "Enter") commit();
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
  const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columnsInGrid(), ArrowUp: -columnsInGrid() }[e.key];
  if (step) {
    e.preventDefault();
    const target = document.querySelector(`.card[data-index="${index + step}"]`);
    if (target) target.focus();
    else if (step < 0 && index + step < 0) $("q").focus();
    if (index + step >= state.hits.length - columnsInGrid() * 2) loadMore();
  } else if (e.key === "Enter") { e.preventDefault(); openDetail(index); }
  else if (e.key === "Escape") { $("q").focus(); }
}

// ---------------------------------------------------------------- start
function start() {
  const typed = debounce(() => commit(), DEBOUNCE_MS);
  $("q").addEventListener("input", typed);
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); commit(); });
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
  $("dupes-link").addEventListener("click", (e) => { e.preventDefault(); history.pushState(null, "", "?view=dupes"); window.scrollTo(0, 0); run(); });
  $("close").addEventListener("click", () => requestClose());
  $("prev").addEventListener("click", () => openDetail(state.detailIndex - 1));
  $("next").addEventListener("click", () => openDetail(state.detailIndex + 1));
  $("more-like").addEventListener("click", () => moreLikeThis(state.detailHit.id));
  $("detail").addEventListener("click", (e) => { if (e.target === $("detail") || e.target.classList.contains("stage")) requestClose(); });
  document.addEventListener("keydown", onKey);
  window.addEventListener("popstate", () => run());

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
  }).catch((err) => showMessage("The server does not answer: " + err.message));
}

document.addEventListener("DOMContentLoaded", start);
