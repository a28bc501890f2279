// Calls to the server's JSON API with the session cookie, a timeout and the CSRF token.
"use strict";

const state = { csrf: "" };

export class ApiError extends Error {
  constructor(status, message, field = "") {
    super(message);
    this.status = status;
    this.field = field;
  }
}

export function setCsrfToken(token) {
  state.csrf = token || "";
}

export function goToLogin() {
  const here = window.location.pathname + window.location.search;
  window.location.href = "/login?next=" + encodeURIComponent(here);
}

export async function api(path, { method = "GET", body, timeoutMs = 15000, login = true } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
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
      ? "the server did not answer in time; try again" : "the server cannot be reached; check your connection");
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
