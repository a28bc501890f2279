"""Bookmarks and notes on a camera's timeline, kept with the case (table ``case_marks``).

A bookmark marks one instant (``at``), a note may span ``at``..``end`` and carries text. Marks
are never edited; a wrong one is deleted by its author. Functions take the synchronous store:
run them on the evidence store's thread (``AsyncEvidenceStore.call``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from evidence.store import EvidenceStore
from rtcc.db import Row

KINDS = frozenset({"bookmark", "note"})


@dataclass(frozen=True, slots=True)
class Mark:
    id: int
    case_number: str
    camera_id: str
    kind: str
    at: float
    end: float | None
    text: str
    created_by: str
    created_by_id: int
    created_at: float

    @classmethod
    def from_row(cls, row: Row) -> Mark:
        return cls(
            id=int(row["id"]), case_number=row["case_number"], camera_id=row["camera_id"],
            kind=row["kind"], at=float(row["utc_at"]),
            end=None if row["utc_end"] is None else float(row["utc_end"]), text=row["text"],
            created_by=row["created_by"], created_by_id=int(row["created_by_id"]),
            created_at=float(row["created_at"]))

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "case": self.case_number, "camera_id": self.camera_id,
                "kind": self.kind, "at": self.at, "end": self.end, "text": self.text,
                "created_by": self.created_by, "created_at": self.created_at}


def add_mark(store: EvidenceStore, *, case_number: str, camera_id: str, kind: str, at: float,
             end: float | None, text: str, created_by: str, created_by_id: int,
             now: float) -> Mark:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}")
    # fetchall: an SQLite statement with RETURNING ends (and commits) once read to the end.
    rows = store.fetchall(
        "INSERT INTO case_marks (case_number, camera_id, kind, utc_at, utc_end, text,"
        " created_by, created_by_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        (case_number, camera_id, kind, at, end, text, created_by, created_by_id, now))
    return Mark(int(rows[0][0]), case_number, camera_id, kind, at, end, text, created_by,
                created_by_id, now)


def marks_of_case(store: EvidenceStore, case_number: str,
                  cameras: Collection[str] | None = None) -> list[Mark]:
    """The case's marks in time order; only those on ``cameras`` when given."""
    rows = store.fetchall("SELECT * FROM case_marks WHERE case_number = ? ORDER BY utc_at, id",
                          (case_number,))
    marks = [Mark.from_row(row) for row in rows]
    return marks if cameras is None else [m for m in marks if m.camera_id in cameras]


def delete_mark(store: EvidenceStore, mark_id: int, created_by_id: int) -> bool:
    """Delete the author's own mark; False when there is no such mark of theirs."""
    cursor = store.execute("DELETE FROM case_marks WHERE id = ? AND created_by_id = ?",
                           (mark_id, created_by_id))
    return bool(cursor.rowcount)
