"""A typed adapter over defusedxml, which ships no type information.

``fromstring`` parses with DTDs, entity declarations and external references all forbidden;
``Forbidden`` is the exception defusedxml raises for any of them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import defusedxml
import defusedxml.ElementTree

Forbidden: type[Exception] = defusedxml.DefusedXmlException


def fromstring(data: bytes) -> ET.Element:
    """The root element. Raises Forbidden (DTD, entity, external reference) or ET.ParseError."""
    root = defusedxml.ElementTree.fromstring(
        data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    if not isinstance(root, ET.Element):
        raise ET.ParseError("the document has no root element")
    return root


def forbidden_what(exc: Exception) -> str:
    """What a Forbidden exception refused, in words: "a DTD", "an entity declaration"..."""
    return {"DTDForbidden": "a DTD", "EntitiesForbidden": "an entity declaration",
            "ExternalReferenceForbidden": "an external reference",
            "NotSupportedError": "an unsupported XML feature"}.get(type(exc).__name__,
                                                                   "a forbidden construct")
