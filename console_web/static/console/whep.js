// One WHEP (RFC 9725) view: offer with every ICE candidate, POST, answer, DELETE to end.
// The server does not trickle, so the offer waits (briefly) for candidate gathering.
"use strict";

import { csrfHeaders } from "./api.js";

const GATHER_MS = 1500;
const OPTIONS_TIMEOUT_MS = 5000;
const POST_TIMEOUT_MS = 15000;
const DELETE_TIMEOUT_MS = 5000;

export class WhepError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/** Count a peer connection the page opened (``body[data-peer-connections]``). */
export function countPeerConnection() {
  const body = document.body;
  body.dataset.peerConnections = String(Number(body.dataset.peerConnections || 0) + 1);
}

export function gathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

const LINK = /<([^>]*)>((?:\s*;\s*[A-Za-z-]+\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^;,]*))*)/g;
const LINK_PARAM = /;\s*([A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;,]*))/g;

/** The ICE servers announced in a Link header (rel="ice-server", RFC 9725 section 4.6). */
export function parseIceLinks(header) {
  const servers = [];
  for (const link of (header || "").matchAll(LINK)) {
    const params = {};
    for (const param of link[2].matchAll(LINK_PARAM)) {
      const quoted = param[2] === undefined ? undefined : param[2].replace(/\\(.)/g, "$1");
      params[param[1].toLowerCase()] = quoted === undefined ? param[3].trim() : quoted;
    }
    if (params.rel !== "ice-server") continue;
    const server = { urls: link[1] };
    if (params.username !== undefined && params.credential !== undefined) {
      server.username = params.username;
      server.credential = params.credential;
    }
    servers.push(server);
  }
  return servers;
}

// The server does not trickle, so the offer must carry the TURN candidates: the ICE servers
// (with credentials minted for this user) are asked for before the peer connection exists.
// Without an answer the view still tries the direct path.
export async function iceServersFor(url) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), OPTIONS_TIMEOUT_MS);
  try {
    const response = await fetch(url, {
      method: "OPTIONS", credentials: "same-origin", signal: controller.signal,
    });
    return parseIceLinks(response.headers.get("Link"));
  } catch (err) {
    return [];
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Open a view of one camera on its own peer connection. Resolves to {pc, location, stream,
 * url, end} once the answer is applied;
 * rejects with WhepError (status 0 when the server could not be reached).
 */
export async function openView(cameraId, profile, query) {
  const params = new URLSearchParams({ profile, ...query });
  const url = `/whep/${encodeURIComponent(cameraId)}?${params.toString()}`;
  const pc = new RTCPeerConnection({ iceServers: await iceServersFor(url) });
  countPeerConnection();
  const trackArrived = new Promise((resolve) => {
    pc.addEventListener("track", (event) => {
      resolve(event.streams[0] || new MediaStream([event.track]));
    });
  });
  try {
    pc.addTransceiver("video", { direction: "recvonly" });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, GATHER_MS);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), POST_TIMEOUT_MS);
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/sdp", ...csrfHeaders() },
        body: pc.localDescription.sdp,
        credentials: "same-origin",
        signal: controller.signal,
      });
    } catch (err) {
      throw new WhepError(0, controller.signal.aborted
        ? "the server did not answer in time" : "the server cannot be reached");
    } finally {
      clearTimeout(timer);
    }
    const text = await response.text();
    if (response.status !== 201) {
      let message = text;
      try {
        message = JSON.parse(text).error || text;
      } catch (err) {
        // plain-text refusal
      }
      const retryAfter = Number(response.headers.get("Retry-After")) || 0;
      throw new WhepError(response.status, message || response.statusText, retryAfter);
    }
    const location = response.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: text });
    // The server hears the DELETE before the connection closes, so the view ends as asked
    // (and is logged so) rather than as a lost connection. When the page goes away, the
    // browser closes the connection itself after the (keepalive) DELETE has left.
    const end = (keepalive = false) => {
      if (keepalive) endView(location, { keepalive });
      else endView(location).then(() => pc.close());
    };
    return { pc, location, stream: trackArrived, url, end, baseFrames: 0, boundAt: 0,
      kind: "whep" };
  } catch (err) {
    pc.close();
    throw err;
  }
}

/** End a view on the server. With keepalive the request outlives the page (pagehide). */
export function endView(location, { keepalive = false } = {}) {
  if (!location) return Promise.resolve();
  const controller = new AbortController();
  const timer = keepalive ? null : setTimeout(() => controller.abort(), DELETE_TIMEOUT_MS);
  return fetch(location, {
    method: "DELETE",
    keepalive,
    credentials: "same-origin",
    headers: csrfHeaders(),
    signal: keepalive ? undefined : controller.signal,
  }).then(() => undefined, () => undefined).finally(() => clearTimeout(timer));
}

/** The few numbers a tile shows, from RTCPeerConnection.getStats(). */
export async function readStats(pc) {
  const report = await pc.getStats();
  const out = { framesDecoded: 0, jitterDelay: 0, jitterEmitted: 0, fps: 0, rtt: null,
    width: 0, height: 0, packetsLost: 0 };
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      out.framesDecoded = s.framesDecoded || 0;
      out.jitterDelay = s.jitterBufferDelay || 0;
      out.jitterEmitted = s.jitterBufferEmittedCount || 0;
      out.fps = s.framesPerSecond || 0;
      out.width = s.frameWidth || 0;
      out.height = s.frameHeight || 0;
      out.packetsLost = s.packetsLost || 0;
    } else if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
      if (typeof s.currentRoundTripTime === "number") out.rtt = s.currentRoundTripTime;
    }
  });
  return out;
}
