"""The dialog's flows: book, reschedule, cancel, queue. Their steps in order, :func:`advance` to the next, and
the question each step asks.

:func:`advance` looks at what the draft still lacks and asks for it, skipping what is already known (the only
examination, the only branch, a name the clinic has). Steps that need live data end in an effect; the service's
answer comes back through :mod:`booking_core.domain.dialog.outcomes` (``present_days``/``present_slots`` are here,
as they build the day and time questions). The patient's answers are read in :mod:`booking_core.domain.dialog.answers`.
"""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from booking_core.domain.dialog.ask import BACK, PAGE, STAFF, iso, question, to_menu, tz_of
from booking_core.domain.dialog.context import Context, ExaminationInfo, VisitInfo
from booking_core.domain.dialog.effects import (
    DaysFound,
    Decision,
    Effect,
    FindDays,
    FindSlots,
    HoldSlot,
    QueuePosition,
    ReleaseHold,
    SlotsFound,
)
from booking_core.domain.dialog.state import Choice, Draft, Reply, State

__all__ = [
    "PATIENT_REASONS",
    "advance",
    "ask_confirm",
    "ask_exam",
    "ask_time",
    "list_visits",
    "local_day_time",
    "names",
    "offer_time",
    "present_days",
    "present_slots",
    "reasons",
    "rewind",
    "start",
    "visit_vars",
]

#: Days looked ahead for free slots when offering day buttons.
WITHIN_DAYS = 14
MAX_CHOICES = 10

#: Why a patient cancels in chat: (button key, the clinic's reason code, the note written with it).
PATIENT_REASONS: tuple[tuple[str, str, str], ...] = (
    ("cant_come", "patient_request", "Patient cannot come (said in chat)."),
    ("feel_better", "patient_request", "Patient feels better (said in chat)."),
    ("booked_twice", "duplicate", "Booked twice (said in chat)."),
    ("other", "other", "Another reason (said in chat)."),
)

#: The steps of each flow in order; "back" and "change" clear a step and every later one.
ORDER: dict[str, tuple[str, ...]] = {
    "book": ("exam", "branch", "doctor", "day", "time", "name", "phone", "confirm"),
    "reschedule": ("pick", "day", "time", "confirm"),
    "cancel": ("pick", "reason"),
    "queue": ("pick",),
}
_OWNS: dict[str, tuple[str, ...]] = {
    "exam": ("examination_id",),
    "branch": ("branch_id",),
    "doctor": ("doctor_id", "doctor_chosen"),
    "day": ("day", "wanted"),
    "time": ("start",),
    "name": ("name",),
    "phone": ("phone",),
    "confirm": ("hold_id", "held_doctor_id"),
    # Picking the visit to reschedule also fixed its examination, branch and doctor.
    "pick": ("visit_id", "examination_id", "branch_id", "doctor_id", "doctor_chosen"),
    "reason": (),
}


# --- starting and moving on -------------------------------------------------------------------------------


def start(state: State, flow: str, ctx: Context, *, draft: Draft | None = None) -> Decision:
    """Begin ``flow`` afresh (name and phone carry over); a held slot from before is given back."""
    released: tuple[Effect, ...] = (ReleaseHold(state.draft.hold_id),) if state.draft.hold_id is not None else ()
    fresh = draft or Draft()
    fresh = replace(fresh, name=state.draft.name, phone=state.draft.phone)
    begun = state.but(flow=flow, trail=(), draft=fresh, slots=(), page=0, misses=0, greeted=True)
    decision = advance(begun, ctx)
    return replace(decision, effects=(*released, *decision.effects))


def rewind(state: State, target: str) -> tuple[State, tuple[Effect, ...]]:
    """Forget ``target``'s answer and every later one (giving a held slot back) so it is asked again."""
    order = ORDER.get(state.flow or "", ())
    later = order[order.index(target) :] if target in order else order
    cleared = {name for step in later for name in _OWNS[step]}
    defaults: dict[str, Any] = {f.name: f.default for f in fields(Draft) if f.name in cleared}
    effects: tuple[Effect, ...] = ()
    if "hold_id" in cleared and state.draft.hold_id is not None:
        effects = (ReleaseHold(state.draft.hold_id),)
    trail = state.trail[: state.trail.index(target)] if target in state.trail else state.trail
    slots = () if "start" in cleared else state.slots
    return state.but(draft=replace(state.draft, **defaults), trail=trail, slots=slots, page=0), effects


def _candidate_doctors(ctx: Context, exam: ExaminationInfo, branch_id: int | None) -> list[int]:
    branch = ctx.branch(branch_id)
    ids = [d for d in exam.doctor_ids if ctx.doctor(d) is not None]
    if branch is not None and branch.doctor_ids:
        ids = [d for d in ids if d in branch.doctor_ids]
    return ids


