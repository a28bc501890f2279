// Building DOM nodes. Text always goes in as text nodes: camera names, owners, addresses and
// reasons come from people outside the department and are never parsed as HTML.
"use strict";

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    // A string child becomes a text node (``append`` never parses it).
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

export function $(id) {
  return document.getElementById(id);
}
