// The panic app: one big button, then what is happening. The alert is queued on the phone
// (localStorage) under an id made here, and sent until the server says it is stored; a retry
// of the same id is the same alert. Then the page follows it: acknowledged, check-in requests
// (answered safe / injured / need help), all clear.
"use strict";

const TOKEN = "panic.device_token";
const QUEUE = "panic.queue";
const CURRENT = "panic.current";
const $ = (id) => document.getElementById(id);
const state = { config: null, position: null, polling: null };

function token() { return localStorage.getItem(TOKEN) || ""; }

async function call(path, { method = "GET", body } = {}) {
  const headers = { "X-Device-Token": token() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers,
    body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await response.json(); } catch (err) { data = null; }
  return { status: response.status, data };
}

function show(section) {
  for (const id of ["unenrolled", "ready", "sent"]) $(id).hidden = id !== section;
}

function error(text) { $("error").textContent = text || ""; }

async function enrol(secret) {
  const { status, data } = await call("/panic/api/enrol", { method: "POST", body: { secret } });
  if (status !== 201) throw new Error((data && data.error) || `enrolment failed (${status})`);
  localStorage.setItem(TOKEN, data.device_token);
}

function queue() { return JSON.parse(localStorage.getItem(QUEUE) || "[]"); }
function saveQueue(items) { localStorage.setItem(QUEUE, JSON.stringify(items)); }

function uid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0")).join("");
}

function locate() {
  if (!navigator.geolocation) return;
  navigator.geolocation.getCurrentPosition((pos) => { state.position = pos.coords; },
    () => {}, { enableHighAccuracy: true, timeout: 10000, maximumAge: 60000 });
}

function raise(level) {
  const alert = { id: uid(), facility_id: state.config.facility.id, level,
    silent: $("silent").checked, drill: $("drill").checked, room_id: $("room").value };
  if (state.position) {
    alert.lat = state.position.latitude;
    alert.lon = state.position.longitude;
    alert.accuracy_m = state.position.accuracy;
  }
  saveQueue([...queue(), alert]);
  localStorage.setItem(CURRENT, alert.id);
  if (!alert.silent && navigator.vibrate) navigator.vibrate(200);
  $("levels").hidden = true;
  $("panic").hidden = false;
  show("sent");
  $("sent-title").textContent = alert.drill ? "DRILL alert sending…" : "Alert sending…";
  $("sent-state").textContent = "Keep this page open.";
  flush(0);
}

// Sends every queued alert; a failure (no network, a server error) is retried with a growing
// pause. A refusal (4xx) is final: it is shown and dropped.
async function flush(attempt) {
  for (const alert of queue()) {
    let result;
    try {
      result = await call("/panic/api/alerts", { method: "POST", body: alert });
    } catch (err) {
      result = { status: 0, data: null };
    }
    if (result.status === 200 || result.status === 201) {
      saveQueue(queue().filter((a) => a.id !== alert.id));
      if (localStorage.getItem(CURRENT) === alert.id) follow(result.data.alert.id);
    } else if (result.status >= 400 && result.status < 500 && result.status !== 408) {
      saveQueue(queue().filter((a) => a.id !== alert.id));
      error(((result.data && result.data.error) || `refused (${result.status})`)
        + " — call 911 if this is an emergency.");
      $("sent-title").textContent = "Alert NOT sent";
    } else {
      const wait = Math.min(30000, 1000 * 2 ** attempt);
      $("sent-state").textContent = `No answer from the RTCC yet; trying again in ${wait / 1000} s.`;
      setTimeout(() => flush(attempt + 1), wait);
      return;
    }
  }
}

