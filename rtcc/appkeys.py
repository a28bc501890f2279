"""Typed keys for what the application object carries; the only shared state between modules."""

from __future__ import annotations

from aiohttp import web

from rtcc.access import CameraDirectory, MediaAccess, SecretBox
from rtcc.config import Settings
from rtcc.hub import StreamHub
from rtcc.workers import WorkerPool

SETTINGS = web.AppKey("settings", Settings)
HUB = web.AppKey("hub", StreamHub)

MEDIA_ACCESS = web.AppKey[MediaAccess]("media_access")
CAMERA_DIRECTORY = web.AppKey[CameraDirectory]("camera_directory")
SECRET_BOX = web.AppKey[SecretBox]("secret_box")

# Threads for CPU-heavy work (password hashing), opened and closed by the application.
WORKERS = web.AppKey("workers", WorkerPool)
