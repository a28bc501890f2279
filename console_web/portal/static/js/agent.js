// An enrollment token for the owner's agent, shown once with the exact command to run.
"use strict";

import { api } from "./api.js";
import { $, formatTime, showError } from "./dom.js";
import { requireOwner } from "./session.js";

let serverUrl = window.location.origin;

async function create(event) {
  event.preventDefault();
  const form = $("enroll");
  const box = $("error");
  showError(box, null, form);
  const button = $("create");
  button.disabled = true;
  try {
    const answer = await api("/api/agent/enrollments", { method: "POST",
      body: { expires_minutes: Number($("expires").value) } });
    const command = `rtcc agent --server ${serverUrl} --enroll ${answer.token}`;
    $("command").textContent = command;
    $("command-full").textContent = "export CAMERA_PASSWORD='the cameras password'\n"
      + `${command} --onvif-user admin --onvif-password-env CAMERA_PASSWORD`;
    $("expiry").textContent = `This token works once, until ${formatTime(answer.expires)}.`;
    $("result").hidden = false;
    $("copied").textContent = "";
    $("result").scrollIntoView({ block: "nearest" });
  } catch (err) {
    showError(box, err, form);
  } finally {
    button.disabled = false;
  }
}

async function copy() {
  try {
    await navigator.clipboard.writeText($("command").textContent);
    $("copied").textContent = "Copied.";
  } catch (err) {
    const range = document.createRange();
    range.selectNodeContents($("command"));
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    $("copied").textContent = "Selected: press Ctrl+C (or long-press and copy on a phone).";
  }
}

async function start() {
  try {
    await requireOwner();
  } catch (err) {
    showError($("fatal"), err);
    return;
  }
  try {
    const config = await api("/api/portal/config");
    if (config.server_url) serverUrl = config.server_url.replace(/\/+$/, "");
  } catch (err) {
    // The address in the browser's bar is the server's address too.
  }
  $("enroll").addEventListener("submit", create);
  $("copy").addEventListener("click", copy);
  document.body.dataset.ready = "true";
}

start();
