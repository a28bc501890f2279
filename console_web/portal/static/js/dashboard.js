// The owner's dashboard: cameras with live status and sharing controls, who looked at them,
// footage requests, agents and sites. Refreshed by polling; everything shown goes in as text.
"use strict";

import { api } from "./api.js";
import { $, clear, el, formatAgo, formatTime, showError } from "./dom.js";
import { LEVELS, levelLabel, STATUS_LABELS } from "./labels.js";
import { renderAccessLog } from "./accesslog.js";
import { confirmButton } from "./confirm.js";
import { requireOwner } from "./session.js";

const FAST_MS = 4000;
const SLOW_MS = 12000;
const state = { cameras: new Map(), sites: new Map(), busy: new Set(), me: "" };

// -- cameras ---------------------------------------------------------------------------------

async function setSharing(camera, level) {
  const notice = $("cameras-notice");
  const box = $("cameras-error");
  showError(box, null);
  notice.textContent = "";
  state.busy.add(camera.id);
  try {
    const answer = await api(`/api/owner/cameras/${encodeURIComponent(camera.id)}`,
      { method: "PATCH", body: { sharing: level } });
    state.cameras.set(camera.id, answer.camera);
    const ended = answer.sessions_ended || 0;
    notice.textContent = `"${answer.camera.name}" is now shared as: ${levelLabel(level)}.`
      + (ended ? ` ${ended} live view${ended === 1 ? " was" : "s were"} ended.` : "");
  } catch (err) {
    showError(box, err);
  } finally {
    state.busy.delete(camera.id);
    renderCameras();
  }
}

function cameraRow(camera) {
  const select = el("select", { class: "sharing-select", "aria-label": `Sharing level of ${camera.name}` },
    ...LEVELS.map((level) => el("option", { value: level.value, text: level.label })));
  select.addEventListener("change", () => setSharing(state.cameras.get(camera.id), select.value));
  const revoke = el("button", { type: "button", class: "danger revoke", text: "Stop sharing now" });
  revoke.addEventListener("click", () => setSharing(state.cameras.get(camera.id), "registry_only"));
  const row = el("li", { class: "camera", dataset: { cameraId: camera.id } },
    el("div", {},
      el("div", { class: "camera-name" }),
      el("div", { class: "meta where" })),
    el("div", {},
      el("span", { class: "badge status" }), " ",
      el("span", { class: "badge level" }),
      el("div", { class: "meta detail" })),
    el("div", { class: "controls" }, select, revoke,
      el("a", { class: "button secondary edit", href: `/register/camera?id=${encodeURIComponent(camera.id)}`, text: "Edit" })));
  return row;
}

function updateRow(row, camera) {
  row.dataset.sharing = camera.sharing;
  row.dataset.status = camera.status;
  row.querySelector(".camera-name").textContent = camera.name;
  const site = camera.site_id ? state.sites.get(camera.site_id) : null;
  row.querySelector(".where").textContent = [
    site ? site.address : "",
    camera.via_agent ? "through your agent" : (camera.profiles && camera.profiles.main ? "direct stream" : "no video link"),
  ].filter(Boolean).join(" · ");
  const status = row.querySelector(".status");
  status.dataset.status = camera.status;
  status.textContent = STATUS_LABELS[camera.status] || camera.status;
  const level = row.querySelector(".level");
  level.dataset.level = camera.sharing;
  level.textContent = levelLabel(camera.sharing);
  const windows = camera.windows || [];
  row.querySelector(".detail").textContent = [
    windows.length ? `only ${windows.map((w) => `${w.days.join(",")} ${w.start}-${w.end}`).join("; ")} (${camera.timezone || "UTC"} time)` : "",
    camera.ptz_allowed ? "department may turn it" : "",
  ].filter(Boolean).join(" · ");
  const select = row.querySelector(".sharing-select");
  if (document.activeElement !== select) select.value = camera.sharing;
  const busy = state.busy.has(camera.id);
  select.disabled = busy;
  row.querySelector(".revoke").disabled = busy || camera.sharing === "registry_only";
}

