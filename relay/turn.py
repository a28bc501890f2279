"""TURN credentials for viewers, minted per session, and the WHEP ``Link`` headers carrying them.

The TURN REST scheme (coturn's ``use-auth-secret``): the username is ``EXPIRY:USER`` (EXPIRY in
Unix seconds) and the password is base64(HMAC-SHA1(secret, username)). The TURN server checks
both with the shared secret alone, so nothing is stored, and a leaked credential expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

from relay.settings import IceServer, RelaySettings

_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]")


def turn_credential(secret: str, user: str, ttl: float, now: float | None = None
                    ) -> tuple[str, str]:
    """(username, password) valid ``ttl`` seconds from ``now`` for a TURN server sharing
    ``secret``. ``user`` names the holder in the TURN server's log; characters a header or the
    scheme's ``:`` separator would trip over are replaced."""
    expiry = int((time.time() if now is None else now) + ttl)
    username = f"{expiry}:{_UNSAFE.sub('_', user) or 'viewer'}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def is_turn(url: str) -> bool:
    return url.startswith(("turn:", "turns:"))


def viewer_ice_servers(settings: RelaySettings, user: str) -> list[IceServer]:
    """The ICE servers a viewer should use, with TURN credentials minted for ``user``."""
    servers = []
    for server in settings.ice_servers:
        if is_turn(server.urls) and settings.turn_secret:
            username, password = turn_credential(settings.turn_secret, user, settings.turn_ttl)
            servers.append(IceServer(server.urls, username, password))
        else:
            servers.append(server)
    return servers


def server_ice_servers(settings: RelaySettings) -> list[IceServer]:
    """The ICE servers of the server's own peer connections: the STUN ones. The server is the
    reachable side; relaying its end too would send every viewer's video through TURN twice."""
    return [server for server in settings.ice_servers if not is_turn(server.urls)]


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def link_headers(servers: list[IceServer]) -> list[str]:
    """``Link`` header values announcing ``servers`` to a WHEP client (RFC 9725 section 4.6)."""
    values = []
    for server in servers:
        value = f'<{server.urls}>; rel="ice-server"'
        if server.username is not None and server.credential is not None:
            value += (f"; username={_quoted(server.username)}"
                      f"; credential={_quoted(server.credential)}"
                      '; credential-type="password"')
        values.append(value)
    return values