function follow(alertId) {
  $("sent-title").textContent = "Alert stored at the RTCC";
  $("sent-title").dataset.alert = alertId;
  clearInterval(state.polling);
  const poll = async () => {
    let result;
    try { result = await call(`/panic/api/alerts/${encodeURIComponent(alertId)}`); } catch (err) {
      return;
    }
    if (result.status !== 200) return;
    const { alert, checkin, acknowledged, all_clear } = result.data;
    const drill = alert.drill ? "DRILL — " : "";
    if (all_clear) {
      $("sent-title").textContent = `${drill}ALL CLEAR`;
      $("sent-state").textContent = "The RTCC has given the all clear.";
      $("checkin").hidden = true;
      $("done").hidden = false;
      clearInterval(state.polling);
      return;
    }
    if (alert.state === "cancelled") {
      $("sent-title").textContent = `${drill}Alert cancelled by the RTCC`;
      $("done").hidden = false;
      clearInterval(state.polling);
      return;
    }
    $("sent-state").textContent = acknowledged
      ? `${drill}The RTCC acknowledged your alert (${alert.state}). Help is coming.`
      : `${drill}Stored; waiting for the RTCC to acknowledge.`;
    $("checkin").hidden = !checkin;
    $("checkin").dataset.alert = alertId;
  };
  poll();
  state.polling = setInterval(poll, 1500);
}

async function answer(status) {
  const alertId = $("checkin").dataset.alert;
  const result = await call(`/panic/api/alerts/${encodeURIComponent(alertId)}/checkin`,
    { method: "POST", body: { status } });
  if (result.status === 200) {
    $("checkin").hidden = true;
    $("sent-state").textContent = `You answered: ${status.replace("_", " ")}.`;
  } else {
    error((result.data && result.data.error) || "the answer was not stored; try again");
  }
}

function fillRooms(config) {
  const select = $("room");
  select.replaceChildren(new Option("(not in a room)", ""));
  for (const room of config.rooms) {
    select.add(new Option(`${room.number} ${room.name}`.trim(), room.id));
  }
  select.value = config.room_id || "";
}

function showPlan() {
  const room = state.config.rooms.find((r) => r.id === $("room").value);
  const floor = state.config.floors.find((f) => f.has_plan
    && (!room || f.id === room.floor_id)) || state.config.floors.find((f) => f.has_plan);
  if (!floor) { error("this facility has no floor plan yet"); return; }
  const img = $("plan");
  fetch(`/panic/api/plans/${encodeURIComponent(floor.id)}`,
    { headers: { "X-Device-Token": token() } })
    .then((r) => r.blob()).then((blob) => { img.src = URL.createObjectURL(blob); });
  img.dataset.floor = floor.id;
  $("plan-box").hidden = false;
}

function pickOnPlan(event) {
  const img = $("plan");
  const box = img.getBoundingClientRect();
  const x = (event.clientX - box.left) / box.width;
  const y = (event.clientY - box.top) / box.height;
  let best = null;
  for (const room of state.config.rooms) {
    if (room.floor_id !== img.dataset.floor || room.x === null) continue;
    const d = (room.x - x) ** 2 + (room.y - y) ** 2;
    if (!best || d < best.d) best = { d, room };
  }
  if (best) $("room").value = best.room.id;
}

async function start() {
  const match = window.location.hash.match(/enrol=([\w-]+)/);
  if (match) {
    history.replaceState(null, "", "/panic/");  // the secret leaves the address bar
    try { await enrol(match[1]); } catch (err) { error(err.message); }
  }
  if (!token()) { show("unenrolled"); return; }
  const { status, data } = await call("/panic/api/config");
  if (status !== 200) {
    show("unenrolled");
    error((data && data.error) || `this device cannot raise alerts (${status})`);
    return;
  }
  state.config = data;
  $("facility").textContent = data.facility.name;
  $("device").textContent = data.label;
  fillRooms(data);
  show("ready");
  $("panic").addEventListener("click", () => {
    locate();
    $("panic").hidden = true;
    $("levels").hidden = false;
  });
  $("back").addEventListener("click", () => { $("levels").hidden = true; $("panic").hidden = false; });
  for (const button of document.querySelectorAll("[data-level]")) {
    button.addEventListener("click", () => raise(button.dataset.level));
  }
  for (const button of document.querySelectorAll("[data-answer]")) {
    button.addEventListener("click", () => answer(button.dataset.answer));
  }
  $("silent").addEventListener("change", () => document.body.classList.toggle("silent",
    $("silent").checked));
  $("show-plan").addEventListener("click", showPlan);
  $("plan").addEventListener("click", pickOnPlan);
  $("done").addEventListener("click", () => { localStorage.removeItem(CURRENT); show("ready"); });
  window.addEventListener("online", () => flush(0));
  if (queue().length) { show("sent"); flush(0); }
}

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/panic/sw.js", { scope: "/panic/" }).catch(() => {});
}
start();
