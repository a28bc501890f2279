"""Anonymous tips: the public tip line, its media and the analysts' tip queue.

Everything under ``ANONYMOUS_PREFIX`` is the public tip line: its routes are marked
``rtcc.policy.anonymous`` (no cookie or token read, no address logged) and the server's
connection guard names no peer for it.
"""

from __future__ import annotations

ANONYMOUS_PREFIX = "/tips"
"""Path prefix of the public tip line: the page, its files and its API."""
