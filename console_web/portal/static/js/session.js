// Who is logged in: owner pages need an owner account; the header shows who and a log-out button.
"use strict";

import { api, ApiError, setCsrfToken } from "./api.js";
import { $ } from "./dom.js";

export async function requireOwner() {
  const me = await api("/api/me");
  setCsrfToken(me.csrf_token);
  const who = $("who");
  if (who) who.textContent = me.display_name ? `${me.display_name} (${me.username})` : me.username;
  const logout = $("logout");
  if (logout) {
    logout.hidden = false;
    logout.addEventListener("click", async () => {
      try {
        await api("/api/logout", { method: "POST", body: {}, login: false });
      } catch (err) {
        // The session may already be gone: the portal's front page is the place to be either way.
      }
      window.location.href = "/register/";
    });
  }
  if (me.role !== "owner") {
    throw new ApiError(403, `This page is for camera owners; you are logged in as ${me.username} (${me.role}).`);
  }
  return me;
}
