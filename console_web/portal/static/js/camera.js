// Register or edit one camera: position and aim on the map, sharing level, hours, PTZ, and how
// the server reaches it (through the owner's agent, or directly with its stream address).
"use strict";

import { api } from "./api.js";
import { $, clear, el, showError } from "./dom.js";
import { KINDS, LEVELS } from "./labels.js";
import { PlaceMap } from "./placemap.js";
import { confirmButton } from "./confirm.js";
import { showGrants } from "./grants.js";
import { requireOwner } from "./session.js";

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY_NAMES = { mon: "Mon", tue: "Tue", wed: "Wed", thu: "Thu", fri: "Fri", sat: "Sat", sun: "Sun" };
const state = { editing: null, map: null, agentCameras: [] };

function number(id) {
  const text = $(id).value.trim();
  return text === "" ? NaN : Number(text);
}

function formView() {
  return { lat: number("lat"), lon: number("lon"), heading: number("heading") || 0,
    fov: number("fov") || 90, range_m: number("range_m") || 40 };
}

function syncHeadingText() {
  const heading = number("heading");
  const names = ["north", "north-east", "east", "south-east", "south", "south-west", "west", "north-west"];
  $("heading-text").textContent = Number.isFinite(heading)
    ? `${Math.round(heading)}° (${names[Math.round(((heading % 360) + 360) % 360 / 45) % 8]})` : "";
  if (Number.isFinite(heading)) $("heading-range").value = String(Math.round(heading) % 360);
}

function fromMap(view) {
  $("lat").value = view.lat.toFixed(6);
  $("lon").value = view.lon.toFixed(6);
  $("heading").value = String(Math.round(view.heading));
  $("range_m").value = String(Math.round(view.range_m));
  syncHeadingText();
}

function toMap() {
  syncHeadingText();
  if (state.map) state.map.set(formView());
}

// -- sharing levels and hours ----------------------------------------------------------------

function buildLevels() {
  const box = $("levels");
  for (const level of LEVELS) {
    const id = `level-${level.value}`;
    box.append(el("label", { for: id },
      el("input", { type: "radio", name: "sharing", id, value: level.value }),
      el("span", {}, el("strong", { text: level.label }), el("span", { class: "hint", text: level.text }))));
  }
  $("level-registry_only").checked = true;
}

function windowRow(window = { days: ["mon", "tue", "wed", "thu", "fri"], start: "08:00", end: "18:00" }) {
  const index = $("windows").children.length;
  const days = el("div", { class: "days", role: "group", "aria-label": "Days" },
    ...DAYS.map((day) => el("label", {},
      el("input", { type: "checkbox", value: day, checked: window.days.includes(day) }),
      DAY_NAMES[day])));
  const start = el("input", { type: "time", class: "start", value: window.start === "24:00" ? "23:59" : window.start,
    id: `window-start-${index}` });
  const end = el("input", { type: "time", class: "end", value: window.end === "24:00" ? "23:59" : window.end,
    id: `window-end-${index}` });
  const row = el("li", { class: "window" }, days,
    el("div", { class: "row" },
      el("div", {}, el("label", { for: start.id, text: "From" }), start),
      el("div", {}, el("label", { for: end.id, text: "Until" }), end)),
    el("button", { type: "button", class: "secondary", text: "Remove these hours",
      onclick: () => row.remove() }));
  $("windows").append(row);
}

function readWindows() {
  return [...$("windows").children].map((row) => {
    const end = row.querySelector(".end").value;
    return {
      days: [...row.querySelectorAll("input[type=checkbox]:checked")].map((box) => box.value),
      start: row.querySelector(".start").value,
      end: end === "23:59" ? "24:00" : end,
    };
  });
}

// -- how the server reaches the camera -------------------------------------------------------

function showReach() {
  const reach = document.querySelector("input[name=reach]:checked");
  const value = reach ? reach.value : "none";
  $("agent-part").hidden = value !== "agent";
  $("direct-part").hidden = value !== "direct";
}

