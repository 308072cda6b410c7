"""The examination catalog, and the branch and doctor lists the inbox needs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from booking_core.services import catalog as service
from gateway.api import api
from gateway.api.common import caller, transaction
from gateway.api.fields import Amount, Currency, Id, WallTime

MANAGERS = ("owner", "admin")
TAG = "catalog"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- branches and doctors


class BranchOut(BaseModel):
    id: int
    code: str
    name: str
    tz: str
    currency: str
    tax_rate: Decimal


class BranchList(BaseModel):
    items: list[BranchOut]


class DoctorOut(BaseModel):
    id: int
    name: str
    specialty: str
    branch_ids: list[int] = Field(description="Branches the doctor attends (weekly, or on an upcoming day)")


class DoctorList(BaseModel):
    items: list[DoctorOut]


class DoctorQuery(BaseModel):
    branch_id: Id | None = None


@api.route("GET", "/branches", summary="Active branches", tag=TAG, response=BranchList)
async def list_branches(request: web.Request) -> BranchList:
    async with transaction(request) as db:
        branches = await service.list_branches(db, actor=caller(request))
    return BranchList(items=[BranchOut(**vars(b)) for b in branches])


@api.route("GET", "/doctors", summary="Active doctors and the branches they attend", tag=TAG,
           query=DoctorQuery, response=DoctorList, errors=(404,))  # fmt: skip
async def list_doctors(request: web.Request, query: DoctorQuery) -> DoctorList:
    async with transaction(request) as db:
        doctors = await service.list_doctors(db, actor=caller(request), branch_id=query.branch_id)
    return DoctorList(
        items=[DoctorOut(id=d.id, name=d.name, specialty=d.specialty, branch_ids=list(d.branch_ids)) for d in doctors]
    )


# --- examinations


class CommissionIn(Body):
    kind: Literal["percent", "fixed"]
    value: Amount = Field(description="Percent 0..100, or an amount per unit in the examination's currency")


class WindowIn(Body):
    weekday: int = Field(ge=0, le=6, description="0 = Monday")
    starts: WallTime = Field(description="Branch wall time, e.g. 09:00")
    ends: WallTime


Keyword = Annotated[str, Field(min_length=1, max_length=60)]


class ExaminationFields(Body):
    """Every field an examination has; :class:`ExaminationCreate` requires some, the PATCH none."""

    code: str | None = Field(None, min_length=1, max_length=40)
    name: str | None = Field(None, min_length=1, max_length=120)
    description: str | None = Field(None, max_length=5000)
    price: Amount | None = None
    currency: Currency | None = None
    duration_min: int | None = Field(None, ge=5, le=720)
    taxable: bool | None = None
    room_kind: str | None = Field(None, min_length=1, max_length=40, description="null: any room")
    min_notice_min: int | None = Field(None, ge=0, le=525_600)
    horizon_days: int | None = Field(None, ge=1, le=730)
    buffer_before_min: int | None = Field(None, ge=0, le=240)
    buffer_after_min: int | None = Field(None, ge=0, le=240)
    cancel_cutoff_min: int | None = Field(None, ge=0, le=525_600)
    keywords: list[Keyword] | None = Field(None, max_length=50)
    branch_ids: list[Id] | None = Field(None, max_length=200, description="Branches offering it")
    doctor_ids: list[Id] | None = Field(None, max_length=200, description="Doctors performing it")
    windows: list[WindowIn] | None = Field(None, max_length=100, description="Weekly windows; none = any time")
    doctor_commission: CommissionIn | None = None
    manager_commission: CommissionIn | None = None

    @model_validator(mode="after")
    def _no_null_where_a_value_is_needed(self) -> ExaminationFields:
        nulled = [name for name in self.model_fields_set if getattr(self, name) is None and name != "room_kind"]
        if nulled:
            raise ValueError(f"{', '.join(sorted(nulled))} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields sent, as :class:`~booking_core.services.catalog.ExaminationDraft` values."""
        out: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            if name in ("keywords", "branch_ids", "doctor_ids"):
                value = tuple(value)
            elif name == "windows":
                value = tuple(service.WeeklyWindow(w.weekday, w.starts, w.ends) for w in value)
            elif name in ("doctor_commission", "manager_commission"):
                value = service.Commission(value.kind, value.value)
            out[name] = value
        return out


class ExaminationCreate(ExaminationFields):
    code: str = Field(min_length=1, max_length=40, description="Unique; stored upper-case")
    name: str = Field(min_length=1, max_length=120)
    price: Amount
    currency: Currency
    duration_min: int = Field(ge=5, le=720)


class ExaminationPatch(ExaminationFields):
    active: bool | None = Field(None, description="true brings a deleted examination back")


