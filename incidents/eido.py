"""NENA EIDO (NENA-STA-021.1b, JSON) read into incident updates.

Liberal where a value can still be read safely: field names of earlier drafts
(``LastUpdateTimeStamp``, ``locationInformationComponent``), names in another letter case, a
component given as one object instead of an array, a priority sent as a digit string, messy
PIDF-LO. Strict everywhere else: a wrong type, a missing tracking id or update time, a time
without a UTC offset, duplicate keys, or a document over the limits refuses the whole input with
every field-level problem listed (EidoError). A location that cannot be read does not refuse the
update: it is listed in ``IncidentUpdate.location_problems`` so nothing else is lost.

EIDO 1.x carries no CAD entry time and no per-unit status history: ``call_received`` is the
earliest ``callStartTimestamp``, ``dispatched`` the earliest dispatch component, and en route, on
scene and cleared the earliest update of a unit whose primary status says so.
"""

from __future__ import annotations

import html
import json
import re
from datetime import datetime
from typing import Any

from incidents.model import (
    MAX_NOTE_CHARS,
    MAX_NOTES,
    CadTimes,
    FieldProblem,
    IncidentParseError,
    IncidentUpdate,
    Location,
    ReferenceLocation,
    describe,
    is_tracking_id,
    normalise_tracking_id,
)
from incidents.pidf import PidfError, parse_pidf

MAX_EIDO_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_ARRAY = 1000
MAX_DOCUMENTS = 200
MAX_TEXT = 500

_TAGS = re.compile(r"<[^<>]*>")


class EidoError(IncidentParseError):
    """An EIDO input was refused; ``problems`` lists every field that could not be read."""

    def __init__(self, problems: list[FieldProblem] | tuple[FieldProblem, ...]) -> None:
        super().__init__("the EIDO", problems)


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def parse_eido(data: bytes | str, *, max_bytes: int = MAX_EIDO_BYTES) -> list[IncidentUpdate]:
    """The incident updates in an EIDO body: one document or an array of them.

    Raises EidoError listing every problem (paths like ``[2].incidentComponent[0].x`` when the
    body is an array).
    """
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise EidoError([FieldProblem("$", f"a body of at most {max_bytes} bytes",
                                      f"{len(raw)} bytes")])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EidoError([FieldProblem("$", "UTF-8 encoded JSON",
                                      f"bytes that are not UTF-8 at offset {exc.start}")]) from None
    try:
        body = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _Duplicate as exc:
        raise EidoError([FieldProblem("$", "each key once per object",
                                      f"the key {exc.key[:60]!r} twice")]) from None
    except RecursionError:
        raise EidoError([FieldProblem("$", f"JSON nested at most {MAX_DEPTH} levels deep",
                                      "deeper nesting")]) from None
    except ValueError as exc:
        raise EidoError([FieldProblem("$", "a JSON document", f"invalid JSON ({exc})")]) from None
    over = _over_limits(body)
    if over:
        raise EidoError([over])
    if isinstance(body, list):
        if not body:
            raise EidoError([FieldProblem("$", "an EIDO object or a non-empty array of them",
                                          "an empty array")])
        if len(body) > MAX_DOCUMENTS:
            raise EidoError([FieldProblem("$", f"at most {MAX_DOCUMENTS} EIDOs per request",
                                          f"{len(body)}")])
        documents = [(f"[{i}].", doc) for i, doc in enumerate(body)]
    else:
        documents = [("", body)]
    problems: list[FieldProblem] = []
    updates: list[IncidentUpdate] = []
    for prefix, doc in documents:
        update = _Reader(prefix, problems).document(doc)
        if update is not None:
            updates.append(update)
    if problems:
        raise EidoError(problems)
    return updates


# -- Limits ------------------------------------------------------------------------------------


