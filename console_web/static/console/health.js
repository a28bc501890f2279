// Camera health: the cameras that dropped (reconnecting) or fail (error), from the catalog's
// live status (the stream hub's state, pushed as "camera.status" events and listed by
// GET /api/cameras?status=...). A camera on the wall that drops plays a short tone.
"use strict";

import { api } from "./api.js";
import { $, el, STATUS_LABELS } from "./dom.js";

const BAD = new Set(["reconnecting", "error"]);
const RELIST_MS = 30000;
const SOUND_KEY = "rtcc.console.sound.v1";

/** Two short tones made in the page (no sound file); silent when audio is unavailable. */
function playDropTone() {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context) return false;
  const context = playDropTone.context || (playDropTone.context = new Context());
  if (context.state === "suspended") context.resume().catch(() => undefined);
  const start = context.currentTime + 0.02;
  [0, 0.22].forEach((offset, index) => {
    const osc = context.createOscillator();
    const gain = context.createGain();
    osc.type = "sine";
    osc.frequency.value = index ? 660 : 880;
    gain.gain.setValueAtTime(0.0001, start + offset);
    gain.gain.exponentialRampToValueAtTime(0.25, start + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.18);
    osc.connect(gain).connect(context.destination);
    osc.start(start + offset);
    osc.stop(start + offset + 0.2);
  });
  return true;
}

export class HealthPanel {
  constructor({ store, map, wall }) {
    this.store = store;
    this.map = map;
    this.wall = wall;
    this.root = $("health");
    this.list = $("health-list");
    this.count = $("health-count");
    this.soundButton = $("health-sound");
    this.bad = new Map(); // id -> {status, since}
    this.alerts = 0;
    this.sound = localStorage.getItem(SOUND_KEY) !== "0";
    this.soundButton.addEventListener("click", (event) => {
      event.preventDefault(); // inside <summary>: do not fold the panel
      this.sound = !this.sound;
      localStorage.setItem(SOUND_KEY, this.sound ? "1" : "0");
      this.renderSound();
    });
    this.renderSound();
    store.addEventListener("status", (event) => this.statusChanged(event.detail));
    wall.addEventListener("change", () => this.render());
  }

  async start() {
    await this.relist();
    setInterval(() => this.relist().catch(() => undefined), RELIST_MS);
  }

  /** The whole list again: events may have been missed while the feed was down. */
  async relist() {
    const answer = await api("/api/cameras?status=reconnecting,error&limit=1000");
    const seen = new Set();
    for (const feature of answer.features || []) {
      const [camera] = this.store.putFeatures([feature]);
      seen.add(camera.id);
      if (!this.bad.has(camera.id)) this.bad.set(camera.id, { status: camera.status, since: Date.now() });
      else this.bad.get(camera.id).status = camera.status;
    }
    for (const id of [...this.bad.keys()]) {
      if (!seen.has(id)) this.bad.delete(id);
    }
    this.render();
  }

  async statusChanged({ id, status }) {
    const was = this.bad.get(id);
    if (BAD.has(status)) {
      if (was) {
        was.status = status;
      } else {
        this.bad.set(id, { status, since: Date.now() });
        if (this.wall.cameraIds().includes(id)) this.dropAlert(id);
      }
      if (!this.store.get(id)) await this.store.load(id);
    } else if (was) {
      this.bad.delete(id);
    }
    this.render();
  }

  dropAlert(id) {
    this.alerts += 1;
    document.body.dataset.dropAlerts = String(this.alerts);
    document.body.dataset.lastDrop = id;
    if (this.sound && playDropTone()) {
      document.body.dataset.tonesPlayed = String(Number(document.body.dataset.tonesPlayed || 0) + 1);
    }
  }

  renderSound() {
    this.soundButton.setAttribute("aria-pressed", String(this.sound));
    this.soundButton.textContent = this.sound ? "Sound on" : "Sound off";
  }

  render() {
    const onWall = new Set(this.wall.cameraIds().filter(Boolean));
    const rows = [...this.bad.entries()]
      .map(([id, entry]) => ({ id, entry, camera: this.store.get(id) }))
      .sort((a, b) => Number(onWall.has(b.id)) - Number(onWall.has(a.id)) ||
        (a.camera ? a.camera.name : a.id).localeCompare(b.camera ? b.camera.name : b.id))
      .map(({ id, entry, camera }) => el("li",
        { class: "health-row", dataset: { cameraId: id, status: entry.status } },
        el("span", { class: "health-main" },
          el("span", { class: "health-name", text: camera ? camera.name : id }),
          el("span", { class: "health-meta" },
            onWall.has(id) ? el("span", { class: "on-wall", text: "on the wall · " }) : null,
            el("span", { class: "health-state", text: `${STATUS_LABELS[entry.status] ||
              entry.status} since ${new Date(entry.since).toLocaleTimeString([],
              { hour: "2-digit", minute: "2-digit" })}` }))),
        camera ? el("button", { type: "button", class: "secondary", text: "Show",
          onclick: () => {
            this.map.flyTo(camera.lat, camera.lon, 18);
            this.map.loadInView().then(() => this.map.highlight(id)).catch(() => undefined);
          } }) : null));
    this.list.replaceChildren(...rows);
    this.count.textContent = String(rows.length);
    this.root.dataset.count = String(rows.length);
  }
}
