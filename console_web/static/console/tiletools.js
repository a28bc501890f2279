// Tools of the focused tile: a still to a case (taken by the server from the stream, hashed
// and held as evidence), digital zoom (wheel to zoom at the pointer, drag to move, reset), and
// pan/tilt/zoom and presets of the camera itself where its owner allows it (through the
// owner's agent, or the camera's ONVIF services the server is configured with).
"use strict";

import { api } from "./api.js";
import { el } from "./dom.js";

const MAX_ZOOM = 8;
const PTZ_MOVES = [
  ["left", "◀", { pan: -0.5, tilt: 0, zoom: 0 }, "Pan left"],
  ["up", "▲", { pan: 0, tilt: 0.5, zoom: 0 }, "Tilt up"],
  ["down", "▼", { pan: 0, tilt: -0.5, zoom: 0 }, "Tilt down"],
  ["right", "▶", { pan: 0.5, tilt: 0, zoom: 0 }, "Pan right"],
  ["in", "+", { pan: 0, tilt: 0, zoom: 0.5 }, "Zoom the camera in"],
  ["out", "−", { pan: 0, tilt: 0, zoom: -0.5 }, "Zoom the camera out"],
];

export class TileTools {
  constructor(tile) {
    this.tile = tile;
    this.scale = 1;
    this.x = 0;
    this.y = 0;
    this.drag = null;
    this.caseInput = el("input", { class: "snap-case", placeholder: "case number",
      maxlength: "64", "aria-label": "Case number for the still" });
    this.snapButton = el("button", { type: "button", class: "snap", text: "Still to case",
      title: "The server takes the current picture into the case as evidence" });
    this.zoomButton = el("button", { type: "button", class: "zoom-reset", text: "1×",
      title: "Digital zoom: wheel on the picture, drag to move; click to reset" });
    this.stopButton = el("button", { type: "button", text: "■", title: "Stop the camera",
      "aria-label": "Stop the camera", dataset: { ptz: "stop" } });
    this.stopButton.addEventListener("click", () => this.command({ action: "stop" }, "Camera stopped"));
    this.presetSelect = el("select", { class: "ptz-presets", "aria-label": "Camera preset" },
      el("option", { value: "", text: "Presets…" }));
    this.presetButton = el("button", { type: "button", class: "ptz-goto", text: "Go",
      title: "Turn the camera to the chosen preset", "aria-label": "Go to the chosen preset" });
    this.presetButton.addEventListener("click", () => this.gotoPreset());
    this.presetsFor = null;
    this.prefilledFor = null;
    this.ptzBox = el("span", { class: "ptz", role: "group", "aria-label": "Camera control" },
      ...PTZ_MOVES.map(([name, label, move, title]) => {
        const button = el("button", { type: "button", text: label, title,
          "aria-label": title, dataset: { ptz: name } });
        button.addEventListener("click", (event) => {
          event.stopPropagation();
          this.ptz(move);
        });
        return button;
      }), this.stopButton, this.presetSelect, this.presetButton);
    this.status = el("span", { class: "tool-status", role: "status" });
    this.root = el("div", { class: "tile-tools" }, this.caseInput, this.snapButton,
      this.zoomButton, this.ptzBox, this.status);
    for (const node of [this.root, this.caseInput]) {
      node.addEventListener("click", (event) => event.stopPropagation());
      node.addEventListener("dblclick", (event) => event.stopPropagation());
    }
    this.snapButton.addEventListener("click", () => this.snapshot());
    this.zoomButton.addEventListener("click", () => this.resetZoom());
    const box = tile.videoBox;
    tile.root.addEventListener("wheel", (event) => this.wheel(event), { passive: false });
    box.addEventListener("pointerdown", (event) => this.startDrag(event));
    box.addEventListener("pointermove", (event) => this.moveDrag(event));
    box.addEventListener("pointerup", () => { this.drag = null; });
    box.addEventListener("pointercancel", () => { this.drag = null; });
  }

  render() {
    const tile = this.tile;
    const usable = Boolean(tile.focused && tile.camera && tile.state === "live");
    this.root.hidden = !usable;
    this.ptzBox.hidden = !(usable && tile.camera.ptz);
    if (!this.ptzBox.hidden && this.presetsFor !== tile.camera.id) this.loadPresets();
    if (!tile.focused && this.scale !== 1) this.resetZoom();
    // Filled once per camera from the view's incident or purpose; an analyst who clears it
    // keeps it cleared.
    if (usable && this.prefilledFor !== tile.camera.id) {
      this.prefilledFor = tile.camera.id;
      const query = tile.wall.viewQuery(tile.camera.id);
      if (!this.caseInput.value) {
        this.caseInput.value = (query && (query.incident || query.purpose)) || "";
      }
    }
  }

  // -- digital zoom ------------------------------------------------------------------------

