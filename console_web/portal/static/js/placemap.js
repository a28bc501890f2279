// Placing one camera on a Leaflet map: click to set its position, drag the blue handle to aim it
// (direction and range), the view cone drawn from direction, field of view and range. The owner's
// other cameras show as grey dots. Without Leaflet (not loaded) the form's number fields do it all.
"use strict";

const EARTH_M = 6371008.8;
const rad = (deg) => (deg * Math.PI) / 180;
const deg = (r) => (r * 180) / Math.PI;

export function destination(lat, lon, bearingDeg, metres) {
  const d = metres / EARTH_M;
  const b = rad(bearingDeg);
  const p1 = rad(lat);
  const l1 = rad(lon);
  const p2 = Math.asin(Math.sin(p1) * Math.cos(d) + Math.cos(p1) * Math.sin(d) * Math.cos(b));
  const l2 = l1 + Math.atan2(Math.sin(b) * Math.sin(d) * Math.cos(p1),
    Math.cos(d) - Math.sin(p1) * Math.sin(p2));
  return [deg(p2), ((deg(l2) + 540) % 360) - 180];
}

export function bearingAndDistance(lat1, lon1, lat2, lon2) {
  const p1 = rad(lat1);
  const p2 = rad(lat2);
  const dl = rad(lon2 - lon1);
  const y = Math.sin(dl) * Math.cos(p2);
  const x = Math.cos(p1) * Math.sin(p2) - Math.sin(p1) * Math.cos(p2) * Math.cos(dl);
  const bearing = (deg(Math.atan2(y, x)) + 360) % 360;
  const a = Math.sin((p2 - p1) / 2) ** 2 + Math.cos(p1) * Math.cos(p2) * Math.sin(dl / 2) ** 2;
  const distance = 2 * EARTH_M * Math.asin(Math.min(1, Math.sqrt(a)));
  return { bearing, distance };
}

export function conePoints(view) {
  const fov = Math.min(360, Math.max(1, view.fov));
  const steps = Math.max(4, Math.ceil(fov / 6));
  const start = view.heading - fov / 2;
  const points = fov < 360 ? [[view.lat, view.lon]] : [];
  for (let i = 0; i <= steps; i += 1) {
    points.push(destination(view.lat, view.lon, start + (fov * i) / steps, view.range_m));
  }
  return points;
}

export class PlaceMap {
  /** onChange({lat, lon, heading, range_m}) is called when the person moves something. */
  constructor(container, config, onChange) {
    this.L = window.L;
    this.onChange = onChange;
    this.view = null;
    this.ready = Boolean(this.L);
    if (!this.ready) return;
    const L = this.L;
    this.map = L.map(container, { worldCopyJump: true, minZoom: 2, maxZoom: 20 });
    if (config.tile_url) {
      L.tileLayer(config.tile_url, { maxZoom: 20, maxNativeZoom: 19,
        attribution: "" }).addTo(this.map);
    }
    if (config.tile_attribution) {
      this.map.attributionControl.setPrefix(false);
      this.map.attributionControl.addAttribution(config.tile_attribution.replace(/[<>&"]/g, ""));
    }
    L.control.scale({ imperial: false }).addTo(this.map);
    this.cone = L.polygon([], { color: "#1f5fbf", weight: 1, fillOpacity: 0.18, interactive: false })
      .addTo(this.map);
    this.marker = L.marker([0, 0], { draggable: true, keyboard: true, title: "The camera",
      icon: L.divIcon({ className: "camera-dot", iconSize: [18, 18] }) });
    this.handle = L.marker([0, 0], { draggable: true, keyboard: true, title: "Aim: drag to where the camera looks",
      icon: L.divIcon({ className: "cone-handle", iconSize: [16, 16] }) });
    this.marker.on("drag", () => {
      const p = this.marker.getLatLng();
      this.view.lat = p.lat;
      this.view.lon = p.lng;
      this.draw(false);
      this.onChange({ ...this.view });
    });
    this.handle.on("drag", () => {
      const p = this.handle.getLatLng();
      const aim = bearingAndDistance(this.view.lat, this.view.lon, p.lat, p.lng);
      this.view.heading = Math.round(aim.bearing) % 360;
      this.view.range_m = Math.max(1, Math.min(5000, Math.round(aim.distance)));
      this.draw(false);
      this.onChange({ ...this.view });
    });
    this.handle.on("dragend", () => this.draw(true));
    this.map.on("click", (event) => {
      const base = this.view || { heading: 0, fov: 90, range_m: 40 };
      this.view = { ...base, lat: event.latlng.lat, lon: event.latlng.lng };
      this.draw(true);
      this.onChange({ ...this.view });
    });
  }

  showOthers(cameras) {
    if (!this.ready) return;
    for (const camera of cameras) {
      this.L.marker([camera.lat, camera.lon], { interactive: false, keyboard: false,
        icon: this.L.divIcon({ className: "other-dot", iconSize: [12, 12] }) }).addTo(this.map);
    }
  }

  centre(lat, lon, zoom) {
    if (this.ready) this.map.setView([lat, lon], zoom);
  }

  /** Set what the form says (null position: nothing drawn yet). */
  set(view) {
    if (!this.ready) return;
    if (!Number.isFinite(view.lat) || !Number.isFinite(view.lon)) {
      this.view = null;
      this.marker.remove();
      this.handle.remove();
      this.cone.setLatLngs([]);
      return;
    }
    this.view = { ...view };
    this.draw(true);
  }

  draw(moveHandle) {
    const v = this.view;
    if (!v) return;
    this.marker.setLatLng([v.lat, v.lon]).addTo(this.map);
    this.cone.setLatLngs(conePoints(v));
    if (moveHandle) this.handle.setLatLng(destination(v.lat, v.lon, v.heading, v.range_m));
    this.handle.addTo(this.map);
  }
}
