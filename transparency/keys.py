"""The application key the transparency service is published under."""

from __future__ import annotations

from aiohttp import web

from transparency.service import TransparencyService

TRANSPARENCY = web.AppKey("transparency_service", TransparencyService)
