// The investigator's workspace: recorded footage of up to four cameras on one timeline, played
// in sync through Media Source Extensions from fragmented MP4 the server remuxes (never
// re-encodes) from its segments, with in/out marks, bookmarks and exports.
//
// Time: every video element runs on one shared axis, seconds since ``state.origin`` (a UTC
// epoch); each fMP4 part is appended with ``timestampOffset = X-Recording-Start - origin``, so
// the same ``currentTime`` is the same recorded moment on every camera.
"use strict";

import { goToLogin, request, setCsrfToken } from "/console/static/shared/api.js";
import { $, el } from "/console/static/shared/dom.js";

const MAX_CAMERAS = 4;
const PART_SECONDS = 300;
const MIN_SPAN = 5;
const MAX_SPAN = 7 * 86400;
const THUMB_W = 320;
const THUMB_H = 180;

const state = {
  origin: 0, from: 0, to: 0, viewStart: 0, viewEnd: 0, playhead: 0,
  cameras: [], selected: [], timelines: new Map(), players: [], marks: [],
  markIn: null, markOut: null, playing: false,
};

async function api(path, { method = "GET", body } = {}) {
  const { response, text, data } = await request(path, { method, body, timeoutMs: 20000 });
  if (response.status === 401) {
    goToLogin("/investigate/" + window.location.search);
    throw new Error("your session has ended; log in again");
  }
  if (!response.ok) throw new Error((data && data.error) || text || response.statusText);
  return data;
}

function status(text) {
  $("status").textContent = text;
}

function iso(utc, withMs = true) {
  if (!Number.isFinite(utc)) return "--";
  const text = new Date(utc * 1000).toISOString().replace("T", " ");
  return (withMs ? text.slice(0, 23) : text.slice(0, 19)) + " UTC";
}

