"""Secrets at rest, the CLI, and a canary password that must never leak."""

from __future__ import annotations

import base64
import io
import logging
import os
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from rtcc.errors import ConfigError
from rtcc.policy import Role
from security import totp
from security.cli import user_add_main, user_unlock_main
from security.secretbox import AesGcmBox, SecretDecryptError, load_secret_box
from security.store import STORE_FILE
from tests.fixtures.auth import MakeClient, bearer, create_user, login, security_settings
from tests.security.harness import security_app

CANARY = "canary-Pa55word-7e1f0c"


def test_secret_box_round_trip_and_tamper_detection(tmp_path: Path) -> None:
    box = load_secret_box(tmp_path, env={})
    sealed = box.encrypt(CANARY)
    assert CANARY not in sealed
    assert sealed != box.encrypt(CANARY)
    assert box.decrypt(sealed) == CANARY
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SecretDecryptError) as caught:
        box.decrypt(flipped)
    assert CANARY not in str(caught.value)
    other = AesGcmBox(os.urandom(32))
    with pytest.raises(SecretDecryptError):
        other.decrypt(sealed)


def test_key_file_is_private_and_environment_key_wins(tmp_path: Path) -> None:
    box = load_secret_box(tmp_path, env={})
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_secret_box(tmp_path, env={}).decrypt(box.encrypt("x")) == "x"  # same key again

    env_key = base64.b64encode(os.urandom(32)).decode()
    from_env = load_secret_box(tmp_path, env={"RTCC_SECRET_KEY": env_key})
    with pytest.raises(SecretDecryptError):
        from_env.decrypt(box.encrypt("x"))
    with pytest.raises(ConfigError, match="32 bytes"):
        load_secret_box(tmp_path, env={"RTCC_SECRET_KEY": base64.b64encode(b"short").decode()})

    key_file.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_secret_box(tmp_path, env={})


def test_cli_user_add_prints_the_totp_uri_once_and_stores_no_secret_in_clear(
    tmp_path: Path,
) -> None:
    settings = security_settings(tmp_path)
    out = io.StringIO()
    code = user_add_main(settings, "alice", "analyst", password=CANARY + "-long", out=out)
    assert code == 0, out.getvalue()
    uri = next(line for line in out.getvalue().splitlines() if line.startswith("otpauth://"))
    secret = parse_qs(urlsplit(uri).query)["secret"][0]
    raw = (settings.data_dir / STORE_FILE).read_bytes()
    wal = settings.data_dir / (STORE_FILE + "-wal")
    if wal.exists():
        raw += wal.read_bytes()
    assert secret.encode() not in raw
    assert CANARY.encode() not in raw
    assert totp.code_at(secret, 0).isdigit()

    again = io.StringIO()
    assert user_add_main(settings, "alice", "analyst", password=CANARY + "-long",
                         out=again) == 2
    assert "already exists" in again.getvalue()
    assert user_add_main(settings, "bob", "wizard", password="x" * 12, out=io.StringIO()) == 2
    assert user_unlock_main(settings, "alice", out=io.StringIO()) == 0


async def test_canary_password_never_appears_in_responses_or_logs(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await make_client(security_app(security_settings(tmp_path)))
    admin = bearer(bootstrap_token)
    bodies: list[str] = []
    user = await create_user(client, admin, Role.ANALYST, password=CANARY)
    for _ in range(3):
        wrong = await client.post("/api/login", json={"username": user.username,
                                                      "password": CANARY + "x"})
        bodies.append(await wrong.text())
    bodies.append(str(await login(client, user)))
    for path in ("/api/me", "/api/users", "/api/audit?limit=1000", "/api/tokens"):
        bodies.append(await (await client.get(path, headers=admin)).text())
        bodies.append(await (await client.get(path)).text())
    short = await client.post("/api/users", headers=admin, json={
        "username": "weak", "role": "analyst", "password": CANARY[:5]})
    bodies.append(await short.text())
    text = "\n".join(bodies) + "\n".join(r.getMessage() for r in caplog.records)
    assert CANARY[:12] not in text
    assert user.totp_secret is not None
    assert user.totp_secret not in text
    assert bootstrap_token not in text
