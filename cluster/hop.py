"""The signature on a request one node sends another (a viewer's signalling passed to the node
that pulls the camera): HMAC-SHA256 with the cluster secret over the sending node, a timestamp,
the method, the path and the viewer's address, so no one but a node can make a node serve a
camera it was not placed on, or name the address its audit records for the viewer. The body is
not covered: it is the viewer's own offer, and the serving node checks the viewer's credentials
itself."""

from __future__ import annotations

import hashlib
import hmac
import time

HOP_HEADER = "RTCC-Cluster-Hop"
CLIENT_HEADER = "RTCC-Cluster-Client"
"""The viewer's address as the first node saw it."""
MAX_SKEW_S = 30.0


class HopRefused(Exception):
    """The internal request's signature is missing, wrong or too old."""


def _mac(secret: bytes, node_id: str, stamp: str, method: str, path: str, client: str) -> str:
    message = "\n".join((node_id, stamp, method.upper(), path, client)).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign(secret: bytes, node_id: str, method: str, path: str, client: str,
         now: float | None = None) -> str:
    """The header value for a request from ``node_id`` on behalf of the viewer at ``client``
    (sent in ``CLIENT_HEADER``); ``path`` includes the query."""
    stamp = f"{time.time() if now is None else now:.3f}"
    return f"{node_id};{stamp};{_mac(secret, node_id, stamp, method, path, client)}"


def verify(secret: bytes, value: str, method: str, path: str, client: str,
           now: float | None = None) -> str:
    """The sending node's id, or HopRefused."""
    parts = value.split(";")
    if len(parts) != 3:
        raise HopRefused("the internal request's signature is malformed")
    node_id, stamp, mac = parts
    try:
        sent = float(stamp)
    except ValueError:
        raise HopRefused("the internal request's timestamp is not a number") from None
    if abs((time.time() if now is None else now) - sent) > MAX_SKEW_S:
        raise HopRefused("the internal request is too old (or the nodes' clocks disagree by "
                         f"more than {MAX_SKEW_S:.0f} s)")
    if not hmac.compare_digest(mac, _mac(secret, node_id, stamp, method, path, client)):
        raise HopRefused("the internal request's signature does not match (is cluster.secret "
                         "the same on every node?)")
    return node_id
