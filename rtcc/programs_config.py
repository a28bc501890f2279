"""Configuration of the department's programs around the video: CAD incidents and their
emergency access, notifications to soft targets, facilities and their panic alarms.
``rtcc.config.Settings`` holds them; they are re-exported there."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmergencyPolicy(_Model):
    """What a CAD incident of one type unlocks: ``live_emergency`` cameras that can see its
    location (when ``can_see``), then the nearest within ``radius_m``, at most ``max_cameras``,
    for ``minutes``."""

    unlock: bool = False
    radius_m: Annotated[float, Field(ge=0, le=5000)] = 150.0
    can_see: bool = True
    max_cameras: Annotated[int, Field(ge=0, le=50)] = 8
    minutes: Annotated[float, Field(gt=0, le=1440)] = 60.0


class Sta024Config(_Model):
    url: Annotated[str, Field(pattern=r"^wss?://")]
    """The CAD notifier's WebSocket URL (``ws://`` or ``wss://``)."""
    incident_ids: list[str] = Field(default_factory=list)
    """Subscribe to these incidents only; empty: every incident."""
    expires: Annotated[int, Field(ge=10, le=86400)] = 3600
    authorization: SecretStr = SecretStr("")
    """Sent as the handshake's Authorization header when set."""


class IncidentsConfig(_Model):
    address_points: Path | None = None
    """The department's address points (CSV or GeoJSON) civic addresses are geocoded against."""
    lis_hosts: list[str] = Field(default_factory=list)
    """Host names a ``locationByReferenceUrl`` may be fetched from (https only)."""
    sta024: Sta024Config | None = None
    webhook_field_map: dict[str, Any] | None = None
    """How ``POST /api/cad/webhook`` records map onto incidents (see incidents.field_map)."""
    emergency_policies: dict[str, EmergencyPolicy] = Field(default_factory=dict)
    """Incident type code (as the CAD sends it) -> what it unlocks."""
    default_policy: EmergencyPolicy = EmergencyPolicy()
    """For type codes not listed: unlocks nothing unless configured."""
    two_person_rule: bool = False
    """Manual incidents opened by an analyst unlock emergency cameras only once a supervisor
    approves them."""
    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024**2)] = 1_000_000


class NotifyTemplate(_Model):
    """What a CAP alert says (its ``info``); texts may use ``{type}``, ``{type_code}``,
    ``{address}`` and ``{distance_m}`` of the incident and the facility."""

    event: Annotated[str, Field(min_length=1, max_length=200)] = "Police activity nearby"
    cap_category: Literal["Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env",
                          "Transport", "Infra", "CBRNE", "Other"] = "Security"
    response_type: Literal["Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor",
                           "Assess", "AllClear", "None"] = "Shelter"
    urgency: Literal["Immediate", "Expected", "Future", "Past", "Unknown"] = "Immediate"
    severity: Literal["Extreme", "Severe", "Moderate", "Minor", "Unknown"] = "Severe"
    certainty: Literal["Observed", "Likely", "Possible", "Unlikely", "Unknown"] = "Observed"
    headline: Annotated[str, Field(max_length=160)] = "Police activity near {name}"
    description: Annotated[str, Field(max_length=2000)] = (
        "Police are responding to {type} about {distance_m} m from {name}.")
    instruction: Annotated[str, Field(max_length=2000)] = (
        "Keep people inside, lock exterior doors and wait for the all clear.")
    expires_minutes: Annotated[float, Field(gt=0, le=10080)] = 240.0


class NotifyRule(_Model):
    """CAD incidents whose type code is one of ``codes`` (or whose type text contains one of
    ``keywords``) warn the facilities of ``categories`` within ``distance_m`` with
    ``template``: at once (``automatic``) or once an analyst confirms (``confirm``)."""

    codes: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    categories: Annotated[list[str], Field(min_length=1)]
    distance_m: Annotated[float, Field(gt=0, le=50000)]
    template: str = "default"
    mode: Literal["automatic", "confirm"] = "automatic"


