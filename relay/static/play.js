// Plays one camera through WHEP (RFC 9725) in a <video> element and shows decoder statistics.
// The camera id comes from the path (/play/{camera_id}); ?profile=main|sub and ?purpose=... fill
// the form, and ?autoplay=1 starts at once when a purpose is given.
"use strict";

(function () {
  const cameraId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
  const query = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);
  const video = $("video");
  const state = { pc: null, location: null, postedAt: 0, firstFrameMs: null, timer: null };
  window.rtccPlay = state;

  $("camera").textContent = cameraId;
  showName();

  /** The heading names the camera as people know it (its id stays in the address bar). */
  async function showName() {
    try {
      const response = await fetch(`/api/cameras/${encodeURIComponent(cameraId)}`,
        { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const feature = await response.json();
      const name = feature && feature.properties && feature.properties.name;
      if (typeof name === "string" && name) {
        $("camera").textContent = name;
        $("camera").title = cameraId;
        document.title = `Live: ${name}`;
      }
    } catch (err) {
      // the id stays as the heading
    }
  }

  /** A refusal as a sentence: the server's {"error": ...} text, never the raw body. */
  function refusalText(status, text) {
    let reason = "";
    try {
      const data = JSON.parse(text);
      reason = data && typeof data.error === "string" ? data.error : "";
    } catch (err) {
      reason = text.trim().startsWith("<") ? "" : text.trim();
    }
    const why = {
      401: "You are not logged in.",
      403: "This camera may not be viewed now.",
      404: "There is no such camera.",
      429: "You have as many live views open as allowed; stop one first.",
      503: "The camera cannot be played right now; try again shortly.",
    }[status] || `The server refused (${status}).`;
    const detail = reason.replace(/^camera ['"]?[a-z0-9_-]+['"]?(\/[a-z]+)?:\s*/i, "");
    return detail ? `${why} ${detail.charAt(0).toUpperCase()}${detail.slice(1)}` : why;
  }
  if (query.get("profile") === "sub") $("profile").value = "sub";
  if (query.get("purpose")) $("purpose").value = query.get("purpose");

  function status(text) { $("status").textContent = text; }

  /** The ICE servers of a WHEP Link header (rel="ice-server"): TURN with minted credentials. */
  function parseIceLinks(header) {
    const servers = [];
    const links = /<([^>]*)>((?:\s*;\s*[A-Za-z-]+\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^;,]*))*)/g;
    for (const link of (header || "").matchAll(links)) {
      const params = {};
      const each = /;\s*([A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;,]*))/g;
      for (const p of link[2].matchAll(each)) {
        params[p[1].toLowerCase()] = p[2] === undefined ? p[3].trim() : p[2].replace(/\\(.)/g, "$1");
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

  // The offer must carry every candidate (the server does not trickle): ask for the ICE servers
  // first. Without an answer the direct path is still tried.
  async function iceServers(url) {
    try {
      const response = await fetch(url, { method: "OPTIONS", credentials: "same-origin" });
      return parseIceLinks(response.headers.get("Link"));
    } catch (err) {
      return [];
    }
  }

  function waitForCandidates(pc, ms) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { pc.removeEventListener("icegatheringstatechange", check); resolve(); };
      const check = () => { if (pc.iceGatheringState === "complete") done(); };
      pc.addEventListener("icegatheringstatechange", check);
      setTimeout(done, ms);
    });
  }

  async function play(event) {
    if (event) event.preventDefault();
    await stop();
    const purpose = $("purpose").value.trim();
    if (!purpose) { status("A purpose is required for every live view."); return; }
    const profile = $("profile").value;
    const url = `/whep/${encodeURIComponent(cameraId)}?` +
      new URLSearchParams({ profile, purpose }).toString();
    const pc = new RTCPeerConnection({ iceServers: await iceServers(url) });
    state.pc = pc;
    state.firstFrameMs = null;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addEventListener("track", (e) => {
      video.srcObject = e.streams[0] || new MediaStream([e.track]);
      if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(firstFrame);
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "failed") status("Connection failed. Press Play to retry.");
    });
    status("Connecting…");
    await pc.setLocalDescription(await pc.createOffer());
    await waitForCandidates(pc, 2000);
    state.postedAt = performance.now();
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/sdp" },
        body: pc.localDescription.sdp,
        credentials: "same-origin",
      });
    } catch (err) {
      status(`The server cannot be reached: ${err}`);
      return;
    }
    const text = await response.text();
    if (response.status !== 201) {
      status(refusalText(response.status, text));
      if (response.status === 401) {
        const link = document.createElement("a");
        link.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
        link.textContent = " Log in";
        $("status").appendChild(link);
      }
      pc.close();
      state.pc = null;
      return;
    }
    state.location = response.headers.get("Location");
    const warning = response.headers.get("RTCC-Media-Warning");
    $("warning").hidden = !warning;
    $("warning").textContent = warning || "";
    await pc.setRemoteDescription({ type: "answer", sdp: text });
    $("play").disabled = true;
    $("stop").disabled = false;
    status("Waiting for the first picture…");
    state.timer = setInterval(showStats, 250);
  }

  async function showStats() {
    const pc = state.pc;
    if (!pc) return;
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type !== "inbound-rtp" || s.kind !== "video") return;
      const decoded = s.framesDecoded || 0;
      $("frames-decoded").textContent = String(decoded);
      $("keyframes-decoded").textContent = String(s.keyFramesDecoded || 0);
      $("fps").textContent = s.framesPerSecond ? s.framesPerSecond.toFixed(1) : "-";
      if (s.frameWidth) $("resolution").textContent = `${s.frameWidth}×${s.frameHeight}`;
      if (s.jitterBufferEmittedCount) {
        const ms = (1000 * s.jitterBufferDelay) / s.jitterBufferEmittedCount;
        $("jitter-buffer").textContent = `${ms.toFixed(0)} ms`;
      }
      $("loss").textContent = `${s.packetsLost || 0} / ${s.nackCount || 0} / ${s.pliCount || 0}`;
      if (decoded > 0 && state.firstFrameMs === null) firstFrame();
    });
  }

  function firstFrame() {
    if (state.firstFrameMs !== null || !state.pc) return;
    state.firstFrameMs = performance.now() - state.postedAt;
    $("first-frame").textContent = `${state.firstFrameMs.toFixed(0)} ms from the request`;
    status("Live.");
  }

  async function stop() {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
    const where = state.location;
    const pc = state.pc;
    state.location = null;
    state.pc = null;
    $("play").disabled = false;
    $("stop").disabled = true;
    if (where) {
      try {
        await fetch(where, { method: "DELETE", credentials: "same-origin" });
      } catch (err) {
        // The server ends the session on its own when the connection goes away.
      }
      status("Stopped.");
    }
    if (pc) pc.close();
  }

  $("start").addEventListener("submit", play);
  $("stop").addEventListener("click", stop);
  window.addEventListener("pagehide", () => {
    if (state.location) {
      fetch(state.location, { method: "DELETE", keepalive: true, credentials: "same-origin" });
    }
  });
  if (query.get("autoplay") === "1" && $("purpose").value.trim()) play();
})();
