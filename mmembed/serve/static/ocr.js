// Words in the pixels (issue 22): the detail view lists the text read in the picture and draws
// each line's box over it. app.js calls mmembedOcr.show(item) when an item's metadata arrives
// and mmembedOcr.clear() when the detail view closes. The boxes are in the upright full-size
// image's pixels (item.width x item.height); an SVG with that viewBox laid exactly over the
// <img> (object-fit: contain) scales them. Every string is set with textContent or as an
// attribute value, never as HTML.
"use strict";

const mmembedOcr = (() => {
  const SVG = "http://www.w3.org/2000/svg";
  let current = null;  // {item, svg, section}

  function clear() {
    if (!current) return;
    current.svg.remove();
    current.section.remove();
    window.removeEventListener("resize", place);
    current = null;
  }

  function place() {
    if (!current) return;
    const img = document.getElementById("detail-image");
    const s = current.svg.style;
    s.left = img.offsetLeft + "px"; s.top = img.offsetTop + "px";
    s.width = img.offsetWidth + "px"; s.height = img.offsetHeight + "px";
  }

  function show(item) {
    clear();
    const lines = Array.isArray(item.ocr_lines) ? item.ocr_lines : [];
    if (!item.ocr_text && !lines.length) return;
    const img = document.getElementById("detail-image");
    const stage = img.parentElement;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "ocr-boxes");
    svg.setAttribute("viewBox", `0 0 ${Number(item.width) || 1} ${Number(item.height) || 1}`);
    svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
    svg.setAttribute("aria-hidden", "true");
    svg.style.cssText = "position:absolute;pointer-events:none;overflow:visible";
    const stroke = Math.max(1, Math.max(Number(item.width) || 0, Number(item.height) || 0) / 500);
    for (const line of lines) {
      if (!Array.isArray(line.box) || line.box.length !== 4) continue;
      const poly = document.createElementNS(SVG, "polygon");
      poly.setAttribute("points", line.box.map(([x, y]) => `${Number(x)},${Number(y)}`).join(" "));
      poly.setAttribute("fill", "rgba(255, 214, 0, 0.18)");
      poly.setAttribute("stroke", "#ffd600");
      poly.setAttribute("stroke-width", String(stroke));
      const title = document.createElementNS(SVG, "title");
      title.textContent = line.text;
      poly.append(title);
      svg.append(poly);
    }
    if (getComputedStyle(stage).position === "static") stage.style.position = "relative";
    stage.append(svg);
    const section = document.createElement("section");
    section.className = "ocr-text";
    section.id = "detail-ocr";
    const heading = document.createElement("h3");
    heading.textContent = "Text in the picture";
    section.append(heading);
    const list = document.createElement("ol");
    for (const line of lines.length ? lines : String(item.ocr_text).split("\n").map((text) => ({ text }))) {
      const li = document.createElement("li");
      li.textContent = line.text;
      if (line.confidence !== undefined) li.title = `confidence ${Number(line.confidence).toFixed(2)}`;
      list.append(li);
    }
    section.append(list);
    document.getElementById("detail-meta").after(section);
    current = { item, svg, section };
    img.addEventListener("load", place);
    window.addEventListener("resize", place);
    place();
  }

  return { show, clear };
})();
