// One tile of the wall: a camera played over WHEP, its name, a live dot, frame age and latency.
// It tells the truth about its picture: "live" only while frames are decoded, "reconnecting"
// as soon as they stop, and it opens a new view by itself (with backoff) when the old one dies.
// Switching profile (sub <-> main on focus) opens the new view first and swaps when it decodes.
"use strict";

import { goToLogin } from "./api.js";
import { el, STATUS_LABELS } from "./dom.js";
import { TileTools } from "./tiletools.js";
import { readStats } from "./whep.js";

const STALL_MS = 2500;
const RESTART_MS = 15000;
const SILENT_MS = 5000;
const FIRST_FRAME_MS = 12000;
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];
const NO_RETRY = new Set([400, 403, 404, 415]);
// Frame rate: decoded frames over the last few seconds of samples, once the first burst (the
// keyframe and what queued behind it) is a second old: a short window right after a stream
// starts or changes reads the burst as a rate.
const FPS_WINDOW_MS = 3000;
const FPS_MIN_SPAN_MS = 1500;
const FPS_SETTLE_MS = 1000;

class Session {
  constructor(profile, view, video) {
    this.profile = profile;
    this.view = view;
    this.pc = view.pc;
    this.location = view.location;
    // A standby connection counts the frames of the cameras it carried before.
    this.baseFrames = view.baseFrames || 0;
    this.video = video;
    this.openedAt = performance.now();
    this.frames = 0;
    this.firstFrameAt = 0;
    this.lastFrameAt = 0;
    this.prevDelay = 0;
    this.prevEmitted = 0;
    this.jitterMs = null;
    this.rttMs = null;
    this.fpsSamples = [];
    this.size = "";
    this.closed = false;
  }

  /** Decoded frames per second over the window, or null until the window is long enough. */
  get fps() {
    const samples = this.fpsSamples;
    if (samples.length < 2) return null;
    const first = samples[0];
    const last = samples[samples.length - 1];
    const span = last.at - first.at;
    if (span < FPS_MIN_SPAN_MS) return null;
    return (1000 * (last.frames - first.frames)) / span;
  }

  sampleFrames(now, framesDecoded) {
    if (!this.firstFrameAt || now - this.firstFrameAt < FPS_SETTLE_MS) return;
    const samples = this.fpsSamples;
    // A counter that went back belongs to another stream: start again.
    if (samples.length && framesDecoded < samples[samples.length - 1].frames) samples.length = 0;
    samples.push({ at: now, frames: framesDecoded });
    while (samples.length > 2 && now - samples[1].at >= FPS_WINDOW_MS) samples.shift();
  }

  get latencyMs() {
    if (this.jitterMs === null && this.rttMs === null) return null;
    return (this.jitterMs || 0) + (this.rttMs === null ? 0 : this.rttMs / 2);
  }

  close(keepalive = false) {
    if (this.closed) return;
    this.closed = true;
    if (!keepalive) {
      this.video.srcObject = null;
      this.video.remove();
    }
    this.view.end(keepalive);
  }
}

export class Tile {
  constructor(index, wall) {
    this.index = index;
    this.wall = wall;
    this.camera = null;
    this.focused = false;
    this.active = null;
    this.pending = null;
    this.opening = false;
    this.generation = 0;
    this.retryTimer = null;
    this.attempt = 0;
    this.reconnects = 0;
    this.state = "empty";
    this.message = "Drop a camera here";
    this.polling = false;
    this.checkingOwn = false;
    this.build();
    this.render();
  }

  build() {
    this.name = el("span", { class: "tile-name" });
    this.dot = el("span", { class: "dot", "aria-hidden": "true" });
    this.profileLabel = el("span", { class: "tile-profile" });
    this.closeButton = el("button", {
      class: "tile-close", type: "button", title: "Close this tile", "aria-label": "Close tile",
      text: "×", onclick: (event) => { event.stopPropagation(); this.wall.clearTile(this.index); },
    });
    this.top = el("div", { class: "tile-top", draggable: "true" },
      el("span", { class: "tile-number", text: String(this.index + 1) }),
      this.dot, this.name, this.profileLabel, this.closeButton);
    this.messageBox = el("div", { class: "tile-message", role: "status" });
    this.statsLine = el("div", { class: "tile-stats" });
    this.videoBox = el("div", { class: "tile-video" });
    this.root = el("div", { class: "tile", tabindex: "0", dataset: { index: String(this.index) } },
      this.videoBox, this.top, this.messageBox, this.statsLine);
    this.tools = new TileTools(this);
    this.root.append(this.tools.root);
  }

