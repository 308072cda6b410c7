"""Staff and their login codes over the API, with the staff page's rules: a code names the one member it signs in
(a new one, or one picked from the list), never above the caller's role or outside their branch; an owner's
sessions are ended by an owner only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, NoReturn

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from booking_core.services import auth as auth_service
from gateway.api import api
from gateway.api.common import caller, transaction
from gateway.errors import ApiError
from gateway.keys import SETTINGS

MANAGERS = ("owner", "admin")
MAX_ID = 2**31 - 1
#: AuthError codes → HTTP status (a branch the caller may not see is "not found", never "forbidden").
STATUS = {"forbidden": 403, "not_found": 404, "role_mismatch": 422, "invalid_role": 422}


class StaffMemberOut(BaseModel):
    id: int
    name: str
    role: str
    branch_id: int | None
    live_sessions: int = Field(description="Devices signed in now")
    may_issue_code: bool = Field(description="The caller may create a login code for this member")
    may_sign_out: bool = Field(description="The caller may sign this member out everywhere")


class StaffOut(BaseModel):
    staff: list[StaffMemberOut]


class LoginCodeIn(BaseModel):
    """Either ``staff_id`` (an existing member: their role and branch) or ``name`` and ``role`` for a new member."""

    model_config = ConfigDict(extra="forbid")

    staff_id: int | None = Field(default=None, gt=0, le=MAX_ID)
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=120)] = ""
    role: Literal["owner", "admin", "staff", "doctor"] | None = None
    branch_id: int | None = Field(default=None, gt=0, le=MAX_ID, description="None: all branches")

    @model_validator(mode="after")
    def _one_member(self) -> LoginCodeIn:
        if self.staff_id is None and self.role is None:
            raise ValueError("give staff_id (an existing member) or role (and name) for a new member")
        if self.staff_id is not None and (self.name or self.branch_id is not None):
            raise ValueError("staff_id picks a member with their own name and branch; leave name and branch_id out")
        return self


class LoginCodeOut(BaseModel):
    code: str = Field(description="Shown once: only its hash is stored")
    expires_at: datetime
    role: str
    name: str
    staff_id: int
    branch_id: int | None
    link: str = Field(description="The staff app's sign-in page with the code filled in (what its QR opens)")


class SignedOutOut(BaseModel):
    staff_id: int
    sessions: int = Field(description="How many devices were signed out")


def _refused(exc: auth_service.AuthError) -> NoReturn:
    raise ApiError(STATUS.get(exc.code, 422), exc.code, exc.message) from None


@api.route("GET", "/staff", summary="Staff who can sign in, with their signed-in devices", tag="staff",
           response=StaffOut, roles=MANAGERS)  # fmt: skip
async def list_staff(request: web.Request) -> StaffOut:
    async with transaction(request) as db:
        members = await auth_service.staff_members(db, actor=caller(request), now=datetime.now(UTC))
    return StaffOut(staff=[StaffMemberOut.model_validate(m, from_attributes=True) for m in members])


@api.route("POST", "/login-codes", summary="A one-time login code for one staff member (new or existing)",
           tag="staff", body=LoginCodeIn, response=LoginCodeOut, roles=MANAGERS, status=201,
           errors=(404,))  # fmt: skip
async def create_login_code(request: web.Request, body: LoginCodeIn) -> LoginCodeOut:
    settings = request.app[SETTINGS]
    try:
        async with transaction(request) as db:
            issued = await auth_service.issue_login_code(
                db, secret=settings.SECRET_KEY, staff_id=body.staff_id, role=body.role, name=body.name,
                branch_id=body.branch_id, created_by=caller(request),
            )  # fmt: skip
    except auth_service.AuthError as exc:
        _refused(exc)
    return LoginCodeOut(
        code=issued.code,
        expires_at=issued.expires_at,
        role=issued.role,
        name=issued.name,
        staff_id=issued.staff_id,
        branch_id=issued.branch_id,
        link=f"{settings.PUBLIC_BASE_URL}/login?code={issued.code}",
    )


@api.route("POST", "/staff/{staff_id}/sign-out", summary="Sign a staff member out on every device", tag="staff",
           response=SignedOutOut, roles=MANAGERS, errors=(404,))  # fmt: skip
async def sign_out_everywhere(request: web.Request, staff_id: int) -> SignedOutOut:
    try:
        async with transaction(request) as db:
            count = await auth_service.sign_out_everywhere(db, staff_id, actor=caller(request))
    except auth_service.AuthError as exc:
        _refused(exc)
    return SignedOutOut(staff_id=staff_id, sessions=count)