def advance(state: State, ctx: Context) -> Decision:
    """Ask for the next thing the flow still lacks (or ask the service to look it up)."""
    flow, d = state.flow, state.draft
    if flow == "cancel":
        return _ask_pick(state, ctx) if d.visit_id is None else _ask_reason(state, ctx)
    if flow == "queue":
        return _ask_pick(state, ctx) if d.visit_id is None else Decision(state, (), (QueuePosition(d.visit_id),))
    if flow == "reschedule" and d.visit_id is None:
        return _ask_pick(state, ctx)
    if flow not in ("book", "reschedule"):
        return to_menu(state)
    exam = ctx.examination(d.examination_id)
    if exam is None:
        if len(ctx.examinations) == 1:
            return advance(state.drafting(examination_id=ctx.examinations[0].id), ctx)
        return ask_exam(state, ctx, ctx.examinations)
    if d.branch_id is None:
        branches = [b for b in ctx.branches if not exam.branch_ids or b.id in exam.branch_ids]
        if not branches:
            return to_menu(state, template="not_offered", values={"examination": exam.name})
        if len(branches) == 1:
            return advance(state.drafting(branch_id=branches[0].id), ctx)
        buttons = tuple(Choice("branch", f"br:{b.id}", {"name": b.name}) for b in branches[:MAX_CHOICES])
        return question(state, "ask_branch", {"examination": exam.name}, (*buttons, BACK), step="branch")
    if not d.doctor_chosen:
        doctors = _candidate_doctors(ctx, exam, d.branch_id)
        if len(doctors) <= 1:  # nothing to choose: "any" lets availability pick
            return advance(state.drafting(doctor_chosen=True, doctor_id=None), ctx)
        buttons = tuple(Choice("doctor", f"dr:{i}", {"name": ctx.doctor(i).name}) for i in doctors[:MAX_CHOICES])  # type: ignore[union-attr]
        return question(
            state, "ask_doctor", {"examination": exam.name}, (*buttons, Choice("any_doctor", "dr:any"), BACK),
            step="doctor",
        )  # fmt: skip
    if d.day is None:
        today = ctx.now.astimezone(ZoneInfo(tz_of(ctx, d.branch_id))).date()
        return Decision(state, (), (FindDays(d.branch_id, exam.id, d.doctor_id, today, WITHIN_DAYS),))
    if d.start is None:
        return Decision(state, (), (FindSlots(d.branch_id, exam.id, d.doctor_id, d.day),))
    if flow == "book" and not (d.name or ctx.patient_name):
        return question(state, "ask_name", {}, (), step="name")
    if flow == "book" and not (d.phone or ctx.patient_phone):
        return question(state, "ask_phone", {}, (), step="phone")
    if d.hold_id is None:
        return Decision(state, (), (HoldSlot(d.branch_id, exam.id, d.doctor_id, d.start),))
    return ask_confirm(state, ctx)


# --- questions --------------------------------------------------------------------------------------------


def ask_exam(state: State, ctx: Context, offered: tuple[ExaminationInfo, ...], hint: str | None = None) -> Decision:
    buttons = tuple(Choice("examination", f"ex:{e.id}", {"name": e.name}) for e in offered[:MAX_CHOICES])
    more = len(offered) > MAX_CHOICES
    return question(state, "ask_examination", {"more": more}, (*buttons, BACK), step="exam", hint=hint)


def names(state: State, ctx: Context) -> dict[str, Any]:
    exam, doctor = ctx.examination(state.draft.examination_id), ctx.doctor(state.draft.doctor_id)
    branch = ctx.branch(state.draft.branch_id)
    return {
        "examination": exam.name if exam else "",
        "doctor": doctor.name if doctor else None,
        "branch": branch.name if branch else "",
    }


def present_days(state: State, found: DaysFound, ctx: Context) -> Decision:
    """The day question: buttons for the next days with a free slot (or a hint that there are none)."""
    buttons = tuple(Choice("day", f"day:{day.isoformat()}", {"day": day.isoformat()}) for day in found.days)
    hint = None if found.days else "no_free_days"
    extra = (BACK,) if found.days else (BACK, STAFF)
    return question(
        state, "ask_day", names(state, ctx), (*buttons, *extra), step="day", hint=hint,
        hint_vars={"within_days": WITHIN_DAYS},
    )  # fmt: skip


def local_day_time(instant: datetime, tz: str) -> tuple[Any, time]:
    local = instant.astimezone(ZoneInfo(tz))
    return local.date(), local.time().replace(second=0, microsecond=0)


def ask_time(state: State, ctx: Context, hint: str | None = None, **hint_vars: Any) -> Decision:
    tz = tz_of(ctx, state.draft.branch_id)
    shown = state.slots[state.page * PAGE : (state.page + 1) * PAGE]
    days = {local_day_time(s, tz)[0] for s in state.slots}
    label = "time" if len(days) == 1 else "slot"  # alternatives may lie on other days: say which
    buttons = tuple(Choice(label, f"t:{iso(s, tz)}", {"start": iso(s, tz)}) for s in shown)
    if len(state.slots) > PAGE:
        buttons += (Choice("more", "t:more"),)
    day = state.draft.day or (min(days) if days else None)
    values = {**names(state, ctx), "day": day.isoformat() if day else None, "several_days": len(days) > 1}
    return question(state, "ask_time", values, (*buttons, BACK), step="time", hint=hint, hint_vars=hint_vars)


