// What the console knows about cameras: catalog records, live status from the push channel, and
// whether the department may open each one now. Changes are announced as events:
// "camera" (detail: id) when a record or its status changes, "status" (detail: {id, status})
// for every status event, "access" when access was refreshed.
"use strict";

import { api } from "./api.js";

const ACCESS_CHUNK = 100;
const RECHECK_DELAY_MS = 300;
let onvifPtz = new Set();

/** Cameras the server moves over their own ONVIF services (the rest only through an agent). */
export function setOnvifPtz(ids) {
  onvifPtz = new Set(ids.map(String));
}

export function cameraFromFeature(feature) {
  const p = feature.properties || {};
  const [lon, lat] = (feature.geometry && feature.geometry.coordinates) || [0, 0];
  return {
    id: String(feature.id || p.id),
    name: String(p.name || feature.id),
    lat: Number(lat),
    lon: Number(lon),
    heading: Number(p.heading || 0),
    fov: Number(p.fov || 90),
    range_m: Number(p.range_m || 60),
    kind: String(p.kind || ""),
    owner: String(p.owner_id || ""),
    sharing: String(p.sharing || "registry_only"),
    status: String(p.status || "unknown"),
    lastFrameTime: p.last_frame_time || null,
    profiles: Object.keys(p.profiles || {}),
    // Camera control goes through the owner's agent or the camera's ONVIF services the server
    // is configured with, and only where the owner allows it.
    ptz: Boolean(p.ptz_allowed) && (Boolean(p.via_agent) || onvifPtz.has(String(feature.id || p.id))),
    viaAgent: Boolean(p.via_agent),
    distance: p.distance_m === undefined ? null : Number(p.distance_m),
    sees: p.sees === undefined ? null : Boolean(p.sees),
  };
}

export class CameraStore extends EventTarget {
  constructor() {
    super();
    this.cameras = new Map();
    this.access = new Map();
    this.recheckIds = new Set();
    this.recheckTimer = null;
  }

  /** The camera's consent may have changed (its record changed): ask again about it, when the
   * console has asked before (it is on the wall or in a list). Bursts are asked at once. */
  recheck(id) {
    if (!this.access.has(id)) return;
    this.recheckIds.add(id);
    if (this.recheckTimer) return;
    this.recheckTimer = setTimeout(() => {
      const ids = [...this.recheckIds];
      this.recheckIds.clear();
      this.recheckTimer = null;
      this.refreshAccess(ids).catch(() => undefined);
    }, RECHECK_DELAY_MS);
  }

  get(id) {
    return this.cameras.get(id) || null;
  }

  /** Keep the record; search-specific fields (distance, sees) stay with the caller's copy. */
  put(camera) {
    const { distance, sees, ...record } = camera;
    const known = this.cameras.get(record.id);
    this.cameras.set(record.id, known ? Object.assign(known, record) : record);
    this.dispatchEvent(new CustomEvent("camera", { detail: record.id }));
    return this.cameras.get(record.id);
  }

  putFeatures(features) {
    return features.map((feature) => {
      const camera = cameraFromFeature(feature);
      this.put(camera);
      return camera;
    });
  }

  async load(id) {
    const known = this.get(id);
    if (known) return known;
    try {
      const feature = await api(`/api/cameras/${encodeURIComponent(id)}`);
      return this.put(cameraFromFeature(feature));
    } catch (err) {
      return null;
    }
  }

  /** A camera's live status changed: "status" is told for every camera (the health panel
   * lists cameras not loaded yet), "camera" for those the console holds. */
  setStatus(id, status, lastFrameTime) {
    this.dispatchEvent(new CustomEvent("status", { detail: { id, status } }));
    const camera = this.cameras.get(id);
    if (!camera) return;
    camera.status = status;
    camera.lastFrameTime = lastFrameTime;
    this.dispatchEvent(new CustomEvent("camera", { detail: id }));
  }

  remove(id) {
    if (this.cameras.delete(id)) {
      this.dispatchEvent(new CustomEvent("camera", { detail: id }));
    }
  }

  accessOf(id) {
    return this.access.get(id) || null;
  }

  /** Decisions the server gave with a search (``access=1``): the same answer as the check. */
  putAccess(entries) {
    const ids = [];
    for (const [id, access] of entries) {
      this.access.set(id, access);
      ids.push(id);
    }
    this.dispatchEvent(new CustomEvent("access", { detail: { ids } }));
  }

  /** Ask the server whether each camera may be opened now (sharing, windows, incidents). */
  async refreshAccess(ids) {
    const unique = [...new Set(ids)].filter(Boolean);
    for (let i = 0; i < unique.length; i += ACCESS_CHUNK) {
      const chunk = unique.slice(i, i + ACCESS_CHUNK);
      const answer = await api("/api/console/access?cameras=" +
        encodeURIComponent(chunk.join(",")));
      for (const [id, access] of Object.entries(answer.cameras || {})) {
        this.access.set(id, access);
      }
    }
    this.dispatchEvent(new CustomEvent("access", { detail: { ids: unique } }));
  }
}
