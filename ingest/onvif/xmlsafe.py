"""Parsing XML from the network: no DTD, no entities, no network access, bounded size."""

from __future__ import annotations

from lxml import etree

from rtcc.errors import RtccError


class UnsafeXml(RtccError):
    """An XML document was refused: too large, not well-formed, or it declares a DTD or
    entities (external entities and entity bombs are refused, never expanded)."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_comments=True,
                           remove_pis=True)


def parse_untrusted(data: bytes, *, max_bytes: int, what: str = "the reply") -> etree._Element:
    """The document's root element. Raises UnsafeXml with a reason a person understands."""
    if len(data) > max_bytes:
        raise UnsafeXml(f"{what} is larger than {max_bytes} bytes")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise UnsafeXml(f"{what} declares a DTD or entities, which are refused")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeXml(f"{what} is not well-formed XML ({exc.msg})") from None
    if root.getroottree().docinfo.doctype:
        raise UnsafeXml(f"{what} declares a DTD, which is refused")
    return root
