"""Time-based one-time passwords (RFC 6238, 30 s, 6 digits) with replay protection."""

from __future__ import annotations

import hmac

import pyotp

ISSUER = "RTCC"
STEP = 30
DRIFT_STEPS = 1
"""Codes from one step before or after are accepted (clock drift of the user's phone)."""


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str, issuer: str = ISSUER) -> str:
    return str(pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer))


def code_at(secret: str, when: float) -> str:
    return str(pyotp.TOTP(secret).at(int(when)))


def verify(secret: str, code: str, now: float, last_step: int) -> int | None:
    """The time step the code belongs to, or None when the code is wrong or already used.

    A step at or before ``last_step`` is refused, so a code observed once cannot be replayed.
    """
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int(now) // STEP
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if step <= last_step:
            continue
        if hmac.compare_digest(str(totp.at(step * STEP)), code):
            return step
    return None
