"""RTSP authentication (RFC 2617 as RFC 2326 uses it): Basic, and Digest with MD5."""

from __future__ import annotations

import base64
import hashlib
import os
import re

_PARAM = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def challenges(headers: list[tuple[str, str]]) -> list[tuple[str, dict[str, str]]]:
    """The WWW-Authenticate challenges of a response: (scheme lower-case, parameters)."""
    found: list[tuple[str, dict[str, str]]] = []
    for name, value in headers:
        if name.lower() != "www-authenticate":
            continue
        scheme, _, rest = value.strip().partition(" ")
        params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
                  for m in _PARAM.finditer(rest)}
        found.append((scheme.lower(), params))
    return found


class Authenticator:
    """Answers a 401 challenge; after that, signs every request of the session."""

    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = password
        self._scheme = ""
        self._params: dict[str, str] = {}
        self._count = 0

    @property
    def ready(self) -> bool:
        return bool(self._scheme)

    def accept(self, offered: list[tuple[str, dict[str, str]]]) -> bool:
        """Take the strongest challenge we can answer (Digest MD5 over Basic); False when none
        is usable (no credentials, or only unknown schemes)."""
        if not (self._username or self._password):
            return False
        for scheme, params in offered:
            algorithm = params.get("algorithm", "MD5").upper()
            if scheme == "digest" and algorithm == "MD5" and "nonce" in params:
                self._scheme, self._params, self._count = "digest", params, 0
                return True
        if any(scheme == "basic" for scheme, _ in offered):
            self._scheme, self._params = "basic", {}
            return True
        return False

    def header(self, method: str, uri: str) -> str | None:
        if self._scheme == "basic":
            token = base64.b64encode(f"{self._username}:{self._password}".encode()).decode()
            return f"Basic {token}"
        if self._scheme != "digest":
            return None
        params = self._params
        realm, nonce = params.get("realm", ""), params["nonce"]
        ha1 = _md5(f"{self._username}:{realm}:{self._password}")
        ha2 = _md5(f"{method}:{uri}")
        fields = [f'username="{self._username}"', f'realm="{realm}"', f'nonce="{nonce}"',
                  f'uri="{uri}"']
        qops = [q.strip() for q in params.get("qop", "").split(",")]
        if "auth" in qops:
            self._count += 1
            nc = f"{self._count:08x}"
            cnonce = os.urandom(8).hex()
            response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            fields += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            response = _md5(f"{ha1}:{nonce}:{ha2}")
        fields.append(f'response="{response}"')
        if "opaque" in params:
            fields.append(f'opaque="{params["opaque"]}"')
        fields.append("algorithm=MD5")
        return "Digest " + ", ".join(fields)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()
