// Formatting for the console. Building nodes is shared with the owner portal (../shared/dom.js).
"use strict";

export { $, el } from "../shared/dom.js";

export function formatDistance(metres) {
  if (metres === null || metres === undefined) return "";
  if (metres < 1000) return `${Math.round(metres)} m`;
  return `${(metres / 1000).toFixed(metres < 10000 ? 1 : 0)} km`;
}

export function formatLatLon(lat, lon) {
  return `${lat.toFixed(5)}, ${lon.toFixed(5)}`;
}

/** "39.8017, -89.6438" (or with a space, or "lat lon") -> {lat, lon}, or null. */
export function parseLatLon(text) {
  const parts = String(text).trim().split(/[\s,;]+/).filter(Boolean);
  if (parts.length !== 2) return null;
  const lat = Number(parts[0]);
  const lon = Number(parts[1]);
  if (!Number.isFinite(lat) || !Number.isFinite(lon)) return null;
  if (lat < -90 || lat > 90 || lon < -180 || lon > 180) return null;
  return { lat, lon };
}

export const SHARING_LABELS = {
  live_always: "live always",
  live_emergency: "live in emergency",
  on_request: "on request",
  registry_only: "location only",
};

export const STATUS_LABELS = {
  live: "live",
  starting: "starting",
  reconnecting: "reconnecting",
  error: "offline",
  idle: "idle",
  unknown: "unknown",
};
