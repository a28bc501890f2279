// One facility: its profile and yearly review, what responders need to know, floors with their
// plans (an image or a PDF) and rooms placed by clicking on the plan, panic devices enrolled by
// QR code, and its alerts with their timelines. Everything typed goes in as text.
"use strict";

import { api, ApiError } from "./api.js";
import { csrfHeaders } from "/console/static/shared/api.js";
import { confirmButton } from "./confirm.js";
import { $, clear, el, formatTime, showError } from "./dom.js";
import { requireOwner } from "./session.js";

const id = new URLSearchParams(window.location.search).get("id") || "";
const base = `/api/facilities/${encodeURIComponent(id)}`;
const LISTS = [
  ["buildings", "Buildings", [["name", "Name"], ["text", "Notes"]]],
  ["entrances", "Entrances and doors", [["name", "Door"], ["text", "Where it is, how to open it"]]],
  ["staging_areas", "Staging areas", [["text", "Where"]]],
  ["contacts", "Contacts and key holders", [["name", "Name"], ["role", "Role"], ["phone", "Phone"]]],
  ["sops", "Procedures (SOPs)", [["text", "Procedure"]]],
  ["hazards", "Hazards", [["text", "Hazard and where"]]],
];
let facility = null;
let planVersion = Date.now();

function note(box, text) {
  box.textContent = text;
  if (text) setTimeout(() => { if (box.textContent === text) box.textContent = ""; }, 4000);
}

// -- profile and review -------------------------------------------------------------------------

function showProfile() {
  $("title").textContent = facility.name;
  document.title = `${facility.name} - Camera registry`;
  $("f-name").value = facility.name;
  $("f-address").value = facility.address;
  for (const radio of document.querySelectorAll("#profile input[name=sharing]")) {
    radio.checked = radio.value === facility.sharing;
  }
  const due = facility.review_due * 1000 < Date.now();
  const state = $("review-state");
  state.className = due ? "error" : "";
  state.textContent = `Last reviewed ${formatTime(facility.reviewed_at)}; `
    + (due ? `the review was due ${formatTime(facility.review_due)}.`
      : `next review due by ${formatTime(facility.review_due)}.`);
}

async function saveProfile(event) {
  event.preventDefault();
  const form = $("profile");
  showError($("profile-error"), null, form);
  try {
    facility = await api(base, { method: "PATCH", body: {
      name: $("f-name").value, address: $("f-address").value,
      sharing: form.querySelector("input[name=sharing]:checked").value,
    } });
    showProfile();
    note($("profile-notice"), "Saved.");
  } catch (err) {
    showError($("profile-error"), err, form);
  }
}

async function markReviewed() {
  try {
    facility = await api(base, { method: "PATCH", body: { review: true } });
    showProfile();
  } catch (err) {
    showError($("fatal"), err);
  }
}

// -- lists --------------------------------------------------------------------------------------

function itemRow(key, fields, item) {
  const row = el("div", { class: "list-item", dataset: { item: "" } });
  row._extra = { ...item };
  for (const [name, label] of fields) {
    delete row._extra[name];
    row.append(el("input", { type: "text", maxlength: 2000, "aria-label": label,
      placeholder: label, value: item[name] || "", dataset: { name } }));
  }
  row.append(el("button", { type: "button", class: "secondary", text: "Remove",
    "aria-label": `Remove this entry of ${key.replace("_", " ")}`,
    onclick: () => row.remove() }));
  return row;
}

function showLists() {
  const box = $("list-editors");
  clear(box);
  for (const [key, title, fields] of LISTS) {
    const items = el("div", { dataset: { items: key } });
    for (const item of facility[key] || []) items.append(itemRow(key, fields, item));
    box.append(el("fieldset", { dataset: { list: key } }, el("legend", { text: title }), items,
      el("button", { type: "button", class: "secondary", text: `Add to ${title.toLowerCase()}`,
        onclick: () => {
          const row = itemRow(key, fields, {});
          items.append(row);
          row.querySelector("input").focus();
        } })));
  }
}

async function saveLists(event) {
  event.preventDefault();
  const body = {};
  for (const [key] of LISTS) {
    body[key] = [];
    for (const row of document.querySelectorAll(`[data-items=${key}] [data-item]`)) {
      const item = { ...row._extra };
      for (const input of row.querySelectorAll("input[data-name]")) {
        if (input.value.trim()) item[input.dataset.name] = input.value.trim();
      }
      if (Object.keys(item).length) body[key].push(item);
    }
  }
  showError($("lists-error"), null);
  try {
    facility = await api(base, { method: "PATCH", body });
    showLists();
    note($("lists-notice"), "Saved.");
  } catch (err) {
    showError($("lists-error"), err);
  }
}

// -- floors, plans, rooms -----------------------------------------------------------------------

