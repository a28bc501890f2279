"use strict";
// Lists the streams the server knows and links each to its player. Text is always inserted with
// textContent: camera names come from owners and are never trusted as HTML.

async function loadStreams() {
  const status = document.getElementById("status");
  const response = await fetch("/api/streams", { credentials: "same-origin" });
  if (response.status === 401) {
    window.location.href = "/login?next=" + encodeURIComponent("/console/");
    return;
  }
  if (!response.ok) {
    status.textContent = "Could not load streams: " + response.status + " " + (await response.text());
    return;
  }
  const { streams } = await response.json();
  const body = document.querySelector("#streams tbody");
  body.replaceChildren();
  for (const stream of streams) {
    const row = document.createElement("tr");
    const age = stream.last_frame_age == null ? "–" : stream.last_frame_age.toFixed(1) + " s";
    const cells = [stream.camera_id, stream.profile, stream.state + (stream.reason ? " (" + stream.reason + ")" : ""), age, String(stream.subscribers.length)];
    cells.forEach((text, index) => {
      const cell = document.createElement("td");
      cell.textContent = text;
      if (index === 2) cell.className = "state-" + stream.state;
      row.appendChild(cell);
    });
    const play = document.createElement("td");
    const link = document.createElement("a");
    link.href = "/play/" + encodeURIComponent(stream.camera_id) + "?profile=" + encodeURIComponent(stream.profile);
    link.textContent = "Play";
    play.appendChild(link);
    row.appendChild(play);
    body.appendChild(row);
  }
  document.getElementById("streams").hidden = false;
  status.textContent = streams.length + " streams";
}

loadStreams();
setInterval(loadStreams, 3000);