def present_slots(state: State, found: SlotsFound, ctx: Context) -> Decision:
    """The time question for a day; a time named earlier ("besok jam 3") is taken at once if it is free."""
    tz = tz_of(ctx, state.draft.branch_id)
    starts = tuple(sorted(set(found.starts)))
    wanted = state.draft.wanted
    state = state.drafting(day=found.day, wanted=None)
    if not starts:
        emptied, _ = rewind(state, "day")
        decision = advance(emptied, ctx)
        notice = Reply("no_times", {"day": found.day.isoformat()})
        return replace(decision, replies=(notice, *decision.replies))
    state = state.but(slots=starts, page=0)
    if wanted is None:
        return ask_time(state, ctx)
    return offer_time(state, ctx, found.day, wanted, tz)


def offer_time(state: State, ctx: Context, day: Any, wanted: time, tz: str) -> Decision:
    """Take ``wanted`` on ``day`` if it is free, else show the page of free times nearest to it."""
    for slot in state.slots:
        if local_day_time(slot, tz) == (day, wanted):
            return advance(state.drafting(start=slot, day=day), ctx)
    target = datetime.combine(day, wanted, ZoneInfo(tz))
    nearest = min(range(len(state.slots)), key=lambda i: abs(state.slots[i] - target))
    return ask_time(state.but(page=nearest // PAGE), ctx, "time_not_free", wanted=wanted.strftime("%H:%M"))


def ask_confirm(state: State, ctx: Context) -> Decision:
    d = state.draft
    tz = tz_of(ctx, d.branch_id)
    doctor = ctx.doctor(d.held_doctor_id) or ctx.doctor(d.doctor_id)
    values = {
        **names(state, ctx),
        "doctor": doctor.name if doctor else None,
        "start": iso(d.start, tz) if d.start else None,
        "name": d.name or ctx.patient_name or "",
        "phone": d.phone or ctx.patient_phone or "",
        "minutes": ctx.hold_minutes,
    }
    template = "confirm_booking"
    if state.flow == "reschedule" and (visit := ctx.visit(d.visit_id)) is not None:
        template = "confirm_reschedule"
        values |= {"old_start": iso(visit.starts_at, tz), "code": visit.booking_code}
    buttons = (Choice("yes", "cf:yes"), Choice("change", "cf:change"), Choice("no", "cf:no"))
    return question(state, template, values, buttons, step="confirm")


def _visits_for(state: State, ctx: Context) -> list[VisitInfo]:
    visits = sorted(ctx.visits, key=lambda v: v.starts_at)
    if state.flow == "queue":
        visits = [v for v in visits if _is_today(v, ctx)]
    return visits


def _is_today(visit: VisitInfo, ctx: Context) -> bool:
    zone = ZoneInfo(tz_of(ctx, visit.branch_id))
    return visit.starts_at.astimezone(zone).date() == ctx.now.astimezone(zone).date()


def visit_vars(visit: VisitInfo, ctx: Context) -> dict[str, Any]:
    branch = ctx.branch(visit.branch_id)
    return {
        "code": visit.booking_code,
        "start": iso(visit.starts_at, tz_of(ctx, visit.branch_id)),
        "examination": visit.examination_name,
        "doctor": visit.doctor_name,
        "branch": branch.name if branch else "",
    }


def _ask_pick(state: State, ctx: Context) -> Decision:
    visits = _visits_for(state, ctx)
    purpose = state.flow or "cancel"
    if not visits:
        return to_menu(state, template="no_visits", values={"purpose": purpose})
    if purpose == "queue" and len(visits) == 1:
        return advance(state.drafting(visit_id=visits[0].id), ctx)
    buttons = tuple(Choice("visit", f"s:{v.id}", visit_vars(v, ctx)) for v in visits[:MAX_CHOICES])
    return question(state, "ask_visit", {"purpose": purpose}, (*buttons, BACK), step="pick")


def reasons(ctx: Context) -> list[tuple[str, str, str]]:
    return [r for r in PATIENT_REASONS if r[1] in ctx.cancel_reasons]


def _ask_reason(state: State, ctx: Context) -> Decision:
    visit = ctx.visit(state.draft.visit_id)
    if visit is None:
        return advance(rewind(state, "pick")[0], ctx)
    buttons = tuple(Choice(f"reason_{key}", f"rs:{key}") for key, _, _ in reasons(ctx))
    return question(state, "ask_reason", visit_vars(visit, ctx), (*buttons, BACK), step="reason")


def list_visits(state: State, ctx: Context) -> Decision:
    """ "My appointments": the upcoming visits with their booking codes."""
    visits = sorted(ctx.visits, key=lambda v: v.starts_at)
    if not visits:
        return to_menu(state, template="no_visits", values={"purpose": "list"})
    return to_menu(state, template="appointments", values={"visits": [visit_vars(v, ctx) for v in visits]})
