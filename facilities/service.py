"""The panic alarm service: alerts persisted first, then told to the RTCC.

An alert is written (with its ``triggered`` step) before the device hears anything back, so an
answer the device got means the alert is stored. Then the step hooks run (the server's wiring
opens the incident and grants the facility's cameras; every step is audited there), then the
consoles' streams hear of it. Steps of the alert (acknowledged, dispatched, check-in requests and
answers, all clear) are timeline rows with their times.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from facilities.records import CHECKIN_ANSWERS, LEVELS, Alert, Device, Facility, FacilityError
from facilities.store import FacilityStore

log = logging.getLogger(__name__)

StepHook = Callable[[Alert, Facility, str, str], Awaitable[None]]
"""Called after a step is stored: (alert, facility, step, actor)."""
QUEUE_SIZE = 256


@dataclass(frozen=True, slots=True)
class PanicLimits:
    flood_alerts: int = 5
    """New alerts one device may raise per ``flood_window_s`` (retries of one alert are free)."""
    flood_window_s: float = 600.0
    enrol_minutes: float = 7 * 24 * 60
    """How long a QR code may be used."""


class AlertFeed:
    """One console stream's queue of changed alerts; ``None`` ends it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_SIZE)
        self.overflowed = False

    def put(self, item: dict[str, Any] | None) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True
            self.queue.get_nowait()
            self.queue.put_nowait(None)


