"""Sending one outbox delivery: e-mail through aiosmtplib, webhooks through aiohttp's client.

Every message carries its delivery's idempotency key (the mail's ``Message-ID`` and an
``X-Idempotency-Key`` header; the webhook's ``Idempotency-Key`` header), so a receiver recognises
a message sent again after a send was cut short. Webhook URLs must name one of
``notify.webhook_hosts``; the host's addresses pass the server's URL rules
(``rtcc.camera_url.check_camera_url``), the connection goes to exactly the address checked, and
redirects are refused.
"""

from __future__ import annotations

import hashlib
import json
import socket
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Literal
from urllib.parse import urlsplit

import aiohttp
import aiosmtplib
from aiohttp.abc import AbstractResolver, ResolveResult

from rtcc.camera_url import check_camera_url
from rtcc.config import NotifyConfig
from rtcc.errors import RtccError, UnsafeUrl

Outcome = Literal["sent", "delivered"]
MAX_ANSWER = 64 * 1024


class SendFailed(RtccError):
    """One attempt failed; ``permanent`` when trying again cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Outgoing:
    key: str
    channel: str
    address: str
    subject: str
    body: str
    cap_xml: str = ""
    """The CAP message, attached to mails and posted to webhooks; empty for plain notices."""


def message_id(key: str, sender: str) -> str:
    domain = sender.rpartition("@")[2] or "rtcc.invalid"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@{domain}>"


def build_mail(item: Outgoing, config: NotifyConfig) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = formataddr((config.sender_name, config.sender))
    mail["To"] = item.address
    mail["Subject"] = item.subject
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = message_id(item.key, config.sender)
    mail["X-Idempotency-Key"] = item.key
    mail.set_content(item.body)
    if item.cap_xml:
        mail.add_attachment(item.cap_xml.encode(), maintype="application", subtype="cap+xml",
                            filename="alert.cap.xml")
    return mail


async def send_mail(item: Outgoing, config: NotifyConfig) -> Outcome:
    if not config.smtp_host:
        raise SendFailed("no mail relay is configured (notify.smtp_host)", permanent=True)
    mail = build_mail(item, config)
    try:
        errors, _ = await aiosmtplib.send(
            mail, hostname=config.smtp_host, port=config.smtp_port,
            username=config.smtp_username or None,
            password=config.smtp_password.get_secret_value() or None,
            start_tls=config.smtp_starttls, use_tls=config.smtp_tls,
            timeout=config.send_timeout)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise SendFailed(f"the mail relay refused {item.address}: {exc}", permanent=True) from None
    except aiosmtplib.SMTPResponseException as exc:
        raise SendFailed(f"the mail relay answered {exc.code} {exc.message}",
                         permanent=500 <= exc.code < 600) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise SendFailed(f"the mail relay {config.smtp_host}:{config.smtp_port} could not "
                         f"take the mail: {type(exc).__name__}: {exc}") from None
    if errors:
        raise SendFailed(f"the mail relay refused {item.address}: {errors}", permanent=True)
    return "sent"  # accepted by the relay; a mailbox gives no delivery receipt here


class _Pinned(AbstractResolver):
    """Resolves the checked host to the checked address only."""

    def __init__(self, host: str, address: str) -> None:
        self._host = host
        self._address = address

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET,  # noqa: ARG002 -- the interface
                      ) -> list[ResolveResult]:
        if host != self._host:
            raise OSError(f"{host!r} is not the checked webhook host")
        fam = socket.AF_INET6 if ":" in self._address else socket.AF_INET
        return [{"hostname": host, "host": self._address, "port": port, "family": fam,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        return None


async def check_webhook(url: str, config: NotifyConfig,
                        allow_networks: tuple[str, ...]) -> tuple[str, str]:
    """(host, address) to connect to; raises SendFailed (permanent) saying why not."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    allowed = {h.lower().rstrip(".") for h in config.webhook_hosts}
    if host not in allowed:
        raise SendFailed(f"webhook host {host!r} is not among notify.webhook_hosts",
                         permanent=True)
    try:
        safe = await check_camera_url(url, purpose="onvif", allow_networks=allow_networks)
    except UnsafeUrl as exc:
        raise SendFailed(f"webhook refused: {exc}", permanent=True) from None
    if safe.address is None:
        raise SendFailed(f"webhook host {host!r} did not resolve")
    return safe.host, safe.address


async def send_webhook(item: Outgoing, config: NotifyConfig,
                       allow_networks: tuple[str, ...]) -> Outcome:
    host, address = await check_webhook(item.address, config, allow_networks)
    if item.cap_xml:
        data, content_type = item.cap_xml.encode(), "application/cap+xml"
    else:
        data = json.dumps({"key": item.key, "subject": item.subject,
                           "body": item.body}).encode()
        content_type = "application/json"
    headers = {"Content-Type": content_type, "Idempotency-Key": item.key,
               "User-Agent": "rtcc-notify"}
    connector = aiohttp.TCPConnector(resolver=_Pinned(host, address))
    try:
        async with aiohttp.ClientSession(connector=connector) as session, session.post(
                item.address, data=data, headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=config.send_timeout)) as response:
            await response.content.read(MAX_ANSWER)
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise SendFailed(f"the webhook {host} could not be reached: "
                         f"{type(exc).__name__}: {exc}") from None
    if 200 <= status < 300:
        return "delivered"
    if 300 <= status < 400:
        raise SendFailed(f"the webhook answered {status}; redirects are not followed",
                         permanent=True)
    raise SendFailed(f"the webhook answered {status}",
                     permanent=400 <= status < 500 and status not in {408, 425, 429})


async def send(item: Outgoing, config: NotifyConfig,
               allow_networks: tuple[str, ...]) -> Outcome:
    if item.channel == "email":
        return await send_mail(item, config)
    if item.channel == "webhook":
        return await send_webhook(item, config, allow_networks)
    raise SendFailed(f"unknown channel {item.channel!r}", permanent=True)
