"""Facility profiles (floors, rooms, plans, contacts, SOPs) and the panic alarm: enrolled staff
devices raise alerts that the RTCC acknowledges, checks in on and clears.

This package talks to incidents, security and the catalog only through the server's wiring
(``server.facility_access``): the service calls its step hooks, the server acts on them.
"""

from __future__ import annotations

PANIC_PREFIX = "/panic"
"""Path prefix of the panic app: its pages, files and device API."""
