// Clearing, formatting and showing errors in the portal. Building nodes is shared with the
// console (/console/static/shared/dom.js).
"use strict";

export { $, el } from "/console/static/shared/dom.js";

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
