// Camera markers grouped at city zoom: markers closer than CELL_PX on screen are drawn as one
// count, which zooms in on them when clicked. Grid clustering by screen position is enough for
// the few thousand cameras of a city and needs no library.
"use strict";

const L = window.L;
export const CLUSTER_BELOW_ZOOM = 15;
const CELL_PX = 48;

export class Clusters {
  /** `entries` is the map's Map of id -> {marker, cone}. */
  constructor(map, entries) {
    this.map = map;
    this.entries = entries;
    this.layer = L.layerGroup().addTo(map);
  }

  update() {
    this.layer.clearLayers();
    const zoom = this.map.getZoom();
    const cells = new Map();
    for (const [id, entry] of this.entries) {
      const point = this.map.latLngToLayerPoint(entry.marker.getLatLng());
      const key = zoom < CLUSTER_BELOW_ZOOM
        ? `${Math.floor(point.x / CELL_PX)}:${Math.floor(point.y / CELL_PX)}` : id;
      if (!cells.has(key)) cells.set(key, []);
      cells.get(key).push(entry);
    }
    for (const group of cells.values()) {
      const single = group.length === 1;
      for (const entry of group) this.show(entry, single);
      if (single) continue;
      const bounds = L.latLngBounds(group.map((entry) => entry.marker.getLatLng()));
      const count = L.marker(bounds.getCenter(), {
        icon: L.divIcon({ className: "cam-cluster", html: "", iconSize: [34, 34] }),
        keyboard: true, title: `${group.length} cameras: zoom in`,
      });
      count.on("add", () => {
        const node = count.getElement();
        node.textContent = String(group.length);
        node.dataset.count = String(group.length);
      });
      count.on("click", () => this.map.fitBounds(bounds.pad(0.3),
        { maxZoom: Math.max(CLUSTER_BELOW_ZOOM + 1, zoom + 2) }));
      this.layer.addLayer(count);
    }
  }

  show(entry, visible) {
    for (const layer of [entry.marker, entry.cone]) {
      if (visible && !this.map.hasLayer(layer)) layer.addTo(this.map);
      if (!visible && this.map.hasLayer(layer)) layer.remove();
    }
  }
}
