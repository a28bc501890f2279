"""Errors the catalog raises on purpose. Each names the field at fault and what is allowed."""

from __future__ import annotations

from dataclasses import dataclass

from rtcc.errors import RtccError, StoreUnavailable


class FieldError(RtccError, ValueError):
    """A value given for one field was refused."""

    def __init__(self, field: str, reason: str, allowed: str = "") -> None:
        message = f"{field}: {reason}" + (f" (allowed: {allowed})" if allowed else "")
        super().__init__(message)
        self.field = field
        self.reason = reason
        self.allowed = allowed

    def as_dict(self) -> dict[str, str]:
        return {"error": self.reason, "field": self.field, "allowed": self.allowed}


class CameraExists(RtccError):
    def __init__(self, camera_id: str) -> None:
        super().__init__(f"camera {camera_id!r} is already registered; use PUT to replace it")
        self.camera_id = camera_id


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem in one row of a bulk import (rows count from 1, the header row excluded)."""

    row: int
    field: str
    reason: str
    allowed: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"row": self.row, "field": self.field, "reason": self.reason,
                "allowed": self.allowed}


class ImportRejected(RtccError):
    """A bulk import was refused as a whole; nothing was written."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"import refused: {len(errors)} row error(s), nothing was written")
        self.errors = errors


class ImportConflict(RtccError):
    """Cameras of a create-only import are already registered (nothing was written)."""

    def __init__(self, camera_ids: list[str]) -> None:
        super().__init__(f"{len(camera_ids)} camera(s) already registered")
        self.camera_ids = camera_ids


__all__ = [
    "CameraExists",
    "FieldError",
    "ImportConflict",
    "ImportRejected",
    "RowError",
    "StoreUnavailable",
]
