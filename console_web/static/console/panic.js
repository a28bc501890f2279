// Panic alarms on the console: every open alert of an enrolled facility, pushed by the server
// (server-sent events) the moment it is stored, with an alarm tone (not for drills), the
// facility's floor plan with the room marked, its contacts, SOPs and hazards, the timeline,
// and the analyst's steps: acknowledge, dispatched, check-in request, all clear.
"use strict";

import { api } from "./api.js";

const LEVELS = { active_threat: "ACTIVE THREAT", lockdown: "LOCKDOWN", medical: "MEDICAL",
  fire: "FIRE", weather: "WEATHER", other: "ALERT" };
const alerts = new Map();
const profiles = new Map();
let root = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function alarm(alert) {
  if (alert.drill) return;
  try {
    const audio = new AudioContext();
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.type = "square";
    tone.frequency.value = 880;
    gain.gain.value = 0.08;
    tone.connect(gain).connect(audio.destination);
    tone.start();
    for (let i = 1; i < 6; i += 1) tone.frequency.setValueAtTime(i % 2 ? 660 : 880, audio.currentTime + i * 0.4);
    tone.stop(audio.currentTime + 2.4);
  } catch (err) {
    // No audio before the analyst first interacts with the page; the banner still shows.
  }
}

function time(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString();
}

async function profile(facilityId) {
  if (profiles.has(facilityId)) return profiles.get(facilityId);
  let found = null;
  try { found = await api(`/api/panic/facilities/${encodeURIComponent(facilityId)}`); } catch (err) {
    found = { error: err.message };
  }
  profiles.set(facilityId, found);
  return found;
}

function list(title, items) {
  if (!items || !items.length) return null;
  const ul = el("ul");
  for (const item of items) {
    ul.append(el("li", { text: Object.values(item).filter(Boolean).join(" · ") }));
  }
  return el("div", { class: "panic-list" }, el("h4", { text: title }), ul);
}

function plan(alert, facility) {
  const room = alert.room;
  const floor = facility.floors && facility.floors.find((f) => f.has_plan
    && (!room || f.id === room.floor_id));
  if (!floor) return null;
  const box = el("div", { class: "panic-plan" });
  const img = el("img", { alt: `Floor plan: ${floor.name}`,
    src: `/api/facilities/${encodeURIComponent(facility.id)}/floors/${encodeURIComponent(floor.id)}/plan` });
  box.append(img);
  if (room && room.x !== null && room.floor_id === floor.id) {
    const mark = el("span", { class: "panic-room", title: room.name });
    mark.style.left = `${room.x * 100}%`;
    mark.style.top = `${room.y * 100}%`;
    box.append(mark);
  }
  return box;
}

async function step(alert, action) {
  try {
    await api(`/api/panic/alerts/${encodeURIComponent(alert.id)}/${action}`, { method: "POST", body: {} });
  } catch (err) {
    window.alert(err.message);
  }
}

async function render(alert) {
  let card = root.querySelector(`[data-alert="${CSS.escape(alert.id)}"]`);
  if (!alert.active) {
    if (card) card.remove();
    root.hidden = !root.children.length;
    return;
  }
  const facility = await profile(alert.facility_id);
  const fresh = el("article", { class: `panic-alert${alert.drill ? " drill" : ""}`,
    "data-alert": alert.id, "data-state": alert.state });
  const room = alert.room ? ` — room ${alert.room.number || ""} ${alert.room.name}` : "";
  fresh.append(
    el("h3", { text: `${alert.drill ? "DRILL · " : ""}${LEVELS[alert.level] || alert.level}: `
      + `${alert.facility ? alert.facility.name : alert.facility_id}${room}` }),
    el("p", { class: "panic-meta", text: `${alert.state} · raised ${time(alert.created)} by `
      + `${alert.device || "a device"}${alert.facility ? " · " + alert.facility.address : ""}`
      + (alert.lat !== null ? ` · phone at ${alert.lat.toFixed(5)}, ${alert.lon.toFixed(5)}` : "") }));
  const actions = el("div", { class: "panic-actions" });
  for (const [action, label] of [["acknowledge", "Acknowledge"], ["dispatch", "Dispatched"],
    ["checkin", "Check-in request"], ["all_clear", "All clear"]]) {
    const button = el("button", { type: "button", "data-action": action, text: label });
    button.addEventListener("click", () => step(alert, action));
    actions.append(button);
  }
  fresh.append(actions);
  if (facility && !facility.error) {
    fresh.append(plan(alert, facility) || el("span"),
      list("Contacts and key holders", facility.contacts),
      list("Procedures", facility.sops), list("Entrances", facility.entrances),
      list("Staging areas", facility.staging_areas), list("Hazards", facility.hazards));
  } else if (facility) {
    fresh.append(el("p", { class: "muted", text: facility.error }));
  }
  const timeline = el("ol", { class: "panic-timeline" });
  for (const event of alert.timeline || []) {
    const status = event.details && event.details.status ? `: ${event.details.status}` : "";
    timeline.append(el("li", { text: `${time(event.at)} ${event.step}${status} (${event.actor})` }));
  }
  fresh.append(timeline);
  if (card) card.replaceWith(fresh);
  else { root.prepend(fresh); alarm(alert); }
  root.hidden = false;
}

function update(alert) {
  alerts.set(alert.id, alert);
  render(alert);
}

async function start() {
  // A second wall window (?wall=NAME) leaves the alarms to the main window: a browser gives a
  // server six HTTP/1.1 connections, and every live feed holds one.
  if (new URLSearchParams(window.location.search).get("wall")) return;
  root = el("section", { id: "panic-alerts", "aria-label": "Panic alarms", "aria-live": "assertive" });
  root.hidden = true;
  document.body.prepend(root);
  const stream = new EventSource("/api/panic/alerts/stream");
  stream.addEventListener("alert", (event) => update(JSON.parse(event.data)));
  stream.addEventListener("open", async () => {
    try {
      const { alerts: open } = await api("/api/panic/alerts");
      for (const alert of open.reverse()) update(alert);
    } catch (err) {
      // Not signed in yet: the console's own start sends the analyst to the login page.
    }
  });
}

start();
