// The public map: published snap points from the open data GeoJSON. Tiles only from the
// department's configured tile server; without one, a plain grid (no third-party content).
"use strict";

function popupText(props) {
  const box = document.createElement("div");
  const title = document.createElement("strong");
  title.textContent = props.type_label;
  box.append(title, document.createElement("br"),
    document.createTextNode(props.occurred_hour.slice(0, 13).replace("T", " ") + ":00 UTC"));
  if (props.block) {
    box.append(document.createElement("br"), document.createTextNode(props.block));
  }
  return box;
}

async function start() {
  const holder = document.getElementById("map");
  if (!holder || typeof L === "undefined") return;
  const map = L.map(holder, { zoomControl: true, attributionControl: true });
  const tiles = holder.dataset.tileUrl;
  if (tiles) {
    L.tileLayer(tiles, { maxZoom: 19, attribution: holder.dataset.tileAttribution || "" })
      .addTo(map);
  } else {
    holder.classList.add("plain-grid");
  }
  map.setView([39.8, -89.65], 13);
  const answer = await fetch(holder.dataset.geojson, { credentials: "omit" });
  if (!answer.ok) {
    holder.setAttribute("data-state", "error");
    return;
  }
  const data = await answer.json();
  const layer = L.geoJSON(data, {
    pointToLayer: (feature, latlng) => L.circleMarker(latlng, {
      radius: 7, color: "#1f5f99", weight: 1, fillOpacity: 0.6 }),
    onEachFeature: (feature, marker) => marker.bindPopup(popupText(feature.properties)),
  }).addTo(map);
  if (data.features.length) map.fitBounds(layer.getBounds(), { maxZoom: 16, padding: [20, 20] });
  holder.setAttribute("data-state", "ready");
  holder.setAttribute("data-count", String(data.features.length));
}

document.addEventListener("DOMContentLoaded", () => { start().catch(() => {
  document.getElementById("map")?.setAttribute("data-state", "error");
}); });