class NotifyConfig(_Model):
    sender: str = "rtcc@department.invalid"
    """The CAP ``sender`` and the mails' From address."""
    sender_name: str = "Real-time crime center"
    status: Literal["Actual", "Exercise", "System", "Test", "Draft"] = "Actual"
    """The CAP ``status`` of every message: ``Exercise`` or ``Test`` for drills."""
    smtp_host: str = ""
    """The department's mail relay; empty: e-mail deliveries fail, saying so."""
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 25
    smtp_starttls: bool = False
    smtp_tls: bool = False
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    webhook_hosts: list[str] = Field(default_factory=list)
    """Host names webhooks may be sent to; their addresses pass the server's URL rules
    (private networks only where ``security.allow_private_camera_hosts`` allows them)."""
    public_url: str = ""
    """Base of the acknowledgement links in messages; empty: ``server.public_url``."""
    rules: list[NotifyRule] = Field(default_factory=list)
    templates: dict[str, NotifyTemplate] = Field(default_factory=lambda: {
        "default": NotifyTemplate()})
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    retry_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    """The first retry's wait; each next one doubles, up to ``retry_max_seconds``."""
    retry_max_seconds: Annotated[float, Field(gt=0, le=86400)] = 600.0
    send_timeout: Annotated[float, Field(gt=0, le=300)] = 30.0
    """Seconds one send may take; a send cut by a stop is retried with the same idempotency
    key once this lease has passed."""
    concurrency: Annotated[int, Field(ge=1, le=64)] = 8

    @model_validator(mode="after")
    def _templates_exist(self) -> NotifyConfig:
        for rule in self.rules:
            if rule.template not in self.templates:
                raise ValueError(f"notify rule template {rule.template!r} is not among "
                                 f"notify.templates ({', '.join(sorted(self.templates))})")
        return self


class CadEndpoint(_Model):
    """A 911/CAD system that takes panic alerts as EIDO documents (``POST``, JSON)."""

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    url: Annotated[str, Field(pattern=r"^https?://")]
    """Its host is the only one this endpoint's deliveries may go to; its addresses pass the
    server's URL rules (private networks only where ``security.allow_private_camera_hosts``
    allows them); redirects are refused."""
    token: SecretStr = SecretStr("")
    """Sent as ``Authorization: Bearer``; empty: no such header."""


class FacilitiesConfig(_Model):
    grant_minutes: Annotated[float, Field(gt=0, le=1440)] = 60.0
    """How long a panic alert grants live access to the facility's shared cameras (the grant
    ends earlier at the all clear)."""
    flood_alerts: Annotated[int, Field(ge=1, le=1000)] = 5
    """New alerts one device may raise per ``flood_window_seconds`` (retries are free)."""
    flood_window_seconds: Annotated[float, Field(gt=0, le=86400)] = 600.0
    enrol_minutes: Annotated[float, Field(gt=0, le=60 * 24 * 90)] = 7 * 24 * 60
    """How long an enrolment QR code may be used."""
    cad_endpoints: list[CadEndpoint] = Field(default_factory=list)
    """Where alerts (never drills) are forwarded as EIDO documents, with their all clear."""
    max_attempts: Annotated[int, Field(ge=1, le=1000)] = 50
    retry_seconds: Annotated[float, Field(gt=0, le=3600)] = 2.0
    """The first retry's wait; each next one doubles, up to ``retry_max_seconds``."""
    retry_max_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    send_timeout: Annotated[float, Field(gt=0, le=300)] = 15.0

    @model_validator(mode="after")
    def _unique_names(self) -> FacilitiesConfig:
        names = [e.name for e in self.cad_endpoints]
        if len(names) != len(set(names)):
            raise ValueError("facilities.cad_endpoints: each endpoint needs its own name")
        return self
