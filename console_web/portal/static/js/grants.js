// "Who may see this camera": the standing grant of the camera's sharing level, in words, and
// every footage-request and incident grant, which the owner may revoke.
"use strict";

import { api } from "./api.js";
import { $, clear, el, formatTime, showError } from "./dom.js";

const STATES = {
  active: "in force",
  expired: "expired",
  revoked: "revoked",
  pending: "not yet in force",
};

function grantItem(cameraId, grant, reload) {
  const validity = grant.valid_until
    ? `from ${formatTime(grant.valid_from)} until ${formatTime(grant.valid_until)}`
    : `from ${formatTime(grant.valid_from)}`;
  const item = el("li", { class: `grant grant-${grant.state}` },
    el("strong", { text: grant.basis === "incident" ? "Incident" : "Footage request" }),
    ` (${STATES[grant.state] || grant.state}): `,
    grant.description,
    el("br"),
    el("span", { class: "muted", text: grant.range
      ? `Footage of ${formatTime(grant.range.from)} to ${formatTime(grant.range.to)}; valid ${validity}.`
      : `Valid ${validity}.` }));
  if (grant.state === "revoked") {
    item.append(el("br"), el("span", { class: "muted", text: `Revoked: ${grant.revoke_reason}` }));
  }
  if (grant.state === "active") {
    const button = el("button", {
      type: "button", class: "secondary", text: "Revoke",
      "aria-label": `Revoke the ${grant.basis === "incident" ? "incident" : "footage request"} grant ${grant.basis_id}`,
    });
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await api(`/api/owner/cameras/${encodeURIComponent(cameraId)}/grants/${encodeURIComponent(grant.id)}/revoke`,
          { method: "POST", body: {} });
        await reload();
      } catch (err) {
        button.disabled = false;
        showError($("grants-error"), err);
      }
    });
    item.append(" ", button);
  }
  return item;
}

export async function showGrants(cameraId) {
  const card = $("grants-card");
  if (!card) return;
  const reload = () => showGrants(cameraId);
  try {
    const answer = await api(`/api/owner/cameras/${encodeURIComponent(cameraId)}/grants`);
    $("grants-standing").textContent = answer.standing.description;
    const list = $("grants");
    clear(list);
    for (const grant of answer.grants) list.append(grantItem(cameraId, grant, reload));
    $("grants-none").hidden = answer.grants.length > 0;
    $("grants-error").textContent = "";
    card.hidden = false;
  } catch (err) {
    card.hidden = false;
    showError($("grants-error"), err);
  }
}
