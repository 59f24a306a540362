// The words side of a search hit (issue 22): the parts of a hybrid score, and the item's words
// with the query's terms marked. Text goes in only as text nodes (textContent): nothing from a
// hit is ever parsed as HTML.
"use strict";

// "looks 0.312 · words 6.01" for a hit ranked by words too; [] for a vector-only hit.
function wordsScoreParts(hit) {
  if (hit.mode !== "hybrid" && hit.mode !== "text") return [];
  const parts = [];
  if (typeof hit.vector_score === "number") parts.push("looks " + hit.vector_score.toFixed(3));
  if (typeof hit.words_score === "number") parts.push("words " + hit.words_score.toFixed(2));
  return parts;
}

// The first line of the hit's words that holds a query term, each term found in it wrapped in
// <mark>; null when the hit's words hold none.
function wordsSnippet(hit) {
  const terms = (hit.terms || []).filter((t) => t);
  if (!terms.length || typeof hit.words !== "string") return null;
  const lines = hit.words.split("\n");
  const line = lines.find((l) => terms.some((t) => l.toLowerCase().includes(t))) || "";
  if (!line) return null;
  const span = document.createElement("span");
  span.className = "words";
  let text = line.length > 160 ? clip(line, terms) : line;
  const low = text.toLowerCase();
  let at = 0;
  while (at < text.length) {  // the earliest next match of any term
    let best = -1, size = 0;
    for (const t of terms) {
      const i = low.indexOf(t, at);
      if (i >= 0 && (best < 0 || i < best || (i === best && t.length > size))) { best = i; size = t.length; }
    }
    if (best < 0) break;
    if (best > at) span.append(document.createTextNode(text.slice(at, best)));
    const mark = document.createElement("mark");
    mark.textContent = text.slice(best, best + size);
    span.append(mark);
    at = best + size;
  }
  if (at < text.length) span.append(document.createTextNode(text.slice(at)));
  return span;
}

function clip(line, terms) {  // ~160 characters around the first match
  const low = line.toLowerCase();
  const first = Math.min(...terms.map((t) => low.indexOf(t)).filter((i) => i >= 0));
  const start = Math.max(0, first - 60);
  return (start ? "…" : "") + line.slice(start, start + 160) + (start + 160 < line.length ? "…" : "");
}
