"""Who is warned, with what: rules, manual sends, updates, the all clear, owners' notices.

A CAD incident (handed in as ``IncidentFacts`` by the server's wiring) is matched against
``notify.rules``: a rule whose type code or keyword fits selects the facilities of its
categories within its distance (a footprint counts from its nearest edge). An ``automatic`` rule
sends at once; a ``confirm`` rule stores a ``proposed`` alert an analyst confirms or dismisses.
Each alert is one CAP 1.2 message (``scope=Private``, the facilities in ``addresses``, the CAD
incident in ``incidents`` and ``eventCode``), validated before it is stored, and one outbox
delivery per contact and channel, queued in the same transaction. Alert identifiers of
automatic sends derive from the incident and the rule, so an incident told twice warns once.
When the CAD closes the incident, every alert sent for it is followed by a Cancel (all clear)
that references it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from notify import cap, geo
from notify.outbox import Outbox
from notify.store import Facility, NewDelivery, NotifyStore, StoredAlert
from rtcc.config import NotifyConfig, NotifyRule, NotifyTemplate
from rtcc.errors import RtccError

log = logging.getLogger(__name__)

Audit = Callable[[str, str, str, str, dict[str, Any]], Awaitable[None]]
"""(actor, role, action, target, details)."""
SYSTEM = ("cad", "integration")


class NotifyError(RtccError):
    """A send was refused; the message says why."""


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """What notifications need to know of a CAD incident."""

    id: str
    type_code: str
    type_text: str
    point: tuple[float, float] | None
    address: str = ""
    closed: bool = False


@dataclass(frozen=True, slots=True)
class Target:
    facility: Facility
    distance_m: float

    def as_json(self) -> dict[str, Any]:
        return {**self.facility.as_json(), "distance_m": round(self.distance_m, 1)}


def facility_distance(facility: Facility, point: tuple[float, float]) -> float:
    if len(facility.polygon) >= 3:
        return geo.distance_to_polygon_m(point, facility.polygon)
    return geo.distance_m(point, (facility.lat, facility.lon))


def in_area(facility: Facility, area: cap.Area) -> bool:
    points = list(facility.polygon) or [(facility.lat, facility.lon)]
    if area.circle is not None:
        lat, lon, radius = area.circle
        if facility_distance(facility, (lat, lon)) <= radius:
            return True
    return len(area.polygon) >= 3 and any(geo.inside(p, area.polygon) for p in points)


def rule_matches(rule: NotifyRule, facts: IncidentFacts) -> bool:
    code = facts.type_code.upper()
    if code and any(c.upper() == code for c in rule.codes):
        return True
    text = f"{facts.type_code} {facts.type_text}".lower()
    return any(k.lower() in text for k in rule.keywords if k)


def _fill(text: str, values: dict[str, Any]) -> str:
    try:
        return text.format(**values)
    except (KeyError, IndexError, ValueError):
        return text


class NotifyService:
    def __init__(self, store: NotifyStore, outbox: Outbox, config: NotifyConfig, *,
                 public_url: str = "", audit: Audit | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.outbox = outbox
        self.config = config
        self.public_url = public_url.rstrip("/")
        self.audit = audit
        self.clock = clock
        self._lock = asyncio.Lock()

    async def record(self, actor: tuple[str, str], action: str, target: str,
                     details: dict[str, Any]) -> None:
        if self.audit is not None:
            await self.audit(actor[0], actor[1], action, target, details)

    # -- recipients ------------------------------------------------------------------------

    async def near(self, point: tuple[float, float], categories: Sequence[str],
                   distance_m: float) -> list[Target]:
        wanted = {c.lower() for c in categories}
        targets = [Target(f, facility_distance(f, point))
                   for f in await self.store.facilities()
                   if not wanted or f.category.lower() in wanted]
        return sorted((t for t in targets if t.distance_m <= distance_m),
                      key=lambda t: (t.distance_m, t.facility.id))

    async def in_area(self, area: cap.Area, categories: Sequence[str]) -> list[Target]:
        wanted = {c.lower() for c in categories}
        center = (area.circle[:2] if area.circle is not None
                  else geo.centroid(area.polygon) if area.polygon else None)
        return [Target(f, 0.0 if center is None else facility_distance(f, center))
                for f in await self.store.facilities()
                if (not wanted or f.category.lower() in wanted) and in_area(f, area)]

    # -- building messages -----------------------------------------------------------------

    def _identifier(self, *parts: str) -> str:
        seed = "/".join(parts) if parts else secrets.token_hex(16)
        return "rtcc-" + hashlib.sha256(seed.encode()).hexdigest()[:32]

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC).replace(microsecond=0)

    def ack_url(self, token: str) -> str:
        return f"{self.public_url}/notify/ack/{token}"

    def _deliveries(self, identifier: str, kind: str, targets: Sequence[Target],
                    subject: str, body: Callable[[Target], str]) -> list[NewDelivery]:
        out = []
        for target in targets:
            for contact in target.facility.contacts:
                token = secrets.token_urlsafe(24)
                text = (f"{body(target)}\n\nAcknowledge receipt (one click): "
                        f"{self.ack_url(token)}\n\nCAP message {identifier}\n")
                out.append(NewDelivery(
                    key=f"{identifier}/{target.facility.id}/{contact.id}/{contact.channel}",
                    kind=kind, channel=contact.channel, address=contact.address,
                    subject=subject, body=text, ack_token=token,
                    facility_id=target.facility.id))
        return out

    def _plan(self, *, template: NotifyTemplate, values: dict[str, Any], targets: Sequence[Target],
              area: cap.Area, facts: IncidentFacts | None, msg_type: cap.MsgType,
              scope: cap.Scope, references: Sequence[cap.Reference] = (),
              identifier: str) -> cap.Alert:
        now = self._now()
        event_codes: tuple[tuple[str, str], ...] = ()
        incidents: tuple[str, ...] = ()
        if facts is not None:
            incidents = (facts.id,)
            if facts.type_code:
                event_codes = (("CAD", facts.type_code),)
        info = cap.Info(
            event=_fill(template.event, values)[:200], category=template.cap_category,
            response_type="AllClear" if msg_type == "Cancel" else template.response_type,
            urgency="Past" if msg_type == "Cancel" else template.urgency,
            severity="Minor" if msg_type == "Cancel" else template.severity,
            certainty=template.certainty,
            headline=_fill(template.headline, values)[:160],
            description=_fill(template.description, values),
            instruction=_fill(template.instruction, values),
            expires=now + timedelta(minutes=template.expires_minutes),
            sender_name=self.config.sender_name, event_codes=event_codes, areas=(area,))
        return cap.Alert(
            identifier=identifier, sender=self.config.sender, sent=now,
            status=self.config.status, msg_type=msg_type, scope=scope, info=info,
            addresses=tuple(t.facility.id for t in targets) if scope == "Private" else (),
            references=tuple(references), incidents=incidents)

    async def _store(self, alert: cap.Alert, *, state: str, incident: str, rule: str,
                     template: str, targets: Sequence[Target], kind: str,
                     body: Callable[[Target], str], actor: tuple[str, str],
                     refs: Sequence[str] = ()) -> StoredAlert:
        xml = await asyncio.to_thread(cap.render, alert) if state == "sent" else ""
        deliveries = (self._deliveries(alert.identifier, kind, targets,
                                       alert.info.headline or alert.info.event, body)
                      if state == "sent" else [])
        plan = {"info": {"headline": alert.info.headline, "event": alert.info.event,
                         "description": alert.info.description,
                         "instruction": alert.info.instruction,
                         "areas": [a.as_json() for a in alert.info.areas]},
                "distances": {t.facility.id: t.distance_m for t in targets},
                "point": None}
        stored, created = await self.store.add_alert({
            "identifier": alert.identifier, "incident": incident, "msg_type": alert.msg_type,
            "scope": alert.scope, "state": state, "rule": rule, "template": template,
            "facilities": [t.facility.id for t in targets], "plan": plan,
            "refs": list(refs), "xml": xml, "sent": cap.cap_time(alert.sent),
            "created_by": actor[0]}, deliveries)
        if created:
            await self.record(actor, f"notify.{alert.msg_type.lower()}.{state}",
                              f"alert:{stored.id}",
                              {"identifier": alert.identifier, "incident": incident,
                               "scope": alert.scope, "facilities": list(stored.facilities),
                               "deliveries": len(deliveries), "rule": rule})
            if deliveries:
                self.outbox.wake()
        return stored

    # -- CAD incidents -----------------------------------------------------------------------

    async def on_incident(self, facts: IncidentFacts) -> list[StoredAlert]:
        """Warns (or proposes to warn) the facilities the rules select; the all clear when
        the incident is closed."""
        async with self._lock:
            if facts.closed:
                return await self.all_clear(facts.id, SYSTEM)
            if facts.point is None:
                return []
            done = []
            earlier = await self.store.alerts(incident=facts.id)
            for index, rule in enumerate(self.config.rules):
                if not rule_matches(rule, facts):
                    continue
                # An incident that moved warns the facilities it came near, not again the
                # ones already warned under this rule.
                warned = {f for a in earlier if a.rule == str(index) for f in a.facilities}
                targets = [t for t in await self.near(facts.point, rule.categories,
                                                      rule.distance_m)
                           if t.facility.id not in warned]
                if not targets:
                    continue
                done.append(await self._rule_alert(facts, index, rule, targets,
                                                   first=not warned))
            return done

    async def _rule_alert(self, facts: IncidentFacts, index: int, rule: NotifyRule,
                          targets: list[Target], *, first: bool) -> StoredAlert:
        template = self.config.templates[rule.template]
        assert facts.point is not None
        values = self._values(facts, targets[0])
        area = cap.Area(f"{rule.distance_m:g} m around {facts.address or 'the incident'}",
                        circle=(facts.point[0], facts.point[1], rule.distance_m))
        # Derived from what it warns: the same incident told twice stores it once.
        identifier = self._identifier(facts.id, str(index), rule.template,
                                      *([] if first else sorted(t.facility.id for t in targets)))
        values = {**values, "name": facts.address or "the incident area"}
        alert = self._plan(template=template, values=values,
                           targets=targets, area=area, facts=facts, msg_type="Alert",
                           scope="Private", identifier=identifier)
        state = "sent" if rule.mode == "automatic" else "proposed"
        return await self._store(
            alert, state=state, incident=facts.id, rule=str(index), template=rule.template,
            targets=targets, kind="cap", actor=SYSTEM,
            body=lambda t: self._text(template, self._values(facts, t)))

    @staticmethod
    def _values(facts: IncidentFacts | None, target: Target) -> dict[str, Any]:
        return {"type": (facts.type_text or facts.type_code) if facts else "an incident",
                "type_code": facts.type_code if facts else "",
                "address": facts.address if facts else "",
                "name": target.facility.name, "distance_m": round(target.distance_m)}

    @staticmethod
    def _text(template: NotifyTemplate, values: dict[str, Any]) -> str:
        return "\n\n".join(t for t in (_fill(template.headline, values),
                                       _fill(template.description, values),
                                       _fill(template.instruction, values)) if t)

    async def confirm(self, alert_id: int, actor: tuple[str, str]) -> StoredAlert:
        """Sends a proposed alert as it was planned."""
        stored = await self.store.alert(alert_id)
        if stored is None or stored.state != "proposed":
            raise NotifyError("only a proposed alert can be confirmed; this one is "
                              f"{'missing' if stored is None else stored.state}")
        template = self.config.templates.get(stored.template, NotifyTemplate())
        facilities = {f.id: f for f in await self.store.facilities(stored.facilities)}
        distances = stored.plan.get("distances", {})
        targets = [Target(facilities[i], float(distances.get(i, 0.0)))
                   for i in stored.facilities if i in facilities]
        info = stored.plan["info"]
        area = cap.Area.from_json(info["areas"][0])
        facts = IncidentFacts(stored.incident, "", "", None) if stored.incident else None
        alert = cap.Alert(
            identifier=stored.identifier, sender=self.config.sender, sent=self._now(),
            status=self.config.status, msg_type="Alert", scope="Private",
            info=cap.Info(event=info["event"], category=template.cap_category,
                          response_type=template.response_type, urgency=template.urgency,
                          severity=template.severity, certainty=template.certainty,
                          headline=info["headline"], description=info["description"],
                          instruction=info["instruction"],
                          expires=self._now() + timedelta(minutes=template.expires_minutes),
                          sender_name=self.config.sender_name, areas=(area,)),
            addresses=tuple(t.facility.id for t in targets),
            incidents=(stored.incident,) if stored.incident else ())
        xml = await asyncio.to_thread(cap.render, alert)
        deliveries = self._deliveries(stored.identifier, "cap", targets, info["headline"],
                                      lambda t: self._text(template, self._values(facts, t)))
        done = await self.store.confirm_alert(alert_id, xml, cap.cap_time(alert.sent),
                                              stored.plan, deliveries)
        if done is None:
            raise NotifyError("the alert was confirmed or dismissed meanwhile")
        await self.record(actor, "notify.alert.confirm", f"alert:{alert_id}",
                          {"identifier": stored.identifier, "deliveries": len(deliveries)})
        self.outbox.wake()
        return done

    async def dismiss(self, alert_id: int, actor: tuple[str, str]) -> None:
        if not await self.store.set_alert_state(alert_id, "dismissed", "proposed"):
            raise NotifyError("only a proposed alert can be dismissed")
        await self.record(actor, "notify.alert.dismiss", f"alert:{alert_id}", {})

    # -- manual sends, updates, all clear ----------------------------------------------------

    async def send_manual(self, *, area: cap.Area, categories: Sequence[str],
                          template: NotifyTemplate, scope: Literal["Public", "Private"],
                          actor: tuple[str, str], incident: str = "") -> StoredAlert:
        targets = await self.in_area(area, categories)
        if scope == "Private" and not targets:
            raise NotifyError("no facility of these categories is inside the area; "
                              "nobody would be warned")
        facts = IncidentFacts(incident, "", "", None) if incident else None
        identifier = self._identifier()
        alert = self._plan(template=template, values={"type": "police activity",
                                                      "name": "facilities in the area",
                                                      "distance_m": "", "address": "",
                                                      "type_code": ""},
                           targets=targets, area=area, facts=facts, msg_type="Alert",
                           scope=scope, identifier=identifier)
        return await self._store(alert, state="sent", incident=incident, rule="manual",
                                 template="manual", targets=targets, kind="cap", actor=actor,
                                 body=lambda t: self._text(template, self._values(facts, t)))

    async def follow_up(self, alert_id: int, msg_type: Literal["Update", "Cancel"],
                        actor: tuple[str, str], *, headline: str = "",
                        description: str = "") -> StoredAlert:
        """An Update or a Cancel (all clear) of a sent alert, to the same recipients,
        referencing it and every message it followed."""
        original = await self.store.alert(alert_id)
        if original is None or original.state != "sent":
            raise NotifyError("only a sent alert can be updated or cancelled")
        if original.msg_type == "Cancel":
            raise NotifyError("the alert was already cancelled (all clear sent)")
        facilities = {f.id: f for f in await self.store.facilities(original.facilities)}
        distances = original.plan.get("distances", {})
        targets = [Target(facilities[i], float(distances.get(i, 0.0)))
                   for i in original.facilities if i in facilities]
        refs = (*original.refs, f"{self.config.sender},{original.identifier},{original.sent}")
        references = tuple(cap.Reference(*r.split(",", 2)) for r in refs)
        info = original.plan["info"]
        all_clear = msg_type == "Cancel"
        template = NotifyTemplate(
            event=info["event"],
            headline=headline or ("All clear: " if all_clear else "Update: ") + info["headline"],
            description=description or ("The police activity is over; normal activity may "
                                        "resume." if all_clear else info["description"]),
            instruction="" if all_clear else info["instruction"])
        area = cap.Area.from_json(info["areas"][0]) if info.get("areas") else cap.Area("Area")
        facts = (IncidentFacts(original.incident, "", "", None) if original.incident else None)
        identifier = (self._identifier(original.identifier, "cancel") if all_clear
                      else self._identifier())
        alert = self._plan(template=template, values={}, targets=targets, area=area,
                           facts=facts, msg_type=msg_type, scope=original.scope,  # type: ignore[arg-type]
                           references=references, identifier=identifier)
        stored = await self._store(
            alert, state="sent", incident=original.incident, rule=original.rule,
            template=original.template, targets=targets, kind="cap", actor=actor,
            refs=refs, body=lambda _t: self._text(template, {}))
        if all_clear:
            await self.store.set_alert_state(alert_id, "cancelled", "sent")
        return stored

    async def all_clear(self, incident: str, actor: tuple[str, str]) -> list[StoredAlert]:
        done = []
        for alert in await self.store.alerts(incident=incident):
            if alert.state == "proposed":
                await self.store.set_alert_state(alert.id, "dismissed", "proposed")
            elif alert.state == "sent" and alert.msg_type != "Cancel":
                done.append(await self.follow_up(alert.id, "Cancel", actor))
        return done

    # -- owners --------------------------------------------------------------------------------

    async def notice(self, *, key: str, owner_id: str, email: str, subject: str,
                     body: str, actor: tuple[str, str]) -> bool:
        """A notice to a camera owner through the outbox (``key``: the notice's idempotency
        key); False when it was queued before."""
        if not email:
            return False
        token = secrets.token_urlsafe(24)
        text = f"{body}\n\nAcknowledge receipt (one click): {self.ack_url(token)}\n"
        queued = await self.store.queue([NewDelivery(
            key=key, kind="notice", channel="email", address=email, subject=subject,
            body=text, ack_token=token, owner_id=owner_id)])
        if queued:
            await self.record(actor, "notify.notice", f"owner:{owner_id}",
                              {"key": key, "subject": subject})
            self.outbox.wake()
        return bool(queued)

    async def acknowledge(self, token: str, source: str) -> Any:
        delivery = await self.store.acknowledge(token)
        if delivery is not None:
            await self.record((delivery.address, "recipient"), "notify.acknowledge",
                              f"delivery:{delivery.id}",
                              {"key": delivery.key, "source": source})
        return delivery

    async def resend(self, delivery_id: int, actor: tuple[str, str]) -> Any:
        delivery = await self.store.resend(delivery_id)
        if delivery is None:
            raise NotifyError("no such delivery")
        await self.record(actor, "notify.resend", f"delivery:{delivery_id}",
                          {"key": delivery.key})
        self.outbox.wake()
        return delivery



