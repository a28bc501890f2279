// The public tip page: send a tip, then its files in chunks that survive a dropped connection;
// come back later with the tip number and passphrase. Nothing is kept in the browser: no
// cookie, no local storage; the passphrase lives in this page's memory only.
"use strict";

const $ = (id) => document.getElementById(id);
const CHUNK_MAX = 512 * 1024;  // small pieces: a slow phone link loses little when it drops
const RETRY_MS = [1000, 2000, 4000, 8000, 15000];

async function postJson(path, body) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST", body: JSON.stringify(body), credentials: "omit",
      headers: { "Content-Type": "application/json" },
    });
  } catch {
    throw new Error("No connection to the server. Check your signal and try again.");
  }
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (!response.ok) {
    throw new Error((data && data.error) || `The server refused (${response.status}).`);
  }
  return data;
}

function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

/** One PUT of one chunk with upload progress; resolves {status, data} or rejects on a
 * network failure (a dropped connection). */
function putChunk(url, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.withCredentials = false;
    xhr.timeout = 120000;
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { data = null; }
      resolve({ status: xhr.status, data });
    };
    xhr.onerror = () => reject(new Error("connection dropped"));
    xhr.ontimeout = () => reject(new Error("connection timed out"));
    xhr.send(blob);
  });
}

async function uploadState(id) {
  const response = await fetch(`/tips/api/uploads/${encodeURIComponent(id)}`,
                               { credentials: "omit" });
  if (!response.ok) throw new Error("upload state unavailable");
  return response.json();
}

function uploadRow(file) {
  const item = document.createElement("li");
  const label = document.createElement("label");
  const bar = document.createElement("progress");
  const state = document.createElement("span");
  bar.max = file.size || 1;
  bar.value = 0;
  bar.id = `progress-${Math.random().toString(36).slice(2)}`;
  label.htmlFor = bar.id;
  label.textContent = file.name || "file";
  state.className = "help";
  state.setAttribute("aria-live", "polite");
  item.append(label, bar, state);
  item.dataset.state = "sending";
  $("upload-list").append(item);
  $("uploads").hidden = false;
  return { item, bar, state };
}

async function sendFile(credentials, file, chunkBytes) {
  const row = uploadRow(file);
  const finish = (state, text) => {
    row.item.dataset.state = state;
    row.state.textContent = text;
  };
  let upload;
  try {
    upload = (await postJson("/tips/api/uploads", { ...credentials, size: file.size })).upload;
  } catch (error) {
    finish("refused", error.message);
    return;
  }
  const url = `/tips/api/uploads/${encodeURIComponent(upload.id)}`;
  const size = Math.min(chunkBytes || CHUNK_MAX, CHUNK_MAX);
  let offset = 0;
  let failures = 0;
  while (offset < file.size) {
    const piece = file.slice(offset, offset + size);
    try {
      const answer = await putChunk(`${url}?offset=${offset}`, piece,
                                    (loaded) => { row.bar.value = offset + loaded; });
      if (answer.status === 200) {
        offset = answer.data.received;
        failures = 0;
        row.bar.value = offset;
        row.state.textContent = `${Math.floor((100 * offset) / file.size)} %`;
        continue;
      }
      if (answer.status === 409 && answer.data && Number.isInteger(answer.data.received)) {
        offset = answer.data.received;  // the server tells where it stands
        continue;
      }
      if (answer.status >= 400 && answer.status < 500 && answer.status !== 429) {
        finish("refused", (answer.data && answer.data.error) || "The file was refused.");
        return;
      }
      throw new Error(`server answered ${answer.status}`);
    } catch {
      // Dropped or refused for now: wait, ask the server how much it holds, go on from there.
      const wait = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)];
      failures += 1;
      row.state.textContent = "Connection lost; trying again…";
      await sleep(wait);
      try {
        offset = (await uploadState(upload.id)).received;
      } catch { /* still offline: try again after the next wait */ }
    }
  }
  let state = null;
  for (let i = 0; i < 20 && (!state || state.state === "receiving"); i += 1) {
    try { state = await uploadState(upload.id); } catch { await sleep(2000); }
  }
  if (state && state.state === "refused") {
    finish("refused", state.note || "The file was refused.");
  } else {
    finish("done", "Sent.");
  }
}

async function sendFiles(credentials, files, chunkBytes) {
  for (const file of files) {
    await sendFile(credentials, file, chunkBytes);
  }
}

function tipFields() {
  return {
    what: $("what").value, where: $("where").value, when: $("when").value,
    contact: $("contact").value, lat: $("lat").value || null, lon: $("lon").value || null,
  };
}

