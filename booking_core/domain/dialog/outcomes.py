"""What the dialog says once the service has done what it asked: held, taken, booked, cancelled, queued.

Each function takes the state, the service's outcome and the context, and returns the next decision;
:data:`OUTCOMES` routes an outcome to its function by type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from booking_core.domain.dialog.ask import done, iso, reask, to_menu, tz_of
from booking_core.domain.dialog.context import Context
from booking_core.domain.dialog.effects import (
    AlreadyRated,
    Booked,
    BookingReceived,
    DaysFound,
    Decision,
    Held,
    NotChanged,
    NotInQueue,
    QueuePlace,
    Rated,
    Rescheduled,
    SlotsFound,
    SlotTaken,
    SlotUnavailable,
    VisitCancelled,
    VisitConfirmed,
)
from booking_core.domain.dialog.flows import (
    advance,
    ask_confirm,
    ask_time,
    names,
    present_days,
    present_slots,
    rewind,
    visit_vars,
)
from booking_core.domain.dialog.state import Reply, State

__all__ = ["OUTCOMES", "aside"]


def on_held(state: State, held: Held, ctx: Context) -> Decision:
    return ask_confirm(state.drafting(hold_id=held.hold_id, start=held.start, held_doctor_id=held.doctor_id), ctx)


def on_taken(state: State, taken: SlotTaken, ctx: Context) -> Decision:
    """The time went meanwhile: offer the alternatives (or the days again when there are none)."""
    state = state.drafting(hold_id=None, held_doctor_id=None, start=None)
    if state.trail and state.trail[-1] == "confirm":
        state = state.but(trail=state.trail[:-1])
    if not taken.alternatives:
        emptied, _ = rewind(state, "day")
        decision = advance(emptied, ctx)
        return replace(decision, replies=(Reply("slot_gone", {}), *decision.replies))
    state = state.but(slots=tuple(sorted(set(taken.alternatives))), page=0)
    return ask_time(state, ctx, "slot_taken")


def on_unavailable(state: State, outcome: SlotUnavailable, ctx: Context) -> Decision:
    return on_taken(state, SlotTaken(()), ctx)


def on_received(state: State, outcome: BookingReceived, ctx: Context) -> Decision:
    return done(state, "booking_received", _summary(state, ctx))


def on_booked(state: State, outcome: Booked, ctx: Context) -> Decision:
    tz = tz_of(ctx, state.draft.branch_id)
    return done(
        state, "booked", {**_summary(state, ctx), "code": outcome.booking_code, "start": iso(outcome.start, tz)}
    )


def _summary(state: State, ctx: Context) -> dict[str, Any]:
    d = state.draft
    doctor = ctx.doctor(d.held_doctor_id) or ctx.doctor(d.doctor_id)
    start = iso(d.start, tz_of(ctx, d.branch_id)) if d.start else None
    return {**names(state, ctx), "doctor": doctor.name if doctor else None, "start": start}


def on_cancelled(state: State, outcome: VisitCancelled, ctx: Context) -> Decision:
    visit = ctx.visit(state.draft.visit_id)
    values = visit_vars(visit, ctx) if visit else {"code": outcome.booking_code, "start": None}
    return done(state, "cancelled", {**values, "code": outcome.booking_code})


def on_rescheduled(state: State, outcome: Rescheduled, ctx: Context) -> Decision:
    visit = ctx.visit(state.draft.visit_id)
    tz = tz_of(ctx, state.draft.branch_id)
    values = {**_summary(state, ctx), "code": outcome.booking_code, "start": iso(outcome.start, tz)}
    values["old_code"] = visit.booking_code if visit else None
    return done(state, "rescheduled", values)


def on_not_changed(state: State, outcome: NotChanged, ctx: Context) -> Decision:
    return to_menu(state, template="not_changed", values={"code": outcome.code})


def on_queue_place(state: State, place: QueuePlace, ctx: Context) -> Decision:
    visit = ctx.visit(state.draft.visit_id)
    tz = tz_of(ctx, visit.branch_id if visit else None)
    values = {"token": place.token, "position": place.position, "ahead": place.ahead, "eta": iso(place.eta, tz),
              "doctor": place.doctor_name}  # fmt: skip
    return to_menu(state, template="queue_position", values=values)


def on_not_in_queue(state: State, outcome: NotInQueue, ctx: Context) -> Decision:
    visit = ctx.visit(state.draft.visit_id)
    values = visit_vars(visit, ctx) if visit else {"code": "", "start": None}
    return to_menu(state, template="not_in_queue", values=values)


def aside(state: State, template: str, values: dict[str, Any]) -> Decision:
    """Say something outside the current flow (a follow-up was answered), then carry on where the patient was:
    at the menu, or with the flow's question asked again."""
    if state.flow is None:
        return to_menu(state, template=template, values=values)
    return Decision(state, (Reply(template, {**values, "hint": None}), *reask(state).replies))


def on_visit_confirmed(state: State, outcome: VisitConfirmed, ctx: Context) -> Decision:
    visit = next((v for v in ctx.visits if v.booking_code == outcome.booking_code), None)
    tz = tz_of(ctx, visit.branch_id if visit else None)
    values = {"code": outcome.booking_code, "start": iso(outcome.start, tz), "already": outcome.already}
    return aside(state, "confirmation_confirmed", values)


def on_rated(state: State, outcome: Rated, ctx: Context) -> Decision:
    return aside(state, "rating_thanks", {"rating": outcome.rating})


def on_already_rated(state: State, outcome: AlreadyRated, ctx: Context) -> Decision:
    return aside(state, "rating_already", {})


OUTCOMES: dict[type, Callable[[State, Any, Context], Decision]] = {
    DaysFound: present_days,
    SlotsFound: present_slots,
    Held: on_held,
    SlotTaken: on_taken,
    SlotUnavailable: on_unavailable,
    BookingReceived: on_received,
    Booked: on_booked,
    VisitCancelled: on_cancelled,
    Rescheduled: on_rescheduled,
    NotChanged: on_not_changed,
    QueuePlace: on_queue_place,
    NotInQueue: on_not_in_queue,
    VisitConfirmed: on_visit_confirmed,
    Rated: on_rated,
    AlreadyRated: on_already_rated,
}
