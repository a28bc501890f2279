// The owner's access log: one row per live view (its end gives the duration), refused attempt,
// snapshot, camera movement, sharing change and footage decision. Entries come newest first.
"use strict";

import { clear, el, formatDuration, formatTime } from "./dom.js";
import { ACTIONS, levelLabel } from "./labels.js";

const SHOWN = new Set(Object.keys(ACTIONS));

function what(entry) {
  const details = entry.details || {};
  if (entry.action === "view.start") {
    if (entry.outcome === "denied") return "live view refused";
    return details.profile === "sub" ? "live view (small picture)" : "live view";
  }
  if (entry.action === "consent.change") {
    const before = details.before && details.before.sharing;
    const after = details.after && details.after.sharing;
    if (!before) return `registered as: ${levelLabel(after)}`;
    return `sharing: ${levelLabel(before)} → ${levelLabel(after)}`;
  }
  return ACTIONS[entry.action] || entry.action;
}

function refused(entry) {
  return entry.outcome === "denied" || entry.outcome === "refused";
}

// Why the server refused, in its own column: never mixed into what the viewer said.
function outcome(entry) {
  if (!refused(entry)) return "";
  const reason = (entry.details || {}).reason;
  return reason ? `Refused: ${reason}` : "Refused";
}

function purpose(entry) {
  const details = entry.details || {};
  const parts = [];
  if (details.purpose) parts.push(details.purpose);
  if (details.incident && !(details.purpose || "").includes(details.incident)) {
    parts.push(`incident ${details.incident}`);
  }
  if (details.case) parts.push(`case ${details.case}`);
  if (details.note) parts.push(details.note);
  return parts.join(" · ");
}

function cell(label, className, text) {
  return el("td", { class: className, "data-label": label, text });
}

export function renderAccessLog(table, emptyNote, entries, cameras, me = "") {
  const stops = new Map();
  for (const entry of entries) {
    if (entry.action === "view.stop") stops.set(entry.target, entry);
  }
  const body = table.tBodies[0];
  clear(body);
  let rows = 0;
  for (const entry of entries) {
    if (!SHOWN.has(entry.action) || entry.action === "view.stop") continue;
    if (!entry.camera_id && !entry.action.startsWith("agent.")) continue;
    let duration = "";
    if (entry.action === "view.start" && entry.outcome !== "denied") {
      const stop = stops.get(entry.target);
      duration = stop ? formatDuration(stop.details && stop.details.duration_s) : "still watching";
    }
    const camera = cameras.get(entry.camera_id);
    let who = entry.role ? `${entry.actor} (${entry.role})` : entry.actor;
    if (me && entry.actor === me) who = "you";
    body.append(el("tr", { class: refused(entry) ? "entry refused" : "entry", dataset: { action: entry.action, outcome: entry.outcome,
      cameraId: entry.camera_id || "" } },
      cell("When", "when", formatTime(entry.ts_ms / 1000)),
      cell("Who", "who", who),
      cell("Camera", "camera-cell", camera ? camera.name : (entry.camera_id || "")),
      cell("What", "what", what(entry)),
      cell("How long", "duration", duration),
      cell("Purpose or incident", "purpose", purpose(entry)),
      cell("Outcome", "outcome", outcome(entry))));
    rows += 1;
  }
  emptyNote.hidden = rows > 0;
  table.hidden = rows === 0;
}