class CommissionOut(BaseModel):
    kind: str
    value: Decimal


class WindowOut(BaseModel):
    weekday: int
    starts: WallTime
    ends: WallTime


class ExaminationOut(BaseModel):
    id: int
    code: str
    name: str
    description: str
    price: Decimal
    currency: str
    duration_min: int
    taxable: bool
    room_kind: str | None
    min_notice_min: int
    horizon_days: int
    buffer_before_min: int
    buffer_after_min: int
    cancel_cutoff_min: int
    keywords: list[str]
    branch_ids: list[int]
    doctor_ids: list[int]
    windows: list[WindowOut]
    doctor_commission: CommissionOut
    manager_commission: CommissionOut
    active: bool
    created_at: datetime | None
    unstaffed_branch_ids: list[int] = Field(
        default_factory=list,
        description="Branches offering it where none of its doctors works: patients find no time there",
    )

    @classmethod
    def of(cls, view: service.ExaminationView) -> ExaminationOut:
        return cls(
            id=view.id,
            code=view.code,
            name=view.name,
            description=view.description,
            price=view.price,
            currency=view.currency,
            duration_min=view.duration_min,
            taxable=view.taxable,
            room_kind=view.room_kind,
            min_notice_min=view.min_notice_min,
            horizon_days=view.horizon_days,
            buffer_before_min=view.buffer_before_min,
            buffer_after_min=view.buffer_after_min,
            cancel_cutoff_min=view.cancel_cutoff_min,
            keywords=list(view.keywords),
            branch_ids=list(view.branch_ids),
            doctor_ids=list(view.doctor_ids),
            windows=[WindowOut(weekday=w.weekday, starts=w.starts, ends=w.ends) for w in view.windows],
            doctor_commission=CommissionOut(kind=view.doctor_commission.kind, value=view.doctor_commission.value),
            manager_commission=CommissionOut(kind=view.manager_commission.kind, value=view.manager_commission.value),
            active=view.active,
            created_at=view.created_at,
            unstaffed_branch_ids=list(view.unstaffed_branch_ids),
        )


class ExaminationList(BaseModel):
    items: list[ExaminationOut]


class ExaminationQuery(BaseModel):
    branch_id: Id | None = Field(None, description="Only examinations offered at this branch")
    active: bool | None = Field(None, description="true: bookable ones; false: deleted ones; absent: all")


@api.route("GET", "/examinations", summary="The examination catalog", tag=TAG,
           query=ExaminationQuery, response=ExaminationList, errors=(404,))  # fmt: skip
async def list_examinations(request: web.Request, query: ExaminationQuery) -> ExaminationList:
    async with transaction(request) as db:
        views = await service.list_examinations(
            db, actor=caller(request), branch_id=query.branch_id, active=query.active
        )
    return ExaminationList(items=[ExaminationOut.of(v) for v in views])


@api.route("GET", "/examinations/{examination_id}", summary="One examination", tag=TAG,
           response=ExaminationOut, errors=(404,))  # fmt: skip
async def get_examination(request: web.Request, examination_id: int) -> ExaminationOut:
    async with transaction(request) as db:
        view = await service.get_examination(db, examination_id, actor=caller(request))
    return ExaminationOut.of(view)


@api.route("POST", "/examinations", summary="Add an examination to the catalog", tag=TAG, body=ExaminationCreate,
           response=ExaminationOut, roles=MANAGERS, status=201, errors=(404, 409))  # fmt: skip
async def create_examination(request: web.Request, body: ExaminationCreate) -> ExaminationOut:
    draft = service.ExaminationDraft(**body.changes())
    async with transaction(request) as db:
        view = await service.create_examination(db, draft, actor=caller(request))
    return ExaminationOut.of(view)


@api.route("PATCH", "/examinations/{examination_id}", summary="Change an examination (lists are replaced whole)",
           tag=TAG, body=ExaminationPatch, response=ExaminationOut, roles=MANAGERS, errors=(404, 409))  # fmt: skip
async def update_examination(request: web.Request, examination_id: int, body: ExaminationPatch) -> ExaminationOut:
    async with transaction(request) as db:
        view = await service.update_examination(db, examination_id, body.changes(), actor=caller(request))
    return ExaminationOut.of(view)


@api.route("DELETE", "/examinations/{examination_id}", summary="Withdraw an examination (kept for history)",
           tag=TAG, response=ExaminationOut, roles=MANAGERS, errors=(404,))  # fmt: skip
async def delete_examination(request: web.Request, examination_id: int) -> ExaminationOut:
    async with transaction(request) as db:
        view = await service.delete_examination(db, examination_id, actor=caller(request))
    return ExaminationOut.of(view)
