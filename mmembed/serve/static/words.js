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

// Where a term counts, as the server matches it (text/words.py contains_terms): a word of a spaced
// script as a whole word or with a plural ending ("car" finds "cars", not "scar" or "cargo"; one or
// two letters as a word only); Chinese or Japanese, a code or number, or a term that begins with
// punctuation anywhere.
const WORD_CHAR = /[\p{L}\p{N}\p{M}]/u;

function startsWord(term) {
  const first = term[0];
  const unspaced = /\p{Lo}/u.test(first) && first.charCodeAt(0) > 127;
  return !(unspaced || /\d/.test(term) || !/[\p{L}\p{N}]/u.test(first));
}

// The index in `low` (folded text) of the next place `term` counts, from `from`; -1 if none.
function findTerm(low, term, from) {
  const whole = startsWord(term);
  for (let i = low.indexOf(term, from); i >= 0; i = low.indexOf(term, i + 1)) {
    if (whole && WORD_CHAR.test(charBefore(low, i))) continue;
    if (whole && !endsWord(low, i + term.length, term.length >= 3)) continue;
    return i;
  }
  return -1;
}

// Whether a word ends at `at` in `low`, or (`plural`) after "s" or "es" there.
function endsWord(low, at, plural) {
  const free = (k) => k >= low.length || !WORD_CHAR.test(String.fromCodePoint(low.codePointAt(k)));
  if (free(at)) return true;
  if (!plural) return false;
  if (low[at] === "s" && free(at + 1)) return true;
  return low[at] === "e" && low[at + 1] === "s" && free(at + 2);
}

function charBefore(text, i) {  // the whole character before index i ("" at the start), not half a surrogate pair
  if (i <= 0) return "";
  const low = text.charCodeAt(i - 1);
  return low >= 0xDC00 && low <= 0xDFFF && i >= 2 ? text.slice(i - 2, i) : text[i - 1];
}

// Where Python's casefold differs from toLowerCase for letters in photo text ("Straße" finds "strasse").
const CASEFOLD = { "ß": "ss", "ẞ": "ss", "ς": "σ" };

// `text` folded as the server folds it (text/words.py fold: case-folded, accents dropped, so
// "cafe" finds "Café"), and for each place in the folded text the place in `text` it came from.
function folded(text) {
  let out = "";
  const from = [];
  let at = 0;
  for (const ch of text) {
    const f = (CASEFOLD[ch] || ch.toLowerCase()).normalize("NFKD").replace(/\p{M}/gu, "");
    out += f;
    for (let k = 0; k < f.length; k++) from.push(at);
    at += ch.length;
  }
  from.push(at);
  return { low: out, from };
}

// The first line of the hit's words that holds a query term, each term found in it wrapped in
// <mark> (found in the folded line, marked in the line as it is); null when the hit's words hold none.
function wordsSnippet(hit) {
  const terms = (hit.terms || []).filter((t) => t);
  if (!terms.length || typeof hit.words !== "string") return null;
  const lines = hit.words.split("\n");
  const line = lines.find((l) => terms.some((t) => findTerm(folded(l).low, t, 0) >= 0)) || "";
  if (!line) return null;
  const span = document.createElement("span");
  span.className = "words";
  const text = line.length > 160 ? clip(line, terms) : line;
  const { low, from } = folded(text);
  let at = 0, shown = 0;  // in the folded text, in the text
  while (at < low.length) {  // the earliest next match of any term
    let best = -1, size = 0;
    for (const t of terms) {
      const i = findTerm(low, t, at);
      if (i >= 0 && (best < 0 || i < best || (i === best && t.length > size))) { best = i; size = t.length; }
    }
    if (best < 0) break;
    const start = from[best], end = Math.max(from[best + size], start + 1);
    if (start > shown) span.append(document.createTextNode(text.slice(shown, start)));
    const mark = document.createElement("mark");
    mark.textContent = text.slice(start, end);
    span.append(mark);
    at = best + size;
    shown = end;
  }
  if (shown < text.length) span.append(document.createTextNode(text.slice(shown)));
  return span;
}

function clip(line, terms) {  // ~160 characters around the first match
  const { low, from } = folded(line);
  const first = from[Math.min(...terms.map((t) => findTerm(low, t, 0)).filter((i) => i >= 0))];
  const start = Math.max(0, first - 60);
  return (start ? "…" : "") + line.slice(start, start + 160) + (start + 160 < line.length ? "…" : "");
}
