// Standby peer connections for the wall (server: relay/wall_link.py). A few are opened and
// connected (ICE, DTLS) before any camera is chosen; putting a camera on a tile binds it to an
// idle one with one authenticated request, so the picture comes one round trip and one frame
// later instead of after a handshake. The server makes the same access decision as for a WHEP
// view. Unbinding returns the connection to the pool for the next camera.
"use strict";

import { csrfHeaders } from "./api.js";
import { el } from "./dom.js";
import { WhepError, countPeerConnection, gathered, iceServersFor, readStats } from "./whep.js";

const GATHER_MS = 1500;
const POST_TIMEOUT_MS = 15000;
const BIND_TIMEOUT_MS = 15000;
const DELETE_TIMEOUT_MS = 5000;
const CONNECT_MS = 10000;

async function refusal(response) {
  const text = await response.text();
  let message = text;
  try {
    message = JSON.parse(text).error || text;
  } catch (err) {
    // plain-text refusal
  }
  const retryAfter = Number(response.headers.get("Retry-After")) || 0;
  return new WhepError(response.status, message || response.statusText, retryAfter);
}

async function send(url, { signal, ...init }, timeoutMs) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  if (signal) signal.addEventListener("abort", () => controller.abort());
  try {
    return await fetch(url, { credentials: "same-origin", ...init, signal: controller.signal });
  } catch (err) {
    throw new WhepError(0, controller.signal.aborted
      ? "the server did not answer in time" : "the server cannot be reached");
  } finally {
    clearTimeout(timer);
  }
}

/** The server's steps of a bind ("grant;dur=3.1, ...") as {grant: 3.1, ...}, in ms. */
function serverTiming(header) {
  const steps = {};
  for (const part of (header || "").split(",")) {
    const [name, ...params] = part.trim().split(";");
    const values = params.map((p) => p.trim());
    const dur = values.find((p) => p.startsWith("dur="));
    const desc = values.find((p) => p.startsWith("desc="));
    if (name && dur) steps[name] = Number(dur.slice(4));
    else if (name && desc) steps[name] = Number(desc.slice(5).replace(/"/g, ""));
  }
  return steps;
}

class Link {
  constructor(pc, location, track) {
    this.pc = pc;
    this.location = location;
    this.track = track;
    this.busy = false;
    this.closed = false;
    this.spare = null;
  }

  /** A video element already playing this connection's track, kept out of sight until a tile
   * takes it: a new element's start then no longer delays the first picture after a bind.
   * Made while the link waits (never while it carries a view); hidden in the tile until a
   * frame received after its bind is presented. */
  readyVideo() {
    if (this.spare || this.closed) return;
    let holder = document.getElementById("link-videos");
    if (!holder) {
      holder = el("div", { id: "link-videos", "aria-hidden": "true",
        style: "position:fixed;left:0;top:0;width:2px;height:2px;opacity:0;" +
          "pointer-events:none;overflow:hidden" });
      document.body.append(holder);
    }
    const video = el("video", { class: "pending", playsinline: true, autoplay: true });
    video.muted = true;
    video.srcObject = new MediaStream([this.track]);
    holder.append(video);
    video.play().catch(() => undefined);
    this.spare = video;
  }

  takeVideo() {
    const video = this.spare;
    this.spare = null;
    return video;
  }

  get alive() {
    return !this.closed && !["failed", "closed"].includes(this.pc.connectionState);
  }

  connected() {
    const pc = this.pc;
    if (pc.connectionState === "connected") return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(false), CONNECT_MS);
      function check() {
        if (pc.connectionState === "connected") finish(true);
        else if (["failed", "closed"].includes(pc.connectionState)) finish(false);
      }
      function finish(ok) {
        clearTimeout(timer);
        pc.removeEventListener("connectionstatechange", check);
        resolve(ok);
      }
      pc.addEventListener("connectionstatechange", check);
    });
  }

  close(keepalive = false) {
    if (this.closed) return;
    this.closed = true;
    const spare = this.takeVideo();
    if (spare) {
      spare.srcObject = null;
      spare.remove();
    }
    const pc = this.pc;
    const sent = fetch(this.location, { method: "DELETE", keepalive, credentials: "same-origin",
      headers: csrfHeaders() }).catch(() => undefined);
    // As the page goes away the browser closes the connection itself, after the DELETE has
    // left: closing it here could reach the server first and end the view as a lost one.
    if (!keepalive) sent.finally(() => pc.close());
  }
}

