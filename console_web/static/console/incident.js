// The side panel: an incident location (map click, typed coordinates or a configured address),
// the cameras ranked for it (those that see the point, then the nearest) with their sharing level
// and whether the department may open them now, auto-wall, and opening an incident so that
// cameras shared "live in emergency" can be viewed.
"use strict";

import { api } from "./api.js";
import { $, el, formatDistance, formatLatLon, parseCoordinates, SHARING_LABELS, STATUS_LABELS }
  from "./dom.js";
import { STATUS_COLOURS } from "./map.js";
import { CAMERA_TYPE } from "./wall.js";

const STATE_KEY = "rtcc.console.incident.v1";
const AUTO_KEY = "rtcc.console.autowall.v1";
const SEES_NEAR_M = 300;
const NEAR_RADIUS_M = 5000;
const AREA_KM = 500;

export class IncidentPanel {
  constructor({ store, map, wall, config, toast }) {
    this.store = store;
    this.map = map;
    this.wall = wall;
    this.config = config;
    this.toast = toast;
    this.pin = null;
    this.ranked = [];
    this.inView = [];
    this.inViewNote = "";
    this.incident = null;
    this.seq = 0;
    this.list = $("results");
    this.title = $("results-title");
    this.info = $("pin-info");
    this.bar = $("incident-bar");
    this.autoButton = $("auto-wall");
    this.autoOnPin = $("auto-on-pin");
    this.clearButton = $("clear-pin");
    this.wire();
  }

  wire() {
    $("locate").addEventListener("submit", (event) => {
      event.preventDefault();
      const point = parseCoordinates($("coords").value, this.area());
      if (point.error) {
        // The old pin and its list would answer a question the analyst no longer asks.
        this.clearPin();
        this.info.textContent = `Not a location: ${point.error}.`;
        this.info.dataset.problem = "true";
        return;
      }
      this.map.flyTo(point.lat, point.lon, 17);
      this.setPin(point.lat, point.lon, "", { note: point.note });
    });
    const places = $("places");
    (this.config.places || []).forEach((place, index) => {
      places.append(el("option", { value: String(index), text: place.name }));
    });
    places.hidden = !(this.config.places || []).length;
    places.addEventListener("change", () => {
      const place = (this.config.places || [])[Number(places.value)];
      if (!place || places.value === "") return;
      this.map.flyTo(place.lat, place.lon, 17);
      this.setPin(place.lat, place.lon, place.name);
    });
    this.map.addEventListener("pin", (event) => this.setPin(event.detail.lat, event.detail.lon, ""));
    this.map.addEventListener("inview", (event) => {
      this.inView = event.detail.cameras.slice().sort((a, b) => a.name.localeCompare(b.name));
      this.inViewNote = event.detail.note;
      if (!this.pin) this.showInView();
    });
    this.map.addEventListener("add", (event) => this.addToWall(event.detail.id));
    this.autoButton.addEventListener("click", () => this.autoWall());
    this.clearButton.addEventListener("click", () => this.clearPin());
    this.autoOnPin.checked = localStorage.getItem(AUTO_KEY) === "1";
    this.autoOnPin.addEventListener("change", () => {
      localStorage.setItem(AUTO_KEY, this.autoOnPin.checked ? "1" : "0");
    });
    this.store.addEventListener("camera", (event) => this.refreshRow(event.detail));
    this.store.addEventListener("access", (event) => {
      const ids = (event.detail && event.detail.ids) || [];
      ids.forEach((id) => this.refreshRow(id));
      if (this.pin && ids.some((id) => this.ranked.some((c) => c.id === id))) {
        this.renderBar();
        this.updateAutoLabel();
      }
    });
    this.wall.addEventListener("change", () => this.updateAutoLabel());
  }

  // -- incident location --------------------------------------------------------------------

  /** Where the department works: a typed pair far from here is probably swapped. */
  area() {
    const place = (this.config.places || [])[0];
    if (place) return { lat: place.lat, lon: place.lon, km: AREA_KM };
    const center = this.map.map.getCenter();
    return { lat: center.lat, lon: center.lng, km: AREA_KM };
  }

