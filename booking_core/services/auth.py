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
from booking_core.db.tables import Branch, LoginCode, Staff, StaffSession
from booking_core.domain.actors import RANK, ROLES, Actor, Role
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
    staff_id: int
    branch_id: int | None


def _token_hash(token: str, secret: str) -> str:
    return hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def code_refusal(creator: Actor, *, role: str, branch_id: int | None, member: Staff | None) -> str | None:
    """Why ``creator`` may not mint a code for ``role`` in ``branch_id`` (for the existing ``member``, or a new one);
    None when they may. The operator (CLI, ``SYSTEM``) may mint anything: it already holds the database.

    Nobody mints above their own role or outside their own branch; an existing record is theirs or below their role
    (an admin cannot become another admin, a branch admin cannot become anybody of another branch or clinic-wide).
    """
    if creator.kind != "staff":
        return None
    if creator.role not in ("owner", "admin"):
        return "Only an owner or admin may create login codes."
    if member is not None and member.id == creator.id:
        return None  # a code for one's own new phone
    if role == "owner" and creator.role != "owner":
        return "Only an owner may create an owner's login code."
    if RANK[role] > RANK[creator.role]:
        return "You may not create a login code for a role above your own."
    if creator.branch_id is not None and branch_id != creator.branch_id:
        return "You may only create login codes for your own branch."
    if member is not None and RANK[member.role] >= RANK[creator.role]:
        return f"Only {member.name} or someone above a {member.role} may create their login code."
    return None


async def issue_login_code(
    db: Db,
    *,
    secret: str,
    role: Role | None = None,
    name: str = "",
    staff_id: int | None = None,
    branch_id: int | None = None,
    created_by: Actor,
    ttl: timedelta = LOGIN_CODE_TTL,
    now: datetime | None = None,
) -> IssuedCode:
    """Create a single-use code that signs in exactly one staff record, never someone chosen by name.

    ``staff_id`` picks an existing member (the code gets their role and branch; a ``role`` given must be theirs).
    Without it a new member ``name`` with ``role`` and ``branch_id`` is created with the code; only the operator
    (the CLI, ``created_by=SYSTEM``) instead continues the active member of that name, role and branch if there is one.
    Staff creators are held to their own role and branch (``code_refusal``).
    """
    if staff_id is None and role not in ROLES:
        raise AuthError("invalid_role", f"Unknown role {role!r}; use one of {', '.join(ROLES)}.")
    member: Staff | None = None
    if staff_id is not None:
        member = await db.get(Staff, staff_id)
        if member is None or not member.active or not created_by.can_see_branch(member.branch_id):
            raise AuthError("not_found", "No such staff member.")
        if role is not None and role != member.role:
            raise AuthError("role_mismatch", f"{member.name} signs in as {member.role}, not {role}.")
        branch_id = member.branch_id
    elif created_by.kind != "staff":
        member = await queries.active_staff_named(db, name=name.strip() or str(role).capitalize(), role=str(role),
                                                  branch_id=branch_id)  # fmt: skip
    elif created_by.branch_id is not None and branch_id is None:
        branch_id = created_by.branch_id  # a branch admin's new colleague works in their branch
    code_role: Role = member.role if member is not None else role  # type: ignore[assignment]
    refusal = code_refusal(created_by, role=code_role, branch_id=branch_id, member=member)
    if refusal is not None:
        raise AuthError("forbidden", refusal)
    if branch_id is not None and await db.get(Branch, branch_id) is None:
        raise AuthError("not_found", "No such branch.")
    if member is None:
        member = Staff(name=(name.strip() or code_role.capitalize())[:120], role=code_role, branch_id=branch_id)
        db.add(member)
        await db.flush()
        audit.record(db, created_by, "staff.created", "staff", member.id, {"role": code_role, "branch_id": branch_id})
    now = now or datetime.now(UTC)
    code = new_login_code()
    row = LoginCode(
        code_hash=hash_code(code, pepper=secret),
        role=code_role,
        name=member.name,
        branch_id=branch_id,
        staff_id=member.id,
        created_by=created_by.id if created_by.kind == "staff" else None,
        expires_at=now + ttl,
    )
    db.add(row)
    await db.flush()
    audit.record(db, created_by, "login_code.issued", "login_code", row.id,
                 {"role": code_role, "name": member.name, "staff_id": member.id, "branch_id": branch_id})  # fmt: skip
    return IssuedCode(code=code, expires_at=row.expires_at, role=code_role, name=member.name, staff_id=member.id,
                      branch_id=branch_id)  # fmt: skip


