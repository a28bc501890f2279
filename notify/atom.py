"""The public Atom feed of ``scope=Public`` CAP alerts (OASIS CAP feeds practice: one entry per
alert, linking to its CAP document)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from notify.store import StoredAlert

ATOM = "http://www.w3.org/2005/Atom"
ET.register_namespace("atom", ATOM)


def _sub(parent: ET.Element, name: str, text: str | None = None,
         **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{name}", attributes)
    if text is not None:
        element.text = text
    return element


def feed(alerts: Sequence[StoredAlert], *, base_url: str, title: str, updated: str) -> str:
    root = ET.Element(f"{{{ATOM}}}feed")
    _sub(root, "id", f"{base_url}/public/alerts.atom")
    _sub(root, "title", title)
    _sub(root, "updated", alerts[0].sent if alerts else updated)
    _sub(root, "link", rel="self", href=f"{base_url}/public/alerts.atom")
    author = _sub(root, "author")
    _sub(author, "name", title)
    for alert in alerts:
        entry = _sub(root, "entry")
        _sub(entry, "id", f"urn:cap:{alert.identifier}")
        headline = alert.plan.get("info", {}).get("headline", "") or alert.msg_type
        _sub(entry, "title", f"{alert.msg_type}: {headline}" if alert.msg_type != "Alert"
             else headline)
        _sub(entry, "updated", alert.sent)
        _sub(entry, "summary", alert.plan.get("info", {}).get("description", ""))
        _sub(entry, "link", rel="alternate", type="application/cap+xml",
             href=f"{base_url}/public/alerts/{alert.identifier}.xml")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            + ET.tostring(root, encoding="unicode"))