  async setPin(lat, lon, label, { auto = true, note = "" } = {}) {
    const seq = ++this.seq;
    this.pin = { lat, lon, label };
    document.body.dataset.pinAt = String(performance.now());
    this.map.showPin(lat, lon, this.pinLabel());
    this.info.textContent = `${label ? label + " — " : ""}${formatLatLon(lat, lon)}` +
      (note ? ` — ${note}` : "");
    delete this.info.dataset.problem;
    this.clearButton.disabled = false;
    this.save();
    this.title.textContent = "Searching…";
    const at = `${lat.toFixed(6)},${lon.toFixed(6)}`;
    let seeing;
    let near;
    document.body.dataset.searchSentAt = String(performance.now());
    try {
      // Each camera's access decision comes with the search (access=1): no second request.
      [seeing, near] = await Promise.all([
        api(`/api/cameras?sees=${at}&radius_m=${SEES_NEAR_M}&limit=50&access=1`),
        api(`/api/cameras?near=${at}&radius_m=${NEAR_RADIUS_M}&limit=30&access=1`),
      ]);
    } catch (err) {
      if (seq === this.seq) this.title.textContent = `Search failed: ${err.message}`;
      return;
    }
    if (seq !== this.seq) return;
    document.body.dataset.searchAnsweredAt = String(performance.now());
    const ranked = [];
    const seen = new Set();
    const decided = [];
    const take = (features) => {
      for (const feature of features || []) {
        const camera = this.store.putFeatures([feature])[0];
        if (seen.has(camera.id)) continue;
        seen.add(camera.id);
        ranked.push(camera);
        if (feature.properties.access) decided.push([camera.id, feature.properties.access]);
      }
    };
    take(seeing.features.filter((f) => f.properties.sees));
    const others = seeing.features.filter((f) => !f.properties.sees)
      .concat(near.features)
      .sort((a, b) => (a.properties.distance_m || 0) - (b.properties.distance_m || 0));
    take(others);
    this.ranked = ranked;
    const filling = auto && this.autoOnPin.checked;
    if (decided.length === ranked.length) {
      this.store.putAccess(decided);
    } else {
      // A server whose search does not decide: start the pulls, then ask separately.
      if (filling) this.wall.prepare(ranked.map((c) => c.id));
      try {
        await this.store.refreshAccess(ranked.map((c) => c.id));
      } catch (err) {
        this.toast(`Access could not be checked: ${err.message}`);
      }
      if (seq !== this.seq) return;
    }
    document.body.dataset.accessAnsweredAt = String(performance.now());
    // The wall first: its one bind request leaves before the list and markers are drawn.
    if (filling) this.autoWall();
    setTimeout(() => {
      if (seq !== this.seq) return;
      this.map.keepDrawn(ranked);
      this.render();
      document.body.dataset.resultsAt = String(performance.now());
    }, 0);
  }

  clearPin() {
    this.seq += 1;
    this.pin = null;
    this.ranked = [];
    this.map.clearPin();
    this.clearButton.disabled = true;
    this.info.textContent = "Click the map, type coordinates or pick an address.";
    this.save();
    this.renderBar();
    this.showInView();
  }

  pinLabel() {
    if (this.incident) {
      return `Incident ${this.incident.id}${this.pin && this.pin.label ? " · " + this.pin.label : ""}`;
    }
    return this.pin && this.pin.label ? this.pin.label : "Incident location";
  }

  // -- ranked list --------------------------------------------------------------------------

  openable(camera) {
    const access = this.store.accessOf(camera.id);
    return Boolean(access && access.allowed);
  }

  accessText(camera) {
    const access = this.store.accessOf(camera.id);
    if (!access) return { kind: "unknown", text: "access not checked" };
    if (access.allowed) {
      return { kind: "open", text: access.incidents.length
        ? `may open now (incident ${access.incidents[0]})` : "may open now" };
    }
    if (access.needs_incident) return { kind: "incident", text: "needs an open incident" };
    if (access.sharing === "registry_only") {
      return { kind: "closed", text: "location only: ask the owner" };
    }
    if (access.sharing === "on_request") {
      return { kind: "closed", text: "on request: needs an approved footage request" };
    }
    return { kind: "closed", text: access.reason };
  }

