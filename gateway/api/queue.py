"""The waiting-room queue: check in, the board, manual reordering, call the next patient."""

from __future__ import annotations

from datetime import date, datetime
from typing import Self

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from booking_core.domain.queue import SortMode
from booking_core.services import queue as queue_service
from booking_core.services import queue_actions
from booking_core.services.errors import Invalid
from gateway.api import api
from gateway.api.common import caller, check_branch, transaction
from gateway.api.fields import Id

FRONT_DESK = ("owner", "admin", "staff")
EVERYONE = ("owner", "admin", "staff", "doctor")


class BoardQuery(BaseModel):
    branch_id: Id | None = Field(
        default=None, description="Default: the caller's branch (required for clinic-wide staff)"
    )
    day: date | None = Field(default=None, description="Local day of the branch; default today there")
    sort: SortMode | None = Field(default=None, description="Default: the clinic setting queue_sort (arrival)")


class CheckInBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: Id
    arrived_at: AwareDatetime | None = Field(default=None, description="When the patient arrived; default now")


class MoveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    before: Id | None = Field(default=None, description="Place directly before this entry")
    after: Id | None = Field(default=None, description="Place directly after this entry")

    @model_validator(mode="after")
    def exactly_one(self) -> Self:
        if (self.before is None) == (self.after is None):
            raise ValueError("give exactly one of before or after")
        return self


class CallNextBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    branch_id: Id
    doctor_id: Id
    sort: SortMode | None = Field(default=None, description="Default: the clinic setting queue_sort (arrival)")


class Ticket(BaseModel):
    entry_id: int
    session_id: int
    token: str
    status: str
    position: int = Field(description="1 = next to be called, 0 = with the doctor")
    ahead: int = Field(description="Waiting patients before this one (same doctor)")
    eta: datetime
    wait_min: int
    doctor_id: int
    doctor_name: str


class BoardEntry(Ticket):
    patient_name: str
    booking_code: str
    scheduled_start: datetime
    arrived_at: datetime
    started_at: datetime | None


class BoardOut(BaseModel):
    branch_id: int
    day: date
    sort: SortMode
    generated_at: datetime
    entries: list[BoardEntry]


def _ticket(ticket: queue_service.QueueTicket) -> dict[str, object]:
    return {
        "entry_id": ticket.entry_id,
        "session_id": ticket.session_id,
        "token": ticket.token,
        "status": ticket.status.value,
        "position": ticket.position,
        "ahead": ticket.ahead,
        "eta": ticket.eta,
        "wait_min": ticket.wait_min,
        "doctor_id": ticket.doctor_id,
        "doctor_name": ticket.doctor_name,
    }


def _line(line: queue_service.BoardLine) -> BoardEntry:
    return BoardEntry.model_validate(
        _ticket(line.ticket)
        | {
            "patient_name": line.patient_name,
            "booking_code": line.booking_code,
            "scheduled_start": line.scheduled_start,
            "arrived_at": line.arrived_at,
            "started_at": line.started_at,
        }
    )


def _board(board: queue_service.Board) -> BoardOut:
    return BoardOut(
        branch_id=board.branch_id,
        day=board.day,
        sort=board.sort,
        generated_at=board.now,
        entries=[_line(line) for line in board.lines],
    )


@api.route("GET", "/queue", summary="The day's queue board of a branch", tag="queue",
           query=BoardQuery, response=BoardOut, roles=EVERYONE, errors=(404,))  # fmt: skip
async def queue_board(request: web.Request, query: BoardQuery) -> BoardOut:
    actor = caller(request)
    branch_id = query.branch_id or actor.branch_id
    if branch_id is None:
        raise Invalid("branch_required", "Choose a branch: ?branch_id=...")
    check_branch(actor, branch_id)
    async with transaction(request) as db:
        board = await queue_service.board(db, branch_id, actor=actor, day=query.day, sort=query.sort)
    return _board(board)


@api.route("POST", "/queue/check-in", summary="Check a patient in: the day's queue token", tag="queue",
           body=CheckInBody, response=Ticket, roles=FRONT_DESK, status=201, errors=(404, 409))  # fmt: skip
async def queue_check_in(request: web.Request, body: CheckInBody) -> Ticket:
    actor = caller(request)
    async with transaction(request) as db:
        ticket = await queue_actions.check_in(db, body.session_id, actor=actor, arrived_at=body.arrived_at)
    return Ticket.model_validate(_ticket(ticket))


@api.route("POST", "/queue/{entry_id}/move", summary="Move a patient before or after another (manual order)",
           tag="queue", body=MoveBody, response=BoardOut, roles=FRONT_DESK, errors=(404,))  # fmt: skip
async def queue_move(request: web.Request, entry_id: int, body: MoveBody) -> BoardOut:
    actor = caller(request)
    async with transaction(request) as db:
        board = await queue_actions.move(db, entry_id, actor=actor, before=body.before, after=body.after)
    return _board(board)


@api.route("POST", "/queue/call-next", summary="Call the doctor's next waiting patient in (opens the session)",
           tag="queue", body=CallNextBody, response=BoardEntry, roles=EVERYONE, errors=(404, 409))  # fmt: skip
async def queue_call_next(request: web.Request, body: CallNextBody) -> BoardEntry:
    actor = caller(request)
    check_branch(actor, body.branch_id)
    async with transaction(request) as db:
        line = await queue_actions.call_next(db, body.branch_id, body.doctor_id, actor=actor, sort=body.sort)
    return _line(line)
