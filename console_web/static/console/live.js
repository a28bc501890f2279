// Live camera status from the catalog's push channel (Server-Sent Events at /api/events).
// Each "camera.status" event updates the store, which redraws the marker and the tile.
"use strict";

import { cameraFromFeature } from "./cameras.js";

const TYPES = "camera.status,camera.created,camera.updated,camera.deleted,catalog.imported";
const RETRY_MS = 5000;

function featureOf(record) {
  return { id: record.id, geometry: { type: "Point", coordinates: [record.lon, record.lat] },
    properties: record };
}

/** Follow the feed; `report(state)` hears "connected", "reconnecting" or "lost";
 * `resync()` runs after a reconnection (events may have been missed meanwhile). */
export function followStatus(store, report, resync) {
  let source = null;
  let connectedOnce = false;

  function handle(event) {
    switch (event.type) {
      case "hello":
        report("connected");
        if (connectedOnce) resync();
        connectedOnce = true;
        break;
      case "camera.status":
        store.setStatus(String(event.id), String(event.status), event.last_frame_time || null);
        break;
      case "camera.created":
      case "camera.updated":
        if (event.camera) store.put(cameraFromFeature(featureOf(event.camera)));
        // Sharing may have changed: refused tiles and the lists' access labels ask again.
        store.recheck(String(event.id));
        break;
      case "camera.deleted":
        store.remove(String(event.id));
        break;
      case "catalog.imported":
        resync();
        break;
      default:
        break;
    }
  }

  function connect() {
    source = new EventSource(`/api/events?types=${encodeURIComponent(TYPES)}`);
    source.addEventListener("message", (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch (err) {
        return;
      }
      if (event && typeof event === "object") handle(event);
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (e.g. the session ended): try again later; the API calls handle the login.
        report("lost");
        source = null;
        setTimeout(connect, RETRY_MS);
      } else {
        report("reconnecting");
      }
    });
  }

  connect();
  window.addEventListener("pagehide", () => source && source.close());
}
