// The panic app's service worker: the page, its script and style come from the cache when the
// network is poor, so the button opens at once. Alerts are never cached: the page queues them
// and sends them again until the server says they are stored.
"use strict";

const SHELL = "panic-shell-v1";
const FILES = ["/panic/", "/panic/static/panic.js", "/panic/static/panic.css",
  "/panic/static/panic-icon.svg", "/panic/manifest.webmanifest"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((cache) => cache.addAll(FILES)));
  self.skipWaiting();
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys().then((keys) => Promise.all(
    keys.filter((key) => key !== SHELL).map((key) => caches.delete(key)))));
  self.clients.claim();
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.pathname.startsWith("/panic/api/")) return;
  if (!FILES.includes(url.pathname)) return;
  // Network first (a new release is picked up at once), the cached copy when it fails.
  event.respondWith(fetch(event.request).then((response) => {
    const copy = response.clone();
    caches.open(SHELL).then((cache) => cache.put(event.request, copy));
    return response;
  }).catch(() => caches.match(event.request)));
});
