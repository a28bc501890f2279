// The map (Leaflet, vendored): camera markers coloured by live status (fill) and sharing level
// (ring), view cones, the incident pin, a scale bar and the pointer's coordinates. Tiles come
// from the department's configured URL; without one the map draws on a plain background.
// Events: "pin" {lat, lon}, "inview" {cameras, total, note}, "add" {id}.
"use strict";

import { api } from "./api.js";
import { Clusters } from "./cluster.js";
import { el, formatLatLon, SHARING_LABELS, STATUS_LABELS } from "./dom.js";

const L = window.L;
const VIEW_KEY = "rtcc.console.map.v1";
const MAX_SEARCH_RADIUS_M = 90000;
const IN_VIEW_LIMIT = 1000;

export const STATUS_COLOURS = {
  live: "#2fd075",
  starting: "#f1c21b",
  reconnecting: "#ff9f1c",
  error: "#ff4d4f",
  idle: "#6f9fd8",
  unknown: "#8d98a5",
};
export const SHARING_COLOURS = {
  live_always: "#4ea8ff",
  live_emergency: "#d291ff",
  on_request: "#f6c85f",
  registry_only: "#c1c7cd",
};

function destination(lat, lon, bearingDeg, metres) {
  const R = 6371008.8;
  const d = metres / R;
  const b = (bearingDeg * Math.PI) / 180;
  const p1 = (lat * Math.PI) / 180;
  const l1 = (lon * Math.PI) / 180;
  const p2 = Math.asin(Math.sin(p1) * Math.cos(d) + Math.cos(p1) * Math.sin(d) * Math.cos(b));
  const l2 = l1 + Math.atan2(Math.sin(b) * Math.sin(d) * Math.cos(p1),
    Math.cos(d) - Math.sin(p1) * Math.sin(p2));
  return [(p2 * 180) / Math.PI, (((l2 * 180) / Math.PI + 540) % 360) - 180];
}

/** The camera's view as a polygon: a sector (heading, fov, range), or a circle for 360°. */
export function conePoints(camera) {
  const points = [];
  const fov = Math.min(360, Math.max(1, camera.fov));
  const steps = Math.max(4, Math.ceil(fov / 6));
  const start = camera.heading - fov / 2;
  if (fov < 360) points.push([camera.lat, camera.lon]);
  for (let i = 0; i <= steps; i += 1) {
    points.push(destination(camera.lat, camera.lon, start + (fov * i) / steps, camera.range_m));
  }
  return points;
}

function textControl(className, position) {
  const Control = L.Control.extend({
    onAdd() {
      const node = el("div", { class: `leaflet-control ${className}` });
      L.DomEvent.disableClickPropagation(node);
      return node;
    },
  });
  return new Control({ position });
}

