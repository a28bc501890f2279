// The video wall: a grid of tiles (1, 2x2, 3x3, 4x4), drag and drop, focus and full screen,
// and its layout and cameras kept in localStorage so a reload brings the same wall back.
"use strict";

import { csrfHeaders } from "./api.js";
import { LinkPool } from "./links.js";
import { Tile } from "./tile.js";
import { openView } from "./whep.js";

export const LAYOUTS = { 1: 1, 4: 2, 9: 3, 16: 4 };
const STORAGE_KEY = "rtcc.console.wall.v1";
const POLL_MS = 500;
// Refused tiles ask again this often: consent can change without an event (a grant expires,
// an owner's time window opens).
const ACCESS_RECHECK_MS = 20000;
export const CAMERA_TYPE = "application/x-rtcc-camera";
const TILE_TYPE = "application/x-rtcc-tile";

export class Wall extends EventTarget {
  constructor(root, store, { viewQuery, askPurpose, storageKey = STORAGE_KEY }) {
    super();
    this.root = root;
    // A second window keeps its own wall: its key names the wall it shows.
    this.storageKey = storageKey;
    this.store = store;
    this.viewQueryFn = viewQuery;
    this.askPurposeFn = askPurpose;
    this.layout = 4;
    this.focus = null;
    this.solo = false;
    this.tiles = [];
    // Tiles play over standby connections opened ahead (one request to show a camera);
    // ?tiles=whep opens one WHEP connection per tile instead.
    const perTile = new URLSearchParams(window.location.search).get("tiles") === "whep";
    this.links = perTile || !window.RTCPeerConnection ? null : new LinkPool();
    for (let i = 0; i < 16; i += 1) {
      const tile = new Tile(i, this);
      this.wireTile(tile);
      this.tiles.push(tile);
    }
    store.addEventListener("camera", (event) => {
      for (const tile of this.visibleTiles()) {
        if (tile.camera && tile.camera.id === event.detail) tile.cameraChanged();
      }
    });
    store.addEventListener("access", (event) => {
      const ids = event.detail && event.detail.ids;
      for (const tile of this.visibleTiles()) {
        if (tile.camera && (!ids || ids.includes(tile.camera.id))) tile.accessChanged();
      }
    });
    setInterval(() => this.visibleTiles().forEach((tile) => tile.poll()), POLL_MS);
    setInterval(() => this.recheckRefused(), ACCESS_RECHECK_MS);
    document.addEventListener("fullscreenchange", () => {
      if (!document.fullscreenElement && this.solo) this.setSolo(false);
    });
    // The views end as the page starts to go (a reload or another page keeps this one until
    // the next arrives), so the request is out before the browser tears the connections down;
    // ended later, at pagehide, they race it and the server may see them lost, not ended.
    window.addEventListener("beforeunload", (event) => {
      if (!event.defaultPrevented && this.links) this.links.closeAll(true);
    });
    window.addEventListener("pagehide", () => {
      // The links first: one request ends all their views (tiles on WHEP end their own).
      if (this.links) this.links.closeAll(true);
      this.endAll(true);
    });
    this.render();
  }

  /** A view of one camera for a tile: on a standby connection when there are some. Tiles
   * that open in the same moment (a pin filling the wall) are bound with one request. */
  async openView(cameraId, profile, query, beforeBind = null) {
    if (this.links && !this.links.disabled) {
      try {
        return await this.bindSoon(cameraId, profile, query, beforeBind);
      } catch (err) {
        if (!this.links.disabled) throw err;  // a server without wall links: WHEP per tile
      }
    }
    return openView(cameraId, profile, query);
  }

  bindSoon(cameraId, profile, query, beforeBind) {
    return new Promise((resolve, reject) => {
      if (!this.batch) {
        this.batch = [];
        // Every tile the current task assigns joins; the request leaves once it is done.
        setTimeout(() => this.bindBatch(this.batch.splice(0)), 0);
      }
      this.batch.push({ cameraId, profile, query, beforeBind, resolve, reject });
    });
  }

  async bindBatch(asked) {
    this.batch = null;
    // One request per purpose and incident (they are the batch's, not each item's).
    const groups = new Map();
    for (const item of asked) {
      const key = JSON.stringify(item.query);
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(item);
    }
    for (const items of groups.values()) {
      if (items.length === 1) {
        const [item] = items;
        this.links.openView(item.cameraId, item.profile, item.query, item.beforeBind)
          .then(item.resolve, item.reject);
        continue;
      }
      this.links.openViews(items, items[0].query).then((results) => {
        results.forEach((result, index) => {
          if (result.view) items[index].resolve(result.view);
          else items[index].reject(result.error);
        });
      }, (err) => items.forEach((item) => item.reject(err)));
    }
  }

