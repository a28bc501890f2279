// Building DOM nodes. Text always goes in as text nodes: names, addresses and reasons come from
// people outside the department and are never parsed as HTML.
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
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

export function $(id) {
  return document.getElementById(id);
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

export function formatTime(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  const date = new Date(seconds * 1000);
  return date.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
}

export function formatAgo(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  const delta = Math.max(0, Date.now() / 1000 - seconds);
  if (delta < 60) return "just now";
  if (delta < 3600) return `${Math.round(delta / 60)} min ago`;
  if (delta < 86400) return `${Math.round(delta / 3600)} h ago`;
  return formatTime(seconds);
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return "";
  const s = Math.round(Number(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** Show an API error next to the field it names (when the form has it) and in the alert box. */
export function showError(box, err, form = null) {
  if (form) {
    for (const node of form.querySelectorAll("[aria-invalid=true]")) node.removeAttribute("aria-invalid");
  }
  box.textContent = err ? (err.message || String(err)) : "";
  if (err && form && err.field) {
    const target = form.querySelector(`[data-field="${CSS.escape(err.field)}"]`)
      || form.querySelector(`[name="${CSS.escape(err.field)}"]`);
    if (target) {
      target.setAttribute("aria-invalid", "true");
      target.focus();
    }
  }
}