class PanicService:
    def __init__(self, store: FacilityStore, limits: PanicLimits) -> None:
        self.store = store
        self.limits = limits
        self.hooks: list[StepHook] = []
        self._feeds: set[AlertFeed] = set()

    def subscribe(self) -> AlertFeed:
        feed = AlertFeed()
        self._feeds.add(feed)
        return feed

    def unsubscribe(self, feed: AlertFeed) -> None:
        self._feeds.discard(feed)

    def close_feeds(self) -> None:
        for feed in list(self._feeds):
            feed.put(None)

    async def facility(self, facility_id: str) -> Facility:
        found = await self.store.run(self.store.facility, facility_id)
        if found is None:
            raise FacilityError(404, f"no facility {facility_id}")
        return found

    async def device(self, token: str) -> Device:
        """The enrolled, unrevoked device holding ``token``."""
        if not token:
            raise FacilityError(403, "this device is not enrolled: scan the facility's"
                                     " enrolment QR code first")
        device = await self.store.run(self.store.device_by_token, token)
        if device is None:
            raise FacilityError(403, "this device's token is not known: enrol it again with a"
                                     " QR code from the facility's administrator")
        if device.revoked_at is not None:
            raise FacilityError(403, "this device was revoked by the facility; it can no longer"
                                     " raise alerts. Call 911 in an emergency")
        return device

    async def summary(self, alert: Alert) -> dict[str, Any]:
        """What a console shows of an alert: it, its facility, room and timeline."""
        store = self.store
        facility = await store.run(store.facility, alert.facility_id)
        room = await store.run(store.room, alert.room_id) if alert.room_id else None
        events = await store.run(store.events, alert.id)
        device = await store.run(store.device, alert.device_id)
        return {**alert.as_json(),
                "facility": None if facility is None else {
                    "id": facility.id, "name": facility.name, "address": facility.address,
                    "kind": facility.kind, "lat": facility.lat, "lon": facility.lon},
                "room": None if room is None else room.as_json(),
                "device": None if device is None else device.label,
                "timeline": [e.as_json() for e in events]}

    async def _told(self, alert: Alert, step: str, actor: str) -> None:
        facility = await self.facility(alert.facility_id)
        for hook in self.hooks:
            try:
                await hook(alert, facility, step, actor)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert %s: the %s hook failed", alert.id, step)
        current = await self.store.run(self.store.alert, alert.id)
        if current is None:
            return
        summary = await self.summary(current)
        for feed in list(self._feeds):
            feed.put(summary)

    async def raise_alert(self, device: Device, fields: dict[str, Any]) -> tuple[Alert, bool]:
        client_id = str(fields.get("id") or "").strip()
        if not 8 <= len(client_id) <= 64 or not client_id.replace("-", "").isalnum():
            raise FacilityError(400, "id: send the alert's own id (8 to 64 letters, digits or"
                                     " dashes, made once per press) so a retry is not a"
                                     " second alert")
        facility_id = str(fields.get("facility_id") or device.facility_id)
        if facility_id != device.facility_id:
            raise FacilityError(403, f"this device is enrolled at another facility, not"
                                     f" {facility_id[:40]}; it can raise alerts only there")
        level = str(fields.get("level") or "other").lower()
        if level not in LEVELS:
            raise FacilityError(400, f"level must be one of {', '.join(LEVELS)}")
        room_id = str(fields.get("room_id") or device.room_id or "")
        if room_id:
            room = await self.store.run(self.store.room, room_id)
            if room is None or await self.room_facility(room_id) != facility_id:
                raise FacilityError(400, f"room_id: room {room_id[:40]} is not at this"
                                         " device's facility; choose one of its rooms (or none)"
                                         " and press again")
        values = {"level": level, "drill": bool(fields.get("drill")),
                  "silent": bool(fields.get("silent")), "room_id": room_id,
                  "lat": _number(fields.get("lat"), -90, 90, "lat"),
                  "lon": _number(fields.get("lon"), -180, 180, "lon"),
                  "accuracy_m": _number(fields.get("accuracy_m"), 0, 100000, "accuracy_m")}
        alert, created = await self.store.run(
            self.store.raise_alert, device, client_id, values,
            (self.limits.flood_alerts, self.limits.flood_window_s), f"device:{device.id}")
        if created:
            await self._told(alert, "triggered", f"device:{device.id}")
        return alert, created

    async def room_facility(self, room_id: str) -> str:
        return await self.store.run(self.store.room_facility, room_id)

    async def reopen_pending(self) -> int:
        """Alerts stored but never told (the server stopped in between): tell them now."""
        pending = await self.store.run(self.store.unopened)
        for alert in pending:
            await self._told(alert, "triggered", f"device:{alert.device_id}")
        return len(pending)

    async def step(self, alert_id: str, action: str, actor: str,
                   details: dict[str, Any]) -> Alert:
        """A console's step on an alert: acknowledge, dispatch, checkin, all_clear, cancel."""
        moves = {"acknowledge": ("acknowledged", "acknowledged"),
                 "dispatch": ("dispatched", "dispatched"),
                 "on_scene": ("on_scene", None),
                 "checkin": ("checkin.request", None),
                 "all_clear": ("all_clear", "resolved"),
                 "cancel": ("cancelled", "cancelled")}
        if action not in moves:
            raise FacilityError(404, f"no alert action {action!r}; use one of"
                                     f" {', '.join(moves)}")
        step, state = moves[action]
        alert = await self.store.run(self.store.step, alert_id, step, actor, details, state)
        await self._told(alert, step, actor)
        return alert

    async def answer(self, device: Device, alert_id: str, status: str) -> Alert:
        if status not in CHECKIN_ANSWERS:
            raise FacilityError(400, f"status must be one of {', '.join(CHECKIN_ANSWERS)}")
        alert = await self.store.run(self.store.alert, alert_id)
        if alert is None or alert.facility_id != device.facility_id:
            raise FacilityError(404, "no such alert at this device's facility")
        alert = await self.store.run(self.store.step, alert_id, "checkin.answer",
                                     f"device:{device.id}",
                                     {"status": status, "device": device.label})
        await self._told(alert, "checkin.answer", f"device:{device.id}")
        return alert

    async def note(self, alert: Alert, step: str, actor: str, details: dict[str, Any]) -> None:
        """A timeline step written by the wiring (incident opened, cameras granted)."""
        await self.store.run(self.store.note, alert.id, step, actor, details)


def _number(value: object, low: float, high: float, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FacilityError(400, f"{name} must be a number") from None
    if not low <= number <= high:
        raise FacilityError(400, f"{name} must be between {low:g} and {high:g}")
    return number
