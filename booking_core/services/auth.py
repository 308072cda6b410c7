"""Passwordless staff sign-in: one-time login codes, then a session token (cookie or bearer).

Codes and tokens are stored as HMACs keyed with SECRET_KEY, never in clear; a code works once and only until it
expires; a session can be revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from booking_core.db.engine import Db
from booking_core.db.queries import staff as queries
from booking_core.db.tables import LoginCode, Staff, StaffSession
from booking_core.domain.actors import ROLES, Actor, Role
from booking_core.domain.codes import hash_code, new_login_code, normalize_code
from booking_core.services import audit

LOGIN_CODE_TTL = timedelta(minutes=10)
SESSION_TTL = timedelta(days=14)


class AuthError(Exception):
    """Sign-in refused; ``code`` is stable for clients, the message is safe to show."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class IssuedCode:
    code: str
    expires_at: datetime
    role: Role
    name: str


def _token_hash(token: str, secret: str) -> str:
    return hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()


async def issue_login_code(
    db: Db,
    *,
    secret: str,
    role: Role,
    name: str,
    branch_id: int | None = None,
    created_by: Actor,
    ttl: timedelta = LOGIN_CODE_TTL,
    now: datetime | None = None,
) -> IssuedCode:
    """Create a single-use code for a (new or existing) staff member of ``role`` named ``name``."""
    if role not in ROLES:
        raise AuthError("invalid_role", f"Unknown role {role!r}; use one of {', '.join(ROLES)}.")
    if created_by.kind == "staff":
        if created_by.role not in ("owner", "admin"):
            raise AuthError("forbidden", "Only an owner or admin may create login codes.")
        if role == "owner" and created_by.role != "owner":
            raise AuthError("forbidden", "Only an owner may create an owner's login code.")
        if created_by.branch_id is not None and branch_id != created_by.branch_id:
            raise AuthError("forbidden", "You may only create login codes for your own branch.")
    name = name.strip() or role.capitalize()
    now = now or datetime.now(UTC)
    code = new_login_code()
    row = LoginCode(
        code_hash=hash_code(code, pepper=secret),
        role=role,
        name=name[:120],
        branch_id=branch_id,
        created_by=created_by.id if created_by.kind == "staff" else None,
        expires_at=now + ttl,
    )
    db.add(row)
    await db.flush()
    audit.record(db, created_by, "login_code.issued", "login_code", row.id, {"role": role, "name": name})
    return IssuedCode(code=code, expires_at=row.expires_at, role=role, name=name)


async def redeem_login_code(
    db: Db,
    code: str,
    *,
    secret: str,
    user_agent: str = "",
    client_ip: str | None = None,
    now: datetime | None = None,
) -> tuple[str, Actor]:
    """Exchange a code for a new session token. The code is consumed; a second use is refused."""
    now = now or datetime.now(UTC)
    normalized = normalize_code(code)
    refused = AuthError("invalid_code", "That code is not valid. Codes work once and expire after a few minutes.")
    if normalized is None:
        raise refused
    login = await queries.consume_login_code(db, hash_code(normalized, pepper=secret), now=now, client_ip=client_ip)
    if login is None:
        raise refused
    staff = await queries.staff_for_login(db, login)
    if staff is None:
        staff = Staff(name=login.name, role=login.role, branch_id=login.branch_id)
        db.add(staff)
        await db.flush()
    token = secrets.token_urlsafe(32)
    db.add(
        StaffSession(
            token_hash=_token_hash(token, secret),
            staff_id=staff.id,
            expires_at=now + SESSION_TTL,
            user_agent=user_agent[:300],
        )
    )
    actor = _actor(staff)
    audit.record(db, actor, "login", "staff", staff.id, {"login_code_id": login.id})
    return token, actor


def _actor(staff: Staff) -> Actor:
    return Actor(
        kind="staff",
        id=staff.id,
        name=staff.name,
        role=staff.role,  # type: ignore[arg-type]
        branch_id=staff.branch_id,
        doctor_id=staff.doctor_id,
    )


async def authenticate(db: Db, token: str, *, secret: str, now: datetime | None = None) -> Actor | None:
    """The staff member behind a session token, or None when it is unknown, expired or revoked."""
    now = now or datetime.now(UTC)
    staff = await queries.staff_by_token(db, _token_hash(token, secret), now=now)
    if staff is None:
        return None
    return _actor(staff)


async def revoke(db: Db, token: str, *, secret: str, actor: Actor, now: datetime | None = None) -> bool:
    """Sign a device out."""
    now = now or datetime.now(UTC)
    revoked = await queries.revoke_token(db, _token_hash(token, secret), now=now)
    if revoked is not None:
        audit.record(db, actor, "logout", "staff_session", revoked)
    return revoked is not None


@dataclass(frozen=True)
class StaffMember:
    id: int
    name: str
    role: str
    branch_id: int | None
    live_sessions: int


async def staff_members(db: Db, *, actor: Actor, now: datetime | None = None) -> list[StaffMember]:
    """Who can sign in, with how many devices each has signed in (owners and admins see it)."""
    rows = await queries.staff_with_sessions(db, now=now or datetime.now(UTC), branch_id=actor.branch_id)
    return [StaffMember(s.id, s.name, s.role, s.branch_id, n) for s, n in rows]


async def sign_out_everywhere(db: Db, staff_id: int, *, actor: Actor, now: datetime | None = None) -> int:
    """Revoke every session of one staff member (a lost phone, someone who left); returns how many."""
    staff = await db.get(Staff, staff_id)
    if staff is None or not actor.can_see_branch(staff.branch_id):
        raise AuthError("not_found", "No such staff member.")
    revoked = await queries.revoke_staff_sessions(db, staff_id, now=now or datetime.now(UTC))
    audit.record(db, actor, "staff.signed_out_everywhere", "staff", staff_id, {"sessions": revoked})
    return revoked