  /**
   * The wall is about to show some of these cameras (a ranked list, best first): ask the
   * server to start pulling the first ones this analyst may view, so their RTSP connect
   * overlaps the access check and the binds. The server decides which (nothing is shown or
   * audited before a tile's own view); the answer is not waited for.
   */
  prepare(ids) {
    if (!this.links || this.links.disabled || !ids.length) return;
    const query = this.viewQuery(ids[0]);
    if (!query) return;
    const params = new URLSearchParams({ cameras: ids.slice(0, 16).join(","),
      count: String(this.layout), profile: "sub", ...query });
    fetch(`/wall/links/prepare?${params.toString()}`, { method: "POST",
      credentials: "same-origin", headers: csrfHeaders() }).catch(() => undefined);
  }

  visibleTiles() {
    return this.tiles.slice(0, this.layout);
  }

  viewQuery(cameraId) {
    return this.viewQueryFn(cameraId);
  }

  askPurpose() {
    this.askPurposeFn();
  }

  viewOpened(tile, session) {
    this.dispatchEvent(new CustomEvent("view", { detail: { tile: tile.index,
      profile: session.profile } }));
  }

  // -- layout, focus, full screen ----------------------------------------------------------

  setLayout(count) {
    if (!LAYOUTS[count]) return;
    for (const tile of this.tiles.slice(count)) {
      if (tile.camera) tile.clear();
    }
    this.layout = count;
    if (this.focus !== null && this.focus >= count) this.setFocus(null);
    this.render();
    this.save();
  }

  setFocus(index) {
    if (index !== null && (index < 0 || index >= this.layout)) return;
    // Focusing the focused tile again changes nothing (its digital zoom stays).
    if (this.focus !== null && this.focus !== index) this.tiles[this.focus].setFocused(false);
    this.focus = index;
    if (index !== null) {
      this.tiles[index].setFocused(true);
      this.tiles[index].root.focus({ preventScroll: true });
    } else if (this.solo) {
      this.setSolo(false);
    }
    this.render();
    this.save();
  }

  setSolo(solo) {
    if (solo && this.focus === null) this.setFocus(0);
    this.solo = solo;
    if (solo && !document.fullscreenElement && this.root.requestFullscreen) {
      this.root.requestFullscreen().catch(() => undefined);
    } else if (!solo && document.fullscreenElement) {
      document.exitFullscreen().catch(() => undefined);
    }
    this.render();
  }

  /** Keys: 1-9 focus a tile, F full screen, Esc back. Returns true when the key was used. */
  handleKey(event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return false;
    if (/^[1-9]$/.test(event.key)) {
      const index = Number(event.key) - 1;
      if (index >= this.layout) return false;
      this.setFocus(index);
      return true;
    }
    if (event.key === "f" || event.key === "F") {
      this.setSolo(!this.solo);
      return true;
    }
    if (event.key === "Escape") {
      if (this.solo) this.setSolo(false);
      else if (this.focus !== null) this.setFocus(null);
      else return false;
      return true;
    }
    return false;
  }

  // -- cameras on tiles --------------------------------------------------------------------

  assign(index, camera) {
    if (index < 0 || index >= this.layout || !camera) return;
    const tile = this.tiles[index];
    if (tile.camera && tile.camera.id === camera.id && tile.state !== "refused") return;
    tile.assign(camera);
    this.save();
  }

  clearTile(index) {
    const tile = this.tiles[index];
    if (tile && tile.camera) {
      tile.clear();
      this.save();
    }
  }

  /** Put a camera on the first empty tile, else on the focused one. Returns the tile index. */
  add(camera) {
    const shown = this.visibleTiles().find((t) => t.camera && t.camera.id === camera.id);
    if (shown) return shown.index;
    const empty = this.visibleTiles().find((t) => !t.camera);
    const index = empty ? empty.index : this.focus;
    if (index === null || index === undefined) return null;
    this.assign(index, camera);
    return index;
  }

  /** Fill the wall with these cameras in order; tiles left over are emptied. */
  fill(cameras) {
    const wanted = cameras.slice(0, this.layout);
    this.visibleTiles().forEach((tile, index) => {
      const camera = wanted[index];
      if (camera) this.assign(index, camera);
      else if (tile.camera) tile.clear();
    });
    this.save();
  }

  swap(from, to) {
    if (from === to) return;
    const a = this.tiles[from].camera;
    const b = this.tiles[to].camera;
    if (b) this.tiles[from].assign(b);
    else this.tiles[from].clear();
    if (a) this.tiles[to].assign(a);
    else this.tiles[to].clear();
    this.save();
  }

  cameraIds() {
    return this.visibleTiles().map((tile) => (tile.camera ? tile.camera.id : null));
  }

