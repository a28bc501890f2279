// One WHEP (RFC 9725) view: offer with every ICE candidate, POST, answer, DELETE to end.
// The server does not trickle, so the offer waits (briefly) for candidate gathering.
"use strict";

import { csrfHeaders } from "./api.js";

const GATHER_MS = 1500;
const POST_TIMEOUT_MS = 15000;
const DELETE_TIMEOUT_MS = 5000;

export class WhepError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

function gathered(pc, ms) {
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

/**
 * Open a view of one camera. Resolves to {pc, location, stream, url} once the answer is applied;
 * rejects with WhepError (status 0 when the server could not be reached).
 */
export async function openView(cameraId, profile, query) {
  const pc = new RTCPeerConnection();
  const trackArrived = new Promise((resolve) => {
    pc.addEventListener("track", (event) => {
      resolve(event.streams[0] || new MediaStream([event.track]));
    });
  });
  try {
    pc.addTransceiver("video", { direction: "recvonly" });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, GATHER_MS);
    const params = new URLSearchParams({ profile, ...query });
    const url = `/whep/${encodeURIComponent(cameraId)}?${params.toString()}`;
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
    return { pc, location, stream: trackArrived, url };
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