export class CameraMap extends EventTarget {
  constructor(container, store, config) {
    super();
    this.store = store;
    this.config = config;
    this.entries = new Map();
    this.pin = null;
    this.loadSeq = 0;
    this.map = L.map(container, {
      attributionControl: false, zoomControl: true, worldCopyJump: true, minZoom: 2,
      maxZoom: 20,
    });
    this.map.createPane("cones").style.zIndex = "390";
    this.clusters = new Clusters(this.map, this.entries);
    this.map.on("zoomend", () => this.clusters.update());
    // A popup is never taller than the map (the map clips it): it scrolls inside instead.
    this.map.on("popupopen", (event) => {
      const size = this.map.getSize();
      event.popup.options.maxHeight = Math.max(80, size.y - 70);
      event.popup.options.maxWidth = Math.max(120, size.x - 60);
      event.popup.update();
    });
    if (config.tile_url) {
      L.tileLayer(config.tile_url, { maxZoom: 20, maxNativeZoom: 19 }).addTo(this.map);
      container.classList.add("with-tiles");
    }
    L.control.scale({ position: "bottomleft", imperial: true, metric: true }).addTo(this.map);
    this.addCoordinates();
    this.addAttribution();
    this.addLegend();
    this.note = textControl("map-note", "topright").addTo(this.map);
    this.map.on("click", (event) => {
      this.dispatchEvent(new CustomEvent("pin", {
        detail: { lat: event.latlng.lat, lon: L.Util.wrapNum(event.latlng.lng, [-180, 180], true) },
      }));
    });
    let timer = null;
    this.map.on("moveend", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.loadInView(), 200);
      this.saveView();
    });
    this.map.on("resize", () => {
      if (this.missedLoad) this.loadInView();
    });
    store.addEventListener("camera", (event) => this.refreshCamera(event.detail));
  }

  addCoordinates() {
    const control = textControl("map-coords", "bottomleft").addTo(this.map);
    const node = control.getContainer();
    this.coords = node;
    const resting = () => {
      const center = this.map.getCenter();
      node.textContent = this.pin ? `pin ${formatLatLon(this.pin.lat, this.pin.lon)}`
        : `centre ${formatLatLon(center.lat, L.Util.wrapNum(center.lng, [-180, 180], true))}`;
    };
    this.showRestingCoords = resting;
    this.map.on("mousemove", (event) => {
      node.textContent = formatLatLon(event.latlng.lat,
        L.Util.wrapNum(event.latlng.lng, [-180, 180], true));
    });
    this.map.on("mouseout moveend", resting);
  }

  addAttribution() {
    const control = textControl("map-attribution", "bottomright").addTo(this.map);
    const node = control.getContainer();
    const parts = [];
    if (this.config.tile_url && this.config.tile_attribution) {
      parts.push(el("span", { text: this.config.tile_attribution }), " · ");
    } else if (!this.config.tile_url) {
      parts.push(el("span", { text: "No map tiles configured" }), " · ");
    }
    parts.push(el("a", { href: "https://leafletjs.com", target: "_blank", rel: "noopener noreferrer",
      text: "Leaflet" }));
    node.append(...parts);
  }

  addLegend() {
    const control = textControl("map-legend", "topright").addTo(this.map);
    const node = control.getContainer();
    const row = (colour, label, ring) => el("div", { class: "legend-row" },
      el("span", { class: ring ? "legend-ring" : "legend-dot", "aria-hidden": "true",
        style: ring ? `border-color:${colour}` : `background:${colour}` }),
      el("span", { text: label }));
    const details = el("details", {},
      el("summary", { text: "Legend" }),
      el("div", { class: "legend-title", text: "Status (fill)" }),
      ...["live", "starting", "reconnecting", "error", "idle", "unknown"]
        .map((s) => row(STATUS_COLOURS[s], STATUS_LABELS[s], false)),
      el("div", { class: "legend-title", text: "Sharing (ring, cone)" }),
      ...Object.keys(SHARING_COLOURS).map((s) => row(SHARING_COLOURS[s], SHARING_LABELS[s], true)));
    node.append(details);
  }

  // -- view ---------------------------------------------------------------------------------

  saveView() {
    const center = this.map.getCenter();
    try {
      localStorage.setItem(VIEW_KEY, JSON.stringify({ lat: center.lat, lon: center.lng,
        zoom: this.map.getZoom() }));
    } catch (err) {
      // not remembered; nothing else changes
    }
  }

  /** The saved view, else all cameras (first page), else the first place, else the world. */
  async initialView() {
    try {
      const saved = JSON.parse(localStorage.getItem(VIEW_KEY) || "null");
      if (saved && Number.isFinite(saved.lat) && Number.isFinite(saved.lon) &&
          Number.isFinite(saved.zoom)) {
        this.map.setView([saved.lat, saved.lon], saved.zoom);
        return;
      }
    } catch (err) {
      // fall through to the defaults
    }
    let features = [];
    try {
      features = (await api(`/api/cameras?limit=${IN_VIEW_LIMIT}`)).features || [];
    } catch (err) {
      features = [];
    }
    if (features.length) {
      const bounds = L.latLngBounds(features.map((f) => [f.geometry.coordinates[1],
        f.geometry.coordinates[0]]));
      this.map.fitBounds(bounds.pad(0.15), { maxZoom: 17 });
    } else if (this.config.places && this.config.places.length) {
      const place = this.config.places[0];
      this.map.setView([place.lat, place.lon], 15);
    } else {
      this.map.setView([20, 0], 2);
    }
  }

  flyTo(lat, lon, zoom) {
    this.map.setView([lat, lon], Math.max(this.map.getZoom(), zoom || 16));
  }

  // -- cameras ------------------------------------------------------------------------------

  async loadInView() {
    const seq = ++this.loadSeq;
    const size = this.map.getSize();
    if (size.x < 2 || size.y < 2) {
      // Hidden ("wall only"): the view has no area to search; load when it is shown again.
      this.missedLoad = true;
      return;
    }
    this.missedLoad = false;
    const bounds = this.map.getBounds();
    const center = bounds.getCenter();
    if (center.distanceTo(bounds.getNorthEast()) > MAX_SEARCH_RADIUS_M) {
      this.setNote("Zoom in to see cameras");
      this.dispatchEvent(new CustomEvent("inview", { detail: { cameras: [], total: 0,
        note: "Zoom in to list the cameras in view." } }));
      return;
    }
    const clampLat = (v) => Math.max(-89.9, Math.min(89.9, v));
    const west = bounds.getWest();
    const east = Math.min(bounds.getEast(), west + 359.9);
    const south = clampLat(bounds.getSouth());
    const north = clampLat(bounds.getNorth());
    const ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
      .map(([lon, lat]) => [L.Util.wrapNum(lon, [-180, 180], true), lat]);
    let answer;
    try {
      answer = await api("/api/cameras/search", { method: "POST",
        body: { polygon: { type: "Polygon", coordinates: [ring] }, limit: IN_VIEW_LIMIT } });
    } catch (err) {
      this.setNote(`Cameras could not be loaded: ${err.message}`);
      return;
    }
    if (seq !== this.loadSeq) return;
    const cameras = this.store.putFeatures(answer.features || []);
    const shown = new Set(cameras.map((c) => c.id));
    for (const camera of cameras) this.draw(camera);
    for (const id of [...this.entries.keys()]) {
      if (!shown.has(id) && !(this.keep && this.keep.has(id))) this.undraw(id);
    }
    this.clusters.update();
    const total = answer.total || cameras.length;
    this.setNote(total > cameras.length ? `${cameras.length} of ${total} cameras: zoom in`
      : `${total} camera${total === 1 ? "" : "s"} in view`);
    this.dispatchEvent(new CustomEvent("inview", { detail: { cameras, total, note: "" } }));
  }

  /** Cameras drawn whatever the view (the incident's ranked list). */
  keepDrawn(cameras) {
    this.keep = new Set(cameras.map((c) => c.id));
    for (const camera of cameras) this.draw(this.store.get(camera.id) || camera);
    this.clusters.update();
  }

  setNote(text) {
    this.note.getContainer().textContent = text;
  }

  draw(camera) {
    let entry = this.entries.get(camera.id);
    if (!entry) {
      const cone = L.polygon(conePoints(camera), { pane: "cones", interactive: false,
        weight: 1, fillOpacity: 0.16 });
      const marker = L.circleMarker([camera.lat, camera.lon], { radius: 8, weight: 3,
        fillOpacity: 0.95, bubblingMouseEvents: false, className: "cam-marker" });
      marker.bindTooltip(() => el("span", { text: this.store.get(camera.id)?.name || camera.id }),
        { direction: "top", offset: [0, -8] });
      marker.bindPopup(() => this.popup(camera.id),
        { autoPanPaddingTopLeft: [12, 40], autoPanPaddingBottomRight: [12, 40] });
      cone.addTo(this.map);
      marker.addTo(this.map);
      entry = { cone, marker };
      this.entries.set(camera.id, entry);
    } else {
      entry.marker.setLatLng([camera.lat, camera.lon]);
      entry.cone.setLatLngs(conePoints(camera));
    }
    this.style(camera, entry);
  }

  style(camera, entry) {
    const sharing = SHARING_COLOURS[camera.sharing] || SHARING_COLOURS.registry_only;
    entry.marker.setStyle({
      color: sharing,
      fillColor: STATUS_COLOURS[camera.status] || STATUS_COLOURS.unknown,
      dashArray: camera.sharing === "registry_only" ? "3 3" : null,
    });
    entry.cone.setStyle({ color: sharing, fillColor: sharing,
      dashArray: camera.sharing === "registry_only" ? "4 4" : null });
    const node = entry.marker.getElement();
    if (node) {
      node.setAttribute("data-camera-id", camera.id);
      node.setAttribute("data-status", camera.status);
      node.setAttribute("data-sharing", camera.sharing);
    }
  }

  undraw(id) {
    const entry = this.entries.get(id);
    if (!entry) return;
    entry.cone.remove();
    entry.marker.remove();
    this.entries.delete(id);
  }

  refreshCamera(id) {
    const camera = this.store.get(id);
    if (!camera) {
      this.undraw(id);
      return;
    }
    if (this.entries.has(id)) this.draw(camera);
  }

  popup(id) {
    const camera = this.store.get(id);
    if (!camera) return el("div", { text: id });
    return el("div", { class: "cam-popup" },
      el("strong", { text: camera.name }),
      el("div", { text: `${SHARING_LABELS[camera.sharing] || camera.sharing} · ` +
        `${STATUS_LABELS[camera.status] || camera.status}` }),
      el("button", { type: "button", text: "Add to wall",
        onclick: () => this.dispatchEvent(new CustomEvent("add", { detail: { id } })) }));
  }

  highlight(id) {
    const entry = this.entries.get(id);
    if (!entry || !this.map.hasLayer(entry.marker)) return;
    entry.marker.openTooltip();
    entry.marker.bringToFront();
  }

  // -- incident pin -------------------------------------------------------------------------

  showPin(lat, lon, label) {
    this.pin = { lat, lon };
    if (!this.pinMarker) {
      this.pinMarker = L.marker([lat, lon], {
        icon: L.divIcon({ className: "pin-icon", html: "", iconSize: [22, 22],
          iconAnchor: [11, 22] }),
        keyboard: false, zIndexOffset: 1000,
      }).addTo(this.map);
    } else {
      this.pinMarker.setLatLng([lat, lon]);
    }
    this.pinMarker.unbindTooltip();
    if (label) {
      this.pinMarker.bindTooltip(el("span", { text: label }), { permanent: true,
        direction: "right", offset: [10, -12], className: "pin-label" });
    }
    const node = this.pinMarker.getElement();
    if (node) node.setAttribute("data-pin", formatLatLon(lat, lon));
    this.coords.textContent = `pin ${formatLatLon(lat, lon)}`;
  }

  clearPin() {
    this.pin = null;
    this.keep = null;
    if (this.pinMarker) {
      this.pinMarker.remove();
      this.pinMarker = null;
    }
    this.showRestingCoords();
  }
}