async def redeem_login_code(
    db: Db,
    code: str,
    *,
    secret: str,
    user_agent: str = "",
    client_ip: str | None = None,
    now: datetime | None = None,
) -> tuple[str, Actor]:
    """Exchange a code for a new session token of exactly the staff record it names. The code is consumed; a second
    use is refused, and so is a code whose member has since left or changed role or branch."""
    now = now or datetime.now(UTC)
    normalized = normalize_code(code)
    refused = AuthError("invalid_code", "That code is not valid. Codes work once and expire after a few minutes.")
    if normalized is None:
        raise refused
    login = await queries.consume_login_code(db, hash_code(normalized, pepper=secret), now=now, client_ip=client_ip)
    if login is None:
        raise refused
    staff = await db.get(Staff, login.staff_id)
    if staff is None or not staff.active or (staff.role, staff.branch_id) != (login.role, login.branch_id):
        raise refused
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


@dataclass(frozen=True)
class SignedIn:
    """A live session: who, which session row (its revocation is announced by id), and when it ends by itself."""

    actor: Actor
    session_id: int
    expires_at: datetime


async def signed_in(db: Db, token: str, *, secret: str, now: datetime | None = None) -> SignedIn | None:
    """The live session behind a token, or None when it is unknown, expired or revoked (or its member left)."""
    found = await queries.session_by_token(db, _token_hash(token, secret), now=now or datetime.now(UTC))
    if found is None:
        return None
    staff, session = found
    return SignedIn(actor=_actor(staff), session_id=session.id, expires_at=session.expires_at)


async def authenticate(db: Db, token: str, *, secret: str, now: datetime | None = None) -> Actor | None:
    """The staff member behind a session token, or None when it is unknown, expired or revoked."""
    session = await signed_in(db, token, secret=secret, now=now)
    return session.actor if session is not None else None


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
    may_issue_code: bool = False  # the viewer may create a login code for this member
    may_sign_out: bool = False  # the viewer may sign this member out everywhere


async def staff_members(db: Db, *, actor: Actor, now: datetime | None = None) -> list[StaffMember]:
    """Who can sign in, with how many devices each has signed in (owners and admins see it)."""
    rows = await queries.staff_with_sessions(db, now=now or datetime.now(UTC), branch_id=actor.branch_id)
    return [
        StaffMember(
            s.id,
            s.name,
            s.role,
            s.branch_id,
            n,
            may_issue_code=code_refusal(actor, role=s.role, branch_id=s.branch_id, member=s) is None,
            may_sign_out=sign_out_refusal(actor, s) is None,
        )
        for s, n in rows
    ]


def sign_out_refusal(actor: Actor, member: Staff) -> str | None:
    """Why ``actor`` may not end every session of ``member``; None when they may. An owner's sessions are ended by an
    owner only (an admin who could sign the owner out could keep them out)."""
    if actor.kind == "staff" and member.role == "owner" and actor.role != "owner":
        return "Only an owner may sign an owner out."
    return None


async def sign_out_everywhere(db: Db, staff_id: int, *, actor: Actor, now: datetime | None = None) -> int:
    """Revoke every session of one staff member (a lost phone, someone who left); returns how many."""
    staff = await db.get(Staff, staff_id)
    if staff is None or not actor.can_see_branch(staff.branch_id):
        raise AuthError("not_found", "No such staff member.")
    refusal = sign_out_refusal(actor, staff)
    if refusal is not None:
        raise AuthError("forbidden", refusal)
    revoked = await queries.revoke_staff_sessions(db, staff_id, now=now or datetime.now(UTC))
    audit.record(db, actor, "staff.signed_out_everywhere", "staff", staff_id, {"sessions": revoked})
    return revoked