function renderCameras() {
  const list = $("cameras");
  const seen = new Set();
  for (const camera of state.cameras.values()) {
    seen.add(camera.id);
    let row = list.querySelector(`li[data-camera-id="${CSS.escape(camera.id)}"]`);
    if (!row) {
      row = cameraRow(camera);
      list.append(row);
    }
    updateRow(row, camera);
  }
  for (const row of [...list.children]) {
    if (!seen.has(row.dataset.cameraId)) row.remove();
  }
  $("no-cameras").hidden = state.cameras.size > 0;
}

async function loadCameras() {
  try {
    const answer = await api("/api/owner/cameras");
    const fresh = new Map(answer.cameras.map((camera) => [camera.id, camera]));
    for (const id of state.busy) if (state.cameras.has(id)) fresh.set(id, state.cameras.get(id));
    state.cameras = fresh;
    renderCameras();
    showError($("cameras-error"), null);
  } catch (err) {
    showError($("cameras-error"), err);
  }
}

// -- access log ------------------------------------------------------------------------------

async function loadLog() {
  try {
    const answer = await api("/api/access-log?limit=300");
    renderAccessLog($("access-log"), $("no-log"), answer.entries, state.cameras, state.me);
    showError($("log-error"), null);
  } catch (err) {
    showError($("log-error"), err);
  }
}

// -- footage requests ------------------------------------------------------------------------

async function decide(request, approve) {
  const box = $("requests-error");
  showError(box, null);
  try {
    await api(`/api/footage-requests/${encodeURIComponent(request.id)}/${approve ? "approve" : "decline"}`,
      { method: "POST", body: {} });
    await loadRequests();
  } catch (err) {
    showError(box, err);
  }
}

function cameraName(id) {
  const camera = state.cameras.get(id);
  return camera ? camera.name : id;
}

async function loadRequests() {
  const list = $("requests");
  try {
    const answer = await api("/api/footage-requests");
    clear(list);
    for (const request of answer.requests) {
      const pending = request.cameras.some((item) => item.status === "pending");
      const item = el("li", { dataset: { requestId: request.id, status: request.status } },
        el("strong", { text: `Case ${request.case}` }), " ",
        el("span", { class: "badge", text: request.status.replace("_", " ") }),
        el("div", { text: `Asked by ${request.requester} on ${formatTime(request.created)}` }),
        el("div", { text: `Reason: ${request.reason}` }),
        request.incident ? el("div", { text: `Incident: ${request.incident}` }) : null,
        el("div", { text: `Footage from ${formatTime(request.start)} to ${formatTime(request.end)}` }),
        el("div", { class: "muted", text: "Cameras: " + request.cameras.map((c) => `${cameraName(c.camera_id)}: ${c.detail || c.status}`).join("; ") }));
      if (pending) {
        item.append(el("div", { class: "actions" },
          el("button", { type: "button", class: "approve", text: "Approve", onclick: () => decide(request, true) }),
          el("button", { type: "button", class: "secondary decline", text: "Decline", onclick: () => decide(request, false) })));
      }
      list.append(item);
    }
    $("no-requests").hidden = answer.requests.length > 0;
    showError($("requests-error"), null);
  } catch (err) {
    showError($("requests-error"), err);
  }
}

// -- agents ----------------------------------------------------------------------------------

