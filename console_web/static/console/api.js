// Calls to the server's JSON API with the session cookie, a timeout and the CSRF token.
"use strict";

const state = { csrf: "" };

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function setCsrfToken(token) {
  state.csrf = token || "";
}

export function csrfHeaders() {
  return state.csrf ? { "X-CSRF-Token": state.csrf } : {};
}

export function goToLogin() {
  window.location.href = "/login?next=" + encodeURIComponent("/console/");
}

export async function api(path, { method = "GET", body, timeoutMs = 10000 } = {}) {
  const headers = method === "GET" ? {} : csrfHeaders();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal: controller.signal,
    });
  } catch (err) {
    throw new ApiError(0, controller.signal.aborted
      ? "the server did not answer in time" : "the server cannot be reached");
  } finally {
    clearTimeout(timer);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (err) {
    data = null;
  }
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