  wantedProfile() {
    const profiles = (this.camera && this.camera.profiles) || [];
    if (this.focused && (profiles.includes("main") || profiles.length === 0)) return "main";
    return profiles.includes("sub") ? "sub" : "main";
  }

  // -- what the wall asks of a tile --------------------------------------------------------

  assign(camera) {
    this.reset();
    this.camera = camera;
    this.setState("connecting", "Connecting…");
    this.open(this.wantedProfile());
  }

  clear() {
    this.reset();
    this.camera = null;
    this.setState("empty", "Drop a camera here");
  }

  setFocused(focused) {
    if (this.focused === focused) return;
    this.focused = focused;
    this.render();
    this.ensureProfile();
  }

  /** Try again now (the purpose, an incident or the camera's status changed). */
  retry() {
    if (!this.camera || this.active || this.opening) return;
    if (!["waiting", "refused", "reconnecting"].includes(this.state)) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.attempt = 0;
    this.open(this.wantedProfile());
  }

  /** Access was checked again: a refused tile that may now play asks for its view. */
  accessChanged() {
    if (!this.camera || this.state !== "refused" || this.checkingOwn) return;
    const access = this.wall.store.accessOf(this.camera.id);
    if (access && access.allowed) this.retry();
  }

  /** After a refusal, ask what access now says, so the ranked list agrees with the tile.
   * The answer does not retry by itself (the view was just refused); the next change does. */
  async noteRefusal() {
    if (!this.camera || this.checkingOwn) return;
    this.checkingOwn = true;
    try {
      await this.wall.store.refreshAccess([this.camera.id]);
    } catch (err) {
      // the slow re-check asks again
    } finally {
      this.checkingOwn = false;
    }
  }

  cameraChanged() {
    if (!this.camera) return;
    const current = this.wall.store.get(this.camera.id);
    if (current) this.camera = current;
    if (this.camera.status === "live" && this.retryTimer && !this.active) this.retry();
    this.render();
  }

  endAll(keepalive) {
    for (const session of [this.active, this.pending]) {
      if (session) session.close(keepalive);
    }
    this.active = null;
    this.pending = null;
  }

  reset() {
    this.generation += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.attempt = 0;
    this.opening = false;
    this.endAll(false);
  }

  // -- opening views -----------------------------------------------------------------------

  ensureProfile() {
    if (!this.camera || this.opening || this.retryTimer) return;
    const wanted = this.wantedProfile();
    if (this.pending && this.pending.profile !== wanted) {
      this.pending.close();
      this.pending = null;
    }
    if (this.active && this.active.profile !== wanted && !this.pending) this.open(wanted);
  }

  async open(profile) {
    if (!this.camera || this.opening) return;
    const query = this.wall.viewQuery(this.camera.id);
    if (!query) {
      const access = this.wall.store.accessOf(this.camera.id);
      if (access && !access.allowed) {
        this.setState("refused", `Not shown: ${access.reason}`);
        return;
      }
      this.setState("waiting", "Enter the purpose of viewing (top bar) to play");
      this.wall.askPurpose();
      return;
    }
    const generation = this.generation;
    const cameraId = this.camera.id;
    this.opening = true;
    const openedAt = performance.now();
    if (!this.active && this.state !== "reconnecting") this.setState("connecting", "Connecting…");
    let view;
    let video = null;
    let early = null;  // the first frame, when it came before the view's answer
    let reused = false;  // the link's element: it may hold the link's previous camera's frame
    let session = null;
    const newVideo = () => {
      const made = el("video", { class: "pending", playsinline: true, autoplay: true });
      made.muted = true;
      this.videoBox.append(made);
      return made;
    };
    const watch = (target, since) => {
      if (!target.requestVideoFrameCallback) return;
      const first = (now, frame) => {
        // On a standby connection, only a frame received after the bind is this camera's.
        if (frame && frame.receiveTime && frame.receiveTime < since) {
          target.requestVideoFrameCallback(first);
          return;
        }
        early = { now, receiveTime: frame && frame.receiveTime };
        if (session) this.frameSeen(session, early);
      };
      target.requestVideoFrameCallback(first);
    };
    const beforeBind = (stream, since, started = null) => {
      if (started) {
        // The link's own element, already playing its track: moved here, still hidden.
        video = started;
        reused = true;
        this.videoBox.append(video);
      } else {
        video = newVideo();
        video.srcObject = stream;
      }
      video.play().catch(() => undefined);
      watch(video, since);
    };
    const dropVideo = () => {
      if (!video) return;
      video.srcObject = null;
      video.remove();
    };
    try {
      view = await this.wall.openView(cameraId, profile, query, beforeBind);
    } catch (err) {
      dropVideo();
      if (generation !== this.generation) return;
      this.opening = false;
      this.failed(err);
      return;
    }
    if (generation !== this.generation) {
      dropVideo();
      view.end();
      return;
    }
    this.opening = false;
    const attached = Boolean(video);
    if (!video) video = newVideo();
    session = new Session(profile, view, video);
    // Where the time to the first picture goes (page clock, ms; the benchmark reads them).
    session.marks = { open: openedAt, ...(view.marks || {}), viewAt: performance.now() };
    if (!attached) {
      view.stream.then((stream) => {
        if (session.closed) return;
        video.srcObject = stream;
        video.play().catch(() => undefined);
        watch(video, view.boundAt);
      });
    }
    if (!this.active) {
      this.active = session;
      // A reused element is shown with this camera's first frame (firstFrame), not before.
      if (!reused) video.classList.remove("pending");
    } else {
      if (this.pending) this.pending.close();
      this.pending = session;
    }
    // A frame that came before the answer counts once the session is the tile's: the tile
    // says "live" together with its first decoded frame.
    if (attached && early) this.frameSeen(session, early);
    this.wall.viewOpened(this, session);
    this.render();
  }

