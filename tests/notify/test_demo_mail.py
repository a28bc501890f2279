"""The demo's notifications: a shots-fired incident downtown warns the school and the hospital
into the local mail server's mailboxes (folders), then the all clear follows; prints the time
from the CAD's POST to the first mail in a mailbox."""

from __future__ import annotations

import email
import time
from pathlib import Path

import yaml

from notify.cap import SCHEMA
from rtcc.config import Settings
from rtcc.policy import Role
from server.app import create_app
from server.demo_mail import mail_sink, seed_facilities
from tests.fixtures.auth import MakeClient, bearer, role_headers
from tests.incidents.eidos import eido
from tests.notify.sinks import free_port, until

ROOT = Path(__file__).resolve().parents[2]
CITY_HALL = (39.80172, -89.64383)


def demo_settings(tmp_path: Path) -> Settings:
    data = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    data.update(data_dir=str(tmp_path / "data"), cameras=[], camsim=None)
    data["incidents"]["address_points"] = str(ROOT / data["incidents"]["address_points"])
    data["notify"]["smtp_port"] = free_port()
    data["security"] = {**data.get("security", {}), "require_totp": False}
    return Settings.model_validate(data)


def boxes(root: Path) -> dict[str, list[Path]]:
    return {box.name: sorted(box.glob("*.eml")) for box in root.iterdir() if box.is_dir()}


async def test_a_demo_incident_fills_the_school_and_hospital_mailboxes(
        tmp_path: Path, bootstrap_token: str, make_client: MakeClient) -> None:
    settings = demo_settings(tmp_path)
    assert await seed_facilities(settings) == 3
    with mail_sink(settings) as root:
        assert root is not None
        client = await make_client(create_app(settings))
        _, cad = await role_headers(client, bearer(bootstrap_token), Role.INTEGRATION)
        started = time.monotonic()
        response = await client.post("/api/cad/eido", json=eido(
            1, code="SHOTS", lat=CITY_HALL[0], lon=CITY_HALL[1]), headers=cad)
        assert response.status == 200
        await until(lambda: any(boxes(root).values()), what="the first mail")
        first = time.monotonic() - started
        await until(lambda: set(boxes(root)) == {"office@springfield-high.example",
                                                 "security@stjohns.example"},
                    what="the school's and the hospital's mail")
        print(f"incident -> first mail in a mailbox: {first * 1000:.0f} ms")
        closed = eido(1, minute=20, status="CLSD", lat=CITY_HALL[0], lon=CITY_HALL[1])
        assert (await client.post("/api/cad/eido", json=closed, headers=cad)).status == 200
        await until(lambda: all(len(v) == 2 for v in boxes(root).values()),
                    what="the all clear")
        assert "pastor@firstchurch.example" not in boxes(root)  # not a category of the rule
        index = (root / "index.txt").read_text()
        assert "All clear" in index
        for mails in boxes(root).values():
            for path in mails:
                message = email.message_from_bytes(path.read_bytes())
                (cap,) = [p for p in message.walk()
                          if p.get_content_type() == "application/cap+xml"]
                payload = cap.get_payload(decode=True)
                assert isinstance(payload, bytes)
                SCHEMA.check(payload.decode())