/** A view carried by a standby connection: what a tile's session needs (pc, stream, end). */
class LinkView {
  constructor(pool, link, baseFrames, boundAt, marks) {
    this.pool = pool;
    this.marks = marks;
    this.link = link;
    this.pc = link.pc;
    this.location = `${link.location}/view`;
    this.stream = Promise.resolve(new MediaStream([link.track]));
    this.baseFrames = baseFrames;
    this.boundAt = boundAt;
    this.kind = "link";
  }

  /** Stop the view on the server, then give the connection back for the next camera. */
  end(keepalive = false) {
    const link = this.link;
    if (keepalive) {
      link.close(true);
      return;
    }
    send(this.location, { method: "DELETE", headers: csrfHeaders() }, DELETE_TIMEOUT_MS)
      .then(() => this.pool.release(link), () => this.pool.drop(link));
  }
}

export class LinkPool {
  constructor() {
    this.links = [];
    this.creating = 0;
    this.target = 0;
    this.disabled = false;
    this.creations = new Set();
  }

  /** Keep ``count`` connections (bound or idle) open, plus one spare. */
  setTarget(count) {
    this.target = count + 1;
    this.topUp();
  }

  topUp() {
    if (this.disabled) return;
    this.links = this.links.filter((link) => link.alive || link.busy);
    while (this.links.length + this.creating < this.target) {
      this.creating += 1;
      this.create().then((link) => {
        if (!link) return;
        this.links.push(link);
        link.readyVideo();
      }, () => undefined).finally(() => { this.creating -= 1; });
    }
  }

