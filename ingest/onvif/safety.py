"""Hardening of onvif-zeep-async's SOAP clients: how camera replies are parsed and read.

onvif-zeep-async parses replies with a module-wide zeep ``Settings`` that allows DTDs and huge
trees. Each service this adapter creates gets instead:

- ``SAFE_SETTINGS``: DTDs, entities and external references forbidden, no huge trees (an
  external-entity reply or an entity bomb raises before any expansion);
- ``LimitedTransport``: the reply body is read in chunks and refused beyond ``max_bytes``;
  redirects are never followed and GET (which would follow them) is refused.

The WSDLs are the ones shipped inside the ``onvif`` package, loaded from disk by its own
transport, which refuses any network URL: creating a client needs no network access.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import zeep.exceptions
from onvif.client import AsyncTransportProtocolErrorHandler
from zeep.settings import Settings

SAFE_SETTINGS = Settings(
    strict=False,  # cameras' replies often stray from the schema; the XML itself stays safe
    xml_huge_tree=False,
    forbid_dtd=True,
    forbid_entities=True,
    forbid_external=True,
)
DEFAULT_MAX_REPLY_BYTES = 1024 * 1024
_HARDENED = "_rtcc_hardened"


class ReplyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the reply is larger than {limit} bytes")
        self.limit = limit


class LimitedTransport(AsyncTransportProtocolErrorHandler):  # type: ignore[misc]
    """onvif-zeep-async's aiohttp transport, reading at most ``max_bytes`` of a reply."""

    def __init__(self, session: aiohttp.ClientSession, max_bytes: int) -> None:
        super().__init__(session=session, verify_ssl=False, cache=None)
        self.max_bytes = max_bytes

    async def _post_internal(
        self, address: str, message: str | bytes, headers: dict[str, str]
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        headers = dict(headers or {})
        headers.setdefault("Content-Type", 'application/soap+xml; charset="utf-8"')
        data = message.encode("utf-8") if isinstance(message, str) else message
        response = await self.session.post(address, data=data, headers=headers,
                                           allow_redirects=False)
        try:
            if 300 <= response.status < 400:
                # Never followed: the next hop is a host the camera chose.
                raise zeep.exceptions.TransportError(  # type: ignore[no-untyped-call]
                    f"redirect (HTTP {response.status}) refused", status_code=response.status)
            declared = response.content_length
            if declared is not None and declared > self.max_bytes:
                raise ReplyTooLarge(self.max_bytes)
            body = bytearray()
            async for chunk in response.content.iter_chunked(65536):
                body += chunk
                if len(body) > self.max_bytes:
                    raise ReplyTooLarge(self.max_bytes)
        except BaseException:
            response.close()
            raise
        return response, bytes(body)

    async def get(self, address: str, params: Any = None,  # noqa: ARG002 -- zeep's signature
                  headers: Any = None) -> Any:  # noqa: ARG002 -- zeep's signature
        """Never used by the adapter (WSDLs come from disk); refused so that nothing reaches a
        URL a camera named through a GET that would follow redirects."""
        raise zeep.exceptions.TransportError(  # type: ignore[no-untyped-call]
            "HTTP GET through the SOAP transport is refused")


def harden(service: Any, max_bytes: int) -> None:
    """Give an ``onvif.client.ONVIFService`` (after ``setup()``) safe parsing and a bounded
    transport. Idempotent."""
    if getattr(service, _HARDENED, False):
        return
    transport = LimitedTransport(service.transport.session, max_bytes)
    service.transport = transport
    for client in (service.zeep_client, service.zeep_client_authless):
        if client is not None:
            client.settings = SAFE_SETTINGS
            client.transport = transport
    setattr(service, _HARDENED, True)
