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

// One coordinate: decimal ("-89.64383"), with a hemisphere letter ("89.6438 W", "W 89.6438"),
// or degrees-minutes-seconds ("39°48'06\"N", "39 48 06 N", "39d 48m 6s N").
// Returns {value, axis} (axis "lat" for N/S, "lon" for E/W, "" without a letter), or null.
const COORD = new RegExp(
  "^([NSEW])?\\s*([+-]?\\d+(?:\\.\\d+)?)\\s*(?:°|º|d|deg|\\s)?\\s*" +
  "(?:(\\d+(?:\\.\\d+)?)\\s*(?:'|′|m|min|\\s)?\\s*)?" +
  "(?:(\\d+(?:\\.\\d+)?)\\s*(?:\"|″|''|s|sec)?\\s*)?([NSEW])?$", "i");

function parseOne(text) {
  const match = COORD.exec(text.trim());
  if (!match) return null;
  const [, before, deg, min, sec, after] = match;
  if (before && after) return null;
  const letter = (before || after || "").toUpperCase();
  const minutes = min === undefined ? 0 : Number(min);
  const seconds = sec === undefined ? 0 : Number(sec);
  if (minutes >= 60 || seconds >= 60) return null;
  if ((min !== undefined || sec !== undefined) && deg.includes(".")) return null;
  const sign = deg.startsWith("-") ? -1 : 1;
  let value = sign * (Math.abs(Number(deg)) + minutes / 60 + seconds / 3600);
  if (letter && sign < 0) return null;
  if (letter === "S" || letter === "W") value = -value;
  const axis = letter === "N" || letter === "S" ? "lat" : letter ? "lon" : "";
  return Number.isFinite(value) ? { value, axis } : null;
}

/** Split "A, B" / "A B" / "39°48'06"N 89°38'38"W" into its two coordinates. */
function splitPair(text) {
  const clean = text.trim().replace(/\s+/g, " ");
  for (const sep of [/\s*[,;]\s*/, /\s*\/\s*/]) {
    const parts = clean.split(sep);
    if (parts.length === 2) return parts;
  }
  // No separator: after a hemisphere letter, or the middle space between two plain numbers.
  const byLetter = /^(.*?[NS])\s*(.+)$/i.exec(clean) || /^(.*?[EW])\s*(.+)$/i.exec(clean);
  if (byLetter && !/^[NSEW]$/i.test(byLetter[1].trim())) return [byLetter[1], byLetter[2]];
  const words = clean.split(" ");
  if (words.length === 2) return words;
  return null;
}

/**
 * Read a typed location. Returns {lat, lon, note} or {error}: what a person typed, in the usual
 * ways (decimal, hemisphere letters, degrees-minutes-seconds), latitude first unless the letters
 * say otherwise. A pair that only makes sense the other way round is swapped, with a note:
 * latitude out of range, or far outside `area` ({lat, lon, km}) while the swap is inside it.
 */
export function parseCoordinates(text, area = null) {
  const source = String(text || "").trim();
  if (!source) return { error: "type a location: latitude, longitude (e.g. 39.80172, -89.64383)" };
  const parts = /\d/.test(source) ? splitPair(source) : null;
  if (!parts) {
    return { error: `"${source}" is not two coordinates: type latitude, longitude ` +
      "(e.g. 39.80172, -89.64383 or 39°48'06\"N 89°38'38\"W)" };
  }
  const first = parseOne(parts[0]);
  const second = parseOne(parts[1]);
  const bad = !first ? parts[0] : !second ? parts[1] : null;
  if (bad !== null) return { error: `"${bad.trim()}" is not a coordinate` };
  if (first.axis && first.axis === second.axis) {
    return { error: `both coordinates are ${first.axis === "lat" ? "latitudes (N/S)" :
      "longitudes (E/W)"}: give one of each` };
  }
  let lat = first.value;
  let lon = second.value;
  let lettered = false;
  if (first.axis === "lon" || second.axis === "lat") {
    [lat, lon] = [second.value, first.value];
    lettered = true;
  } else if (first.axis || second.axis) {
    lettered = true;
  }
  const valid = (a, b) => Math.abs(a) <= 90 && Math.abs(b) <= 180;
  let note = "";
  if (!lettered) {
    const swapFits = valid(lon, lat);
    const farOff = (a, b) => area && distanceKm(a, b, area.lat, area.lon) > area.km;
    if ((!valid(lat, lon) && swapFits) ||
        (valid(lat, lon) && swapFits && farOff(lat, lon) && !farOff(lon, lat))) {
      [lat, lon] = [lon, lat];
      note = `read as ${lat.toFixed(5)}, ${lon.toFixed(5)} (latitude first)`;
    }
  }
  if (Math.abs(lat) > 90) return { error: `latitude ${lat} is out of range (-90 to 90)` };
  if (Math.abs(lon) > 180) return { error: `longitude ${lon} is out of range (-180 to 180)` };
  return { lat, lon, note };
}

export function distanceKm(lat1, lon1, lat2, lon2) {
  const rad = Math.PI / 180;
  const a = Math.sin(((lat2 - lat1) * rad) / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) *
    Math.sin(((lon2 - lon1) * rad) / 2) ** 2;
  return 2 * 6371.0088 * Math.asin(Math.min(1, Math.sqrt(a)));
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
