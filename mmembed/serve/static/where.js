// Where and when (issue 23): the filters the search box understood, as chips that remove with
// one click; explicit place/time parameters (near, radius, taken_after, taken_before, sort,
// literal) kept in the URL; a list of places with counts and a timeline (photos per month).
// app.js calls window.mmWhere.addParams(params) when it builds a query and
// window.mmWhere.show(parsed) when a search is drawn. Text is set with textContent only.
"use strict";

(function () {
  const KEYS = ["near", "radius", "taken_after", "taken_before", "sort", "literal"];
  const extra = new Map();  // the explicit where/when parameters of the current URL
  let lastParsed = {};  // what the server understood of the box, at the last search drawn

  function readUrl() {
    const url = new URLSearchParams(location.search);
    extra.clear();
    for (const k of KEYS) if (url.get(k)) extra.set(k, url.get(k));
  }

  function node(tag, cls, text) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  }

  function chip(label, title, onRemove) {
    const c = node("span", "where-chip");
    c.dataset.where = title;
    c.append(node("span", "where-label", label));
    const x = node("button", "where-x", "×");
    x.type = "button";
    x.title = "Remove this filter";
    x.setAttribute("aria-label", "Remove " + label);
    x.addEventListener("click", onRemove);
    c.append(x);
    return c;
  }

  function setQuery(text) {
    document.getElementById("q").value = text;
  }

  function rerun() { commit(); }  // app.js: reads the form (and addParams) into the URL, searches

  function addParams(params) {
    for (const [k, v] of extra) params.set(k, v);
  }

  function bar() {
    let b = document.getElementById("where-chips");
    if (!b) {
      b = node("nav", "where-chips");
      b.id = "where-chips";
      b.setAttribute("aria-label", "Place and date filters");
      const anchor = document.getElementById("chips");
      anchor.parentNode.insertBefore(b, anchor.nextSibling);
    }
    return b;
  }

  function span(p) {
    if (p.taken_either && p.taken_either.length) return p.taken_either.map(([a, b]) => a + " – " + b).join(" or ");  // "2008 or 2015"
    if (!p.taken_after && !p.taken_before) return "";
    return (p.taken_after || "…") + " – " + (p.taken_before || "…");
  }

  // The month a timeline button set (taken_after the 1st, taken_before the next month's 1st), or "".
  function monthOf(after, before) {
    const m = /^(\d{4})-(\d{2})-01$/.exec(after || "");
    return m && before === nextMonth(Number(m[1]), Number(m[2])) ? m[1] + "-" + m[2] : "";
  }

  function nextMonth(y, mo) {
    return mo === 12 ? (y + 1) + "-01-01" : y + "-" + String(mo + 1).padStart(2, "0") + "-01";
  }

  function markMonth() {
    const month = monthOf(extra.get("taken_after"), extra.get("taken_before"));
    for (const b of document.querySelectorAll(".where-month")) b.setAttribute("aria-pressed", String(b.dataset.month === month));
  }

  function show(parsed) {
    readUrl();
    const b = bar();
    b.replaceChildren();
    const p = parsed || {};
    lastParsed = p;
    const fromBox = p.place || (p.notes || []).some((n) => n.startsWith("taken "));
    if (p.place) {
      b.append(chip("in " + p.place.label, "place", () => {
        // the place goes: the words left, and the box's dates kept as explicit ones
        if (p.taken_after && !extra.has("taken_after")) extra.set("taken_after", p.taken_after);
        if (p.taken_before && !extra.has("taken_before")) extra.set("taken_before", p.taken_before);
        setQuery(p.text || "");
        rerun();
      }));
    }
    const boxDates = fromBox && (p.notes || []).some((n) => n.startsWith("taken "));
    if (boxDates) {
      b.append(chip("taken " + span(p), "dates", () => {
        // the dates go: the words left, and the place said again
        setQuery(((p.text || "") + (p.place ? " in " + p.place.phrase : "")).trim());
        rerun();
      }));
    }
    if (p.near) {
      b.append(chip("near " + p.near.label + " ≤ " + p.near.radius_km + " km", "near", () => {
        extra.delete("near"); extra.delete("radius"); rerun();
      }));
    }
    const month = boxDates ? "" : monthOf(extra.get("taken_after"), extra.get("taken_before"));
    if (month) {  // a month of the timeline: one chip, that takes its bounds and its date order away
      b.append(chip("taken in " + month, "month", () => {
        extra.delete("taken_after"); extra.delete("taken_before"); extra.delete("sort"); rerun();
      }));
    }
    for (const k of ["taken_after", "taken_before"]) {
      if (extra.has(k) && !boxDates && !month) {
        b.append(chip((k === "taken_after" ? "from " : "before ") + extra.get(k), k, () => { extra.delete(k); rerun(); }));
      }
    }
    if (extra.get("sort") === "date" && !month) b.append(chip("sorted by date", "sort", () => { extra.delete("sort"); rerun(); }));
    if (extra.get("literal")) b.append(chip("words as typed", "literal", () => { extra.delete("literal"); rerun(); }));
    for (const note of p.notes || []) {
      if (!note.startsWith("taken ") && !note.startsWith("place: ")) b.append(node("span", "where-note", note));
    }
    b.hidden = !b.children.length;
    markMonth();
  }

  async function lists() {
    // a <details>: open on a wide screen, closed on a phone (the photos come first there)
    const panel = node("details", "where-lists");
    panel.id = "where-lists";
    panel.open = !window.matchMedia("(max-width: 600px)").matches;
    panel.append(node("summary", null, "Places and months"));
    const body = node("div", "where-lists-body");
    const [places, months] = await Promise.all([
      fetch("/api/places").then((r) => r.ok ? r.json() : { places: [] }).catch(() => ({ places: [] })),
      fetch("/api/timeline").then((r) => r.ok ? r.json() : { months: [] }).catch(() => ({ months: [] })),
    ]);
    if (places.places && places.places.length) {
      const list = node("div", "where-places");
      list.append(node("h3", null, "Places"));
      for (const place of places.places) {
        const label = [place.place_city, place.place_region, place.place_country].filter(Boolean).join(", ");
        const button = node("button", "where-place", label + " (" + place.count + ")");
        button.type = "button";
        button.addEventListener("click", () => {
          extra.delete("near");
          // the words in the box stay ("mountain" -> "mountain in Madrid"); a place the box named gives way
          const typed = document.getElementById("q").value.trim();
          const shownQ = new URLSearchParams(location.search).get("q") || "";
          const words = lastParsed.place && typed === shownQ.trim() ? (lastParsed.text || "").trim() : typed;
          setQuery((words || "photos") + " in " + place.place_city);
          rerun();
        });
        list.append(button);
      }
      body.append(list);
    }
    if (months.months && months.months.length) {
      const list = node("div", "where-timeline");
      list.append(node("h3", null, "Timeline"));
      const most = Math.max(...months.months.map((m) => m.count));
      for (const m of months.months) {
        const button = node("button", "where-month", m.month + " (" + m.count + ")");
        button.type = "button";
        button.style.setProperty("--share", String(m.count / most));
        button.dataset.month = m.month;
        button.setAttribute("aria-pressed", "false");
        button.addEventListener("click", () => {
          // the month as taken_after/taken_before (nothing put in the search box), one chip for it;
          // the panel's own date range gives way to it
          const [y, mo] = m.month.split("-").map(Number);
          const next = nextMonth(y, mo);
          document.getElementById("date_from").value = "";
          document.getElementById("date_to").value = "";
          extra.set("taken_after", m.month + "-01");
          extra.set("taken_before", next);
          extra.set("sort", "date");
          rerun();
        });
        list.append(button);
      }
      body.append(list);
    }
    if (body.children.length) {
      panel.append(body);
      const filters = document.getElementById("filters");
      filters.parentNode.insertBefore(panel, filters.nextSibling);
      markMonth();
    }
  }

  readUrl();
  window.mmWhere = { addParams, show };
  window.addEventListener("popstate", readUrl);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", lists);
  else lists();
})();