def _over_limits(body: object) -> FieldProblem | None:
    """The first place nested deeper than MAX_DEPTH or holding an array longer than MAX_ARRAY
    (walked without recursion: json.loads accepts nesting far deeper than is reasonable)."""
    stack: list[tuple[object, str, int]] = [(body, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if not isinstance(value, list | dict):
            continue
        if depth > MAX_DEPTH:
            return FieldProblem(path or "$", f"JSON nested at most {MAX_DEPTH} levels deep",
                                "deeper nesting")
        if isinstance(value, list):
            if len(value) > MAX_ARRAY:
                return FieldProblem(path or "$", f"an array of at most {MAX_ARRAY} items",
                                    f"{len(value)} items")
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
        else:
            stack.extend((item, f"{path}.{key}" if path else str(key), depth + 1)
                         for key, item in value.items())
    return None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


# -- Reading one document ----------------------------------------------------------------------

_UNIT_STATUS: dict[str, str] = {
    "dispatched": "dispatched", "assigned": "dispatched",
    "enroute": "en_route", "responding": "en_route",
    "onscene": "on_scene", "arrived": "on_scene", "atscene": "on_scene",
    "cleared": "cleared", "available": "cleared", "inquarters": "cleared",
    "completed": "cleared",
}


class _Reader:
    def __init__(self, prefix: str, problems: list[FieldProblem]) -> None:
        self.prefix = prefix
        self.problems = problems

    def problem(self, path: str, expected: str, found: object, *, said: str | None = None) -> None:
        """Record a problem; ``said`` replaces the rendering of ``found`` with our own words."""
        self.problems.append(FieldProblem(self.prefix + path, expected,
                                          said if said is not None else describe(found)))

    def get(self, obj: dict[str, Any], path: str, *names: str) -> tuple[str, Any] | None:
        """(path of the key found, value) for the first of ``names`` present in any letter
        case; two spellings of one field with different values is a problem."""
        wanted = {n.lower() for n in names}
        found = [(k, v) for k, v in obj.items() if k.lower() in wanted]
        if not found:
            return None
        if any(v != found[0][1] for _, v in found[1:]):
            self.problem(f"{path}{found[0][0]}", "one value per field", None,
                         said=f"also spelled {', '.join(k for k, _ in found[1:])} with another "
                              "value")
        return f"{path}{found[0][0]}", found[0][1]

    def text(self, obj: dict[str, Any], path: str, *names: str) -> str | None:
        got = self.get(obj, path, *names)
        if got is None or got[1] is None:
            return None
        where, value = got
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = "; ".join(v.strip() for v in value if v.strip())
        if not isinstance(value, str):
            self.problem(where, "a string", value)
            return None
        value = " ".join(value.split())
        if len(value) > MAX_TEXT:
            self.problem(where, f"at most {MAX_TEXT} characters", None,
                         said=f"{len(value)} characters")
            return None
        return value or None

    def time(self, obj: dict[str, Any], path: str, *names: str) -> datetime | None:
        got = self.get(obj, path, *names)
        if got is None or got[1] is None:
            return None
        return self.parse_time(*got)

    def parse_time(self, where: str, value: object) -> datetime | None:
        expected = "an ISO 8601 date-time with a UTC offset, e.g. 2021-04-30T14:43:49.439-04:00"
        if not isinstance(value, str) or len(value) > 64:
            self.problem(where, expected, value)
            return None
        try:
            when = datetime.fromisoformat(_trim_fraction(value.strip()))
        except ValueError:
            self.problem(where, expected, value)
            return None
        if when.tzinfo is None or when.utcoffset() is None:
            self.problem(where, expected, None, said=f"{describe(value)}, which has no UTC offset")
            return None
        return when

    def components(self, doc: dict[str, Any], *names: str,
                   single_ok: bool = False) -> list[tuple[str, dict[str, Any]]]:
        got = self.get(doc, "", *names)
        if got is None or got[1] is None:
            return []
        where, value = got
        if isinstance(value, dict) and single_ok:
            return [(f"{where}.", value)]
        if not isinstance(value, list):
            self.problem(where, "an array of objects", value)
            return []
        out = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                out.append((f"{where}[{i}].", item))
            else:
                self.problem(f"{where}[{i}]", "an object", item)
        return out

    def refs(self, obj: dict[str, Any], path: str, *names: str) -> list[str]:
        got = self.get(obj, path, *names)
        if got is None or got[1] is None:
            return []
        where, value = got
        items = value if isinstance(value, list) else [value]
        out = []
        for i, item in enumerate(items):
            ref = item.get("$ref") if isinstance(item, dict) else item
            if isinstance(ref, str):
                out.append(ref)
            else:
                self.problem(f"{where}[{i}]" if isinstance(value, list) else where,
                             'a reference {"$ref": "<id>"}', item)
        return out

    # -- the document --

    def document(self, doc: object) -> IncidentUpdate | None:
        if not isinstance(doc, dict):
            self.problem("$", "an EIDO object", doc)
            return None
        before = len(self.problems)
        incidents = self.components(doc, "incidentComponent", single_ok=True)
        incident = incidents[0] if incidents else None
        tracking_id = self.tracking_id(doc, incident)
        updated_at = self.time(doc, "", "lastUpdateTimeStamp")
        if updated_at is None and self.get(doc, "", "lastUpdateTimeStamp") is None:
            self.problem("lastUpdateTimeStamp", "the time of this update (ISO 8601 with offset)",
                         None)
        fields = self.incident_fields(*incident) if incident else {}
        refs = self.refs(incident[1], incident[0], "locationReference") if incident else []
        location, location_problems = self.location(doc, refs)
        times, units = self.times_and_units(doc)
        notes = self.notes(doc)
        if len(self.problems) > before or tracking_id is None or updated_at is None:
            return None
        return IncidentUpdate(
            tracking_id=tracking_id, updated_at=updated_at, location=location, times=times,
            units=units, notes=notes, location_problems=tuple(location_problems), source="eido",
            **fields)

    def tracking_id(self, doc: dict[str, Any],
                    incident: tuple[str, dict[str, Any]] | None) -> str | None:
        expected = ("an incident tracking id 'urn:emergency:uid:incidentid:<id>:<domain>' in "
                    "incidentTrackingIdentifier (or the document's $id)")
        for obj, path in ((doc, ""), (incident[1], incident[0]) if incident else (None, "")):
            if obj is None:
                continue
            got = self.get(obj, path, "incidentTrackingIdentifier")
            if got is not None:
                if isinstance(got[1], str) and is_tracking_id(got[1].strip()):
                    return normalise_tracking_id(got[1].strip())
                self.problem(got[0], expected, got[1])
                return None
        own = doc.get("$id")
        if isinstance(own, str) and is_tracking_id(own.strip()):
            return normalise_tracking_id(own.strip())
        self.problem("incidentTrackingIdentifier", expected, None,
                     said="nothing" if own is None else f"$id {describe(own)}")
        return None

    def incident_fields(self, path: str, incident: dict[str, Any]) -> dict[str, Any]:
        status = (self.text(incident, path, "incidentStatusInternalText")
                  or self.text(incident, path, "incidentStatusCommonRegistryText"))
        return {
            "type_code": self.text(incident, path, "incidentTypeInternalCode"),
            "type_text": self.text(incident, path, "incidentTypeInternalText"),
            "common_type": self.text(incident, path, "incidentTypeCommonRegistryText"),
            "status": status,
            "priority": self.priority(incident, path),
        }

    def priority(self, incident: dict[str, Any], path: str) -> int | None:
        got = self.get(incident, path, "incidentCommonPriorityNumber")
        if got is None or got[1] is None:
            return None
        where, value = got
        if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 6:
            value = int(value.strip())  # a digit string is unambiguous
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 999_999:
            self.problem(where, "a non-negative integer priority", value)
            return None
        return value

    def location(self, doc: dict[str, Any],
                 refs: list[str]) -> tuple[Location | None, list[FieldProblem]]:
        components = self.components(doc, "locationComponent", "locationInformationComponent")

        def rank(item: tuple[int, tuple[str, dict[str, Any]]]) -> tuple[int, int]:
            i, (_, comp) = item
            kind = str(next((v for k, v in comp.items()
                             if k.lower() == "locationtypedescriptionregistrytext"), "")).lower()
            return (0 if comp.get("$id") in refs else 1 if "incident" in kind else 2, i)

        problems: list[FieldProblem] = []
        reference: ReferenceLocation | None = None
        for _, (path, comp) in sorted(enumerate(components), key=rank):
            got = self.get(comp, path, "locationByValue")
            if got is not None and got[1] is not None:
                where, value = got
                if not isinstance(value, str):
                    problems.append(FieldProblem(self.prefix + where, "PIDF-LO XML as a string",
                                                 describe(value)))
                    continue
                try:
                    return parse_pidf(value), problems
                except PidfError as exc:
                    problems.append(FieldProblem(
                        self.prefix + where,
                        "a PIDF-LO location (geodetic shape or civicAddress)", str(exc)))
                    continue
            got = self.get(comp, path, "locationByReferenceUrl")
            if got is not None and got[1] is not None and reference is None:
                where, value = got
                if isinstance(value, str) and re.fullmatch(r"https?://\S{1,2000}", value.strip(),
                                                           re.IGNORECASE):
                    reference = ReferenceLocation(value.strip())
                else:
                    problems.append(FieldProblem(self.prefix + where, "an http(s) URL",
                                                 describe(value)))
        return reference, problems

    def times_and_units(self, doc: dict[str, Any]) -> tuple[CadTimes, tuple[str, ...]]:
        found: dict[str, list[datetime]] = {}

        def note(name: str, when: datetime | None) -> None:
            if when is not None:
                found.setdefault(name, []).append(when)

        for path, call in self.components(doc, "callComponent"):
            note("call_received", self.time(call, path, "callStartTimestamp"))
        # A unit is named by its emergencyResourceName, else its $id; a dispatch may reference
        # units the document does not describe, named then by the reference alone.
        names: dict[str, str] = {}
        units: list[str] = []
        resources = self.components(doc, "emergencyResourceComponent")
        for path, unit in resources:
            own = unit.get("$id")
            name = self.text(unit, path, "emergencyResourceName") or own
            if isinstance(name, str):
                names[own if isinstance(own, str) else f"{path}$id"] = name[:MAX_TEXT]
        for path, dispatch in self.components(doc, "dispatchComponent"):
            note("dispatched", self.time(dispatch, path, "lastUpdateTimeStamp"))
            units.extend(names.get(ref, ref[:MAX_TEXT])
                         for ref in self.refs(dispatch, path, "emergencyResourceReference"))
        units.extend(names.values())
        for path, unit in resources:
            status = self.text(unit, path, "primaryUnitStatusRegistryText") or ""
            field = _UNIT_STATUS.get(re.sub(r"[^a-z]", "", status.lower()))
            if field:
                note(field, self.time(unit, path, "lastUpdateTimeStamp"))
        times = CadTimes(**{name: min(values) for name, values in found.items()})
        return times, tuple(dict.fromkeys(units))[:100]

    def notes(self, doc: dict[str, Any]) -> tuple[str, ...]:
        notes: list[str] = []
        for path, comp in self.components(doc, "notesComponent"):
            got = self.get(comp, path, "notesActionComments")
            if got is None or got[1] is None:
                continue
            if not isinstance(got[1], str):
                self.problem(got[0], "a string (HTML5 text)", got[1])
                continue
            plain = " ".join(html.unescape(_TAGS.sub(" ", got[1])).split())
            if plain and len(notes) < MAX_NOTES:
                notes.append(plain[:MAX_NOTE_CHARS])
        return tuple(notes)


def _trim_fraction(value: str) -> str:
    """Python reads at most 6 fractional digits; CADs send up to 9."""
    return re.sub(r"(\.\d{6})\d+", r"\1", value)

