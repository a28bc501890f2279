"""Panic alerts forwarded to 911/CAD systems as EIDO documents, from the persistent outbox.

An alert (never a drill) is enqueued once per configured endpoint with the idempotency key
``alert:endpoint:alert``; its all clear (or cancel) once more with ``...:update``. The outbox
rows are written before anything is sent, so a stop between the two only delays a delivery.
The worker claims due rows with a lease (``FacilityStore.claim``), posts the EIDO (JSON, the
shape of NENA-STA-021: incident, location, agency and notes components) with
``Idempotency-Key`` and ``Authorization: Bearer`` headers, and on a failure tries again after a
doubling wait, up to ``facilities.max_attempts``.

Where a delivery may go: only to its endpoint's configured host; that host's addresses pass the
server's URL rules (``rtcc.camera_url.check_camera_url``); the connection goes to exactly the
address checked; redirects are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from facilities.records import Alert, Facility, OutboxItem, Room
from facilities.store import FacilityStore
from rtcc.camera_url import check_camera_url
from rtcc.config import CadEndpoint, FacilitiesConfig
from rtcc.errors import RtccError, UnsafeUrl

log = logging.getLogger(__name__)

AGENCY = "rtcc.panic"
ELEMENT = "panic.rtcc"
LEASE_MARGIN = 5.0
IDLE_WAIT = 30.0
MAX_ANSWER = 64 * 1024
STATUS = {"triggered": ("OPEN", "Open"), "all_clear": ("CLSD", "Closed"),
          "cancelled": ("CLSD", "Closed")}
"""Step -> (incident status code, its common registry text); ``CLSD`` is EIDO's closed."""


class SendFailed(RtccError):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")


def _pidf(lat: float, lon: float, radius_m: float | None, stamp: str) -> str:
    if radius_m:
        shape = ('<gs:Circle srsName="urn:ogc:def:crs:EPSG::4326">'
                 f"<gml:pos>{lat:.6f} {lon:.6f}</gml:pos>"
                 f'<gs:radius uom="urn:ogc:def:uom:EPSG::9001">{radius_m:.1f}</gs:radius>'
                 "</gs:Circle>")
    else:
        shape = ('<gml:Point srsName="urn:ogc:def:crs:EPSG::4326">'
                 f"<gml:pos>{lat:.6f} {lon:.6f}</gml:pos></gml:Point>")
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<presence xmlns="urn:ietf:params:xml:ns:pidf"'
            ' xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10"'
            ' xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"'
            ' xmlns:gml="http://www.opengis.net/gml"'
            ' xmlns:gs="http://www.opengis.net/pidflo/1.0"'
            f' entity="pres:panic@{ELEMENT}">'
            '<dm:device id="panic-location"><gp:geopriv>'
            f"<gp:location-info>{shape}</gp:location-info>"
            "<gp:usage-rules/><gp:method>Manual</gp:method>"
            f"</gp:geopriv><dm:timestamp>{stamp}</dm:timestamp></dm:device></presence>")


