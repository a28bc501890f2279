"""Token buckets that ration unauthenticated work (password hashing) per source address and
for the whole server.

A login attempt takes one token from its address's bucket and one from the global bucket before
any password is hashed; a successful login gives them back, so only failures use up the budget
(taking first and refunding later keeps a concurrent flood from overrunning the buckets). An
attempt refused for lack of tokens costs no hash and answers 429 with ``Retry-After``. Each
refused run is reported once: ``take`` says whether this refusal starts a new run for its key.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from rtcc.config import SecurityConfig
from rtcc.errors import AuditWriteError
from security.audit import AuditLog

log = logging.getLogger(__name__)

MAX_TRACKED_ADDRESSES = 10_000
"""Buckets kept for this many addresses; the least recently seen are dropped first (a dropped
address starts again with a full bucket, which is no more than a new address gets)."""

GLOBAL_KEY = "*"


@dataclass
class TokenBucket:
    """``burst`` tokens at most, refilled at ``rate`` tokens per second."""

    rate: float
    burst: float
    tokens: float
    updated: float
    limited: bool = False
    """True from the first refusal of a run until the next attempt allowed."""

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = max(self.updated, now)

    def wait(self) -> float:
        """Seconds until one token is available (0 when one is)."""
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: int = 0
    """Whole seconds to wait before trying again (at least 1 when refused)."""
    scope: str = ""
    """``address`` or ``global``: which limit refused the attempt."""
    first_refusal: bool = False
    """This refusal starts a run of refusals for its key (audit it; later ones are not)."""


@dataclass
class AttemptLimiter:
    """Per-address and global token buckets for attempts that hash a password."""

    per_address_per_minute: float
    per_address_burst: int
    global_per_minute: float
    global_burst: int
    clock: Callable[[], float]
    _addresses: OrderedDict[str, TokenBucket] = field(default_factory=OrderedDict)
    _global: TokenBucket | None = None

    @classmethod
    def from_config(cls, config: SecurityConfig, clock: Callable[[], float]) -> AttemptLimiter:
        return cls(config.login_attempts_per_minute, config.login_burst,
                   config.login_attempts_per_minute_global, config.login_burst_global, clock)

    def _bucket(self, address: str, now: float) -> TokenBucket:
        bucket = self._addresses.get(address)
        if bucket is None:
            if len(self._addresses) >= MAX_TRACKED_ADDRESSES:
                self._addresses.popitem(last=False)
            bucket = TokenBucket(self.per_address_per_minute / 60.0, self.per_address_burst,
                                 self.per_address_burst, now)
            self._addresses[address] = bucket
        else:
            self._addresses.move_to_end(address)
        bucket.refill(now)
        return bucket

    def _global_bucket(self, now: float) -> TokenBucket:
        if self._global is None:
            self._global = TokenBucket(self.global_per_minute / 60.0, self.global_burst,
                                       self.global_burst, now)
        self._global.refill(now)
        return self._global

    def take(self, address: str) -> Decision:
        """Take a token for an attempt from ``address``, or say how long to wait."""
        now = self.clock()
        mine = self._bucket(address, now)
        everyone = self._global_bucket(now)
        for bucket, scope in ((mine, "address"), (everyone, "global")):
            wait = bucket.wait()
            if wait > 0:
                first = not bucket.limited
                bucket.limited = True
                return Decision(False, max(1, math.ceil(wait)), scope, first)
        mine.tokens -= 1.0
        everyone.tokens -= 1.0
        mine.limited = everyone.limited = False
        return Decision(True)

    def refund(self, address: str) -> None:
        """Give back the tokens of an attempt that succeeded."""
        now = self.clock()
        for bucket in (self._bucket(address, now), self._global_bucket(now)):
            bucket.tokens = min(bucket.burst, bucket.tokens + 1.0)

_MESSAGES = {
    "address": "too many login attempts from this address; wait {seconds} s and try again",
    "global": "the server is refusing logins for a moment because of too many attempts; "
              "wait {seconds} s and try again",
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """A 429 answer: what to tell the caller and when to come back."""

    message: str
    retry_after: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


async def throttle(limiter: AttemptLimiter, audit: AuditLog, source: str, username: str,
                   action: str = "login") -> Refusal | None:
    """Take a token for an attempt from ``source`` (before any hashing), or the refusal to
    answer. The first refusal of a run is audited; the rest of the run only counts."""
    decision = limiter.take(source)
    if decision.allowed:
        return None
    message = _MESSAGES[decision.scope].format(seconds=decision.retry_after)
    if decision.first_refusal:
        log.warning("%s attempts from %s refused for %d s: the %s limit is reached",
                    action, source, decision.retry_after, decision.scope)
        try:
            await audit.append(actor=username[:64], role="", action=action, outcome="refused",
                               source=source,
                               details={"reason": f"too many attempts ({decision.scope} limit)",
                                        "retry_after": decision.retry_after})
        except AuditWriteError:
            log.error("the refusal of %s attempts from %s could not be audited", action, source)
    return Refusal(message, decision.retry_after)
