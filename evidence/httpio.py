"""Request parsing, error answers and audit entries shared by the evidence routes."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from evidence.context import EVIDENCE, EvidenceCore
from recording.times import parse_utc
from rtcc.appkeys import AUDIT
from rtcc.errors import AuditWriteError
from rtcc.http import error, required
from rtcc.principal import Principal, client_address

CAMERA_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
CASE_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _./:#-]{0,63}$")
NOTHING_DONE = ("the audit log cannot be written, so nothing was done; tell an "
                "administrator")


def evidence_core(request: web.Request) -> EvidenceCore:
    try:
        return request.config_dict[EVIDENCE]
    except KeyError:
        raise error(503, "the evidence store is not running") from None


async def audit(request: web.Request, principal: Principal, action: str, *, target: str = "",
                camera_id: str = "", owner_id: str = "", outcome: str = "ok",
                details: dict[str, Any] | None = None, refusal: str | None = NOTHING_DONE) -> None:
    """Write the audit entry. When the log cannot be written, refuse the action (503 with
    ``refusal``), or go on when ``refusal`` is None (what is audited has already happened)."""
    try:
        await required(request, AUDIT, "the security core").append(
            actor=principal.username, role=str(principal.role), action=action, target=target,
            camera_id=camera_id, owner_id=owner_id, outcome=outcome,
            source=client_address(request), details=details)
    except AuditWriteError:
        if refusal is not None:
            raise error(503, refusal) from None


def text(fields: dict[str, Any], name: str, *, limit: int = 300, required: bool = False,
         pattern: re.Pattern[str] | None = None) -> str:
    value = fields.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise error(400, f"{name} must be text")
    value = "".join(ch if ch.isprintable() else " " for ch in value).strip()
    if len(value) > limit:
        raise error(400, f"{name} is longer than {limit} characters")
    if required and not value:
        raise error(400, f"{name} is required")
    if value and pattern is not None and not pattern.fullmatch(value):
        raise error(400, f"{name} has characters that are not allowed")
    return value


def parse_time(value: object, name: str) -> float:
    """UTC epoch seconds, or an ISO-8601 time with a zone (``2024-05-01T12:00:00Z``)."""
    try:
        return parse_utc(value, name)
    except ValueError as exc:
        raise error(400, str(exc)) from None


def time_range(fields: dict[str, Any]) -> tuple[float, float]:
    start = parse_time(fields.get("from", fields.get("start")), "from")
    end = parse_time(fields.get("to", fields.get("end")), "to")
    if end <= start:
        raise error(400, "'to' must be after 'from'")
    return start, end


def camera_list(fields: dict[str, Any], limit: int = 200) -> list[str]:
    value = fields.get("cameras", [])
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not value or len(value) > limit:
        raise error(400, f"cameras must list 1 to {limit} camera ids")
    cameras: list[str] = []
    for item in value:
        if not isinstance(item, str) or not CAMERA_ID.fullmatch(item):
            raise error(400, "cameras: each must be a camera id")
        cameras.append(item)
    return list(dict.fromkeys(cameras))

