"""Reading the records system's CSV of reported crimes (NIBRS offence codes).

Columns, by header name (case-blind): ``case_number``, ``nibrs_code``, ``occurred_at`` (ISO
8601; a time without offset is read as UTC), and optionally ``offense``, ``latitude``,
``longitude``, ``address``. A file is imported whole or not at all: every problem is reported
with its line, so the clerk fixes them all in one pass.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from rtcc.errors import RtccError

REQUIRED = ("case_number", "nibrs_code", "occurred_at")
OPTIONAL = ("offense", "latitude", "longitude", "address")
MAX_ROWS = 200_000
MAX_PROBLEMS_SHOWN = 20
_NIBRS = re.compile(r"[0-9]{2}[0-9A-Z]")
_CASE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}")


@dataclass(frozen=True, slots=True)
class ReportedCrime:
    case_number: str
    nibrs_code: str
    offense: str
    occurred_at: datetime
    lat: float | None
    lon: float | None
    address: str | None


class RecordsImportError(RtccError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = (f" (and {len(problems) - MAX_PROBLEMS_SHOWN} more)"
                if len(problems) > MAX_PROBLEMS_SHOWN else "")
        super().__init__(f"the reported crimes CSV was refused, {len(problems)} problem(s): "
                         f"{shown}{more}. Nothing was imported; fix these lines and send the "
                         "file again.")


def _coordinate(text: str, low: float, high: float) -> float | None:
    value = float(text)
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"outside {low:g}..{high:g}")
    return value


def parse_records(text: str) -> list[ReportedCrime]:
    """The file's crimes, or ``RecordsImportError`` listing every line that cannot be read."""
    reader = csv.DictReader(io.StringIO(text))
    header = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise RecordsImportError([f"header: missing column(s) {', '.join(missing)} "
                                  f"(found {', '.join(sorted(header)) or 'none'})"])
    crimes: list[ReportedCrime] = []
    problems: list[str] = []
    seen: set[str] = set()
    for line, row in enumerate(reader, start=2):
        if len(crimes) + len(problems) >= MAX_ROWS:
            problems.append(f"more than {MAX_ROWS} rows; split the file")
            break

        def cell(name: str, row: dict[str, str | None] = row) -> str:
            key = header.get(name)
            return (row.get(key) or "").strip() if key is not None else ""

        case = cell("case_number")
        code = cell("nibrs_code").upper()
        where = f"line {line}"
        if not _CASE.fullmatch(case):
            problems.append(f"{where}: case_number {case[:40]!r} is not 1-64 letters, digits, "
                            "_ . : / -")
            continue
        if case in seen:
            problems.append(f"{where}: case_number {case!r} appears twice")
            continue
        seen.add(case)
        if not _NIBRS.fullmatch(code):
            problems.append(f"{where}: nibrs_code {code[:20]!r} is not a NIBRS offence code "
                            "such as 13A or 220")
            continue
        try:
            occurred = datetime.fromisoformat(cell("occurred_at"))
        except ValueError:
            problems.append(f"{where}: occurred_at {cell('occurred_at')[:40]!r} is not an "
                            "ISO 8601 time such as 2026-11-03T14:05:00-06:00")
            continue
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=UTC)
        lat = lon = None
        if cell("latitude") or cell("longitude"):
            try:
                lat = _coordinate(cell("latitude"), -90, 90)
                lon = _coordinate(cell("longitude"), -180, 180)
            except ValueError as exc:
                problems.append(f"{where}: latitude/longitude "
                                f"{cell('latitude')[:20]!r},{cell('longitude')[:20]!r}: {exc}")
                continue
        crimes.append(ReportedCrime(case, code, cell("offense")[:200], occurred.astimezone(UTC),
                                    lat, lon, cell("address")[:200] or None))
    if problems:
        raise RecordsImportError(problems)
    return crimes