  async create() {
    const url = "/wall/links";
    const pc = new RTCPeerConnection({ iceServers: await iceServersFor(url) });
    countPeerConnection();
    try {
      const transceiver = pc.addTransceiver("video", { direction: "recvonly" });
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, GATHER_MS);
      // Aborted when the page goes away, so its HTTP connection is free for the closing.
      const controller = new AbortController();
      this.creations.add(controller);
      let response;
      try {
        response = await send(url, {
          method: "POST",
          headers: { "Content-Type": "application/sdp", ...csrfHeaders() },
          body: pc.localDescription.sdp,
          signal: controller.signal,
        }, POST_TIMEOUT_MS);
      } finally {
        this.creations.delete(controller);
      }
      if (response.status === 404 || response.status === 405) this.disabled = true;
      if (response.status !== 201) throw await refusal(response);
      const answer = await response.text();
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
      const link = new Link(pc, response.headers.get("Location"), transceiver.receiver.track);
      pc.addEventListener("connectionstatechange", () => {
        if (!link.alive && !link.busy) this.drop(link);
      });
      return link;
    } catch (err) {
      pc.close();
      throw err;
    }
  }

  async acquire() {
    this.links = this.links.filter((link) => link.alive || link.busy);
    let link = this.links.find((item) => !item.busy && item.alive);
    if (!link) {
      this.creating += 1;
      try {
        link = await this.create();
      } finally {
        this.creating -= 1;
      }
      this.links.push(link);
    }
    link.busy = true;
    this.topUp();
    if (!(await link.connected())) {
      this.drop(link);
      throw new WhepError(0, "the connection to the server did not come up");
    }
    return link;
  }

  release(link) {
    link.busy = false;
    if (!link.alive) this.drop(link);
    else link.readyVideo();
  }

  drop(link) {
    link.busy = false;
    link.close();
    this.links = this.links.filter((item) => item !== link);
    this.topUp();
  }

  /**
   * Show one camera on a standby connection. Resolves to a view like openView's; rejects with
   * WhepError (the server's refusal, or status 0).
   */
  async openView(cameraId, profile, query, beforeBind = null) {
    const link = await this.acquire();
    // The tile's video is attached before the bind: the keyframe that follows the answer is
    // then presented as it is decoded, not after a new element has started.
    if (beforeBind) beforeBind(new MediaStream([link.track]), performance.now(), link.takeVideo());
    const params = new URLSearchParams({ profile, ...query });
    const url = `${link.location}/view/${encodeURIComponent(cameraId)}?${params.toString()}`;
    const boundAt = performance.now();
    const marks = { bindSent: boundAt };
    let response;
    let before;
    try {
      [response, before] = await Promise.all([
        send(url, { method: "POST", headers: csrfHeaders() }, BIND_TIMEOUT_MS),
        readStats(link.pc).catch(() => ({ framesDecoded: 0 })),
      ]);
    } catch (err) {
      this.drop(link);
      throw err;
    }
    if (response.status !== 200) {
      const error = await refusal(response);
      if (response.status === 404 && /wall link/.test(error.message)) this.drop(link);
      else this.release(link);
      throw error;
    }
    marks.bindAnswered = performance.now();
    marks.server = serverTiming(response.headers.get("Server-Timing"));
    // The server's wall clock (ms since the epoch) on the page's clock: same machine or NTP.
    if (marks.server.received) marks.bindReceived = marks.server.received - performance.timeOrigin;
    await response.text();
    return new LinkView(this, link, before.framesDecoded, boundAt, marks);
  }

  /**
   * Show several cameras at once (a wall filling itself) with one request: ``items`` are
   * {cameraId, profile, beforeBind} sharing ``query`` (purpose, incident). Each resolves or
   * rejects on its own, as openView does; the server decides each as a single bind.
   */
  async openViews(items, query) {
    const acquired = await Promise.allSettled(items.map(() => this.acquire()));
    const results = new Array(items.length);
    const asked = [];
    acquired.forEach((got, index) => {
      if (got.status === "rejected") {
        results[index] = { error: got.reason };
        return;
      }
      const link = got.value;
      const item = items[index];
      if (item.beforeBind) {
        item.beforeBind(new MediaStream([link.track]), performance.now(), link.takeVideo());
      }
      asked.push({ index, link });
    });
    if (!asked.length) return results;
    const boundAt = performance.now();
    const url = `/wall/links/views?${new URLSearchParams(query).toString()}`;
    const body = JSON.stringify({ views: asked.map(({ index, link }) => ({
      link: link.location.split("/").pop(), camera: items[index].cameraId,
      profile: items[index].profile })) });
    let response;
    let before;
    try {
      [response, before] = await Promise.all([
        send(url, { method: "POST", body,
          headers: { "Content-Type": "application/json", ...csrfHeaders() } }, BIND_TIMEOUT_MS),
        Promise.all(asked.map(({ link }) => readStats(link.pc)
          .catch(() => ({ framesDecoded: 0 })))),
      ]);
    } catch (err) {
      for (const { index, link } of asked) {
        this.drop(link);
        results[index] = { error: err };
      }
      return results;
    }
    if (response.status !== 200) {
      const error = await refusal(response);
      for (const { index, link } of asked) {
        this.release(link);
        results[index] = { error };
      }
      return results;
    }
    const answered = performance.now();
    const answer = await response.json();
    const views = answer.views || [];
    // The server's wall clock (ms since the epoch) on the page's clock: same machine or NTP.
    const bindReceived = answer.received ? answer.received - performance.timeOrigin : undefined;
    asked.forEach(({ index, link }, position) => {
      const view = views[position] || { status: 0, error: "the server did not answer" };
      if (view.status !== 200) {
        if (view.status === 404 && /wall link/.test(view.error)) this.drop(link);
        else this.release(link);
        results[index] = { error: new WhepError(view.status, view.error, view.retry_after || 0) };
        return;
      }
      const marks = { bindSent: boundAt, bindAnswered: answered, server: view.timing || {},
        batch: asked.length, bindReceived };
      results[index] = { view: new LinkView(this, link, before[position].framesDecoded, boundAt,
        marks) };
    });
    return results;
  }

  /** The page goes away: end every view and connection with one request that outlives it. */
  closeAll(keepalive) {
    for (const controller of this.creations) controller.abort();
    const links = this.links.filter((link) => !link.closed);
    this.links = [];
    if (!keepalive || !links.length) {
      for (const link of links) link.close(keepalive);
      return;
    }
    // One request, not one DELETE per link: the page's event streams hold three of the
    // browser's six connections to the server, and DELETEs queued behind them would reach
    // it after the connections' own closing (views then read as lost, not ended).
    for (const link of links) link.closed = true;
    fetch("/wall/links/close", { method: "POST", keepalive: true, credentials: "same-origin",
      headers: { "Content-Type": "application/json", ...csrfHeaders() },
      body: JSON.stringify({ links: links.map((link) => link.location.split("/").pop()) }),
    }).catch(() => undefined);
  }
}
