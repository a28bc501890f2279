// Finding a camera (by name or id) or a street address (geocoded offline by the server against
// the department's address points): cameras are shown on the map and can go on the wall, an
// address becomes the incident pin.
"use strict";

import { api } from "./api.js";
import { cameraFromFeature } from "./cameras.js";
import { $, el, SHARING_LABELS, STATUS_LABELS } from "./dom.js";

const MAX_RESULTS = 8;
const BAD_STATUS = new Set(["reconnecting", "error"]);
const PAGE = 1000;
const MAX_PAGES = 20;
const INDEX_TTL_MS = 60000;
const TYPING_MS = 250;
// "401 S 2nd St", "12 Oak Street": a house number then a street.
const LOOKS_LIKE_ADDRESS = /^\s*\d+[a-z]?\s+\S+/i;

function words(text) {
  return text.toLowerCase().split(/[\s,]+/).filter(Boolean);
}

export class CameraFinder {
  constructor({ store, map, panel, toast }) {
    this.store = store;
    this.map = map;
    this.panel = panel;
    this.toast = toast;
    this.input = $("find-text");
    this.list = $("find-results");
    this.cameras = [];
    this.loadedAt = 0;
    this.loading = null;
    this.seq = 0;
    this.timer = null;
    this.first = null;
    this.input.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.search(), TYPING_MS);
    });
    $("find").addEventListener("submit", async (event) => {
      event.preventDefault();
      clearTimeout(this.timer);
      await this.search();
      if (this.first) this.first();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.clear();
    });
  }

  focus() {
    this.input.focus();
    this.input.select();
  }

  clear() {
    this.input.value = "";
    this.list.replaceChildren();
    delete this.list.dataset.query;
    this.first = null;
  }

  /** Every camera's record (paged listing), kept for a minute. */
  async index() {
    if (performance.now() - this.loadedAt < INDEX_TTL_MS && this.cameras.length) {
      return this.cameras;
    }
    if (!this.loading) {
      this.loading = (async () => {
        const cameras = [];
        let after = "";
        for (let page = 0; page < MAX_PAGES; page += 1) {
          const answer = await api(`/api/cameras?limit=${PAGE}` +
            (after ? `&after=${encodeURIComponent(after)}` : ""));
          cameras.push(...(answer.features || []).map(cameraFromFeature));
          if (!answer.next) break;
          after = answer.next;
        }
        this.cameras = cameras;
        this.loadedAt = performance.now();
        return cameras;
      })().finally(() => { this.loading = null; });
    }
    return this.loading;
  }

  matches(cameras, query) {
    const wanted = words(query);
    const exact = query.trim().toLowerCase();
    const scored = [];
    for (const camera of cameras) {
      const text = `${camera.name} ${camera.id}`.toLowerCase();
      if (!wanted.every((word) => text.includes(word))) continue;
      let score = 2;
      if (camera.id === exact) score = 0;
      else if (camera.name.toLowerCase().startsWith(exact)) score = 1;
      scored.push({ camera, score });
    }
    scored.sort((a, b) => a.score - b.score || a.camera.name.localeCompare(b.camera.name));
    return scored.slice(0, MAX_RESULTS).map((entry) => entry.camera);
  }

  async geocode(query) {
    if (!LOOKS_LIKE_ADDRESS.test(query)) return null;
    try {
      return await api(`/api/geocode?q=${encodeURIComponent(query.trim())}`);
    } catch (err) {
      return { found: false, reason: err.message };
    }
  }

  async search() {
    const query = this.input.value.trim();
    const seq = ++this.seq;
    if (!query) {
      this.clear();
      return;
    }
    let cameras = [];
    let problem = "";
    const [listed, place] = await Promise.all([
      this.index().catch((err) => { problem = err.message; return []; }),
      this.geocode(query),
    ]);
    if (seq !== this.seq) return;
    cameras = this.matches(listed, query);
    const rows = [];
    this.first = null;
    if (place && place.found) {
      const pin = () => this.pinAddress(place);
      this.first = pin;
      rows.push(el("li", { class: "find-row address", dataset: { kind: "address" } },
        el("span", { class: "find-label", text: place.label }),
        el("span", { class: "find-kind", text: "address" }),
        el("button", { type: "button", text: "Pin here", onclick: pin })));
    }
    for (const camera of cameras) {
      const show = () => this.showCamera(camera);
      if (!this.first) this.first = show;
      rows.push(el("li", { class: "find-row", dataset: { kind: "camera", cameraId: camera.id } },
        el("span", { class: "find-label", text: camera.name, title: camera.id }),
        el("span", { class: "find-kind", text: BAD_STATUS.has(camera.status)
          ? STATUS_LABELS[camera.status] : SHARING_LABELS[camera.sharing] || camera.sharing }),
        el("button", { type: "button", class: "secondary", text: "Show", onclick: show }),
        el("button", { type: "button", text: "Add to wall",
          onclick: () => this.panel.addToWall(camera.id) })));
    }
    if (!rows.length) {
      const why = problem || (place && place.reason) || `no camera named like “${query}”`;
      rows.push(el("li", { class: "find-row none", dataset: { kind: "none" }, text: why }));
    }
    this.list.replaceChildren(...rows);
    this.list.dataset.query = query;
  }

  pinAddress(place) {
    this.map.flyTo(place.lat, place.lon, 17);
    this.panel.setPin(place.lat, place.lon, place.label);
  }

  showCamera(camera) {
    this.store.put(camera);
    this.map.flyTo(camera.lat, camera.lon, 18);
    // The marker is drawn once the map has loaded the cameras of its new view.
    this.map.loadInView().then(() => this.map.highlight(camera.id)).catch(() => undefined);
    document.body.dataset.shownCamera = camera.id;
  }
}
