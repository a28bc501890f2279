// Sign-up: one call creates the owner and the account and logs the owner in.
"use strict";

import { api, ApiError } from "./api.js";
import { $, showError } from "./dom.js";

const FIELDS = ["organisation", "contact_name", "email", "phone", "username", "password", "timezone"];
const ZONE_KEY = "rtcc.portal.timezone";

async function submit(event) {
  event.preventDefault();
  const form = $("join");
  const box = $("error");
  showError(box, null, form);
  if ($("password").value !== $("password2").value) {
    showError(box, new ApiError(400, "The two passwords differ.", "password2"), form);
    return;
  }
  const body = {};
  for (const name of FIELDS) body[name] = $(name).value;
  const button = $("submit");
  button.disabled = true;
  button.textContent = "Creating your account…";
  try {
    const answer = await api("/api/owner/signup", { method: "POST", body, login: false });
    // The camera form proposes the zone chosen here for the owner's first cameras.
    try { window.localStorage.setItem(ZONE_KEY, answer.timezone); } catch { /* storage off */ }
    window.location.href = "/register/dashboard?welcome=1";
  } catch (err) {
    showError(box, err, form);
    button.disabled = false;
    button.textContent = "Create my account";
  }
}

$("timezone").value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
$("join").addEventListener("submit", submit);
document.body.dataset.ready = "true";