  row(camera, rankedView) {
    const current = this.store.get(camera.id) || camera;
    const access = this.accessText(current);
    const where = [];
    if (rankedView) {
      if (camera.sees) where.push("sees the point");
      if (camera.distance !== null) where.push(formatDistance(camera.distance));
    }
    where.push(SHARING_LABELS[current.sharing] || current.sharing);
    const dot = el("span", { class: "dot", title: STATUS_LABELS[current.status] || current.status,
      style: `background:${STATUS_COLOURS[current.status] || STATUS_COLOURS.unknown}` });
    const add = el("button", { class: "add", type: "button", text: "+",
      title: "Add to the wall", "aria-label": `Add ${current.name} to the wall`,
      disabled: access.kind !== "open",
      onclick: (event) => { event.stopPropagation(); this.addToWall(current.id); } });
    const item = el("li", {
      class: "result", draggable: access.kind === "open" ? "true" : "false",
      dataset: { cameraId: current.id, access: access.kind, status: current.status,
        sharing: current.sharing, sees: camera.sees ? "true" : "false" },
      onclick: () => {
        this.map.flyTo(current.lat, current.lon, 17);
        this.map.highlight(current.id);
      },
      ondragstart: (event) => {
        event.dataTransfer.setData(CAMERA_TYPE, current.id);
        event.dataTransfer.effectAllowed = "copy";
      },
    },
    dot,
    el("div", { class: "result-main" },
      el("span", { class: "cam-name", text: current.name }),
      el("span", { class: "result-meta", text: where.join(" · ") }),
      el("span", { class: `access access-${access.kind}`, text: access.text })),
    add);
    return item;
  }

  render() {
    this.title.textContent = this.ranked.length
      ? `${this.ranked.length} cameras for this location`
      : "No cameras near this location";
    this.list.dataset.mode = "ranked";
    this.list.replaceChildren(...this.ranked.map((camera) => this.row(camera, true)));
    this.renderBar();
    this.updateAutoLabel();
  }

  showInView() {
    if (this.pin) return;
    this.title.textContent = this.inViewNote || `${this.inView.length} cameras in view`;
    this.list.dataset.mode = "inview";
    this.list.replaceChildren(...this.inView.slice(0, 200).map((camera) => this.row(camera, false)));
    const unchecked = this.inView.slice(0, 100).filter((c) => !this.store.accessOf(c.id));
    if (unchecked.length) {
      this.store.refreshAccess(unchecked.map((c) => c.id))
        .then(() => { if (!this.pin) this.showInView(); })
        .catch(() => undefined);
    }
  }

  refreshRow(id) {
    const old = this.list.querySelector(`li[data-camera-id="${CSS.escape(id)}"]`);
    if (!old) return;
    const source = this.pin ? this.ranked.find((c) => c.id === id)
      : this.inView.find((c) => c.id === id);
    if (source) old.replaceWith(this.row(source, Boolean(this.pin)));
  }

  updateAutoLabel() {
    const n = this.wall.layout;
    const open = this.ranked.filter((c) => this.openable(c)).length;
    this.autoButton.textContent = `Auto-wall best ${Math.min(n, open) || n}`;
    this.autoButton.disabled = !this.pin || open === 0;
  }

  // -- wall ---------------------------------------------------------------------------------

  autoWall() {
    const best = this.ranked.filter((camera) => this.openable(camera)).slice(0, this.wall.layout);
    if (!best.length) {
      this.toast("No camera here may be opened now.");
      return;
    }
    document.body.dataset.autowallAt = String(performance.now());
    this.wall.fill(best.map((camera) => this.store.get(camera.id) || camera));
  }

  async addToWall(id) {
    const camera = await this.store.load(id);
    if (!camera) return;
    if (!this.store.accessOf(id)) await this.store.refreshAccess([id]).catch(() => undefined);
    if (this.wall.add(camera) === null) {
      this.toast("The wall is full: drag the camera onto a tile, or focus a tile first.");
    }
  }

  // -- incident -----------------------------------------------------------------------------

  needingIncident() {
    return this.ranked.filter((camera) => {
      const access = this.store.accessOf(camera.id);
      return access && access.needs_incident;
    });
  }

