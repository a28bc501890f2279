// The portal's calls to the server's JSON API (see /console/static/shared/api.js): a 401 goes to
// the login page and back to this page (unless ``login: false``); a refusal names its field.
"use strict";

import { ApiError, goToLogin, request } from "/console/static/shared/api.js";

export { ApiError, goToLogin, setCsrfToken } from "/console/static/shared/api.js";

const NO_ANSWER = {
  timeout: "the server did not answer in time; try again",
  unreachable: "the server cannot be reached; check your connection",
};

export async function api(path, { method = "GET", body, timeoutMs = 15000, login = true } = {}) {
  const { response, data } = await request(path, {
    method, body, timeoutMs, headers: { Accept: "application/json" }, messages: NO_ANSWER,
  });
  if (response.status === 401 && login) {
    goToLogin();
    throw new ApiError(401, "your session has ended; log in again");
  }
  if (!response.ok) {
    let message = (data && data.error) || response.statusText || "the request failed";
    if (data && data.allowed) message += ` (allowed: ${data.allowed})`;
    if (response.status === 429) message = (data && data.error) || "too many attempts; try again later";
    throw new ApiError(response.status, message, (data && data.field) || "");
  }
  return data;
}
