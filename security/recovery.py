"""Views cut by a crash get their ``view.stop`` when the server starts again.

A view's ``view.start`` entry is matched by a ``view.stop`` with the same target
(``view:ID``) when the view ends. A server that was killed (power loss, SIGKILL, out of memory)
wrote no ``view.stop`` for the views it had open, so the log would show them open forever. At
start, before ``server.start`` is written, every ``view.start`` since the previous
``server.start`` without its ``view.stop`` gets one, saying the server stopped and that the
duration is unknown. The scan is bounded to the previous run's entries; views cut by a crash
before that run were the business of that run's start.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from security.audit import AuditEntry, AuditWriter

log = logging.getLogger(__name__)

CRASH_REASON = "the server stopped unexpectedly (recovered at start)"
UNCLOSED_REASON = "the server stopped without ending the view (recovered at start)"


def _details(entry: AuditEntry) -> dict[str, Any]:
    try:
        found = json.loads(entry.details)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def close_cut_views(writer: AuditWriter) -> list[AuditEntry]:
    """Append a ``view.stop`` for every view the previous run left open; returns them.

    Runs on the thread that owns the writer's store (the security store's thread in the
    server), before this run's ``server.start`` is written."""
    conn = writer.conn
    # Walks back from the newest entry and stops at the previous start: the previous run's
    # entries are read, not the whole log.
    row = conn.execute("SELECT id FROM audit WHERE action = 'server.start'"
                       " ORDER BY id DESC LIMIT 1").fetchone()
    since = 0 if row is None else int(row[0])
    rows = conn.execute(
        "SELECT * FROM audit WHERE id > ? AND action IN ('view.start', 'view.stop',"
        " 'server.stop') ORDER BY id", (since,)).fetchall()
    opened: dict[str, AuditEntry] = {}
    stopped_cleanly = False
    for found in rows:
        entry = AuditEntry.from_row(found)
        if entry.action == "server.stop":
            stopped_cleanly = True
        elif entry.action == "view.start" and entry.outcome == "ok" and entry.target:
            opened[entry.target] = entry
        elif entry.action == "view.stop":
            opened.pop(entry.target, None)
    reason = UNCLOSED_REASON if stopped_cleanly else CRASH_REASON
    written: list[AuditEntry] = []
    for start in opened.values():
        details = _details(start)
        grant = details.get("grant")
        grant_id = grant.get("id", "") if isinstance(grant, dict) else str(grant or "")
        written.append(writer.append(
            actor=start.actor, role=start.role, action="view.stop", target=start.target,
            camera_id=start.camera_id, owner_id=start.owner_id, source=start.source,
            details={"profile": details.get("profile", ""),
                     "purpose": details.get("purpose", ""),
                     "incident": details.get("incident"), "duration_s": None,
                     "grant": grant_id, "reason": reason, "started_entry": start.id}))
    if written:
        log.warning("audit: %d view(s) left open by the previous run were closed in the log "
                    "(%s)", len(written), reason)
    return written
