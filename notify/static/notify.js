// The notifications panel: soft targets on the map, manual sends (circle or polygon,
// categories, recipient preview) and, per alert, who was notified, who acknowledged, who not.
"use strict";

import { ApiError, goToLogin, request, setCsrfToken } from "/console/static/shared/api.js";

const $ = (id) => document.getElementById(id);
const COLORS = { school: "#fc6", hospital: "#f66", worship: "#c9f", stadium: "#6cf" };
const state = { area: null, polygon: [], layer: null, selected: null, facilities: [] };

async function api(path, options = {}) {
  const { response, data } = await request(path, options);
  if (response.status === 401) { goToLogin(); throw new ApiError(401, "log in"); }
  if (!response.ok) throw new ApiError(response.status, (data && data.error) || response.statusText);
  return data;
}

function say(text) { $("status").textContent = text; }

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function areaBody() {
  const categories = [...document.querySelectorAll("#categories input:checked")].map((i) => i.value);
  const body = { categories, description: "Area drawn on the map" };
  if (state.area) body.circle = state.area;
  if (state.polygon.length >= 3) body.polygon = state.polygon;
  return body;
}

function drawArea(map) {
  if (state.layer) state.layer.remove();
  state.layer = null;
  if (state.area) {
    state.layer = L.circle([state.area.lat, state.area.lon], { radius: state.area.radius_m, color: "#f80" }).addTo(map);
  } else if (state.polygon.length) {
    state.layer = L.polygon(state.polygon, { color: "#f80" }).addTo(map);
  }
}

async function loadFacilities(map) {
  const { facilities } = await api("/api/notify/facilities");
  state.facilities = facilities;
  const categories = new Set();
  for (const f of facilities) {
    categories.add(f.category);
    const color = COLORS[f.category] || "#ccc";
    const shape = f.polygon.length >= 3 ? L.polygon(f.polygon, { color }) : L.circleMarker([f.lat, f.lon], { radius: 7, color });
    shape.bindTooltip(`${f.name} (${f.category}), ${f.contacts.length} contact(s)`).addTo(map);
  }
  const box = $("categories");
  for (const name of [...categories].sort()) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    Object.assign(input, { type: "checkbox", value: name, checked: true });
    label.append(input, ` ${name}`);
    box.appendChild(label);
  }
  if (facilities.length) map.fitBounds(facilities.map((f) => [f.lat, f.lon]), { maxZoom: 16, padding: [30, 30] });
}

async function preview() {
  const { facilities, contacts } = await api("/api/notify/preview", { method: "POST", body: areaBody() });
  const list = $("recipients");
  list.replaceChildren(...facilities.map((f) => {
    const li = document.createElement("li");
    li.textContent = `${f.name} (${f.category}): ${f.contacts.map((c) => c.address).join(", ") || "no contact"}`;
    return li;
  }));
  $("send").disabled = facilities.length === 0;
  say(`${facilities.length} facilities, ${contacts} contacts`);
}

async function send(event) {
  event.preventDefault();
  const body = { ...areaBody(), headline: $("headline").value, description: $("description").value,
    instruction: $("instruction").value, scope: $("public").checked ? "Public" : "Private" };
  const alert = await api("/api/notify/send", { method: "POST", body });
  say(`alert ${alert.identifier} sent`);
  await loadAlerts();
  await showAlert(alert.id);
}

async function loadAlerts() {
  const { alerts } = await api("/api/notify/alerts");
  $("alerts").replaceChildren(...alerts.map((a) => {
    const li = document.createElement("li");
    li.textContent = `${a.msg_type} · ${a.state} · ${a.headline || a.identifier} · ${a.facilities.length} facilities`;
    li.dataset.id = a.id;
    li.setAttribute("aria-current", String(a.id === state.selected));
    li.addEventListener("click", () => showAlert(a.id));
    return li;
  }));
}

function action(label, path, after) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.addEventListener("click", async () => {
    try { await api(path, { method: "POST", body: {} }); await after(); } catch (err) { say(err.message); }
  });
  return button;
}

async function showAlert(id) {
  state.selected = id;
  const alert = await api(`/api/notify/alerts/${id}`);
  $("detail").hidden = false;
  $("detail-title").textContent = `${alert.msg_type} ${alert.identifier} (${alert.state}, ${alert.scope})`;
  const c = alert.counts;
  const total = alert.deliveries.length;
  $("detail-counts").textContent = `${total} deliveries: ${c.delivered || 0} delivered, ${c.sent || 0} sent, ` +
    `${(c.queued || 0) + (c.sending || 0)} pending, ${c.failed || 0} failed; ${c.acknowledged} acknowledged, ` +
    `${total - c.acknowledged} not`;
  const refresh = async () => { await loadAlerts(); await showAlert(id); };
  const actions = [];
  if (alert.state === "proposed") {
    actions.push(action("Confirm and send", `/api/notify/alerts/${id}/confirm`, refresh));
    actions.push(action("Dismiss", `/api/notify/alerts/${id}/dismiss`, refresh));
  } else if (alert.state === "sent" && alert.msg_type !== "Cancel") {
    actions.push(action("Send update", `/api/notify/alerts/${id}/update`, refresh));
    actions.push(action("All clear", `/api/notify/alerts/${id}/cancel`, refresh));
  }
  $("detail-actions").replaceChildren(...actions);
  $("deliveries").replaceChildren(...alert.deliveries.map((d) => {
    const row = document.createElement("tr");
    row.dataset.state = d.state;
    row.dataset.ack = d.acknowledged ? "yes" : "no";
    cell(row, d.facility_id || d.owner_id);
    cell(row, d.channel);
    cell(row, d.address);
    cell(row, d.last_error ? `${d.state}: ${d.last_error}` : d.state);
    cell(row, String(d.attempts));
    cell(row, d.acknowledged ? new Date(d.acked_at * 1000).toLocaleTimeString() : "not yet");
    const td = cell(row, "");
    if (!d.acknowledged && d.state !== "sending") td.appendChild(action("Re-send", `/api/notify/deliveries/${d.id}/resend`, refresh));
    return row;
  }));
  for (const li of document.querySelectorAll("#alerts li")) li.setAttribute("aria-current", String(Number(li.dataset.id) === id));
}

async function boot() {
  let me;
  try { me = await api("/api/me"); } catch (err) { say(err.message); return; }
  setCsrfToken(me.csrf_token);
  $("who").textContent = me.username;
  const map = L.map("map").setView([39.8, -89.65], 14);
  map.on("click", (event) => {
    const { lat, lng } = event.latlng;
    if (document.querySelector("input[name=shape]:checked").value === "circle") {
      state.polygon = [];
      state.area = { lat, lon: lng, radius_m: Number($("radius").value) || 500 };
    } else {
      state.area = null;
      state.polygon.push([lat, lng]);
    }
    drawArea(map);
  });
  $("radius").addEventListener("change", () => { if (state.area) { state.area.radius_m = Number($("radius").value); drawArea(map); } });
  $("clear-area").addEventListener("click", () => { state.area = null; state.polygon = []; drawArea(map); });
  $("preview").addEventListener("click", () => preview().catch((err) => say(err.message)));
  $("compose").addEventListener("submit", (event) => send(event).catch((err) => say(err.message)));
  await loadFacilities(map);
  await loadAlerts();
  setInterval(() => { loadAlerts().catch(() => {}); if (state.selected) showAlert(state.selected).catch(() => {}); }, 3000);
}

boot();