  recheckRefused() {
    const ids = this.visibleTiles().filter((tile) => tile.camera && tile.state === "refused")
      .map((tile) => tile.camera.id);
    if (ids.length) this.store.refreshAccess(ids).catch(() => undefined);
  }

  retryAll() {
    this.visibleTiles().forEach((tile) => tile.retry());
  }

  endAll(keepalive) {
    this.tiles.forEach((tile) => tile.endAll(keepalive));
  }

  // -- drag and drop -----------------------------------------------------------------------

  wireTile(tile) {
    const root = tile.root;
    root.addEventListener("click", () => this.setFocus(tile.index));
    root.addEventListener("dblclick", () => {
      this.setFocus(tile.index);
      this.setSolo(!this.solo);
    });
    tile.top.addEventListener("dragstart", (event) => {
      if (!tile.camera) {
        event.preventDefault();
        return;
      }
      event.dataTransfer.setData(TILE_TYPE, String(tile.index));
      event.dataTransfer.setData(CAMERA_TYPE, tile.camera.id);
      event.dataTransfer.effectAllowed = "move";
    });
    root.addEventListener("dragover", (event) => {
      const types = event.dataTransfer.types;
      if (types.includes(CAMERA_TYPE) || types.includes(TILE_TYPE)) {
        event.preventDefault();
        root.classList.add("drop-target");
      }
    });
    root.addEventListener("dragleave", () => root.classList.remove("drop-target"));
    root.addEventListener("drop", async (event) => {
      event.preventDefault();
      root.classList.remove("drop-target");
      const fromTile = event.dataTransfer.getData(TILE_TYPE);
      if (fromTile !== "") {
        this.swap(Number(fromTile), tile.index);
        return;
      }
      const cameraId = event.dataTransfer.getData(CAMERA_TYPE);
      const camera = cameraId ? await this.store.load(cameraId) : null;
      if (camera) this.assign(tile.index, camera);
    });
  }

  // -- persistence -------------------------------------------------------------------------

  save() {
    try {
      localStorage.setItem(this.storageKey, JSON.stringify({
        layout: this.layout, cameras: this.cameraIds(), focus: this.focus,
      }));
    } catch (err) {
      // storage full or disabled: the wall still works, it is just not remembered
    }
  }

  saved() {
    try {
      const data = JSON.parse(localStorage.getItem(this.storageKey) || "null");
      if (!data || !LAYOUTS[data.layout] || !Array.isArray(data.cameras)) return null;
      return data;
    } catch (err) {
      return null;
    }
  }

  /** Bring back the saved wall; `prepare(ids)` runs first (access checks). */
  async restore(prepare) {
    const saved = this.saved();
    if (!saved) return;
    await this.load(saved, prepare);
  }

  /** Show a wall ({layout, cameras, focus}): tiles whose camera stays keep playing. */
  async load(saved, prepare) {
    if (!LAYOUTS[saved.layout] || !Array.isArray(saved.cameras)) return;
    for (const tile of this.tiles.slice(saved.layout)) {
      if (tile.camera) tile.clear();
    }
    if (this.focus !== null) this.setFocus(null);
    this.layout = saved.layout;
    this.render();
    const ids = saved.cameras.slice(0, this.layout)
      .map((id) => (typeof id === "string" ? id : null));
    const cameras = await Promise.all(ids.map((id) => (id ? this.store.load(id) : null)));
    await prepare(cameras.filter(Boolean).map((camera) => camera.id));
    this.visibleTiles().forEach((tile, index) => {
      const camera = cameras[index] || null;
      if (camera && !(tile.camera && tile.camera.id === camera.id)) tile.assign(camera);
      else if (!camera && tile.camera) tile.clear();
    });
    if (Number.isInteger(saved.focus) && saved.focus < this.layout) this.setFocus(saved.focus);
    this.save();
  }

  // -- drawing -----------------------------------------------------------------------------

  render() {
    const side = LAYOUTS[this.layout];
    this.root.dataset.layout = String(this.layout);
    if (this.links) this.links.setTarget(this.layout);
    this.root.style.setProperty("--side", String(side));
    this.root.classList.toggle("solo", this.solo);
    // Tiles are always the first `layout` of the sixteen: only the tail is added or removed,
    // so the tiles that stay are never taken out of the page (that would pause their video).
    const wanted = new Set(this.visibleTiles().map((tile) => tile.root));
    for (const node of [...this.root.children]) {
      if (!wanted.has(node)) node.remove();
    }
    for (const node of wanted) {
      if (node.parentNode !== this.root) this.root.append(node);
    }
    this.visibleTiles().forEach((tile) => {
      tile.root.classList.toggle("solo-tile", this.solo && tile.index === this.focus);
    });
    this.dispatchEvent(new CustomEvent("change"));
  }
}