async function loadAgentCameras(registered) {
  const select = $("agent-camera");
  clear(select);
  try {
    const answer = await api("/api/agents");
    for (const agent of answer.agents) {
      if (agent.revoked) continue;
      for (const camera of agent.cameras) {
        if (registered.has(camera.camera_id) && camera.camera_id !== (state.editing && state.editing.id)) continue;
        state.agentCameras.push(camera);
        const label = [camera.name, camera.model, `(${agent.name || agent.id})`].filter(Boolean).join(" ");
        select.append(el("option", { value: camera.camera_id, text: label || camera.camera_id }));
      }
    }
  } catch (err) {
    // Agents are optional: an owner without one registers cameras directly.
  }
  $("agent-none").hidden = select.options.length > 0;
}

// -- saving ----------------------------------------------------------------------------------

function body() {
  const reach = (document.querySelector("input[name=reach]:checked") || {}).value || "none";
  const sharing = (document.querySelector("input[name=sharing]:checked") || {}).value;
  const data = {
    name: $("name").value,
    site_id: $("site").value,
    kind: $("kind").value,
    lat: number("lat"),
    lon: number("lon"),
    heading: (number("heading") % 360 + 360) % 360,
    fov: number("fov"),
    range_m: number("range_m"),
    sharing,
    windows: readWindows(),
    timezone: $("timezone").value.trim(),
    ptz_allowed: $("ptz").checked,
  };
  for (const key of ["lat", "lon", "heading", "fov", "range_m"]) {
    if (!Number.isFinite(data[key])) data[key] = null;
  }
  if (!state.editing) data.via_agent = reach === "agent";
  if (reach === "agent") {
    if (!state.editing) data.id = $("agent-camera").value;
  } else if (reach === "direct") {
    const url = $("main-url").value.trim();
    const main = { url, username: $("main-user").value.trim() };
    const password = $("main-pass").value;
    if (password) main.password = password;
    data.profiles = url ? { main } : {};
    const sub = $("sub-url").value.trim();
    if (url && sub) {
      data.profiles.sub = { url: sub, username: main.username };
      if (password) data.profiles.sub.password = password;
    }
  } else {
    data.profiles = {};
  }
  return data;
}

async function save(event) {
  event.preventDefault();
  const form = $("camera-form");
  const box = $("error");
  showError(box, null, form);
  if (!Number.isFinite(number("lat")) || !Number.isFinite(number("lon"))) {
    showError(box, { message: "Place the camera: click the map, or type its latitude and longitude.", field: "lat" }, form);
    return;
  }
  const button = $("save");
  button.disabled = true;
  try {
    const answer = state.editing
      ? await api(`/api/owner/cameras/${encodeURIComponent(state.editing.id)}`, { method: "PATCH", body: body() })
      : await api("/api/owner/cameras", { method: "POST", body: body() });
    window.location.href = `/register/dashboard?saved=${encodeURIComponent(answer.camera.id)}`;
  } catch (err) {
    showError(box, err, form);
    button.disabled = false;
  }
}

// -- filling the form ------------------------------------------------------------------------

function fill(camera) {
  $("title").textContent = "Edit camera";
  $("name").value = camera.name;
  $("site").value = camera.site_id || "";
  $("kind").value = camera.kind;
  $("lat").value = String(camera.lat);
  $("lon").value = String(camera.lon);
  $("heading").value = String(Math.round(camera.heading));
  $("fov").value = String(Math.round(camera.fov));
  $("range_m").value = String(Math.round(camera.range_m));
  $(`level-${camera.sharing}`).checked = true;
  for (const window of camera.windows || []) windowRow(window);
  $("timezone").value = camera.timezone;
  const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (browserZone && browserZone !== camera.timezone) {
    $("zone-note").textContent = `Its hours are in ${camera.timezone}; your browser is in ${browserZone}.`;
    $("zone-note").hidden = false;
  }
  $("ptz").checked = camera.ptz_allowed;
  const main = camera.profiles && camera.profiles.main;
  const reach = camera.via_agent ? "agent" : (main ? "direct" : "none");
  $(`reach-${reach}`).checked = true;
  if (camera.via_agent) {
    for (const radio of document.querySelectorAll("input[name=reach]")) radio.disabled = true;
    $("agent-camera").disabled = true;
  } else {
    $("reach-agent").disabled = true;
  }
  if (main) {
    $("main-url").value = main.url;
    $("main-user").value = main.username || "";
    $("pass-kept").hidden = !main.has_password;
    const sub = camera.profiles.sub;
    if (sub) $("sub-url").value = sub.url;
  }
  $("delete-slot").append(confirmButton("Remove this camera", "Really remove it?", "danger", async () => {
    try {
      await api(`/api/owner/cameras/${encodeURIComponent(camera.id)}`, { method: "DELETE" });
      window.location.href = "/register/dashboard";
    } catch (err) {
      showError($("error"), err);
    }
  }));
}

