"""Why an RTSP session failed, in words a person at the video wall understands.

FFmpeg's exception text names the URL it was given, credentials included, so it is never
shown: each failure is classified by exception type (never by message text) into a reason.
"""

from __future__ import annotations

import errno
import socket
import ssl
from dataclasses import dataclass
from typing import Literal

import av.error

from rtcc.camera_url import RtspAddress

Phase = Literal["open", "read"]


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str
    fatal: bool = False
    """True when retrying soon cannot help (wrong password, wrong path): the stream shows ERROR
    and the source retries only at the longest backoff."""
    refused: bool = False
    """True when the server refused what the camera asked for (a redirect to a refused address,
    a foreign transport): the reason is also shown as the source's ``refused`` stat."""


_AUTH_ERRORS = (av.error.HTTPUnauthorizedError,)
_FORBIDDEN_ERRORS = (av.error.HTTPForbiddenError,)
_NOT_FOUND_ERRORS = (av.error.HTTPNotFoundError,)
_CLIENT_ERRORS = (av.error.HTTPClientError,)
_SERVER_ERRORS = (av.error.HTTPServerError,)
_TIMEOUT_ERRORS = (av.error.ExitError, av.error.TimeoutError, TimeoutError)
_REFUSED_ERRORS = (ConnectionRefusedError,)
_RESET_ERRORS = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)
_GARBLED_ERRORS = (av.error.InvalidDataError,)
_CERTIFICATE_ERRORS = (ssl.SSLCertVerificationError,)
_TLS_ERRORS = (ssl.SSLError,)


def host_resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return True


def describe_failure(
    exc: BaseException,
    phase: Phase,
    elapsed: float,
    address: RtspAddress,
    *,
    has_credentials: bool,
    open_timeout: float,
    stall_timeout: float,
    described: bool = False,
) -> Failure:
    """Classify an exception raised while opening (``open``) or reading (``read``) a camera.

    ``described``: the camera answered DESCRIBE with 2xx, so it speaks RTSP and unreadable data
    at open is its stream description (SDP), not a server of another kind."""
    where = address.endpoint
    if isinstance(exc, _AUTH_ERRORS):
        if has_credentials:
            return Failure(
                "wrong user name or password (RTSP 401): check the camera's credentials", True
            )
        return Failure(
            "the camera asks for a user name and password (RTSP 401): add them to its profile",
            True,
        )
    if isinstance(exc, _FORBIDDEN_ERRORS):
        return Failure("the camera refused this account (RTSP 403): check its rights", True)
    if isinstance(exc, _NOT_FOUND_ERRORS):
        return Failure(
            f"the camera has no stream at path {address.path} (RTSP 404): check the URL", True
        )
    if isinstance(exc, _CLIENT_ERRORS):
        return Failure("the camera rejected the request (RTSP 4xx): check the URL", True)
    if isinstance(exc, _SERVER_ERRORS):
        return Failure(
            f"the camera at {where} reported an error (RTSP 5xx), it may be busy: reconnecting"
        )
    if isinstance(exc, _CERTIFICATE_ERRORS):
        return Failure(
            f"the camera at {where} presented a TLS certificate that does not verify "
            f"({exc.verify_message}): install a certificate for {address.host} signed by a "
            "trusted CA", True)
    if isinstance(exc, _TLS_ERRORS):
        return Failure(f"the TLS handshake with the camera at {where} failed: check that it "
                       "speaks rtsps on this port")
    if isinstance(exc, _REFUSED_ERRORS):
        return Failure(f"connection refused by {where}")
    if isinstance(exc, _RESET_ERRORS):
        return Failure(f"the camera at {where} dropped the connection: reconnecting")
    timed_out = isinstance(exc, _TIMEOUT_ERRORS) or (
        isinstance(exc, OSError) and exc.errno == errno.ETIMEDOUT
    )
    if phase == "open":
        if timed_out or elapsed >= open_timeout * 0.9:
            return Failure(f"camera did not answer within {open_timeout:g} s")
        if isinstance(exc, _GARBLED_ERRORS):
            if described:
                return Failure(
                    f"the camera at {where} sent a stream description (SDP) that could not be "
                    "read: check the camera's video settings or firmware", True)
            return Failure(f"not an RTSP server at {where}")
    else:
        if timed_out or elapsed >= stall_timeout * 0.9:
            return Failure(f"no video for {stall_timeout:g} s: reconnecting")
        if isinstance(exc, _GARBLED_ERRORS):
            return Failure(f"the camera at {where} sent data that could not be read: reconnecting")
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return Failure(f"no route to {where}: check the network")
        if phase == "open" and not host_resolves(address.host):
            return Failure(f"cannot find the camera's host name {address.host!r} (DNS)")
        if exc.errno == errno.EIO:
            return Failure(f"could not reach {where} (input/output error)")
    return Failure(f"could not read the camera at {where} ({type(exc).__name__})")
