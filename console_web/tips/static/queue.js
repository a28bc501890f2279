// The analysts' tip queue: tips by status, on a map, one tip's text, files and messages.
// Everything a tipster wrote goes into the page as text nodes, never as markup.
"use strict";

import { goToLogin, request, setCsrfToken } from "/console/static/shared/api.js";
import { $, el } from "/console/static/shared/dom.js";

const state = { tips: [], current: null, map: null, markers: null, role: "" };
const ORIGINAL_ROLES = new Set(["investigator", "supervisor", "admin"]);

async function api(path, options = {}) {
  const { response, data } = await request(path, options);
  if (response.status === 401) {
    goToLogin();
    throw new Error("log in first");
  }
  if (!response.ok) throw new Error((data && data.error) || `failed (${response.status})`);
  return data;
}

function showError(error) {
  $("queue-error").textContent = error ? error.message : "";
}

function when(epoch) {
  return new Date(epoch * 1000).toLocaleString();
}

async function setupMap() {
  const L = window.L;
  if (!L) return;
  const config = await api("/api/console/config");
  const start = config.places && config.places[0];
  state.map = L.map("tip-map").setView(start ? [start.lat, start.lon] : [0, 0],
                                       start ? 13 : 2);
  if (config.tile_url) {
    L.tileLayer(config.tile_url, { attribution: config.tile_attribution || "" })
      .addTo(state.map);
  }
  state.markers = L.layerGroup().addTo(state.map);
}

function drawMap() {
  const L = window.L;
  if (!state.map || !L) return;
  state.markers.clearLayers();
  for (const tip of state.tips) {
    if (tip.lat === null || tip.lon === null) continue;
    L.circleMarker([tip.lat, tip.lon], { radius: 7 })
      .on("click", () => openTip(tip.id))
      .addTo(state.markers);
  }
}

async function loadQueue() {
  const status = $("status-filter").value;
  const data = await api(`/api/tips${status ? `?status=${encodeURIComponent(status)}` : ""}`);
  state.tips = data.tips;
  const list = $("tip-list");
  list.replaceChildren(...data.tips.map((tip) => el("li", {},
    el("button", {
      type: "button", "data-tip": tip.number, "aria-current": tip.id === state.current,
      onclick: () => openTip(tip.id),
    }, el("strong", { text: tip.number }), ` · ${tip.status} · ${when(tip.created)}`,
    el("br"), tip.what))));
  if (!data.tips.length) list.append(el("li", { text: "No tips." }));
  drawMap();
}

function mediaItem(tip, media) {
  const base = `/api/tips/${encodeURIComponent(tip.id)}/media/${encodeURIComponent(media.id)}`;
  const item = el("li", { "data-media": media.id },
    `${media.kind || "file"} · ${media.state} · ${Math.round(media.size / 1024)} KiB `);
  if (media.state === "ready" && media.view_mime === "image/jpeg") {
    item.append(el("img", { src: base, alt: `photo sent with ${tip.number}` }));
  } else if (media.state === "ready") {
    item.append(el("video", { src: base, controls: true, preload: "metadata" }));
  } else if (media.note) {
    item.append(el("span", { class: "help", text: media.note }));
  }
  if (media.state === "ready" && ORIGINAL_ROLES.has(state.role)) {
    item.append(el("a", { href: `${base}/original`, download: "" }, "Download original"));
    item.append(media.evidence_id
      ? el("span", { class: "help", "data-evidence": media.evidence_id,
                     text: ` Evidence item ${media.evidence_id}` })
      : promoteForm(tip, media, base));
  }
  return item;
}

// The original (never the analysts' copy) becomes an evidence item: hashed, held, exportable.
function promoteForm(tip, media, base) {
  const caseInput = el("input", { name: "case", required: true, maxlength: "64",
                                  "aria-label": "Case number", placeholder: "Case number" });
  const reason = el("input", { name: "reason", maxlength: "500", "aria-label": "Reason",
                               placeholder: "Reason" });
  const form = el("form", { class: "promote", "data-promote": media.id },
    caseInput, reason, el("button", { type: "submit", text: "Promote to evidence" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(async () => {
      await api(`${base}/evidence`, { method: "POST",
                                      body: { case: caseInput.value, reason: reason.value } });
      await openTip(tip.id);
    });
  });
  return form;
}

async function openTip(id) {
  state.current = id;
  const tip = await api(`/api/tips/${encodeURIComponent(id)}`);
  $("d-number").textContent = tip.number;
  $("d-status").textContent = tip.status;
  $("d-incident").textContent = tip.incident_id ? `(incident ${tip.incident_id})` : "";
  $("d-what").textContent = tip.what;
  $("d-where").textContent = [tip.where, tip.lat !== null ? `${tip.lat}, ${tip.lon}` : ""]
    .filter(Boolean).join(" · ") || "not given";
  $("d-when").textContent = tip.when || "not given";
  $("d-contact").textContent = tip.contact || "none (anonymous)";
  $("d-media").replaceChildren(...tip.media.map((m) => mediaItem(tip, m)));
  $("d-messages").replaceChildren(...tip.messages.map((m) => el("li", {
    text: `${m.from === "tipster" ? "Tipster" : m.staff}: ${m.body}`,
  })));
  $("tip-detail").hidden = false;
  const incidents = await api("/api/tips/incidents");
  $("d-incident-pick").replaceChildren(...incidents.incidents.map((i) => el("option", {
    value: i.id, text: `${i.id} (${i.kind})`,
  })));
  await loadQueue();
}

async function run(action) {
  showError(null);
  try {
    await action();
  } catch (error) {
    showError(error);
  }
}

for (const button of document.querySelectorAll("[data-status]")) {
  button.addEventListener("click", () => run(async () => {
    await api(`/api/tips/${encodeURIComponent(state.current)}`,
              { method: "PATCH", body: { status: button.dataset.status } });
    await openTip(state.current);
  }));
}

$("d-link").addEventListener("click", () => run(async () => {
  await api(`/api/tips/${encodeURIComponent(state.current)}/incident`,
            { method: "POST", body: { incident_id: $("d-incident-pick").value } });
  await openTip(state.current);
}));

$("d-reply").addEventListener("submit", (event) => {
  event.preventDefault();
  run(async () => {
    await api(`/api/tips/${encodeURIComponent(state.current)}/messages`,
              { method: "POST", body: { body: $("d-reply-text").value } });
    $("d-reply-text").value = "";
    await openTip(state.current);
  });
});

$("status-filter").addEventListener("change", () => run(loadQueue));

run(async () => {
  const me = await api("/api/me");
  setCsrfToken(me.csrf_token);
  state.role = me.role || (me.user && me.user.role) || "";
  await setupMap();
  await loadQueue();
});
