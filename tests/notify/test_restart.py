"""A server killed (SIGKILL) in the middle of sending an alert to many recipients, then started
again: every recipient gets the message once per channel, recognised by its idempotency key,
and none is lost."""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from tests.fixtures.server_process import serve
from tests.notify.sinks import SmtpServer, ThreadedWebhookReceiver, validate_cap

FACILITIES = 12
CENTER = (39.8, -89.645)


def _env(token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RTCC_AUDIT_KEY", "RTCC_SECRET_KEY", "RTCC_BOOTSTRAP_TOKEN")}
    env["RTCC_BOOTSTRAP_TOKEN"] = token
    return env


def _call(url: str, token: str, method: str = "GET",
          body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        url, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _wait(predicate: Any, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_restart_mid_send_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    token = secrets.token_hex(32)
    env = _env(token)
    with SmtpServer(delay=0.3) as sink, ThreadedWebhookReceiver() as hooks:
        config = tmp_path / "server.yaml"
        config.write_text(json.dumps({
            "data_dir": str(tmp_path / "data"), "log_level": "warning",
            "security": {"allow_private_camera_hosts": ["127.0.0.0/8"]},
            "notify": {"smtp_host": "127.0.0.1", "smtp_port": sink.port,
                       "webhook_hosts": ["127.0.0.1"], "send_timeout": 2,
                       "concurrency": 2, "retry_seconds": 0.2}}))
        expected: set[tuple[str, str]] = set()
        with serve(config, env) as run:
            for n in range(FACILITIES):
                address = f"office{n}@school.example"
                hook = f"{hooks.url}/hook/school{n}"
                _call(f"{run.url}/api/notify/facilities", token, "POST", {
                    "id": f"school-{n}", "name": f"School {n}", "category": "school",
                    "lat": CENTER[0] + n * 0.0001, "lon": CENTER[1],
                    "contacts": [{"channel": "email", "address": address},
                                 {"channel": "webhook", "address": hook}]})
                expected |= {("email", address), ("webhook", f"/hook/school{n}")}
            alert = _call(f"{run.url}/api/notify/send", token, "POST", {
                "circle": {"lat": CENTER[0], "lon": CENTER[1], "radius_m": 1000},
                "categories": ["school"], "headline": "Lockdown: police activity nearby"})
            _wait(lambda: len(sink.received()) >= 3, "the first mails")
            run.kill()  # mid-send: some mails accepted, others not yet
        before = len(sink.received())
        assert before < FACILITIES, "the kill came too late to cut the send short"

        with serve(config, env) as run:
            _wait(lambda: len({m.key for m in sink.received()}) == FACILITIES
                  and len({h.key for h in hooks.received()}) == FACILITIES,
                  "every delivery after the restart")
            # The sink holds a mail before its 250 reply reaches the server, which records
            # "sent" a moment later: poll until every delivery has its final state.
            seen: list[Counter[str]] = []

            def settled() -> bool:
                detail = _call(f"{run.url}/api/notify/alerts/{alert['id']}", token)
                seen.append(Counter(d["state"] for d in detail["deliveries"]))
                return seen[-1] == {"sent": FACILITIES, "delivered": FACILITIES}
            _wait(settled, "every delivery recorded as sent or delivered", timeout=30)
        assert seen[-1] == {"sent": FACILITIES, "delivered": FACILITIES}

    mails = sink.received()
    got = {("email", a) for m in mails for a in m.to}
    # Exactly once per recipient and channel, by idempotency key.
    by_key: dict[str, set[str]] = {}
    for m in mails:
        by_key.setdefault(m.key, set()).update(m.to)
        validate_cap(m.cap)
    assert len(by_key) == FACILITIES
    assert {("email", a) for to in by_key.values() for a in to} == {
        e for e in expected if e[0] == "email"}
    assert all(len(to) == 1 for to in by_key.values())
    hook_keys = {h.key for h in hooks.received()}
    assert len(hook_keys) == FACILITIES
    for h in hooks.received():
        validate_cap(h.body.decode())
    # A send cut by the kill may reach the receiver again under the same key; never a new one.
    assert len(mails) - len(by_key) <= 2  # at most the sends in flight (concurrency 2)
    assert len(hooks.received()) - len(hook_keys) <= 2
    print(f"killed after {before} mails; re-sent under the same key: "
          f"{len(mails) - len(by_key)} mails, {len(hooks.received()) - len(hook_keys)} webhooks")
    assert got == {e for e in expected if e[0] == "email"}
