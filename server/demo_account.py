"""The demo's administrator: a fresh password at every start, printed once on the terminal."""

from __future__ import annotations

import asyncio
import io
import secrets
import time

from PIL import Image, ImageDraw

from facilities.store import FacilityStore
from rtcc.access import Actor
from rtcc.config import Settings
from rtcc.db import Database
from rtcc.policy import Role
from security.core import SecurityCore

DEMO_USER = "demo"
DEMO_CAD_USER = "demo-cad"
"""The integration account the demo's CAD simulator posts incidents with."""


async def reset_demo_admin(settings: Settings) -> tuple[str, str]:
    """Create the demo administrator, or give it a new password; returns (user, password)."""
    password = "demo-" + secrets.token_urlsafe(12)
    actor = Actor("demo-setup", str(Role.ADMIN), "local")
    core = await SecurityCore.open(settings)
    try:
        user = await core.accounts.by_name(DEMO_USER)
        if user is None:
            await core.accounts.create_user(
                actor, DEMO_USER, Role.ADMIN, password=password, display_name="Demo administrator",
                enroll_totp=False,
            )
        else:
            await core.accounts.set_password(actor, user.id, password)
            await core.accounts.unlock(actor, user.id)
    finally:
        await core.aclose()
    return DEMO_USER, password


async def demo_cad_token(settings: Settings) -> str:
    """A new API token for the demo's CAD integration account (created on first use)."""
    actor = Actor("demo-setup", str(Role.ADMIN), "local")
    core = await SecurityCore.open(settings)
    try:
        user = await core.accounts.by_name(DEMO_CAD_USER)
        if user is None:
            user, _ = await core.accounts.create_user(
                actor, DEMO_CAD_USER, Role.INTEGRATION, password=None,
                display_name="Demo CAD (simulator)", token_only=True)
        _, token = await core.tokens.create(user.id, "demo cadsim")
    finally:
        await core.aclose()
    return token


DEMO_SCHOOL_SITE = "lincoln-elementary"
_ROOMS = (("101", "Office", 0.15, 0.3), ("104", "Library", 0.45, 0.3), ("110", "Gym", 0.8, 0.6))


def _demo_plan() -> bytes:
    """A simple drawn floor plan: three rooms along a corridor, with their numbers."""
    image = Image.new("RGB", (800, 500), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 20, 780, 480), outline="black", width=4)
    draw.rectangle((20, 230, 780, 270), fill=(230, 230, 230))
    for number, name, x, y in _ROOMS:
        cx, cy = int(x * 800), int(y * 500)
        draw.rectangle((cx - 90, cy - 80, cx + 90, cy + 80), outline="black", width=3)
        draw.text((cx - 30, cy - 10), f"{number} {name}", fill="black")
    draw.text((380, 460), "Door 1 (main entrance)", fill="black")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _demo_school_sync(settings: Settings) -> str:
    database = Database.from_settings(settings)
    store = FacilityStore(database, time.time)
    try:
        store._open_tables()  # noqa: SLF001 -- a command-line step: this thread owns the store
        found = [f for f in store.facilities("district-186") if f.site_id == DEMO_SCHOOL_SITE]
        if found:
            facility = found[0]
        else:
            facility = store.create_facility(
                "district-186", DEMO_SCHOOL_SITE, "Lincoln Elementary", "school",
                "300 S 11th St, Springfield", 39.79842, -89.65105, "alert")
            store.update_facility(facility.id, {}, {
                "buildings": [{"name": "Main building"}],
                "entrances": [{"door": "1", "text": "Main entrance, west side"}],
                "staging_areas": [{"text": "Church parking lot across 11th St"}],
                "contacts": [{"name": "Principal A. Ruiz", "phone": "555-0100",
                              "role": "key holder"}],
                "sops": [{"text": "Lockdown: lock doors, lights off, away from windows"}],
                "hazards": [{"text": "Boiler room under the gym"}]}, reviewed=True)
            floor = store.add_floor(facility.id, "Main building", "Ground floor", 0)
            store.set_plan(floor.id, _demo_plan(), 800, 500)
            for number, name, x, y in _ROOMS:
                store.add_room(facility.id, floor.id, name, number, x, y)
        return store.add_enrolment(facility.id, "Demo phone", "", 24 * 3600)
    finally:
        store._release()  # noqa: SLF001
        database.close()


async def demo_school(settings: Settings) -> str:
    """The demo's enrolled school (Lincoln Elementary, a floor plan with three rooms): created
    once; a new one-time enrolment code for a phone at every start."""
    return await asyncio.to_thread(_demo_school_sync, settings)