// The zone chosen at sign-up, else the browser's: sharing hours are read in it.
function proposedZone() {
  let chosen = null;
  try { chosen = window.localStorage.getItem("rtcc.portal.timezone"); } catch { /* storage off */ }
  return chosen || Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

async function start() {
  try {
    await requireOwner();
  } catch (err) {
    showError($("fatal"), err);
    $("camera-form").hidden = true;
    return;
  }
  buildLevels();
  for (const [value, label] of KINDS) $("kind").append(el("option", { value, text: label }));
  $("timezone").value = proposedZone();
  const [config, sites, cameras] = await Promise.all([
    api("/api/portal/config").catch(() => ({})),
    api("/api/owner/sites"),
    api("/api/owner/cameras"),
  ]);
  for (const site of sites.sites) $("site").append(el("option", { value: site.id, text: site.address }));
  const id = new URLSearchParams(window.location.search).get("id");
  if (id) {
    state.editing = await api(`/api/owner/cameras/${encodeURIComponent(id)}`);
  }
  await loadAgentCameras(new Set(cameras.cameras.map((camera) => camera.id)));
  if (state.editing) {
    fill(state.editing);
    showGrants(state.editing.id);
  } else {
    $(state.agentCameras.length ? "reach-agent" : "reach-direct").checked = true;
  }
  showReach();

  state.map = new PlaceMap($("map"), config, fromMap);
  if (!state.map.ready) {
    $("map").hidden = true;
    $("map-help").textContent = "The map could not be loaded: type the latitude and longitude.";
  } else {
    if (!config.tile_url) {
      $("map-help").textContent = "No street map is configured on this server: use your location or type the "
        + "latitude and longitude, then drag the blue dot to aim the camera.";
    }
    state.map.showOthers(cameras.cameras.filter((camera) => !state.editing || camera.id !== state.editing.id));
    const others = cameras.cameras;
    if (state.editing) state.map.centre(state.editing.lat, state.editing.lon, 18);
    else if (others.length) state.map.centre(others[0].lat, others[0].lon, 17);
    else if (config.start) state.map.centre(config.start.lat, config.start.lon, 17);
    else state.map.centre(20, 0, 2);
  }
  toMap();

  for (const id of ["lat", "lon", "fov", "range_m", "heading"]) $(id).addEventListener("input", toMap);
  $("heading-range").addEventListener("input", () => { $("heading").value = $("heading-range").value; toMap(); });
  for (const radio of document.querySelectorAll("input[name=reach]")) radio.addEventListener("change", showReach);
  $("add-window").addEventListener("click", () => windowRow());
  $("locate-me").addEventListener("click", () => {
    if (!navigator.geolocation) {
      showError($("error"), { message: "This browser cannot tell your location; type it instead." });
      return;
    }
    navigator.geolocation.getCurrentPosition((position) => {
      $("lat").value = position.coords.latitude.toFixed(6);
      $("lon").value = position.coords.longitude.toFixed(6);
      toMap();
      if (state.map) state.map.centre(position.coords.latitude, position.coords.longitude, 18);
    }, () => showError($("error"), { message: "Your location is not available; type it or click the map." }),
    { timeout: 10000 });
  });
  $("camera-form").addEventListener("submit", save);
  document.body.dataset.ready = "true";
}

start().catch((err) => showError($("fatal"), err));
