"""SOAP plumbing of the simulated ONVIF cameras: parsing requests safely, WS-Security
UsernameToken digest checks, envelopes and faults.

Requests are parsed with DTDs and entities refused (a simulator is a server too). Only what the
simulator answers is modelled; it is a test peer, not a general SOAP stack.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
from collections import OrderedDict
from dataclasses import dataclass
from xml.sax.saxutils import escape

from lxml import etree

from ingest.onvif.xmlsafe import UnsafeXml, parse_untrusted

SOAP_ENV = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST_TYPE = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordDigest"
)
TDS = "http://www.onvif.org/ver10/device/wsdl"
TRT = "http://www.onvif.org/ver10/media/wsdl"
TPTZ = "http://www.onvif.org/ver20/ptz/wsdl"
TT = "http://www.onvif.org/ver10/schema"
TER = "http://www.onvif.org/ver10/error"

NAMESPACES = {
    "s": SOAP_ENV, "tds": TDS, "trt": TRT, "tptz": TPTZ, "tt": TT, "ter": TER,
    "wsse": WSSE, "wsu": WSU,
}
MAX_REQUEST_BYTES = 256 * 1024
CLOCK_SKEW = dt.timedelta(minutes=5)
NONCE_MEMORY = 1024


class SoapError(Exception):
    """A request the simulator refuses; becomes a SOAP fault."""

    def __init__(self, subcode: str, reason: str, *, code: str = "Sender", status: int = 400):
        super().__init__(reason)
        self.subcode = subcode
        self.reason = reason
        self.code = code
        self.status = status


@dataclass(frozen=True, slots=True)
class SoapRequest:
    operation: str
    """Local name of the Body's first element, e.g. ``GetProfiles``."""
    namespace: str
    body: etree._Element
    header: etree._Element | None

    def text(self, path: str, default: str = "") -> str:
        """Text of the first element at ``path`` (XPath relative to the operation element)."""
        found = self.body.xpath(path, namespaces=NAMESPACES)
        if isinstance(found, list) and found:
            first = found[0]
            if etree.iselement(first):
                return (first.text or "").strip()
            return str(first).strip()
        return default


def parse_request(data: bytes) -> SoapRequest:
    try:
        root = parse_untrusted(data, max_bytes=MAX_REQUEST_BYTES, what="the request")
    except UnsafeXml as exc:
        raise SoapError("ter:WellFormed", str(exc)) from None
    if etree.QName(root).localname != "Envelope":
        raise SoapError("ter:WellFormed", "the request is not a SOAP envelope")
    body = root.find(f"{{{SOAP_ENV}}}Body")
    if body is None:
        # SOAP 1.1 envelopes (a few old clients) use another namespace; accept their Body too.
        body = next((child for child in root if etree.QName(child).localname == "Body"), None)
    if body is None or len(body) == 0:
        raise SoapError("ter:WellFormed", "the SOAP envelope has no body")
    operation = body[0]
    header = next((child for child in root if etree.QName(child).localname == "Header"), None)
    qname = etree.QName(operation)
    return SoapRequest(qname.localname, qname.namespace or "", operation, header)


class UsernameTokenVerifier:
    """Checks WS-Security UsernameToken (PasswordDigest or PasswordText) against one account.

    Digest = Base64(SHA-1(nonce + created + password)); ``created`` must be within five
    minutes of the simulator's clock and a nonce is accepted once.
    """

    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = password
        self._seen: OrderedDict[str, None] = OrderedDict()

    @property
    def required(self) -> bool:
        return bool(self._username)

    def check(self, request: SoapRequest, now: dt.datetime | None = None) -> None:
        """Raises SoapError(NotAuthorized) unless the request carries a valid token."""
        if not self.required:
            return
        token = None
        if request.header is not None:
            token = request.header.find(f"{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
        if token is None:
            raise _not_authorized("this operation needs a WS-Security UsernameToken")
        username = (token.findtext(f"{{{WSSE}}}Username") or "").strip()
        password_el = token.find(f"{{{WSSE}}}Password")
        if password_el is None or not hmac.compare_digest(username, self._username):
            raise _not_authorized("wrong user name or password")
        supplied = (password_el.text or "").strip()
        if password_el.get("Type", "") == DIGEST_TYPE:
            nonce_text = (token.findtext(f"{{{WSSE}}}Nonce") or "").strip()
            created = (token.findtext(f"{{{WSU}}}Created") or "").strip()
            self._check_fresh(created, nonce_text, now or dt.datetime.now(dt.UTC))
            try:
                nonce = base64.b64decode(nonce_text, validate=True)
            except (binascii.Error, ValueError):
                raise _not_authorized("the token's nonce is not Base64") from None
            digest = hashlib.sha1(  # noqa: S324 (the WS-Security profile mandates SHA-1)
                nonce + created.encode() + self._password.encode()
            ).digest()
            expected = base64.b64encode(digest).decode()
            ok = hmac.compare_digest(supplied, expected)
        else:
            ok = hmac.compare_digest(supplied, self._password)
        if not ok:
            raise _not_authorized("wrong user name or password")

    def _check_fresh(self, created: str, nonce: str, now: dt.datetime) -> None:
        try:
            when = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            raise _not_authorized("the token's Created time is not a valid time") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        if abs(now - when) > CLOCK_SKEW:
            raise _not_authorized("the token's Created time is too far from the camera's clock")
        if not nonce or nonce in self._seen:
            raise _not_authorized("the token's nonce was already used")
        self._seen[nonce] = None
        while len(self._seen) > NONCE_MEMORY:
            self._seen.popitem(last=False)


def _not_authorized(reason: str) -> SoapError:
    return SoapError("ter:NotAuthorized", reason, status=400)


def envelope(body: str) -> bytes:
    """A SOAP 1.2 envelope around ``body`` (which may use the prefixes in NAMESPACES)."""
    declarations = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NAMESPACES.items())
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<s:Envelope {declarations}>'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def fault(error: SoapError) -> bytes:
    subcode = escape(error.subcode)
    return envelope(
        "<s:Fault><s:Code>"
        f"<s:Value>s:{escape(error.code)}</s:Value>"
        f"<s:Subcode><s:Value>{subcode}</s:Value></s:Subcode>"
        "</s:Code>"
        f'<s:Reason><s:Text xml:lang="en">{escape(error.reason)}</s:Text></s:Reason>'
        "</s:Fault>"
    )


def text(value: object) -> str:
    """XML-escaped text of a value."""
    return escape(str(value))
