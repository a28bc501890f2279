"""Camera ids: the one rule every package checks them with, and the ids of agents' cameras.

A camera id is 1 to 64 characters of ``a-z 0-9 _ -``, starting with a letter or a digit, so it
is safe in a URL path, a file name and a log line as it is. The server gives a camera reported by
an owner's agent the id ``camera_id_for(agent_id, key)``; the agent derives the same id itself.
"""

from __future__ import annotations

import hashlib
import re
from typing import NewType, TypeGuard

CameraId = NewType("CameraId", str)

CAMERA_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
CAMERA_ID_RULE = "1-64 of a-z 0-9 _ -, starting with a letter or digit"
"""The rule in words, for error messages."""


def is_camera_id(value: object) -> TypeGuard[CameraId]:
    return isinstance(value, str) and CAMERA_ID.fullmatch(value) is not None


def camera_id(value: object) -> CameraId:
    """``value`` as a camera id; ``ValueError`` (naming the rule) when it is not one."""
    if not is_camera_id(value):
        raise ValueError(f"not a valid camera id ({CAMERA_ID_RULE})")
    return value


def camera_id_for(agent_id: str, key: str) -> CameraId:
    """Stable across restarts and re-reports: the agent's id and a digest of the camera key."""
    return CameraId(f"{agent_id}-{hashlib.sha256(key.encode()).hexdigest()[:10]}")
