"""The server's error hierarchy. Messages say what happened, to what, and what to do."""

from __future__ import annotations


class RtccError(Exception):
    """Base of every error this server raises on purpose."""


class ConfigError(RtccError):
    """A configuration file is missing, unreadable or invalid."""


class CameraNotFound(RtccError):
    def __init__(self, camera_id: str) -> None:
        super().__init__(f"camera {camera_id!r} is not registered")
        self.camera_id = camera_id


class ProfileNotFound(RtccError):
    def __init__(self, camera_id: str, profile: str) -> None:
        super().__init__(f"camera {camera_id!r} has no {profile!r} profile")
        self.camera_id = camera_id
        self.profile = profile


class SourceUnavailable(RtccError):
    """A camera could not be reached or did not send video in time."""


class StreamClosed(RtccError):
    """The stream a subscriber was reading has been shut down."""


class CodecNotSupported(RtccError):
    """The camera's media cannot be passed to this viewer without transcoding."""


class ConsentDenied(RtccError):
    """The camera owner's sharing level or windows do not allow this access now."""


class UnsafeUrl(RtccError):
    """A camera URL was refused (scheme, or a host on a forbidden network)."""


class AuditWriteError(RtccError):
    """The audit log could not be written; the audited action must not happen."""


class StoreUnavailable(RtccError):
    """A store another domain depends on did not answer; the caller may try again shortly."""
