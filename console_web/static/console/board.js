// The incident board: open CAD incidents for everyone on shift, pushed live over server-sent
// events (/api/cad/incidents/events), newest first, with a short beep when a new one arrives.
// Each shows its cameras ranked (those that see the place, then the nearest, with distance) and
// one button, "Put on wall", that makes it the console's incident and purpose and pins its place.
// A closed incident leaves the board.
"use strict";

import { api } from "./api.js";
import { $, el, formatDistance } from "./dom.js";

const RECONNECT_MS = 3000;

/** A short beep through WebAudio (no sound file); silent until the page was interacted with. */
function beep() {
  try {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    beep.context = beep.context || new Context();
    const ctx = beep.context;
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + 0.35);
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.35);
  } catch (err) {
    // no sound on this browser
  }
}

function title(incident) {
  return incident.type_text || incident.type_code || "CAD incident";
}

function placeText(incident) {
  const loc = incident.location;
  if (!loc) return "location not sent";
  if (loc.kind === "unknown") {
    return `location unknown${loc.address ? ": " + loc.address : ""}`;
  }
  return loc.address || `${Number(loc.lat).toFixed(5)}, ${Number(loc.lon).toFixed(5)}`;
}

export class IncidentBoard {
  constructor({ panel, setPurpose, toast }) {
    this.panel = panel;
    this.setPurpose = setPurpose;
    this.toast = toast;
    this.incidents = new Map();
    this.cameras = new Map();
    this.list = $("board-list");
    this.count = $("board-count");
    this.source = null;
    this.loaded = false;
  }

  async start() {
    this.connect();
    try {
      const { incidents } = await api("/api/cad/incidents?status=open");
      for (const incident of incidents) this.put(incident, false);
    } catch (err) {
      this.toast(`The incident board could not load: ${err.message}`);
    }
    this.loaded = true;
    this.render();
  }

  connect() {
    const source = new EventSource("/api/cad/incidents/events");
    this.source = source;
    let opened = false;
    source.addEventListener("open", () => {
      // Reconnected after a drop: changes made meanwhile were not pushed, so read the list.
      if (opened) this.refresh();
      opened = true;
    });
    source.addEventListener("incident", (event) => {
      try {
        this.put(JSON.parse(event.data), this.loaded);
        this.render();
      } catch (err) {
        // a malformed event is skipped; the next one carries the whole incident again
      }
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(() => { if (this.source === source) this.reload(); }, RECONNECT_MS);
      }
    });
  }

  async refresh() {
    try {
      const { incidents } = await api("/api/cad/incidents?status=open");
      const open = new Set(incidents.map((incident) => incident.id));
      for (const id of [...this.incidents.keys()]) {
        if (!open.has(id)) this.incidents.delete(id);
      }
      for (const incident of incidents) this.put(incident, this.loaded);
      this.render();
    } catch (err) {
      // the next reconnection tries again
    }
  }

  async reload() {
    if (this.source) this.source.close();
    this.incidents.clear();
    this.loaded = false;
    await this.start();
  }

  put(incident, announce) {
    const known = this.incidents.has(incident.id);
    if (incident.closed) {
      this.incidents.delete(incident.id);
      this.cameras.delete(incident.id);
      return;
    }
    this.incidents.set(incident.id, incident);
    this.cameras.delete(incident.id); // ranked again: it may have moved
    if (!known && announce) {
      beep();
      document.body.dataset.boardNewAt = String(performance.now());
    }
  }

  async camerasOf(incident) {
    if (this.cameras.has(incident.id)) return this.cameras.get(incident.id);
    const pending = api(`/api/cad/incidents/${encodeURIComponent(incident.id)}/cameras`)
      .then((body) => body.cameras)
      .catch(() => []);
    this.cameras.set(incident.id, pending);
    return pending;
  }

  render() {
    const open = [...this.incidents.values()]
      .sort((a, b) => b.first_seen - a.first_seen);
    this.count.textContent = String(open.length);
    this.list.replaceChildren(...open.map((incident) => this.item(incident)));
  }

  item(incident) {
    const cams = el("ol", { class: "board-cams" });
    this.camerasOf(incident).then((cameras) => {
      cams.replaceChildren(...cameras.slice(0, 6).map((c) => el("li", {
        dataset: { cameraId: c.id, unlocked: c.unlocked ? "true" : "false" },
        text: `${c.name} · ${c.sees ? "sees it · " : ""}` +
          `${c.distance_m === null ? "" : formatDistance(c.distance_m)}` +
          `${c.unlocked ? " · unlocked" : ""}`,
      })));
    });
    return el("li", { class: "board-item", dataset: { incidentId: incident.id,
      securityId: incident.security_incident_id, priority: String(incident.priority ?? "") } },
    el("div", { class: "board-head" },
      el("span", { class: "board-title",
        text: `${incident.priority ? "P" + incident.priority + " " : ""}${title(incident)}` }),
      el("span", { class: "board-status", text: incident.status || "" })),
    el("span", { class: "board-place", text: placeText(incident) }),
    cams,
    el("button", { type: "button", class: "board-wall", text: "Put on wall",
      disabled: incident.location && incident.location.kind === "unknown",
      onclick: () => this.putOnWall(incident) }));
  }

  async putOnWall(incident) {
    const sid = incident.security_incident_id;
    this.setPurpose(`CAD ${sid}: ${title(incident)}`.slice(0, 200));
    let security = null;
    try {
      const found = await api(`/api/incidents/${encodeURIComponent(sid)}`);
      security = found.active ? found : null;
    } catch (err) {
      security = null; // no emergency cameras unlocked for it: the purpose carries the views
    }
    this.panel.incident = security;
    this.panel.save();
    const loc = incident.location;
    if (loc && Number.isFinite(Number(loc.lat)) && Number.isFinite(Number(loc.lon))) {
      this.panel.map.flyTo(Number(loc.lat), Number(loc.lon), 17);
      await this.panel.setPin(Number(loc.lat), Number(loc.lon), title(incident), { auto: false });
      await this.panel.accessChanged();
      this.panel.autoWall();
    }
    document.body.dataset.boardWallAt = String(performance.now());
  }
}
