// The analyst wall console: map + incident panel + video wall, wired together.
"use strict";

import { api, ApiError, goToLogin, setCsrfToken } from "./api.js";
import { IncidentBoard } from "./board.js";
import { CameraStore, setOnvifPtz } from "./cameras.js";
import { $ } from "./dom.js";
import { CameraFinder } from "./finder.js";
import { HealthPanel } from "./health.js";
import { KeyHelp } from "./help.js";
import { IncidentPanel } from "./incident.js";
import { followStatus } from "./live.js";
import { CameraMap } from "./map.js";
import { Wall } from "./wall.js";
import { SavedWalls, wallStorageKey, windowWall } from "./walls.js";

const PURPOSE_KEY = "rtcc.console.purpose";
const PANEL_KEY = "rtcc.console.wallonly.v1";
const STAFF = new Set(["admin", "supervisor", "analyst", "investigator"]);

function toast(text) {
  const node = $("toast");
  node.textContent = text;
  node.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { node.hidden = true; }, 6000);
}

function purpose() {
  return $("purpose").value.trim();
}

function askPurpose() {
  const input = $("purpose");
  if (purpose()) return;
  input.classList.add("needed");
  if (document.activeElement !== input) input.focus({ preventScroll: true });
}

function setupHeader(me, wall, onPurpose, windowName) {
  $("who").textContent = `${me.display_name || me.username} (${me.role})`;
  const input = $("purpose");
  input.value = sessionStorage.getItem(PURPOSE_KEY) || "";
  input.addEventListener("change", () => {
    sessionStorage.setItem(PURPOSE_KEY, purpose());
    input.classList.toggle("needed", !purpose());
    onPurpose();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") input.blur();
  });
  for (const button of document.querySelectorAll("#layouts button")) {
    button.addEventListener("click", () => wall.setLayout(Number(button.dataset.layout)));
  }
  wall.addEventListener("change", () => {
    for (const button of document.querySelectorAll("#layouts button")) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.layout) === wall.layout));
    }
  });
  const toggle = $("toggle-panel");
  const applyPanel = (wallOnly) => {
    document.body.classList.toggle("wall-only", wallOnly);
    toggle.setAttribute("aria-pressed", String(wallOnly));
    toggle.textContent = wallOnly ? "Show map" : "Wall only";
  };
  if (windowName) {
    // A second window is a wall for another monitor: no map, and its own title.
    document.body.classList.add("second-window");
    $("wall-name").textContent = `· ${windowName}`;
    document.title = `RTCC wall: ${windowName}`;
    applyPanel(true);
  } else {
    applyPanel(localStorage.getItem(PANEL_KEY) === "1");
  }
  toggle.addEventListener("click", () => {
    const wallOnly = !document.body.classList.contains("wall-only");
    localStorage.setItem(PANEL_KEY, wallOnly ? "1" : "0");
    applyPanel(wallOnly);
    window.dispatchEvent(new Event("resize"));
  });
  $("logout").addEventListener("click", async () => {
    wall.endAll(false);
    try {
      await api("/api/logout", { method: "POST", body: {} });
    } finally {
      window.location.href = "/login";
    }
  });
}

function setupKeys(wall, help, finder) {
  document.addEventListener("keydown", (event) => {
    if (help.isOpen) {
      if (help.handleKey(event)) event.preventDefault();
      return;
    }
    const target = event.target;
    if (target && (target.closest("input, select, textarea") || target.isContentEditable)) {
      if (event.key === "Escape" && target.blur) target.blur();
      return;
    }
    if (event.key === "/" && !document.body.classList.contains("wall-only")) {
      event.preventDefault();
      finder.focus();
      return;
    }
    if (help.handleKey(event) || wall.handleKey(event)) event.preventDefault();
  });
}

async function boot() {
  let me;
  try {
    me = await api("/api/me");
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) toast(`Cannot start: ${err.message}`);
    return;
  }
  setCsrfToken(me.csrf_token);
  if (!STAFF.has(me.role)) {
    $("who").textContent = me.username;
    toast("The wall console is for department staff.");
    return;
  }
  const config = await api("/api/console/config");
  setOnvifPtz(config.onvif_ptz || []);
  const store = new CameraStore();
  const map = new CameraMap($("map"), store, config);
  let panel = null;
  const windowName = windowWall();
  const wall = new Wall($("wall"), store, {
    viewQuery: (cameraId) => (panel ? panel.viewQuery(cameraId, purpose()) : null),
    askPurpose,
    storageKey: wallStorageKey(windowName),
  });
  const hadOwnWall = Boolean(wall.saved());
  panel = new IncidentPanel({ store, map, wall, config, toast });
  const finder = new CameraFinder({ store, map, panel, toast });
  const health = new HealthPanel({ store, map, wall });
  const prepare = (ids) => store.refreshAccess(ids).catch(() => undefined);
  const walls = new SavedWalls({ wall, prepare, toast, windowName });
  setupHeader(me, wall, () => wall.retryAll(), windowName);
  setupKeys(wall, new KeyHelp(), finder);
  const feed = $("feed");
  followStatus(store, (state) => {
    feed.dataset.state = state;
    feed.textContent = { connected: "status live", reconnecting: "status reconnecting…",
      lost: "status feed lost" }[state] || state;
  }, () => map.loadInView());
  await map.initialView();
  await panel.restore();
  const board = new IncidentBoard({ panel, toast, setPurpose: (text) => {
    const input = $("purpose");
    input.value = text;
    input.dispatchEvent(new Event("change"));
  } });
  // A second window shows the wall only: the board's feed stays with the main window (a
  // browser gives a server six HTTP/1.1 connections, and every live feed holds one).
  if (!windowName) await board.start();
  await wall.restore(prepare);
  await walls.start(hadOwnWall).catch((err) => toast(`Saved walls: ${err.message}`));
  await health.start().catch((err) => toast(`Camera health: ${err.message}`));
  wall.render();
  document.body.dataset.ready = "true";
}

boot().catch((err) => {
  if (err instanceof ApiError && err.status === 401) {
    goToLogin();
    return;
  }
  toast(`The console failed to start: ${err.message}`);
});