  apply() {
    const box = this.tile.videoBox;
    const width = box.clientWidth;
    const height = box.clientHeight;
    // Never show past the picture's edges.
    this.x = Math.min(0, Math.max(width * (1 - this.scale), this.x));
    this.y = Math.min(0, Math.max(height * (1 - this.scale), this.y));
    box.style.transformOrigin = "0 0";
    box.style.transform = this.scale === 1 ? "" : `translate(${this.x}px, ${this.y}px) scale(${this.scale})`;
    this.tile.root.dataset.zoom = this.scale.toFixed(2);
    this.zoomButton.textContent = `${this.scale.toFixed(this.scale < 2 ? 1 : 0)}×`;
    this.tile.root.classList.toggle("zoomed", this.scale > 1);
  }

  wheel(event) {
    if (!this.tile.focused || !this.tile.camera) return;
    event.preventDefault();
    const rect = this.tile.root.getBoundingClientRect();
    const px = event.clientX - rect.left;
    const py = event.clientY - rect.top;
    const next = Math.min(MAX_ZOOM, Math.max(1, this.scale * (event.deltaY < 0 ? 1.25 : 0.8)));
    // Keep the point under the pointer where it is.
    this.x = px - ((px - this.x) * next) / this.scale;
    this.y = py - ((py - this.y) * next) / this.scale;
    this.scale = next;
    this.apply();
  }

  startDrag(event) {
    if (this.scale === 1 || !this.tile.focused) return;
    this.drag = { x: event.clientX - this.x, y: event.clientY - this.y };
    this.tile.videoBox.setPointerCapture(event.pointerId);
  }

  moveDrag(event) {
    if (!this.drag) return;
    this.x = event.clientX - this.drag.x;
    this.y = event.clientY - this.drag.y;
    this.apply();
  }

  resetZoom() {
    this.scale = 1;
    this.x = 0;
    this.y = 0;
    this.apply();
  }

  // -- evidence still and camera control ---------------------------------------------------

  say(text, kind) {
    this.status.textContent = text;
    this.status.dataset.kind = kind;
  }

  async snapshot() {
    const tile = this.tile;
    const camera = tile.camera;
    const query = camera ? tile.wall.viewQuery(camera.id) : null;
    const caseNumber = this.caseInput.value.trim();
    if (!camera || !query) return;
    if (!caseNumber) {
      this.say("Enter the case number first.", "error");
      this.caseInput.focus();
      return;
    }
    const profile = tile.active ? tile.active.profile : tile.wantedProfile();
    const params = new URLSearchParams({ profile, ...query });
    this.snapButton.disabled = true;
    this.say("Taking the still…", "busy");
    try {
      const answer = await api(`/api/cameras/${encodeURIComponent(camera.id)}/snapshot?${params}`,
        { method: "POST", body: { case: caseNumber, reason: "still from the wall" } });
      this.say(`Saved to case ${caseNumber} as ${answer.evidence_id} · SHA-256 ` +
        `${answer.sha256.slice(0, 12)}…`, "ok");
      this.status.dataset.sha256 = answer.sha256;
      this.status.dataset.evidenceId = answer.evidence_id;
    } catch (err) {
      this.say(`No still: ${err.message}`, "error");
    } finally {
      this.snapButton.disabled = false;
    }
  }

  /** The camera's PTZ address (through its agent, or the server's own ONVIF control) and the
   * view query (purpose, incident) each command is checked against, or null. */
  ptzTarget(suffix) {
    const camera = this.tile.camera;
    const query = camera ? this.tile.wall.viewQuery(camera.id) : null;
    if (!camera || !query) return null;
    const base = camera.viaAgent ? "/api/agent-cameras/" : "/api/cameras/";
    return `${base}${encodeURIComponent(camera.id)}/ptz${suffix}?${new URLSearchParams(query)}`;
  }

  async command(body, done) {
    const url = this.ptzTarget("");
    if (!url) return;
    try {
      await api(url, { method: "POST", body });
      this.say(done, "ok");
    } catch (err) {
      this.say(`Camera control refused: ${err.message}`, "error");
    }
  }

  ptz(move) {
    return this.command({ action: "move", timeout: 0.5, ...move }, "Camera moving");
  }

  async loadPresets() {
    const camera = this.tile.camera;
    const url = this.ptzTarget("/presets");
    if (!url) return;
    this.presetsFor = camera.id;
    this.presetSelect.replaceChildren(el("option", { value: "", text: "Presets…" }));
    try {
      const answer = await api(url);
      if (this.presetsFor !== camera.id) return;
      for (const preset of answer.presets) {
        this.presetSelect.append(el("option", { value: preset.token, text: preset.name }));
      }
      this.ptzBox.dataset.presets = String(answer.presets.length);
    } catch (err) {
      this.ptzBox.dataset.presets = "0";
      this.say(`No presets: ${err.message}`, "error");
    }
  }

  gotoPreset() {
    const option = this.presetSelect.selectedOptions[0];
    if (!option || !option.value) {
      this.say("Choose a preset first.", "error");
      this.presetSelect.focus();
      return undefined;
    }
    return this.command({ action: "preset", preset: option.value, name: option.textContent },
      `Camera turning to ${option.textContent}`);
  }
}
