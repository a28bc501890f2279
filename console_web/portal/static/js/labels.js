// Plain-words names of sharing levels, statuses and audit actions.
"use strict";

export const LEVELS = [
  { value: "registry_only", label: "Location only",
    text: "Nobody watches anything. The department knows the camera is here and whom to call." },
  { value: "on_request", label: "Footage on request",
    text: "Investigators ask you for a recording of a given time; you approve or decline each request." },
  { value: "live_emergency", label: "Live during emergencies",
    text: "Analysts may watch live only while an emergency call or incident is linked to this camera." },
  { value: "live_always", label: "Live at any time",
    text: "Analysts may watch live when needed, always stating the incident or reason." },
];

export function levelLabel(value) {
  const found = LEVELS.find((level) => level.value === value);
  return found ? found.label : value;
}

export const STATUS_LABELS = {
  live: "live now",
  starting: "starting",
  reconnecting: "reconnecting",
  error: "not reachable",
  idle: "ready",
  unknown: "not checked yet",
};

export const ACTIONS = {
  "view.start": "live view",
  "view.stop": "live view ended",
  snapshot: "snapshot",
  "ptz.move": "turned the camera",
  "ptz.stop": "stopped the camera",
  "consent.change": "sharing changed",
  "camera.delete": "camera removed",
  "footage_request.create": "footage requested",
  "footage_request.approve": "footage request approved",
  "footage_request.decline": "footage request declined",
  "agent.enrollment": "agent token created",
  "agent.enroll": "agent connected",
  "agent.revoke": "agent disconnected",
};

export const KINDS = [
  ["business", "Business"], ["residential", "Home"], ["school", "School"],
  ["worship", "Place of worship"], ["hospital", "Hospital or clinic"], ["public", "Public space"],
  ["other", "Other"],
];
