"""What the data layer reports, and how it shows a database's address."""

from __future__ import annotations

import urllib.parse

from rtcc.errors import StoreUnavailable


class DatabaseUnavailable(StoreUnavailable):
    """The database did not answer; requests that need it fail closed until it is back."""


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for logs, health and errors)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))