function percent(value) {
  return `${Math.round(value * 100)}%`;
}

function fraction(text) {
  return text === "" ? null : Math.min(1, Math.max(0, Number(text) / 100));
}

function floorBlock(floor) {
  const rooms = facility.rooms.filter((r) => r.floor_id === floor.id);
  const block = el("div", { class: "floor", dataset: { floor: floor.id } });
  const heading = [floor.building, floor.name].filter(Boolean).join(": ");
  block.append(el("h3", { text: `${heading} (level ${floor.level})` }));
  const across = el("input", { type: "number", id: `room-x-${floor.id}`, min: 0, max: 100, step: "any" });
  const down = el("input", { type: "number", id: `room-y-${floor.id}`, min: 0, max: 100, step: "any" });
  const where = el("p", { class: "muted", role: "status",
    text: "Click the plan where the room is, or type its place in percent (or leave it empty)." });
  if (floor.has_plan) {
    const plan = el("div", { class: "plan", dataset: { plan: floor.id } });
    const image = el("img", { src: `${base}/floors/${encodeURIComponent(floor.id)}/plan?v=${planVersion}`,
      alt: `Floor plan of ${heading}. Click a spot to place a new room there.`,
      width: floor.plan_width, height: floor.plan_height });
    plan.append(image);
    for (const room of rooms) {
      if (room.x === null || room.y === null) continue;
      plan.append(el("span", { class: "room-pin", dataset: { room: room.id },
        style: `left:${percent(room.x)};top:${percent(room.y)}`,
        text: room.number || room.name }));
    }
    const pin = el("span", { class: "new-pin", hidden: true });
    plan.append(pin);
    plan.addEventListener("click", (event) => {
      const box = image.getBoundingClientRect();
      const x = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
      const y = Math.min(1, Math.max(0, (event.clientY - box.top) / box.height));
      across.value = String(Math.round(x * 1000) / 10);
      down.value = String(Math.round(y * 1000) / 10);
      pin.hidden = false;
      pin.style.left = percent(x);
      pin.style.top = percent(y);
      where.textContent = `Placed ${percent(x)} across and ${percent(y)} down the plan.`;
    });
    block.append(plan);
  } else {
    block.append(el("p", { class: "muted", text: "No plan yet: upload one below." }));
  }
  const file = el("input", { type: "file", id: `plan-${floor.id}`,
    accept: "image/png,image/jpeg,image/gif,image/webp,application/pdf" });
  const upload = el("form", { class: "row", novalidate: true, dataset: { upload: floor.id } },
    el("div", {}, el("label", { for: `plan-${floor.id}`,
      text: floor.has_plan ? "Replace the plan (image or PDF)" : "Upload the plan (image or PDF)" }), file),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "secondary", text: "Upload" })));
  const uploadError = el("p", { class: "error", role: "alert" });
  upload.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(uploadError, null);
    const chosen = file.files && file.files[0];
    if (!chosen) {
      showError(uploadError, new ApiError(400, "choose a file first"));
      return;
    }
    try {
      const response = await fetch(`${base}/floors/${encodeURIComponent(floor.id)}/plan`, {
        method: "PUT", body: chosen, credentials: "same-origin",
        headers: { ...csrfHeaders(), "Content-Type": chosen.type || "application/octet-stream" },
      });
      const data = await response.json().catch(() => null);
      if (!response.ok) throw new ApiError(response.status, (data && data.error) || response.statusText);
      planVersion = Date.now();
      await reload();
    } catch (err) {
      showError(uploadError, err);
    }
  });
  block.append(upload, uploadError);

  const roomName = el("input", { type: "text", id: `room-name-${floor.id}`, maxlength: 100, required: true });
  const roomNumber = el("input", { type: "text", id: `room-number-${floor.id}`, maxlength: 20 });
  const roomError = el("p", { class: "error", role: "alert" });
  const addRoom = el("form", { class: "row", novalidate: true, dataset: { addRoom: floor.id } },
    el("div", {}, el("label", { for: roomName.id, text: "Room name" }), roomName),
    el("div", {}, el("label", { for: roomNumber.id, text: "Number" }), roomNumber),
    el("div", {}, el("label", { for: across.id, text: "Across (%)" }), across),
    el("div", {}, el("label", { for: down.id, text: "Down (%)" }), down),
    el("div", { class: "actions" }, el("button", { type: "submit", text: "Add the room" })));
  addRoom.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(roomError, null);
    try {
      await api(`${base}/rooms`, { method: "POST", body: {
        floor_id: floor.id, name: roomName.value, number: roomNumber.value,
        x: fraction(across.value), y: fraction(down.value) } });
      await reload();
    } catch (err) {
      showError(roomError, err);
    }
  });
  block.append(where, addRoom, roomError);
  const list = el("ul", { class: "muted" });
  for (const room of rooms) {
    list.append(el("li", { text: `${room.number ? room.number + " " : ""}${room.name}`
      + (room.x === null ? " (not placed)" : "") }));
  }
  block.append(list);
  return block;
}