$("near-me").addEventListener("click", () => {
  if (!navigator.geolocation) {
    $("place-state").textContent = "This browser cannot tell where you are; type the place.";
    return;
  }
  $("place-state").textContent = "Finding where you are…";
  navigator.geolocation.getCurrentPosition((position) => {
    setPoint(position.coords.latitude, position.coords.longitude, "Your position");
  }, () => {
    $("place-state").textContent = "Your position is not available; type the place instead.";
  }, { enableHighAccuracy: true, timeout: 15000 });
});

function setPoint(lat, lon, how) {
  $("lat").value = lat.toFixed(5);
  $("lon").value = lon.toFixed(5);
  $("place-state").textContent = `${how} (${$("lat").value}, ${$("lon").value}) will be sent.`;
}

function loadLeaflet() {
  // Only when asked for: a slow phone does not download the map unless the tipster wants it.
  return new Promise((resolve, reject) => {
    const style = document.createElement("link");
    style.rel = "stylesheet";
    style.href = "/tips/vendor/leaflet/leaflet.css";
    document.head.append(style);
    const script = document.createElement("script");
    script.src = "/tips/vendor/leaflet/leaflet.js";
    script.onload = () => resolve(window.L);
    script.onerror = () => reject(new Error("the map could not be loaded"));
    document.head.append(script);
  });
}

async function offerMap() {
  let config;
  try {
    config = await (await fetch("/tips/api/map", { credentials: "omit" })).json();
  } catch {
    return;
  }
  if (!config.tile_url) return;  // no tiles of our own: no map (nothing from other sites)
  const button = $("pick-on-map");
  button.hidden = false;
  button.addEventListener("click", async () => {
    button.disabled = true;
    let L;
    try {
      L = await loadLeaflet();
    } catch (error) {
      $("place-state").textContent = "The map could not be loaded; type the place instead.";
      return;
    }
    $("pin-map").hidden = false;
    const start = config.start || { lat: 0, lon: 0 };
    const map = L.map("pin-map").setView([start.lat, start.lon], config.start ? 15 : 2);
    L.tileLayer(config.tile_url, { attribution: config.tile_attribution || "" }).addTo(map);
    let pin = null;
    map.on("click", (event) => {
      if (pin) pin.setLatLng(event.latlng);
      else pin = L.marker(event.latlng).addTo(map);
      setPoint(event.latlng.lat, event.latlng.lng, "The pin");
    });
  }, { once: true });
}

offerMap();

$("tip-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("form-error").textContent = "";
  if ($("what").value.trim().length < 10) {
    $("form-error").textContent = "Tell us what happened in a few words.";
    $("what").focus();
    return;
  }
  $("send").disabled = true;
  let answer;
  try {
    answer = await postJson("/tips/api/tips", tipFields());
  } catch (error) {
    $("form-error").textContent = error.message;
    $("send").disabled = false;
    return;
  }
  $("tip-number").textContent = answer.number;
  $("tip-passphrase").textContent = answer.passphrase;
  $("receipt").hidden = false;
  $("tip-form").hidden = true;
  $("receipt").focus();
  const credentials = { number: answer.number, passphrase: answer.passphrase };
  await sendFiles(credentials, Array.from($("files").files), answer.chunk_bytes);
});

let followCredentials = null;

function showThread(data) {
  const list = $("messages");
  list.replaceChildren();
  for (const message of data.messages) {
    const item = document.createElement("li");
    item.textContent = `${message.from === "you" ? "You" : "Investigator"}: ${message.body}`;
    list.append(item);
  }
  if (!data.messages.length) {
    const item = document.createElement("li");
    item.textContent = "No replies yet. Come back later.";
    list.append(item);
  }
  $("thread").hidden = false;
}

async function loadThread() {
  showThread(await postJson("/tips/api/follow-up", followCredentials));
}

$("follow-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("follow-error").textContent = "";
  followCredentials = {
    number: $("f-number").value.trim(), passphrase: $("f-passphrase").value.trim(),
  };
  try {
    await loadThread();
  } catch (error) {
    $("follow-error").textContent = error.message;
  }
});

$("reply-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("follow-error").textContent = "";
  try {
    if ($("reply").value.trim()) {
      await postJson("/tips/api/messages", { ...followCredentials, body: $("reply").value });
      $("reply").value = "";
    }
    await sendFiles(followCredentials, Array.from($("more-files").files), CHUNK_MAX);
    await loadThread();
  } catch (error) {
    $("follow-error").textContent = error.message;
  }
});
