// The console's calls to the server's JSON API (see ../shared/api.js): a 401 goes back to the
// login page, which returns to the console.
"use strict";

import { ApiError, goToLogin as loginThenReturn, request } from "../shared/api.js";

export { ApiError, csrfHeaders, setCsrfToken } from "../shared/api.js";

export function goToLogin() {
  // A second window (?wall=NAME) comes back as itself.
  loginThenReturn("/console/" + window.location.search);
}

export async function api(path, { method = "GET", body, timeoutMs = 10000 } = {}) {
  const { response, text, data } = await request(path, { method, body, timeoutMs });
  if (response.status === 401) {
    goToLogin();
    throw new ApiError(401, "your session has ended; log in again");
  }
  if (!response.ok) {
    const message = (data && data.error) || text || response.statusText;
    throw new ApiError(response.status, message);
  }
  return data;
}
