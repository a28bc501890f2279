"""User accounts: creation, password + TOTP login, lockout, unlock.

Lockout (CJIS AC-7): 5 failed logins within 15 minutes lock the account for 30 minutes or until
an administrator unlocks it. Every login attempt, good or bad, is audited.

The public methods are async: their statements (the ``_``-prefixed methods) run on the security
store's thread.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from rtcc.access import Actor, SecretBox
from rtcc.config import SecurityConfig
from rtcc.db import Row
from rtcc.errors import RtccError
from rtcc.policy import STAFF_ROLES, Role
from security import totp
from security.audit import AuditLog
from security.passwords import Passwords, password_problem
from security.store import INTEGRITY_ERRORS, Clock, SecurityStore, SecurityTables

log = logging.getLogger(__name__)

LOCK_AFTER_FAILURES = 5
FAILURE_WINDOW_SECONDS = 15 * 60
LOCK_SECONDS = 30 * 60

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_OWNER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
OWNER_SCOPED = frozenset({Role.OWNER, Role.AGENT})


class AccountError(RtccError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    display_name: str
    role: Role
    owner_id: str | None
    has_password: bool
    totp_enrolled: bool
    locked_until: float
    disabled: bool
    created: float
    last_login: float | None

    @classmethod
    def from_row(cls, row: Row) -> User:
        return cls(
            id=int(row["id"]), username=row["username"], display_name=row["display_name"],
            role=Role(row["role"]), owner_id=row["owner_id"],
            has_password=row["password_hash"] is not None,
            totp_enrolled=row["totp_secret"] is not None, locked_until=float(row["locked_until"]),
            disabled=bool(row["disabled"]), created=float(row["created"]),
            last_login=None if row["last_login"] is None else float(row["last_login"]),
        )

    def as_json(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "role": str(self.role),
            "owner_id": self.owner_id,
            "totp_enrolled": self.totp_enrolled,
            "locked": self.locked_until > now,
            "disabled": self.disabled,
            "created": self.created,
            "last_login": self.last_login,
        }


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    user: User | None
    status: int
    """200 logged in, 401 wrong credentials, 423 locked."""
    message: str
    needs_code: bool = False
    """The password was right and the account has a one-time code that was not given."""


_WRONG = "wrong user name, password or one-time code"
_NEEDS_CODE = "this account needs its one-time code: enter the code from your authenticator app"
_NO_SECOND_FACTOR = ("this account needs a one-time code but has none set up; ask an "
                     "administrator to enroll one")
_LOCKED = ("this account is locked after repeated failed logins; wait 30 minutes or ask an "
           "administrator")


class Accounts:
    def __init__(
        self,
        store: SecurityStore,
        audit: AuditLog,
        box: SecretBox,
        config: SecurityConfig,
        clock: Clock,
        passwords: Passwords | None = None,
    ) -> None:
        self._store = store
        self._db: SecurityTables = store.tables
        self._audit = audit
        self._box = box
        self._config = config
        self._clock = clock
        self.passwords = passwords or Passwords()

    def totp_required(self, role: Role) -> bool:
        return role in STAFF_ROLES and self._config.require_totp

    # -- reading --

    async def get(self, user_id: int) -> User | None:
        return await self._store.run(self._get, user_id)

    async def by_name(self, username: str) -> User | None:
        return await self._store.run(self._by_name, username)

    async def all_users(self) -> list[User]:
        return await self._store.run(self._all_users)

    def _get(self, user_id: int) -> User | None:
        row = self._db.conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        return None if row is None else User.from_row(row)

    def _by_name(self, username: str) -> User | None:
        row = self._row_by_name(username)
        return None if row is None else User.from_row(row)

    def _all_users(self) -> list[User]:
        rows = self._db.conn.execute("SELECT * FROM users ORDER BY id").fetchall()
        return [User.from_row(row) for row in rows]

    # -- creating --

    async def create_user(
        self,
        actor: Actor,
        username: str,
        role: Role,
        *,
        password: str | None,
        owner_id: str | None = None,
        display_name: str = "",
        enroll_totp: bool | None = None,
        token_only: bool = False,
    ) -> tuple[User, str | None]:
        """Create a user; returns it and, when a TOTP seed was made, its provisioning URI
        (shown once, never stored in clear). ``token_only`` accounts have no password and
        authenticate with API tokens only (agents, the bootstrap administrator)."""
        if not _USERNAME.fullmatch(username):
            raise AccountError(
                "user name: 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter "
                "or digit"
            )
        if role in OWNER_SCOPED:
            if not owner_id or not _OWNER_ID.fullmatch(owner_id):
                raise AccountError(f"a {role} account needs an owner_id (letters, digits, . _ : -)")
        elif owner_id:
            raise AccountError(f"a {role} account has no owner_id")
        if len(display_name) > 200:
            raise AccountError("display name: at most 200 characters")
        if password is not None and role == Role.INTEGRATION:
            raise AccountError("an integration account signs in with API tokens only: leave the "
                               "password out and issue it a token")
        if password is not None:
            problem = password_problem(password, username)
            if problem:
                raise AccountError(problem)
        elif not token_only and role not in {Role.AGENT, Role.INTEGRATION}:
            raise AccountError("a password is required for this role")
        if await self.by_name(username) is not None:
            raise AccountError(f"user {username!r} already exists", status=409)
        if enroll_totp is None:  # a seed nobody asked for would lock a password-only user out
            enroll_totp = self.totp_required(role) and password is not None
        if self.totp_required(role) and password is not None and not enroll_totp:
            raise AccountError("staff accounts must use a one-time code (TOTP)")

        password_hash = None if password is None else await self.passwords.hash_async(password)
        seed = totp.new_secret() if enroll_totp else None
        now = self._clock()
        user_id = await self._store.run(
            self._insert_user, username, display_name, role, owner_id, password_hash,
            None if seed is None else self._box.encrypt(seed), now)
        await self._audit.append(
            actor=actor.name, role=actor.role, action="user.create", target=f"user:{user_id}",
            owner_id=owner_id or "", source=actor.source,
            details={"username": username, "role": str(role), "totp": bool(seed)},
        )
        user = await self.get(user_id)
        assert user is not None
        uri = None if seed is None else totp.provisioning_uri(seed, username)
        return user, uri

    def _insert_user(self, username: str, display_name: str, role: Role, owner_id: str | None,
                     password_hash: str | None, totp_secret: str | None, now: float) -> int:
        try:
            with self._db.transaction() as conn:
                user_id = conn.scalar(
                    "INSERT INTO users (username, display_name, role, owner_id, password_hash,"
                    " totp_secret, created) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (username, display_name, str(role), owner_id, password_hash,
                     totp_secret, now),
                )
        except INTEGRITY_ERRORS:
            raise AccountError(f"user {username!r} already exists", status=409) from None
        return int(user_id)

    def _set_password_hash(self, user_id: int, digest: str) -> None:
        self._db.conn.execute(
            "UPDATE users SET password_hash = ? WHERE id = ?", (digest, user_id)
        )

    async def set_password(self, actor: Actor, user_id: int, password: str) -> None:
        user = await self.get(user_id)
        if user is None:
            raise AccountError("no such user", status=404)
        problem = password_problem(password, user.username)
        if problem:
            raise AccountError(problem)
        digest = await self.passwords.hash_async(password)
        await self._store.run(self._set_password_hash, user_id, digest)
        await self._audit.append(actor=actor.name, role=actor.role, action="user.password",
                           target=f"user:{user_id}", source=actor.source)

    async def unlock(self, actor: Actor, user_id: int) -> User:
        user = await self.get(user_id)
        if user is None:
            raise AccountError("no such user", status=404)
        await self._audit.append(actor=actor.name, role=actor.role, action="user.unlock",
                                 target=f"user:{user_id}", source=actor.source,
                                 details={"username": user.username})
        unlocked = await self._store.run(self._unlock, user_id)
        assert unlocked is not None
        return unlocked

    def _unlock(self, user_id: int) -> User | None:
        with self._db.transaction() as conn:
            conn.execute("UPDATE users SET locked_until = 0 WHERE id = ?", (user_id,))
            conn.execute("DELETE FROM login_failures WHERE user_id = ?", (user_id,))
        return self._get(user_id)

    async def set_disabled(self, actor: Actor, user_id: int, disabled: bool) -> User:
        """Disable (or enable again) an account; a disabled account's sessions and tokens stop
        working at once."""
        user = await self.get(user_id)
        if user is None:
            raise AccountError("no such user", status=404)
        await self._audit.append(actor=actor.name, role=actor.role,
                                 action="user.disable" if disabled else "user.enable",
                                 target=f"user:{user_id}", source=actor.source,
                                 details={"username": user.username})
        changed = await self._store.run(self._set_disabled, user_id, disabled)
        assert changed is not None
        return changed

    def _set_disabled(self, user_id: int, disabled: bool) -> User | None:
        with self._db.transaction() as conn:
            conn.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user_id))
            if disabled:
                conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
        return self._get(user_id)

    # -- logging in --

    async def login(self, username: str, password: str, code: str, source: str) -> LoginOutcome:
        now = self._clock()
        name = username.strip()[:64]
        row = await self._store.run(self._row_by_name, name)
        if row is None or row["disabled"]:
            await self.passwords.verify_async(None, password)
            await self._audit.append(actor=name, role="", action="login", outcome="failure",
                                     source=source, details={"reason": "unknown or disabled user"})
            return LoginOutcome(None, 401, _WRONG)
        user = User.from_row(row)
        if user.locked_until > now:
            await self._audit.append(actor=user.username, role=str(user.role), action="login",
                                     outcome="refused", source=source,
                                     details={"reason": "account locked"})
            return LoginOutcome(None, 423, _LOCKED)

        password_ok = await self.passwords.verify_async(row["password_hash"], password)
        step: int | None = None
        if row["totp_secret"] is not None and password_ok and not code.strip():
            # Not a guess: the person knows the password and must be told to add the code.
            await self._audit.append(actor=user.username, role=str(user.role), action="login",
                                     outcome="failure", source=source,
                                     details={"reason": "one-time code missing"})
            return LoginOutcome(None, 401, _NEEDS_CODE, needs_code=True)
        if row["totp_secret"] is not None:
            seed = self._box.decrypt(row["totp_secret"])
            step = totp.verify(seed, code, now, int(row["totp_last_step"])) if code else None
            second_ok = step is not None
            reason = "wrong password" if not password_ok else "wrong or reused one-time code"
        elif self.totp_required(user.role):
            second_ok = False
            reason = "no second factor enrolled"
        else:
            second_ok = True
            reason = "wrong password"
        if password_ok and second_ok:
            return await self._succeed(user, row["password_hash"], password, step, source, now)
        outcome = await self._fail(user, reason, source, now)
        if password_ok and row["totp_secret"] is None and outcome.status == 401:
            return LoginOutcome(None, 401, _NO_SECOND_FACTOR)
        return outcome

    def _row_by_name(self, name: str) -> Row | None:
        # Logins are case-insensitive: SQLite's column is NOCASE, PostgreSQL's unique index is
        # on lower(username).
        row: Row | None = self._db.conn.fetchone(
            "SELECT * FROM users WHERE lower(username) = lower(?)", (name,))
        return row

    async def _succeed(self, user: User, stored: str, password: str, step: int | None,
                       source: str, now: float) -> LoginOutcome:
        await self._audit.append(actor=user.username, role=str(user.role), action="login",
                                 source=source, owner_id=user.owner_id or "")
        await self._store.run(self._record_login, user.id, step, now)
        if self.passwords.needs_rehash(stored):
            digest = await self.passwords.hash_async(password)
            await self._store.run(self._set_password_hash, user.id, digest)
        return LoginOutcome(await self.get(user.id), 200, "")

    def _record_login(self, user_id: int, step: int | None, now: float) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM login_failures WHERE user_id = ?", (user_id,))
            conn.execute(
                "UPDATE users SET last_login = ?, totp_last_step = CASE WHEN totp_last_step > ?"
                " THEN totp_last_step ELSE ? END WHERE id = ?",
                (now, step or 0, step or 0, user_id),
            )

    async def _fail(self, user: User, reason: str, source: str, now: float) -> LoginOutcome:
        recent, locking = await self._store.run(self._record_failure, user.id, now)
        await self._audit.append(actor=user.username, role=str(user.role), action="login",
                                 outcome="failure", source=source,
                                 details={"reason": reason, "recent_failures": recent})
        if locking:
            log.warning("account %s locked after %d failed logins", user.username, recent)
            await self._audit.append(actor="system", role="", action="user.lock",
                                     target=f"user:{user.id}", source=source,
                                     details={"username": user.username, "failures": recent})
        return LoginOutcome(None, 401, _WRONG)

    def _record_failure(self, user_id: int, now: float) -> tuple[int, bool]:
        """Count the failure (locking the account at the limit): (recent failures, locked)."""
        with self._db.transaction() as conn:
            conn.execute("INSERT INTO login_failures (user_id, at) VALUES (?, ?)", (user_id, now))
            conn.execute("DELETE FROM login_failures WHERE user_id = ? AND at < ?",
                         (user_id, now - FAILURE_WINDOW_SECONDS))
            recent = int(conn.execute(
                "SELECT COUNT(*) FROM login_failures WHERE user_id = ? AND at >= ?",
                (user_id, now - FAILURE_WINDOW_SECONDS),
            ).fetchone()[0])
            locking = recent >= LOCK_AFTER_FAILURES
            if locking:
                conn.execute("UPDATE users SET locked_until = ? WHERE id = ?",
                             (now + LOCK_SECONDS, user_id))
        return recent, locking