  failed(err) {
    const status = err.status || 0;
    if (status === 401) {
      goToLogin();
      return;
    }
    if (status === 400 && /purpose/i.test(err.message)) {
      this.setState("waiting", "Enter the purpose of viewing (top bar) to play");
      this.wall.askPurpose();
      return;
    }
    if (NO_RETRY.has(status)) {
      this.setState("refused", `Not shown: ${this.reasonText(err.message)}`);
      if (status === 403) this.noteRefusal();
      return;
    }
    this.scheduleRetry(err.retryAfter || 0, `Camera unavailable (${this.reasonText(err.message)})`);
  }

  /** The server's reason as a person reads it: the tile names the camera already, so the
   * reason's "camera <id>: " prefix goes and "camera <id> sent..." reads "the camera sent...". */
  reasonText(message) {
    const text = String(message || "unknown reason");
    if (!this.camera) return text;
    const id = this.camera.id.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const named = `camera ['"]?${id}['"]?(/[a-z]+)?`;
    return text.replace(new RegExp(`^${named}:\\s*`, "i"), "")
      .replace(new RegExp(`\\b${named}(?=[\\s,;:]|$)`, "gi"), "the camera");
  }

  scheduleRetry(retryAfterS, why) {
    clearTimeout(this.retryTimer);
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    const delay = Math.max(base * (0.85 + Math.random() * 0.3), Math.min(retryAfterS, 15) * 1000);
    this.attempt += 1;
    this.reconnects += 1;
    this.setState("reconnecting", `${why}; reconnecting in ${Math.round(delay / 1000)} s…`);
    const generation = this.generation;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (generation === this.generation) this.open(this.wantedProfile());
    }, delay);
  }

  // -- watching the picture ----------------------------------------------------------------

  /** The first frame of this view was presented (requestVideoFrameCallback). */
  frameSeen(session, seen) {
    if (seen.receiveTime) session.marks.received = seen.receiveTime;
    session.marks.presented = seen.now;
    this.firstFrame(session);
  }

  firstFrame(session) {
    if (session.closed || session.firstFrameAt) return;
    session.firstFrameAt = performance.now();
    session.lastFrameAt = session.firstFrameAt;
    if (this.active === session) session.video.classList.remove("pending");
    if (session.frames === 0) session.frames = 1;
    this.settle(session.firstFrameAt);
  }

  /** Called by the wall twice a second. */
  async poll() {
    if (this.polling) return;
    this.polling = true;
    try {
      const now = performance.now();
      for (const session of [this.active, this.pending]) {
        if (session && !session.closed) await this.sample(session, now);
      }
      this.settle(performance.now());
    } finally {
      this.polling = false;
    }
  }

  async sample(session, now) {
    let stats;
    try {
      stats = await readStats(session.pc);
    } catch (err) {
      return;
    }
    const decoded = Math.max(0, stats.framesDecoded - session.baseFrames);
    if (decoded > session.frames) {
      session.frames = decoded;
      session.lastFrameAt = now;
      if (!session.firstFrameAt) session.firstFrameAt = now;
    }
    if (stats.jitterEmitted > session.prevEmitted) {
      session.jitterMs = (1000 * (stats.jitterDelay - session.prevDelay)) /
        (stats.jitterEmitted - session.prevEmitted);
      session.prevDelay = stats.jitterDelay;
      session.prevEmitted = stats.jitterEmitted;
    }
    session.rttMs = stats.rtt === null ? null : stats.rtt * 1000;
    session.sampleFrames(now, decoded);
    if (stats.width) session.size = `${stats.width}×${stats.height}`;
  }

  settle(now) {
    const pending = this.pending;
    if (pending && pending.firstFrameAt) {
      const old = this.active;
      this.active = pending;
      this.pending = null;
      pending.video.classList.remove("pending");
      if (old) old.close();
    } else if (pending && now - pending.openedAt > FIRST_FRAME_MS) {
      pending.close();
      this.pending = null;
    }
    const session = this.active;
    if (!session) {
      this.render();
      return;
    }
    const state = session.pc.connectionState;
    const silentFor = now - (session.lastFrameAt || session.openedAt);
    const dead = state === "failed" || state === "closed";
    // While the camera itself is down, the view is kept: frames resume on it when the camera
    // is back. When the camera is fine but this view went silent, the server most likely
    // ended it (consent changed, incident closed): ask again soon.
    const status = this.camera && this.camera.status;
    const cameraDown = ["reconnecting", "error", "starting"].includes(status);
    const patience = !session.lastFrameAt ? FIRST_FRAME_MS : cameraDown ? RESTART_MS : SILENT_MS;
    if (dead || silentFor > patience) {
      session.close();
      this.active = null;
      if (this.pending) {
        this.pending.close();
        this.pending = null;
      }
      this.scheduleRetry(0, dead ? "Connection lost" : "No picture");
      return;
    }
    if (session.lastFrameAt && silentFor <= STALL_MS) {
      this.attempt = 0;
      this.setState("live", "");
      this.ensureProfile();
    } else if (session.lastFrameAt) {
      const why = cameraDown ? "Camera offline" : "Stream dropped";
      this.setState("reconnecting", `${why}; reconnecting…`);
    } else {
      this.setState("connecting", "Waiting for the first picture…");
    }
  }

  // -- drawing -----------------------------------------------------------------------------

  setState(state, message) {
    this.state = state;
    this.message = message;
    this.render();
  }

  render() {
    const root = this.root;
    const camera = this.camera;
    const session = this.active;
    const now = performance.now();
    root.dataset.state = this.state;
    root.dataset.camera = camera ? camera.id : "";
    root.dataset.profile = session ? session.profile : "";
    root.dataset.focused = this.focused ? "true" : "false";
    root.dataset.framesDecoded = String(session ? session.frames : 0);
    root.dataset.reconnects = String(this.reconnects);
    root.dataset.firstFrameAt = session && session.firstFrameAt
      ? session.firstFrameAt.toFixed(1) : "";
    root.dataset.marks = session && session.firstFrameAt && session.marks
      ? JSON.stringify(session.marks) : "";
    root.dataset.cameraStatus = camera ? camera.status : "";
    root.classList.toggle("focused", this.focused);
    this.name.textContent = camera ? camera.name : "";
    this.name.title = camera ? `${camera.name} (${camera.id})` : "";
    this.profileLabel.textContent = session ? session.profile.toUpperCase() : "";
    this.closeButton.hidden = !camera;
    this.messageBox.textContent = this.message;
    this.messageBox.hidden = this.state === "live";
    const parts = [];
    if (session && session.lastFrameAt) {
      const age = now - session.lastFrameAt;
      root.dataset.frameAgeMs = String(Math.round(age));
      parts.push(`age ${(age / 1000).toFixed(1)} s`);
    } else {
      delete root.dataset.frameAgeMs;
    }
    const latency = session ? session.latencyMs : null;
    if (latency !== null) {
      root.dataset.latencyMs = String(Math.round(latency));
      parts.push(`latency ${Math.round(latency)} ms`);
    } else {
      delete root.dataset.latencyMs;
    }
    const fps = session ? session.fps : null;
    if (fps !== null) {
      root.dataset.fps = fps.toFixed(1);
      parts.push(`${Math.round(fps)} fps`);
    } else {
      delete root.dataset.fps;
    }
    if (session && session.size) parts.push(session.size);
    if (camera && camera.status && camera.status !== "live" && camera.status !== "idle") {
      parts.push(`camera ${STATUS_LABELS[camera.status] || camera.status}`);
    }
    this.statsLine.textContent = parts.join(" · ");
    this.statsLine.hidden = !camera;
    this.tools.render();
  }
}