async function loadAgents() {
  const list = $("agents");
  try {
    const answer = await api("/api/agents");
    clear(list);
    const active = answer.agents.filter((agent) => !agent.revoked);
    for (const agent of active) {
      const working = agent.cameras.filter((camera) => camera.status === "ok").length;
      list.append(el("li", { dataset: { agentId: agent.id, connected: String(agent.connected) } },
        el("strong", { text: agent.name || agent.id }), " ",
        el("span", { class: "badge", dataset: { status: agent.connected ? "live" : "error" },
          text: agent.connected ? "connected" : "not connected" }),
        el("div", { class: "muted", text: `Last seen ${formatAgo(agent.last_seen)}`
          + (agent.hostname ? ` · computer "${agent.hostname}"` : "") }),
        el("div", { text: `${agent.cameras.length} camera(s) found, ${working} working` }),
        agent.cameras.some((camera) => !state.cameras.has(camera.camera_id))
          ? el("a", { href: "/register/camera", text: "Put the cameras it found on the map" }) : null,
        ...agent.cameras.filter((camera) => camera.error).map((camera) =>
          el("div", { class: "error", text: `${camera.name || camera.camera_id}: ${camera.error}` })),
        el("div", { class: "actions" }, confirmButton("Disconnect", "Really disconnect?", "secondary", async () => {
          try {
            await api(`/api/agents/${encodeURIComponent(agent.id)}/revoke`, { method: "POST", body: {} });
            await loadAgents();
          } catch (err) {
            showError($("agents-error"), err);
          }
        }))));
    }
    $("no-agents").hidden = active.length > 0;
    showError($("agents-error"), null);
  } catch (err) {
    showError($("agents-error"), err);
  }
}

// -- sites -----------------------------------------------------------------------------------

async function loadSites() {
  const answer = await api("/api/owner/sites");
  state.sites = new Map(answer.sites.map((site) => [site.id, site]));
  const list = $("sites");
  clear(list);
  for (const site of answer.sites) {
    list.append(el("li", { dataset: { siteId: site.id } },
      el("span", { text: site.address }),
      site.soft_target ? el("span", { class: "muted", text: " (crowded place)" }) : null, " ",
      confirmButton("Remove", "Really remove?", "secondary", async () => {
        try {
          await api(`/api/owner/sites/${encodeURIComponent(site.id)}`, { method: "DELETE" });
          await loadSites();
        } catch (err) {
          showError($("site-error"), err);
        }
      })));
  }
}

async function addSite(event) {
  event.preventDefault();
  const form = $("site-form");
  showError($("site-error"), null, form);
  try {
    await api("/api/owner/sites", { method: "POST",
      body: { address: $("site-address").value, soft_target: $("site-soft").checked } });
    form.reset();
    await loadSites();
    renderCameras();
  } catch (err) {
    showError($("site-error"), err, form);
  }
}

function every(ms, task) {
  const run = async () => {
    if (!document.hidden) await task();
    setTimeout(run, ms);
  };
  setTimeout(run, ms);
}

/** After the camera form saved (``?saved=ID``): say so, and show that camera's row. */
function showSaved(savedId) {
  if (!savedId) return;
  const camera = state.cameras.get(savedId);
  const row = $("cameras").querySelector(`li[data-camera-id="${CSS.escape(savedId)}"]`);
  if (!camera || !row) return;
  $("cameras-notice").textContent = `"${camera.name}" is saved: ${levelLabel(camera.sharing)}.`;
  row.classList.add("just-saved");
  row.scrollIntoView({ block: "center" });
}

async function start() {
  try {
    state.me = (await requireOwner()).username;
  } catch (err) {
    showError($("fatal"), err);
    return;
  }
  if (new URLSearchParams(window.location.search).has("welcome")) $("welcome").hidden = false;
  $("site-form").addEventListener("submit", addSite);
  try {
    await loadSites();
  } catch (err) {
    showError($("site-error"), err);
  }
  await loadCameras();
  showSaved(new URLSearchParams(window.location.search).get("saved"));
  await Promise.all([loadLog(), loadRequests(), loadAgents()]);
  document.body.dataset.ready = "true";
  every(FAST_MS, async () => { await loadCameras(); await loadLog(); });
  every(SLOW_MS, async () => { await Promise.all([loadRequests(), loadAgents()]); });
}

start();