  renderBar() {
    const parts = [];
    const needing = this.needingIncident();
    if (this.incident) {
      parts.push(el("span", { class: "incident-id", text: `Incident ${this.incident.id} open` }));
      if (needing.length) {
        parts.push(el("button", { type: "button", id: "link-cameras",
          text: `Link ${needing.length} emergency camera${needing.length === 1 ? "" : "s"}`,
          onclick: () => this.link(needing.map((c) => c.id)) }));
      }
      parts.push(el("button", { type: "button", id: "close-incident", class: "secondary",
        text: "Close incident", onclick: () => this.closeIncident() }));
    } else if (this.pin) {
      const emergency = needing.length;
      parts.push(el("button", { type: "button", id: "open-incident",
        text: emergency ? `Open incident (${emergency} emergency camera${emergency === 1 ? "" : "s"})`
          : "Open incident here",
        onclick: () => this.openIncident(needing.map((c) => c.id)) }));
    }
    this.bar.replaceChildren(...parts);
    this.bar.dataset.incident = this.incident ? this.incident.id : "";
  }

  async openIncident(cameraIds) {
    if (!this.pin) return;
    const where = this.pin.label || formatLatLon(this.pin.lat, this.pin.lon);
    try {
      this.incident = await api("/api/incidents", { method: "POST",
        body: { kind: "incident", title: `Console: ${where}`.slice(0, 200), cameras: cameraIds } });
    } catch (err) {
      this.toast(`The incident could not be opened: ${err.message}`);
      return;
    }
    this.save();
    await this.accessChanged();
  }

  async link(cameraIds) {
    if (!this.incident) return;
    try {
      this.incident = await api(`/api/incidents/${encodeURIComponent(this.incident.id)}/cameras`,
        { method: "POST", body: { cameras: cameraIds } });
    } catch (err) {
      this.toast(`The cameras could not be linked: ${err.message}`);
      return;
    }
    await this.accessChanged();
  }

  async closeIncident() {
    if (!this.incident) return;
    try {
      await api(`/api/incidents/${encodeURIComponent(this.incident.id)}/close`, { method: "POST",
        body: {} });
    } catch (err) {
      this.toast(`The incident could not be closed: ${err.message}`);
      return;
    }
    this.incident = null;
    this.save();
    await this.accessChanged();
  }

  async accessChanged() {
    const ids = this.ranked.map((c) => c.id).concat(this.wall.cameraIds().filter(Boolean));
    try {
      await this.store.refreshAccess(ids);
    } catch (err) {
      this.toast(`Access could not be checked: ${err.message}`);
    }
    if (this.pin) {
      this.map.showPin(this.pin.lat, this.pin.lon, this.pinLabel());
      this.render();
    } else {
      this.renderBar();
    }
    this.wall.retryAll();
  }

  /** What a WHEP request carries: the open incident (when it covers the camera), a purpose. */
  viewQuery(cameraId, purpose) {
    const query = {};
    if (purpose) query.purpose = purpose;
    const access = this.store.accessOf(cameraId);
    const emergency = access && access.sharing === "live_emergency";
    const linked = access ? access.incidents : [];
    if (this.incident && (!emergency || linked.includes(this.incident.id))) {
      query.incident = this.incident.id;
    } else if (emergency && linked.length && !purpose) {
      query.incident = linked[0];
    }
    return query.purpose || query.incident ? query : null;
  }

  // -- persistence --------------------------------------------------------------------------

  save() {
    try {
      localStorage.setItem(STATE_KEY, JSON.stringify({ pin: this.pin,
        incident: this.incident ? this.incident.id : null }));
    } catch (err) {
      // not remembered
    }
  }

  async restore() {
    let saved = null;
    try {
      saved = JSON.parse(localStorage.getItem(STATE_KEY) || "null");
    } catch (err) {
      saved = null;
    }
    if (!saved) return;
    if (saved.incident) {
      try {
        const incident = await api(`/api/incidents/${encodeURIComponent(saved.incident)}`);
        this.incident = incident.active ? incident : null;
      } catch (err) {
        this.incident = null;
      }
    }
    const pin = saved.pin;
    if (pin && Number.isFinite(pin.lat) && Number.isFinite(pin.lon)) {
      await this.setPin(pin.lat, pin.lon, typeof pin.label === "string" ? pin.label : "",
        { auto: false });
    } else {
      this.save();
    }
  }
}
