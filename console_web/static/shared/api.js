// Calls to the server's JSON API with the session cookie, a timeout and the CSRF token: the part
// the console and the owner portal share. Each keeps its own answer to a 401 and to a refusal.
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

export function csrfHeaders() {
  return state.csrf ? { "X-CSRF-Token": state.csrf } : {};
}

/** To the login page, which comes back to ``next`` (by default, this page). */
export function goToLogin(next = window.location.pathname + window.location.search) {
  window.location.href = "/login?next=" + encodeURIComponent(next);
}

const NO_ANSWER = {
  timeout: "the server did not answer in time",
  unreachable: "the server cannot be reached",
};

/**
 * One call: ``{response, text, data}`` (``data``: the parsed JSON body, or null). Only when no
 * answer came does it throw, an ``ApiError`` with status 0 and ``messages.timeout`` or
 * ``messages.unreachable``.
 */
export async function request(path, {
  method = "GET", body, headers = {}, timeoutMs = 10000, messages = NO_ANSWER,
} = {}) {
  const sent = method === "GET" ? { ...headers } : { ...headers, ...csrfHeaders() };
  if (body !== undefined) sent["Content-Type"] = "application/json";
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal: controller.signal,
    });
  } catch (err) {
    throw new ApiError(0, controller.signal.aborted ? messages.timeout : messages.unreachable);
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
  return { response, text, data };
}