function showFloors() {
  const box = $("floors");
  clear(box);
  for (const floor of facility.floors) box.append(floorBlock(floor));
  const select = $("device-room");
  const chosen = select.value;
  clear(select);
  select.append(el("option", { value: "", text: "No usual room" }));
  for (const room of facility.rooms) {
    select.append(el("option", { value: room.id, text: `${room.number ? room.number + " " : ""}${room.name}` }));
  }
  select.value = chosen;
}

async function addFloor(event) {
  event.preventDefault();
  const form = $("add-floor");
  showError($("floors-error"), null, form);
  try {
    await api(`${base}/floors`, { method: "POST", body: {
      building: $("floor-building").value, name: $("floor-name").value,
      level: Number($("floor-level").value || 0) } });
    $("floor-name").value = "";
    await reload();
  } catch (err) {
    showError($("floors-error"), err, form);
  }
}

// -- devices and QR codes -----------------------------------------------------------------------

async function makeCode(event) {
  event.preventDefault();
  const form = $("enrol");
  showError($("enrol-error"), null, form);
  $("make-qr").disabled = true;
  try {
    const code = await api(`${base}/enrolments`, { method: "POST", body: {
      label: $("device-label").value, room_id: $("device-room").value } });
    // The server makes the SVG; shown as an image, never parsed into this page.
    $("qr-image").src = code.qr_data_uri;
    $("qr-url").textContent = code.url;
    $("qr-expiry").textContent = `It enrols one phone and works for ${Math.round(code.expires_in_minutes / 60)} hours.`;
    $("qr").hidden = false;
  } catch (err) {
    showError($("enrol-error"), err, form);
  } finally {
    $("make-qr").disabled = false;
  }
}

function roomName(roomId) {
  const room = facility.rooms.find((r) => r.id === roomId);
  return room ? `${room.number ? room.number + " " : ""}${room.name}` : "no usual room";
}

async function loadDevices() {
  const answer = await api(`${base}/devices`);
  const list = $("devices");
  clear(list);
  for (const device of answer.devices) {
    const item = el("li", { dataset: { device: device.id } },
      el("strong", { text: device.label }),
      el("div", { class: "muted", text: `${roomName(device.room_id)}; enrolled ${formatTime(device.created)}` }));
    if (device.revoked_at) {
      item.append(el("div", { class: "error", text: `Revoked ${formatTime(device.revoked_at)}` }));
    } else {
      item.append(confirmButton("Revoke", "Revoke: sure?", "danger", async () => {
        try {
          await api(`${base}/devices/${encodeURIComponent(device.id)}/revoke`, { method: "POST", body: {} });
          await loadDevices();
        } catch (err) {
          showError($("devices-error"), err);
        }
      }));
    }
    list.append(item);
  }
  $("no-devices").hidden = answer.devices.length > 0;
}

// -- alerts -------------------------------------------------------------------------------------

async function loadAlerts() {
  const answer = await api(`${base}/alerts`);
  const list = $("alerts");
  clear(list);
  for (const alert of answer.alerts) {
    const title = `${alert.drill ? "DRILL: " : ""}${alert.level.replace("_", " ")}`
      + (alert.room ? `, room ${alert.room.number || alert.room.name}` : "");
    const timeline = el("ol", { class: "timeline" });
    for (const step of alert.timeline) {
      timeline.append(el("li", { text: `${formatTime(step.at)}: ${step.step} (${step.actor})` }));
    }
    list.append(el("li", { dataset: { alert: alert.id } },
      el("strong", { text: title }),
      el("div", { class: "muted", text: `${formatTime(alert.created)}; ${alert.state}; from ${alert.device || "a device"}` }),
      timeline));
  }
  $("no-alerts").hidden = answer.alerts.length > 0;
}

async function reload() {
  facility = await api(base);
  showProfile();
  showFloors();
}

async function start() {
  try {
    await requireOwner();
    if (!id) throw new ApiError(404, "No facility chosen: open it from your list of facilities.");
    await reload();
    showLists();
    await Promise.all([loadDevices(), loadAlerts()]);
  } catch (err) {
    showError($("fatal"), err);
    return;
  }
  $("profile").addEventListener("submit", saveProfile);
  $("reviewed").addEventListener("click", markReviewed);
  $("lists").addEventListener("submit", saveLists);
  $("add-floor").addEventListener("submit", addFloor);
  $("enrol").addEventListener("submit", makeCode);
  document.body.dataset.ready = "true";
}

start();
