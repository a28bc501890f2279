"""The tip line's key on the application (set by ``tips.tips_context``)."""

from __future__ import annotations

from aiohttp import web

from tips.service import TipLine

TIP_LINE = web.AppKey("tip_line", TipLine)