function toLocalInput(utc) {
  const d = new Date(utc * 1000 - new Date(utc * 1000).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}

function fromLocalInput(value) {
  const ms = new Date(value).getTime();
  return Number.isFinite(ms) ? ms / 1000 : NaN;
}

// -- players -------------------------------------------------------------------------------------

class Player {
  constructor(camera) {
    this.camera = camera;
    this.video = el("video", { muted: true, playsinline: true, dataset: { camera } });
    this.video.muted = true;
    this.stamp = el("span", { class: "stamp", text: "--" });
    this.message = el("div", { class: "message muted" });
    this.box = el("div", { class: "player", dataset: { camera } },
      this.video, el("span", { class: "label", text: camera }), this.stamp, this.message);
    this.controller = null;
    this.source = null;
    this.buffer = null;
    this.loadedEnd = null;
    this.partEnd = null;
    this.partStart = null;
    this.loading = false;
    this.fps = 15;
    this.pendingSeek = null;
    this.watchFrames();
    this.video.addEventListener("timeupdate", () => this.maybeContinue());

  }

  time() {
    return state.origin + this.video.currentTime;
  }

  buffered(utc) {
    const t = utc - state.origin;
    const ranges = this.video.buffered;
    for (let i = 0; i < ranges.length; i++) {
      if (t >= ranges.start(i) && t < ranges.end(i) - 0.05) return true;
    }
    return false;
  }

  frameTime(utc) {
    // The capture time of the frame shown at ``utc``: frames follow each other at ``fps`` from
    // the part's first frame.
    if (this.partStart === null) return utc;
    return this.partStart + Math.floor((utc - this.partStart) * this.fps + 1e-3) / this.fps;
  }

  shown(utc) {
    this.stamp.textContent = iso(utc);
    this.box.dataset.frameUtc = utc.toFixed(6);
    if (this === state.players[0]) showClock(utc);
  }

  watchFrames() {
    // While playing, each presented frame's own time; after a seek (paused or not), the frame
    // the element landed on, once it can be drawn.
    const onFrame = (now, meta) => {
      this.shown(state.origin + meta.mediaTime);
      this.video.requestVideoFrameCallback(onFrame);
    };
    this.video.requestVideoFrameCallback(onFrame);
    this.video.addEventListener("seeked", () => {
      const utc = this.frameTime(this.time());
      this.shown(utc);
      const pending = this.pendingSeek;
      // Chromium may land on the frame's own time rather than the time asked for.
      if (!pending || Math.abs(this.video.currentTime - pending.t) > 1.5 / this.fps) return;
      this.pendingSeek = null;
      const done = () => {
        this.box.dataset.seekMs = (performance.now() - pending.started).toFixed(1);
        this.box.dataset.seekUtc = utc.toFixed(6);
        if (this.video.paused) this.captureThumb(utc);
      };
      // "seeked" can come before the new picture is on screen: wait for it to be presented
      // (or, when the element presents nothing new, a quarter of a second).
      let fired = false;
      const once = () => {
        if (fired) return;
        fired = true;
        this.video.cancelVideoFrameCallback(callback);
        done();
      };
      const callback = this.video.requestVideoFrameCallback(once);
      setTimeout(once, 250);
    });
  }

  captureThumb(utc) {
    // The frame on screen in grey, at its size (at most 320x180): what a check compares with
    // the recording.
    const width = Math.min(THUMB_W, this.video.videoWidth);
    const height = Math.min(THUMB_H, this.video.videoHeight);
    const canvas = el("canvas", { width, height });
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(this.video, 0, 0, width, height);
    const pixels = ctx.getImageData(0, 0, width, height).data;
    let hex = "";
    for (let i = 0; i < pixels.length; i += 4) {
      const grey = Math.round(0.299 * pixels[i] + 0.587 * pixels[i + 1] + 0.114 * pixels[i + 2]);
      hex += grey.toString(16).padStart(2, "0");
    }
    this.box.dataset.thumb = hex;
    this.box.dataset.thumbUtc = utc.toFixed(6);
  }

  show(text) {
    this.message.textContent = text;
  }

  async seek(utc) {
    this.pendingSeek = { t: utc - state.origin, started: performance.now() };
    delete this.box.dataset.seekMs;
    if (this.buffered(utc)) {
      this.video.currentTime = utc - state.origin;
      return;
    }
    await this.load(utc, true);
  }

  newSource(mime) {
    return new Promise((resolve, reject) => {
      if (!window.MediaSource || !MediaSource.isTypeSupported(mime)) {
        reject(new Error(`this browser cannot play ${mime}`));
        return;
      }
      const source = new MediaSource();
      this.source = source;
      this.video.src = URL.createObjectURL(source);
      source.addEventListener("sourceopen", () => {
        this.buffer = source.addSourceBuffer(mime);
        this.buffer.mode = "segments";
        resolve();
      }, { once: true });
    });
  }

  idle() {
    const buffer = this.buffer;
    if (!buffer || !buffer.updating) return Promise.resolve();
    return new Promise((resolve) => buffer.addEventListener("updateend", resolve, { once: true }));
  }

  async append(chunk) {
    await this.idle();
    const buffer = this.buffer;
    await new Promise((resolve, reject) => {
      const done = () => { buffer.removeEventListener("error", fail); resolve(); };
      const fail = () => { buffer.removeEventListener("updateend", done); reject(new Error("the browser refused the video data")); };
      buffer.addEventListener("updateend", done, { once: true });
      buffer.addEventListener("error", fail, { once: true });
      buffer.appendBuffer(chunk);
    });
  }

  async load(utc, reset) {
    if (this.controller) this.controller.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.loading = true;
    const to = Math.min(utc + PART_SECONDS, state.to);
    this.partEnd = to;  // asked for up to here, whether or not anything was recorded there
    const query = new URLSearchParams({ camera: this.camera, from: String(utc), to: String(to) });
    try {
      const response = await fetch(`/api/investigate/play?${query}`, {
        credentials: "same-origin", signal: controller.signal,
      });
      if (response.status === 401) { goToLogin("/investigate/" + window.location.search); return; }
      if (!response.ok) {
        let message = response.statusText;
        try { message = (await response.json()).error || message; } catch (err) { /* text */ }
        if (reset) this.show(message);
        this.box.dataset.state = "none";
        return;
      }
      const start = Number(response.headers.get("X-Recording-Start"));
      const end = Number(response.headers.get("X-Recording-End"));
      const frames = Number(response.headers.get("X-Playback-Frames"));
      if (frames > 1 && end > start) this.fps = (frames - 1) / (end - start);
      this.partStart = start;
      const mime = response.headers.get("X-Playback-Mime") || 'video/mp4; codecs="avc1.640028"';
      if (reset || !this.buffer) await this.newSource(mime);
      await this.idle();
      this.buffer.timestampOffset = start - state.origin;
      this.loadedEnd = end;
      this.show("");
      const reader = response.body.getReader();
      let first = true;
      for (;;) {
        const { done, value } = await reader.read();
        if (done || controller !== this.controller) break;
        await this.append(value);
        if (first && reset && this.video.buffered.length) {
          first = false;
          // Without the right to see the lead-in, the part starts at the first keyframe after
          // ``utc``: land on that frame, since ``utc`` itself will never be buffered.
          const target = Math.max(utc, start) - state.origin;
          if (this.pendingSeek) this.pendingSeek.t = target;
          this.video.currentTime = target;
          this.video.playbackRate = Number($("speed").value);
          if (state.playing) this.video.play().catch(() => {});
        }
      }
      this.box.dataset.state = "loaded";
    } catch (err) {
      if (err.name !== "AbortError") this.show(err.message);
    } finally {
      if (controller === this.controller) this.loading = false;
    }
  }

  maybeContinue() {
    // Ask for the next part before the buffered one runs out.
    if (this.loading || this.partEnd === null || this.partEnd >= state.to) return;
    if (this.time() > this.partEnd - 20) this.load(this.partEnd, false);
  }
}

function showClock(utc) {
  state.playhead = utc;
  $("clock").textContent = iso(utc);
  $("clock").dataset.utc = utc.toFixed(6);
  drawPlayhead();
}

async function seekAll(utc) {
  state.playhead = utc;
  drawPlayhead();
  await Promise.all(state.players.map((player) => player.seek(utc)));
}

function keepInSync() {
  const master = state.players[0];
  if (!master || master.video.paused) return;
  for (const player of state.players.slice(1)) {
    const drift = Math.abs(player.video.currentTime - master.video.currentTime);
    if (drift > 1 / Math.max(1, master.fps) && player.buffered(master.time())) {
      player.video.currentTime = master.video.currentTime;
    }
  }
}

function stepFrames(count) {
  for (const player of state.players) {
    player.video.pause();
  }
  state.playing = false;
  $("play").textContent = "Play";
  const master = state.players[0];
  if (!master) return;
  const utc = master.time() + count / Math.max(1, master.fps);
  seekAll(utc);
}

function togglePlay() {
  state.playing = !state.playing;
  $("play").textContent = state.playing ? "Pause" : "Play";
  for (const player of state.players) {
    player.video.playbackRate = Number($("speed").value);
    if (state.playing) player.video.play().catch(() => {});
    else player.video.pause();
  }
}

// -- timeline ------------------------------------------------------------------------------------

function x(utc) {
  return ((utc - state.viewStart) / (state.viewEnd - state.viewStart)) * 100;
}

function spanNode(kind, start, end, title) {
  const left = Math.max(-1, x(start));
  const right = Math.min(101, x(end));
  if (right <= 0 || left >= 100) return null;
  return el("div", { class: `span ${kind}`, title,
    style: `left:${left}%;width:${Math.max(0.15, right - left)}%`, dataset: { kind } });
}

function drawTimeline() {
  const root = $("timeline");
  root.replaceChildren();
  root.append(axis());
  for (const camera of state.selected) {
    const data = state.timelines.get(camera);
    const lane = el("div", { class: "lane", dataset: { camera } },
      el("span", { class: "name", text: camera }));
    if (data) {
      for (const span of data.segments) {
        const node = spanNode(span.kind, span.start, span.end,
          `${span.kind === "upload" ? "uploaded by the owner's agent" : "recorded"}: ${iso(span.start, false)} – ${iso(span.end, false)}`);
        if (node) lane.append(node);
      }
      for (const gap of data.gaps) {
        const node = spanNode("gap", gap.start, gap.end, `nothing recorded: ${iso(gap.start, false)} – ${iso(gap.end, false)}`);
        if (node) lane.append(node);
      }
      for (const hold of data.holds) {
        const node = spanNode("hold", hold.start, hold.end, `legal hold, case ${hold.case}: ${hold.reason}`);
        if (node) lane.append(node);
      }
    }
    for (const mark of state.marks.filter((m) => m.camera_id === camera)) {
      const left = x(mark.at);
      if (left >= 0 && left <= 100) {
        lane.append(el("div", { class: "bookmark", style: `left:${left}%`,
          title: `${iso(mark.at)} ${mark.created_by}: ${mark.text}` }));
      }
    }
    root.append(lane);
  }
  if (state.markIn !== null && state.markOut !== null) {
    const left = Math.max(0, x(state.markIn));
    const right = Math.min(100, x(state.markOut));
    if (right > left) root.append(el("div", { class: "inout", style: `left:${left}%;width:${right - left}%` }));
  }
  root.append(el("div", { class: "tick", id: "playhead" }));
  drawPlayhead();
  $("view-range").textContent = `${iso(state.viewStart, false)} – ${iso(state.viewEnd, false)}`;
}

function axis() {
  const span = state.viewEnd - state.viewStart;
  const steps = [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400];
  const step = steps.find((s) => span / s <= 10) || 86400;
  const node = el("div", { class: "axis" });
  for (let t = Math.ceil(state.viewStart / step) * step; t <= state.viewEnd; t += step) {
    const text = new Date(t * 1000).toISOString().slice(step >= 86400 ? 5 : 11, step < 60 ? 19 : 16);
    node.append(el("span", { style: `left:${x(t)}%`, text }));
  }
  return node;
}

function drawPlayhead() {
  const tick = $("playhead");
  if (!tick) return;
  const left = x(state.playhead);
  tick.hidden = left < 0 || left > 100;
  tick.style.left = `${left}%`;
}

function setView(start, end) {
  const span = Math.min(MAX_SPAN, Math.max(MIN_SPAN, end - start));
  const centre = (start + end) / 2;
  state.viewStart = centre - span / 2;
  state.viewEnd = centre + span / 2;
  drawTimeline();
}

function timeAt(clientX) {
  const box = $("timeline").getBoundingClientRect();
  return state.viewStart + ((clientX - box.left) / box.width) * (state.viewEnd - state.viewStart);
}

function wireTimeline() {
  const root = $("timeline");
  root.addEventListener("wheel", (event) => {
    event.preventDefault();
    const at = timeAt(event.clientX);
    const factor = event.deltaY > 0 ? 1.5 : 1 / 1.5;
    const span = Math.min(MAX_SPAN, Math.max(MIN_SPAN, (state.viewEnd - state.viewStart) * factor));
    const share = (at - state.viewStart) / (state.viewEnd - state.viewStart);
    state.viewStart = at - share * span;
    state.viewEnd = state.viewStart + span;
    drawTimeline();
  }, { passive: false });
  let drag = null;
  root.addEventListener("mousedown", (event) => {
    drag = { x: event.clientX, start: state.viewStart, end: state.viewEnd, moved: false };
  });
  window.addEventListener("mousemove", (event) => {
    if (!drag) return;
    const dx = event.clientX - drag.x;
    if (Math.abs(dx) > 3) drag.moved = true;
    if (!drag.moved) return;
    const width = root.getBoundingClientRect().width;
    const shift = (dx / width) * (drag.end - drag.start);
    state.viewStart = drag.start - shift;
    state.viewEnd = drag.end - shift;
    drawTimeline();
  });
  window.addEventListener("mouseup", (event) => {
    if (drag && !drag.moved && root.contains(event.target)) seekAll(timeAt(event.clientX));
    drag = null;
  });
  for (const button of document.querySelectorAll("#zoom button[data-span]")) {
    button.addEventListener("click", () => {
      const span = Number(button.dataset.span);
      const centre = state.playhead || (state.viewStart + state.viewEnd) / 2;
      setView(centre - span / 2, centre + span / 2);
    });
  }
}

// -- cameras, bookmarks, requests ----------------------------------------------------------------

async function loadCameras() {
  const answer = await api("/api/investigate/cameras");
  state.cameras = answer.cameras;
  const list = $("cameras");
  list.replaceChildren();
  for (const camera of state.cameras) {
    const box = el("input", { type: "checkbox", value: camera.camera_id,
      checked: state.selected.includes(camera.camera_id) });
    box.addEventListener("change", () => {
      if (box.checked && state.selected.length >= MAX_CAMERAS) {
        box.checked = false;
        status(`at most ${MAX_CAMERAS} cameras play together`);
        return;
      }
      state.selected = box.checked ? [...state.selected, camera.camera_id]
        : state.selected.filter((id) => id !== camera.camera_id);
      showCameras();
    });
    list.append(el("li", {}, el("label", {}, box, ` ${camera.name || camera.camera_id} `,
      el("small", { class: "muted", text: `(${camera.basis})` }))));
  }
  // Cameras named in the address that the caller may not see are dropped, without a word.
  const known = new Set(state.cameras.map((c) => c.camera_id));
  state.selected = state.selected.filter((id) => known.has(id)).slice(0, MAX_CAMERAS);
}

async function showCameras() {
  for (const player of state.players) {
    if (player.controller) player.controller.abort();
  }
  state.players = state.selected.map((camera) => new Player(camera));
  const players = $("players");
  players.dataset.count = String(state.players.length);
  players.replaceChildren(...state.players.map((player) => player.box));
  for (const id of ["play", "back", "forward", "mark-in", "mark-out", "bookmark", "export-start"]) {
    $(id).disabled = state.players.length === 0;
  }
  await Promise.all(state.selected.map(async (camera) => {
    const query = new URLSearchParams({ camera, from: String(state.from), to: String(state.to) });
    try {
      state.timelines.set(camera, await api(`/api/investigate/timeline?${query}`));
    } catch (err) {
      state.timelines.delete(camera);
      status(`${camera}: ${err.message}`);
    }
  }));
  drawTimeline();
  if (state.players.length) await seekAll(state.playhead || state.from);
}

async function loadMarks() {
  const caseNumber = $("case").value.trim();
  state.marks = [];
  if (caseNumber) {
    try {
      state.marks = (await api(`/api/cases/${encodeURIComponent(caseNumber)}/marks`)).marks;
    } catch (err) {
      status(err.message);
    }
  }
  $("bookmarks").replaceChildren(...state.marks.map((mark) => el("li", {},
    el("button", { type: "button", class: "link", text: iso(mark.at), onclick: () => seekAll(mark.at) }),
    ` ${mark.camera_id} · ${mark.created_by}: ${mark.text}`)));
  drawTimeline();
}

async function addBookmark() {
  const caseNumber = $("case").value.trim();
  if (!caseNumber) { status("enter the case number first: bookmarks are kept with the case"); return; }
  const camera = state.selected[0];
  await api(`/api/cases/${encodeURIComponent(caseNumber)}/marks`, { method: "POST",
    body: { camera, kind: $("note").value.trim() ? "note" : "bookmark", at: state.playhead,
      text: $("note").value.trim() } });
  $("note").value = "";
  await loadMarks();
}

async function loadRequests() {
  const answer = await api("/api/footage-requests");
  $("requests").replaceChildren(...answer.requests.map((item) => el("li", { dataset: { request: item.id } },
    el("strong", { text: `Case ${item.case}` }),
    el("div", { class: "muted", text: `${iso(item.start, false)} – ${iso(item.end, false)}` }),
    ...item.cameras.map((camera) => el("div", { dataset: { camera: camera.camera_id, state: camera.state },
      text: `${camera.camera_id}: ${camera.detail}` })))));
}

// -- in, out and export --------------------------------------------------------------------------

function setMark(which) {
  state[which] = state.playhead;
  if (state.markIn !== null && state.markOut !== null && state.markOut < state.markIn) {
    [state.markIn, state.markOut] = [state.markOut, state.markIn];
  }
  $("marks-shown").textContent = `in ${iso(state.markIn)} · out ${iso(state.markOut)}`;
  $("marks-shown").dataset.in = state.markIn ?? "";
  $("marks-shown").dataset.out = state.markOut ?? "";
  drawTimeline();
}

async function startExport() {
  if (state.markIn === null || state.markOut === null || state.markOut <= state.markIn) {
    status("mark in and out first (out after in)");
    return;
  }
  const caseNumber = $("case").value.trim();
  if (!caseNumber) { status("enter the case number first"); return; }
  $("export-start").disabled = true;
  const progress = $("export-progress");
  progress.hidden = false;
  progress.value = 0;
  $("export-results").replaceChildren();
  try {
    const job = await api("/api/investigate/exports", { method: "POST", body: {
      cameras: state.selected, from: state.markIn, to: state.markOut, case: caseNumber,
      reason: $("reason").value.trim() } });
    const events = new EventSource(job.events);
    events.onmessage = (message) => {
      const job = JSON.parse(message.data);
      progress.value = job.progress;
      $("export-stage").textContent = job.state === "running" ? `${job.camera}: ${job.stage}` : job.state.replace("_", " ");
      $("export-stage").dataset.state = job.state;
      if (job.state !== "running") {
        events.close();
        $("export-start").disabled = false;
        $("export-results").replaceChildren(...job.results.map((result) => el("li", {},
          result.download
            ? el("a", { href: result.download, download: "", dataset: { camera: result.camera_id },
              text: `${result.camera_id}: download the signed package (${Math.round(result.bytes / 1024)} KiB, sha256 ${result.sha256.slice(0, 12)}…)` })
            : el("span", { dataset: { camera: result.camera_id }, text: `${result.camera_id}: ${result.error}` }))));
      }
    };
    events.onerror = () => {
      if (events.readyState === EventSource.CLOSED) $("export-start").disabled = false;
    };
  } catch (err) {
    status(err.message);
    $("export-start").disabled = false;
  }
}

// -- start ---------------------------------------------------------------------------------------

async function showRange() {
  const from = fromLocalInput($("from").value);
  const to = fromLocalInput($("to").value);
  if (!(to > from)) { status("'To' must be after 'From'"); return; }
  state.from = from;
  state.to = to;
  state.origin = from;
  state.playhead = from;
  setView(from, to);
  await Promise.all([loadMarks(), showCameras()]);
}

async function boot() {
  let me;
  try {
    me = await api("/api/me");
  } catch (err) {
    status(err.message);
    return;
  }
  setCsrfToken(me.csrf_token);
  $("who").textContent = `${me.username} (${me.role})`;
  const params = new URLSearchParams(window.location.search);
  const now = Date.now() / 1000;
  const from = Number(params.get("from")) || now - 3600;
  const to = Number(params.get("to")) || now;
  $("from").value = toLocalInput(from);
  $("to").value = toLocalInput(to);
  $("case").value = params.get("case") || "";
  state.selected = (params.get("cameras") || "").split(",").filter(Boolean);
  wireTimeline();
  $("load").addEventListener("click", showRange);
  $("play").addEventListener("click", togglePlay);
  $("back").addEventListener("click", () => stepFrames(-1));
  $("forward").addEventListener("click", () => stepFrames(1));
  $("speed").addEventListener("change", () => {
    for (const player of state.players) player.video.playbackRate = Number($("speed").value);
  });
  $("mark-in").addEventListener("click", () => setMark("markIn"));
  $("mark-out").addEventListener("click", () => setMark("markOut"));
  $("bookmark").addEventListener("click", () => addBookmark().catch((err) => status(err.message)));
  $("export-start").addEventListener("click", startExport);
  $("case").addEventListener("change", loadMarks);
  setInterval(keepInSync, 250);
  try {
    await loadCameras();
    await loadRequests();
  } catch (err) {
    status(err.message);
  }
  state.from = from;
  state.to = to;
  state.origin = from;
  state.playhead = Number(params.get("at")) || from;
  setView(from, to);
  await loadMarks();
  await showCameras();
  document.body.dataset.ready = "true";
}

boot();
