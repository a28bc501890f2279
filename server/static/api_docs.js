// Lists the operations of /api/openapi.json, grouped by tag. Built with DOM calls only (no
// innerHTML), so text from the description is never interpreted as markup.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

function render(doc, filter) {
  const root = document.getElementById("operations");
  root.replaceChildren();
  const groups = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (method === "parameters") continue;
      const text = `${method} ${path} ${op.summary || ""}`.toLowerCase();
      if (filter && !text.includes(filter)) continue;
      const tag = (op.tags && op.tags[0]) || "other";
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push([method, path, op]);
    }
  }
  for (const [tag, ops] of [...groups.entries()].sort()) {
    root.append(el("h2", {}, tag));
    for (const [method, path, op] of ops) {
      const roles = (op["x-rtcc-roles"] || []).join(", ");
      const head = el("summary", {},
        el("span", { class: "method" }, method.toUpperCase()),
        el("span", { class: "path" }, path), " ", op.summary || "",
        el("span", { class: "roles" }, roles ? `(${roles})` : ""));
      const detail = { ...op };
      delete detail.summary;
      root.append(el("details", { "data-operation": `${method.toUpperCase()} ${path}` }, head,
        el("pre", {}, JSON.stringify(detail, null, 2))));
    }
  }
  if (!root.children.length) root.append("No operation matches.");
}

async function main() {
  const response = await fetch("/api/openapi.json");
  const doc = await response.json();
  const filter = document.getElementById("filter");
  filter.addEventListener("input", () => render(doc, filter.value.trim().toLowerCase()));
  render(doc, "");
}

main().catch((error) => {
  document.getElementById("operations").textContent = `Could not load the API: ${error}`;
});