def build_eido(alert: Alert, facility: Facility, room: Room | None, step: str,
               at: float) -> dict[str, Any]:
    """The alert as an EIDO at ``at``: open at the trigger, closed at the all clear."""
    tid = f"urn:emergency:uid:incidentid:{alert.id}:{ELEMENT}"
    stamp = _iso(at)
    agency_ref = {"$ref": AGENCY}
    code, common = STATUS.get(step, STATUS["triggered"])
    where = f", room {room.number or room.name}" if room is not None else ""
    location_id = f"{tid}:location:1"
    location: dict[str, Any] = {
        "$id": location_id, "lastUpdateTimeStamp": _iso(alert.created),
        "updatedByAgencyReference": agency_ref,
        "locationTypeDescriptionRegistryText": "Incident",
        "locationDescriptionText": f"{facility.address} ({facility.name}{where})"[:500],
    }
    if facility.lat is not None and facility.lon is not None:
        location["locationByValue"] = _pidf(facility.lat, facility.lon, None,
                                            _iso(alert.created))
    elif alert.lat is not None and alert.lon is not None:
        location["locationByValue"] = _pidf(alert.lat, alert.lon, alert.accuracy_m,
                                            _iso(alert.created))
    note_id = f"{tid}:note:{step}"
    text = (f"Panic alarm ({alert.level}) at {facility.name}{where}"
            f"{'; silent' if alert.silent else ''}")
    return {
        "$id": tid, "incidentTrackingIdentifier": tid, "lastUpdateTimeStamp": stamp,
        "updatedByAgencyReference": agency_ref, "eidoVersion": "1.0",
        "issuingElementIdentification": ELEMENT,
        "incidentComponent": [{
            "$id": f"{tid}:incident", "lastUpdateTimeStamp": stamp,
            "updatedByAgencyReference": agency_ref, "incidentTrackingIdentifier": tid,
            "incidentTypeInternalCode": f"PANIC-{alert.level.upper()}",
            "incidentTypeInternalText": text[:200],
            "incidentTypeCommonRegistryText": "Panic alarm",
            "incidentStatusInternalText": [code],
            "incidentStatusCommonRegistryText": [common],
            "incidentCommonPriorityNumber": 1,
            "internalIncidentId": alert.id,
            "locationReference": [{"$ref": location_id}],
            "notesReference": [{"$ref": note_id}],
        }],
        "agencyComponent": [{
            "$id": AGENCY, "lastUpdateTimeStamp": stamp, "updatedByAgencyReference": agency_ref,
            "agencyRoleDescriptionRegistryText": ["Alarm monitoring"], "agencyType": ["police"],
        }],
        "locationComponent": [location],
        "notesComponent": [{
            "$id": note_id, "lastUpdateTimeStamp": stamp,
            "updatedByAgencyReference": agency_ref,
            "notesActionComments": text if step == "triggered" else f"{text}: {step}",
        }],
    }


