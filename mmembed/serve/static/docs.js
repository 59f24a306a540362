// Renders /api/openapi.json as a page: every path and method, its parameters and answers.
// Offline and self-contained: no library, no CDN; every string is written as text.
"use strict";

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function schemaWords(schema) {
  if (!schema) return "";
  const parts = [schema.type || (schema.$ref ? schema.$ref.split("/").pop() : "")];
  if (schema.enum) parts.push("one of " + schema.enum.join(", "));
  if (schema.default !== undefined) parts.push("default " + schema.default);
  if (schema.minimum !== undefined) parts.push("≥ " + schema.minimum);
  if (schema.maximum !== undefined) parts.push("≤ " + schema.maximum);
  return parts.filter(Boolean).join("; ");
}

function table(headings, rows) {
  const t = el("table");
  const head = el("tr");
  headings.forEach((h) => head.appendChild(el("th", h)));
  t.appendChild(head);
  rows.forEach((cells) => {
    const tr = el("tr");
    cells.forEach((c, i) => tr.appendChild(el("td", c, i === 0 ? "code" : "")));
    t.appendChild(tr);
  });
  return t;
}

function operation(path, method, op) {
  const section = el("section", null, "op");
  section.dataset.path = path;
  section.dataset.method = method.toUpperCase();
  const h = el("h2");
  h.appendChild(el("span", method.toUpperCase(), "method"));
  h.appendChild(document.createTextNode(" " + path));
  section.appendChild(h);
  section.appendChild(el("p", op.summary || ""));
  const params = op.parameters || [];
  if (params.length) {
    section.appendChild(table(["parameter", "in", "what", "value"],
      params.map((p) => [p.name, p.in, p.description || "", schemaWords(p.schema)])));
  }
  if (op.requestBody) {
    section.appendChild(el("p", "Body: " + Object.keys(op.requestBody.content || {}).join(", ") + ". " +
      (op.requestBody.description || ""), "muted"));
  }
  const answers = Object.entries(op.responses || {});
  section.appendChild(table(["status", "answer"], answers.map(([code, r]) => [code, r.description || ""])));
  return section;
}

function render(doc) {
  const title = (doc.info && doc.info.title) || "API";
  document.title = title + " " + ((doc.info && doc.info.version) || "") + ": HTTP API";
  document.getElementById("title").textContent = document.title;
  document.getElementById("description").textContent = (doc.info && doc.info.description) || "";
  const box = document.getElementById("paths");
  box.textContent = "";
  Object.entries(doc.paths || {}).forEach(([path, item]) => {
    Object.entries(item).forEach(([method, op]) => box.appendChild(operation(path, method, op)));
  });
  box.dataset.state = "ready";
}

fetch("/api/openapi.json", { headers: { Accept: "application/json" } })
  .then((r) => r.json().then((body) => {
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }))
  .then(render)
  .catch((err) => {
    const box = document.getElementById("paths");
    box.textContent = "The API description could not be read: " + err.message;
    box.dataset.state = "error";
  });
