// The owner's facilities and a form for a new one.
"use strict";

import { api } from "./api.js";
import { $, clear, el, formatTime, showError } from "./dom.js";
import { requireOwner } from "./session.js";

function facilityItem(facility) {
  const due = facility.review_due * 1000 < Date.now();
  return el("li", { dataset: { facility: facility.id } },
    el("a", { href: `/register/facility?id=${encodeURIComponent(facility.id)}`,
      text: facility.name }),
    el("div", { class: "muted", text: facility.address }),
    el("div", { class: due ? "error" : "muted",
      text: due ? `Yearly review overdue since ${formatTime(facility.review_due)}`
        : `Next yearly review by ${formatTime(facility.review_due)}` }));
}

async function load() {
  const answer = await api("/api/facilities");
  const list = $("facilities");
  clear(list);
  for (const facility of answer.facilities) list.append(facilityItem(facility));
  $("none").hidden = answer.facilities.length > 0;
}

async function create(event) {
  event.preventDefault();
  const form = $("create");
  const box = $("error");
  showError(box, null, form);
  $("create-button").disabled = true;
  try {
    const created = await api("/api/facilities", { method: "POST", body: {
      name: $("name").value, site_id: $("site").value, kind: $("kind").value,
      sharing: form.querySelector("input[name=sharing]:checked").value,
    } });
    window.location.href = `/register/facility?id=${encodeURIComponent(created.id)}`;
  } catch (err) {
    showError(box, err, form);
  } finally {
    $("create-button").disabled = false;
  }
}

async function start() {
  try {
    await requireOwner();
    const sites = await api("/api/owner/sites");
    for (const site of sites.sites) {
      $("site").append(el("option", { value: site.id, text: site.address || site.id }));
    }
    $("no-sites").hidden = sites.sites.length > 0;
    await load();
  } catch (err) {
    showError($("fatal"), err);
    return;
  }
  $("create").addEventListener("submit", create);
  document.body.dataset.ready = "true";
}

start();