class _Pinned(AbstractResolver):
    """Resolves the checked host to the checked address only."""

    def __init__(self, host: str, address: str) -> None:
        self._host = host
        self._address = address

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET,  # noqa: ARG002 -- the interface
                      ) -> list[ResolveResult]:
        if host != self._host:
            raise OSError(f"{host!r} is not the checked CAD endpoint host")
        fam = socket.AF_INET6 if ":" in self._address else socket.AF_INET
        return [{"hostname": host, "host": self._address, "port": port, "family": fam,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        return None


async def post_eido(endpoint: CadEndpoint, key: str, body: str, send_timeout: float,
                    allow_networks: tuple[str, ...]) -> None:
    """One attempt; raises SendFailed saying what went wrong."""
    host = (urlsplit(endpoint.url).hostname or "").lower().rstrip(".")
    try:
        safe = await check_camera_url(endpoint.url, purpose="onvif",
                                      allow_networks=allow_networks)
    except UnsafeUrl as exc:
        raise SendFailed(f"CAD endpoint {endpoint.name} refused: {exc}", permanent=True) from None
    if safe.address is None or safe.host.lower().rstrip(".") != host:
        raise SendFailed(f"CAD endpoint {endpoint.name}: host {host!r} did not resolve")
    headers = {"Content-Type": "application/json", "Idempotency-Key": key,
               "User-Agent": "rtcc-panic"}
    token = endpoint.token.get_secret_value()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connector = aiohttp.TCPConnector(resolver=_Pinned(safe.host, safe.address))
    try:
        async with aiohttp.ClientSession(connector=connector) as session, session.post(
                endpoint.url, data=body.encode(), headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=send_timeout)) as response:
            await response.content.read(MAX_ANSWER)
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise SendFailed(f"CAD endpoint {endpoint.name} could not be reached: "
                         f"{type(exc).__name__}: {exc}") from None
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        raise SendFailed(f"CAD endpoint {endpoint.name} answered {status}; redirects are not"
                         " followed: configure its final URL", permanent=True)
    raise SendFailed(f"CAD endpoint {endpoint.name} answered {status}",
                     permanent=status in {400, 401, 403, 404, 405, 410, 413, 415, 422})


class CadForwarder:
    """Enqueues alerts for the configured CAD endpoints and sends them (``run``)."""

    def __init__(self, store: FacilityStore, config: FacilitiesConfig,
                 allow_networks: tuple[str, ...] = ()) -> None:
        self.store = store
        self.config = config
        self.endpoints = {e.name: e for e in config.cad_endpoints}
        self._allow_networks = allow_networks
        self._wake = asyncio.Event()

    async def on_step(self, alert: Alert, facility: Facility, step: str, actor: str,  # noqa: ARG002 -- a step hook
                      ) -> None:
        """Step hook: the trigger of a real alert, and its end once it was forwarded."""
        if alert.drill or not self.endpoints or step not in STATUS:
            return
        if step == "triggered":
            kind, names = "alert", list(self.endpoints)
        else:
            sent = await self.store.run(self.store.outbox, alert.id)
            names = sorted({o["endpoint"] for o in sent if o["key"].endswith(":alert")}
                           & set(self.endpoints))
            kind = "update"
        await self._enqueue(alert, facility, step, kind, names)

    async def _enqueue(self, alert: Alert, facility: Facility, step: str, kind: str,
                       names: list[str]) -> None:
        if not names:
            return
        room = await self.store.run(self.store.room, alert.room_id) if alert.room_id else None
        body = json.dumps(build_eido(alert, facility, room, step, self.store.clock()))
        if await self.store.run(self.store.enqueue, alert.id, names, kind, body):
            self._wake.set()

    async def catch_up(self) -> int:
        """Enqueue the closing updates a stop left out; returns how many alerts had some."""
        missing = await self.store.run(self.store.missing_updates)
        by_alert: dict[str, list[str]] = {}
        for alert_id, endpoint in missing:
            if endpoint in self.endpoints:
                by_alert.setdefault(alert_id, []).append(endpoint)
        for alert_id, names in by_alert.items():
            alert = await self.store.run(self.store.alert, alert_id)
            facility = None if alert is None else await self.store.run(self.store.facility,
                                                                       alert.facility_id)
            if alert is not None and facility is not None:
                step = "all_clear" if alert.state == "resolved" else "cancelled"
                await self._enqueue(alert, facility, step, "update", names)
        return len(by_alert)

    async def _one(self, item: OutboxItem) -> None:
        endpoint = self.endpoints.get(item.endpoint)
        try:
            if endpoint is None:
                raise SendFailed(f"CAD endpoint {item.endpoint} is no longer configured",
                                 permanent=True)
            await post_eido(endpoint, item.key, item.body, self.config.send_timeout,
                            self._allow_networks)
        except SendFailed as exc:
            give_up = exc.permanent or item.attempts >= self.config.max_attempts
            wait = None if give_up else min(self.config.retry_max_seconds,
                                            self.config.retry_seconds * 2 ** (item.attempts - 1))
            log.warning("CAD delivery %s, attempt %d%s: %s", item.key, item.attempts,
                        " (given up)" if give_up else "", exc)
            await self.store.run(self.store.failed, item.id, str(exc), wait)
            return
        await self.store.run(self.store.delivered, item.id)
        log.info("CAD delivery %s delivered (attempt %d)", item.key, item.attempts)

    async def run_once(self) -> int:
        items = await self.store.run(self.store.claim, 8,
                                     self.config.send_timeout + LEASE_MARGIN)
        if items:
            async with asyncio.TaskGroup() as group:
                for item in items:
                    group.create_task(self._one(item), name=f"facilities:cad:{item.id}")
        return len(items)

    async def run(self) -> None:
        """The worker loop, until cancelled."""
        caught_up = await self.catch_up()
        if caught_up:
            log.warning("CAD forwarding: closing updates of %d ended alert(s) enqueued now",
                        caught_up)
        while True:
            self._wake.clear()
            if await self.run_once():
                continue
            due = await self.store.run(self.store.next_due)
            wait = IDLE_WAIT if due is None else max(0.05, min(IDLE_WAIT,
                                                               due - self.store.clock()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
