"""Command-line actions of the security core: ``rtcc audit verify``, ``rtcc user add``,
``rtcc user unlock``. Each returns the process exit code."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TextIO

from rtcc.access import Actor
from rtcc.config import Settings
from rtcc.db import Database
from rtcc.errors import ConfigError, RtccError
from rtcc.policy import Role
from security.accounts import AccountError, User
from security.audit import AuditKeyMissing, AuditWriter, verify_chain
from security.audit_checkpoints import CheckpointKeyError, verify_checkpoints
from security.core import SecurityCore
from security.secretbox import load_audit_key
from security.store import SCHEMA, SecurityTables

EXIT_OK = 0
EXIT_TAMPERED = 1
EXIT_ERROR = 2


@contextlib.contextmanager
def open_audit_log(settings: Settings) -> Iterator[AuditWriter]:
    """The audit log of the server's data directory (``rtcc.access.AuditOpener``), for the
    command-line programs of other domains (``rtcc export``, ``rtcc verify``)."""
    database = Database.from_settings(settings)
    try:
        store = SecurityTables.open(database, settings.data_dir)
        try:
            yield AuditWriter(store, time.time, load_audit_key(settings.data_dir))
        finally:
            store.close()
    finally:
        database.close()


def audit_verify_main(settings: Settings, out: TextIO | None = None,
                      env: Mapping[str, str] | None = None) -> int:
    """0 when the audit chain and its checkpoints are intact, 1 naming the first bad entry or
    checkpoint, 2 when the log or a key cannot be read."""
    stream = out or sys.stdout
    database = Database.from_settings(settings)
    try:
        return _audit_verify(settings, database, stream, env)
    finally:
        database.close()


def _audit_verify(settings: Settings, database: Database, stream: TextIO,
                  env: Mapping[str, str] | None) -> int:
    if database.dialect == "sqlite":
        path = database.sqlite_path(SCHEMA.name, SCHEMA.sqlite_file)
        if not path.exists():
            print(f"no security store at {path}", file=stream)
            return EXIT_ERROR
    try:
        key = load_audit_key(settings.data_dir, env, create=False)
    except ConfigError as exc:
        print(f"cannot read the audit key: {exc}", file=stream)
        return EXIT_ERROR
    try:
        store = SecurityTables.open(database, settings.data_dir)
    except RtccError as exc:
        print(f"cannot open the audit log in {database.describe()}: {exc}", file=stream)
        return EXIT_ERROR
    try:
        result = verify_chain(store, key)
        checkpoints = verify_checkpoints(store, settings.data_dir)
    except (AuditKeyMissing, CheckpointKeyError) as exc:
        print(f"cannot verify the audit log: {exc}", file=stream)
        return EXIT_ERROR
    finally:
        store.close()
    print(result.describe(), file=stream)
    print(checkpoints.describe(), file=stream)
    return EXIT_OK if result.ok and checkpoints.ok else EXIT_TAMPERED


def user_add_main(
    settings: Settings,
    username: str,
    role: str,
    *,
    owner_id: str | None = None,
    display_name: str = "",
    password: str | None = None,
    out: TextIO | None = None,
    read_password: Callable[[str], str] = getpass.getpass,
) -> int:
    """Create an account; prints the TOTP provisioning URI once (staff roles)."""
    stream = out or sys.stdout
    try:
        parsed = Role(role)
    except ValueError:
        print("role must be one of: " + ", ".join(str(r) for r in Role), file=stream)
        return EXIT_ERROR
    if password is None and parsed not in {Role.AGENT, Role.INTEGRATION}:  # tokens only
        password = read_password("Password: ")
        if read_password("Repeat the password: ") != password:
            print("the passwords differ; nothing was created", file=stream)
            return EXIT_ERROR
    async def add() -> tuple[User, str | None]:
        core = await SecurityCore.open(settings)
        try:
            return await core.accounts.create_user(
                Actor("cli", "admin", "local"), username, parsed, password=password,
                owner_id=owner_id, display_name=display_name,
            )
        finally:
            await core.aclose()

    try:
        user, uri = asyncio.run(add())
    except (AccountError, RtccError) as exc:
        print(f"user not created: {exc}", file=stream)
        return EXIT_ERROR
    print(f"created user {user.username} (id {user.id}, role {user.role})", file=stream)
    if uri is not None:
        print("Add this to an authenticator app now; it is not shown again:", file=stream)
        print(uri, file=stream)
    return EXIT_OK


def user_unlock_main(settings: Settings, username: str, out: TextIO | None = None) -> int:
    stream = out or sys.stdout

    async def unlock() -> bool:
        core = await SecurityCore.open(settings)
        try:
            user = await core.accounts.by_name(username)
            if user is None:
                return False
            await core.accounts.unlock(Actor("cli", "admin", "local"), user.id)
            return True
        finally:
            await core.aclose()

    if not asyncio.run(unlock()):
        print(f"no user {username!r}", file=stream)
        return EXIT_ERROR
    print(f"unlocked {username}", file=stream)
    return EXIT_OK
