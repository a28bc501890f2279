// Saved walls: named layouts kept by the server, per analyst or shared (/api/console/layouts),
// and second windows: /console/?wall=NAME is a wall-only window with its own wall, for another
// monitor; it opens the saved wall of that name when there is one.
"use strict";

import { api } from "./api.js";
import { $, el } from "./dom.js";

const SECOND_WALL_KEY = "rtcc.console.wall.v1.window.";

/** The wall a second window shows (``?wall=NAME``), or "" in the main window. */
export function windowWall() {
  const name = new URLSearchParams(window.location.search).get("wall");
  return name ? name.trim().slice(0, 60) : "";
}

/** Where a window keeps its wall in this browser: the main window's key, or one per name. */
export function wallStorageKey(name) {
  return name ? SECOND_WALL_KEY + name : undefined;
}

function optionValue(wall) {
  return JSON.stringify([wall.shared, wall.name]);
}

export class SavedWalls {
  constructor({ wall, prepare, toast, windowName }) {
    this.wall = wall;
    this.prepare = prepare;
    this.toast = toast;
    this.windowName = windowName;
    this.walls = [];
    this.pick = $("wall-pick");
    this.info = $("walls-info");
    this.nameInput = $("wall-save-name");
    this.sharedBox = $("wall-shared");
    this.loadButton = $("wall-load");
    this.deleteButton = $("wall-delete");
    this.nameInput.value = windowName;
    this.pick.addEventListener("change", () => this.picked());
    this.loadButton.addEventListener("click", () => this.loadPicked());
    this.deleteButton.addEventListener("click", () => this.deletePicked());
    $("wall-save").addEventListener("click", () => this.save());
    this.nameInput.addEventListener("keydown", (event) => {
      if (event.key === "Enter") this.save();
    });
    $("wall-window").addEventListener("click", () => this.openWindow());
  }

  say(text) {
    this.info.textContent = text;
  }

  selected() {
    if (!this.pick.value) return null;
    const [shared, name] = JSON.parse(this.pick.value);
    return this.walls.find((w) => w.shared === shared && w.name === name) || null;
  }

  picked() {
    const chosen = this.selected();
    this.loadButton.disabled = !chosen;
    this.deleteButton.disabled = !chosen;
    if (chosen) {
      this.nameInput.value = chosen.name;
      this.sharedBox.checked = chosen.shared;
    }
  }

  async refresh() {
    const answer = await api("/api/console/layouts");
    this.walls = answer.layouts || [];
    const keep = this.pick.value;
    const mine = el("optgroup", { label: "Mine" });
    const shared = el("optgroup", { label: "Shared" });
    for (const wall of this.walls) {
      const tiles = wall.cameras.filter(Boolean).length;
      const label = `${wall.name} (${tiles} camera${tiles === 1 ? "" : "s"}` +
        (wall.shared ? `, by ${wall.author})` : ")");
      (wall.shared ? shared : mine).append(el("option", { value: optionValue(wall), text: label }));
    }
    this.pick.replaceChildren(el("option", { value: "", text: "Pick a saved wall…" }),
      ...[mine, shared].filter((group) => group.children.length));
    if ([...this.pick.options].some((option) => option.value === keep)) this.pick.value = keep;
    this.picked();
  }

  find(name) {
    return this.walls.find((w) => !w.shared && w.name === name) ||
      this.walls.find((w) => w.shared && w.name === name) || null;
  }

  async show(saved) {
    await this.wall.load({ layout: saved.layout, cameras: saved.cameras }, this.prepare);
    this.say(`Showing “${saved.name}”${saved.shared ? " (shared)" : ""}.`);
    document.body.dataset.wallLoaded = saved.name;
  }

  async loadPicked() {
    const chosen = this.selected();
    if (chosen) await this.show(chosen);
  }

  async save() {
    const name = this.nameInput.value.trim();
    if (!name) {
      this.say("Give the wall a name first.");
      this.nameInput.focus();
      return;
    }
    const shared = this.sharedBox.checked;
    try {
      const saved = await api("/api/console/layouts", { method: "PUT",
        body: { name, shared, layout: this.wall.layout, cameras: this.wall.cameraIds() } });
      await this.refresh();
      this.pick.value = optionValue(saved);
      this.picked();
      this.say(`Saved “${saved.name}”${saved.shared ? " for everyone" : ""}.`);
    } catch (err) {
      this.say(`Not saved: ${err.message}.`);
    }
  }

  async deletePicked() {
    const chosen = this.selected();
    if (!chosen) return;
    try {
      await api(`/api/console/layouts?name=${encodeURIComponent(chosen.name)}` +
        `&shared=${chosen.shared}`, { method: "DELETE" });
      this.pick.value = "";
      await this.refresh();
      this.say(`Deleted “${chosen.name}”.`);
    } catch (err) {
      this.say(`Not deleted: ${err.message}.`);
    }
  }

  openWindow() {
    const chosen = this.selected();
    const name = (chosen && chosen.name) || this.nameInput.value.trim() ||
      `wall ${new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
    const opened = window.open(`/console/?wall=${encodeURIComponent(name)}`, `rtcc-wall-${name}`,
      "popup,width=1280,height=800");
    if (!opened) this.toast("The browser blocked the new window: allow pop-ups for this site.");
  }

  /** In a second window: show the saved wall it is named after, unless this window already
   * holds its own wall from before a reload. */
  async start(hadOwnWall) {
    await this.refresh();
    if (!this.windowName) return;
    const saved = this.find(this.windowName);
    if (saved && !hadOwnWall) await this.show(saved);
    else if (!saved) this.say(`“${this.windowName}” is not saved yet: Save keeps it.`);
  }
}
