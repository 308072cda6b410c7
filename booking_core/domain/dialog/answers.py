"""The patient's answer at each step of a flow: one handler per step, in :data:`HANDLERS`.

Handlers take ``(state, choice, text, ctx)``: ``choice`` is button data already checked against what was offered
(or None), ``text`` the typed answer. They return None when the answer is not understood; the machine then re-asks
with the step's hint from :data:`HINTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from booking_core.domain import dates
from booking_core.domain.dialog.ask import PAGE, reask, to_menu, tz_of, wrong
from booking_core.domain.dialog.context import Context, VisitInfo
from booking_core.domain.dialog.effects import CancelVisit, ConfirmBooking, Decision, Reschedule
from booking_core.domain.dialog.flows import (
    advance,
    ask_exam,
    ask_time,
    local_day_time,
    offer_time,
    reasons,
    rewind,
    start,
    visit_vars,
)
from booking_core.domain.dialog.state import Draft, State
from booking_core.domain.dialog.words import match_names, normalise, phone_e164, valid_name, yes_no

__all__ = ["HANDLERS", "HINTS", "cancel_from_followup"]

_ANY_DOCTOR = frozenset({"any", "anyone", "any doctor", "whoever", "no preference", "siapa saja", "siapapun",
                         "siapa aja", "bebas", "terserah", "apa saja", "dokter mana saja", "mana saja"})  # fmt: skip

#: The hint a wrong answer gets, per step.
HINTS: dict[str, str] = {
    "menu": "not_understood",
    "exam": "unknown_examination",
    "branch": "unknown_branch",
    "doctor": "unknown_doctor",
    "day": "unknown_day",
    "time": "unknown_time",
    "name": "invalid_name",
    "phone": "invalid_phone",
    "confirm": "yes_no",
    "pick": "unknown_visit",
    "reason": "choose_reason",
    "lang": "choose_language",
}


def _id(choice: str, prefix: str) -> int | None:
    body = choice.removeprefix(prefix)
    return int(body) if choice.startswith(prefix) and body.isdigit() else None


def on_exam(state: State, choice: str | None, text: str, ctx: Context) -> Decision | None:
    if choice is not None:
        exam = ctx.examination(_id(choice, "ex:"))
        return advance(state.drafting(examination_id=exam.id), ctx) if exam else reask(state, "stale_button")
    exams = ctx.examinations
    found = match_names(text, exams, [(e.name, *e.keywords) for e in exams])
    if len(found) == 1:
        return advance(state.drafting(examination_id=found[0].id), ctx)
    if found:
        return ask_exam(state, ctx, tuple(found), hint="several_matches")
    return None


def on_branch(state: State, choice: str | None, text: str, ctx: Context) -> Decision | None:
    offered = [b for b in ctx.branches if f"br:{b.id}" in state.offered]
    if choice is not None:
        branch = ctx.branch(_id(choice, "br:"))
        return advance(state.drafting(branch_id=branch.id), ctx) if branch else reask(state, "stale_button")
    found = match_names(text, offered, [(b.name,) for b in offered])
    return advance(state.drafting(branch_id=found[0].id), ctx) if len(found) == 1 else None


def on_doctor(state: State, choice: str | None, text: str, ctx: Context) -> Decision | None:
    if choice == "dr:any" or (choice is None and normalise(text) in _ANY_DOCTOR):
        return advance(state.drafting(doctor_chosen=True, doctor_id=None), ctx)
    if choice is not None:
        doctor = ctx.doctor(_id(choice, "dr:"))
        if doctor is None:
            return reask(state, "stale_button")
        return advance(state.drafting(doctor_chosen=True, doctor_id=doctor.id), ctx)
    offered = [d for d in ctx.doctors if f"dr:{d.id}" in state.offered]
    found = match_names(text, offered, [(d.name,) for d in offered])
    return advance(state.drafting(doctor_chosen=True, doctor_id=found[0].id), ctx) if len(found) == 1 else None


def _when(text: str, state: State, ctx: Context) -> dates.When | None:
    return dates.understand(text, now=ctx.now, tz=tz_of(ctx, state.draft.branch_id))


def on_day(state: State, choice: str | None, text: str, ctx: Context) -> Decision | None:
    if choice is not None:
        try:
            day = datetime.strptime(choice.removeprefix("day:"), "%Y-%m-%d").date()
        except ValueError:
            return reask(state, "stale_button")
        return advance(state.drafting(day=day, wanted=None), ctx)
    when = _when(text, state, ctx)
    if when is None:
        return None
    if when.past:
        return wrong(state, "past_day")
    today = ctx.now.astimezone(ZoneInfo(tz_of(ctx, state.draft.branch_id))).date()
    return advance(state.drafting(day=when.day or today, wanted=when.at), ctx)


def on_time(state: State, choice: str | None, text: str, ctx: Context) -> Decision | None:
    tz = tz_of(ctx, state.draft.branch_id)
    if choice == "t:more":
        pages = (len(state.slots) + PAGE - 1) // PAGE
        return ask_time(state.but(page=(state.page + 1) % max(pages, 1)), ctx)
    if choice is not None:
        try:
            start = datetime.fromisoformat(choice.removeprefix("t:"))
        except ValueError:
            return reask(state, "stale_button")
        if start not in state.slots or start.tzinfo is None:
            return reask(state, "stale_button")
        return advance(state.drafting(start=start, day=local_day_time(start, tz)[0]), ctx)
    when = _when(text, state, ctx)
    if when is None:
        return None
    if when.past:
        return wrong(state, "past_time")
    day = when.day or state.draft.day or local_day_time(state.slots[0], tz)[0]
    listed = {local_day_time(s, tz)[0] for s in state.slots}
    if day not in listed:  # another day: look it up, keeping the time if one was named
        moved, _ = rewind(state, "day")
        return advance(moved.drafting(day=day, wanted=when.at), ctx)
    if when.at is None:
        return None
    return offer_time(state, ctx, day, when.at, tz)


def on_name(state: State, choice: str | None, text: str, ctx: Context) -> Decision | None:
    name = valid_name(text)
    return advance(state.drafting(name=name), ctx) if name else None


def on_phone(state: State, choice: str | None, text: str, ctx: Context) -> Decision | None:
    phone = phone_e164(text)
    return advance(state.drafting(phone=phone), ctx) if phone else None


def on_confirm(state: State, choice: str | None, text: str, ctx: Context) -> Decision | None:
    answer = choice.removeprefix("cf:") if choice else yes_no(text)
    d = state.draft
    if answer == "yes" and d.hold_id is not None and d.start is not None:
        if state.flow == "reschedule" and d.visit_id is not None:
            return Decision(state, (), (Reschedule(d.visit_id, d.hold_id),))
        assert d.branch_id is not None and d.examination_id is not None
        confirm = ConfirmBooking(
            hold_id=d.hold_id, branch_id=d.branch_id, examination_id=d.examination_id,
            doctor_id=d.held_doctor_id or d.doctor_id, start=d.start,
            name=d.name or ctx.patient_name or "", phone=d.phone or ctx.patient_phone or "",
        )  # fmt: skip
        return Decision(state, (), (confirm,))
    if answer == "change":
        changed, released = rewind(state, "day")
        decision = advance(changed, ctx)
        return replace(decision, effects=(*released, *decision.effects))
    if answer == "no":
        return to_menu(state, template="booking_abandoned")
    return None


def _unchangeable(state: State, visit: VisitInfo, ctx: Context) -> str | None:
    """Why the patient may not cancel or move ``visit`` in chat (None: they may)."""
    if visit.status != "waiting" or visit.in_queue:
        return "checked_in"
    if visit.starts_at - ctx.now < timedelta(minutes=visit.cancel_cutoff_min):
        return "too_late"  # inside the examination's cancel cutoff: the desk decides
    if state.flow == "cancel" and not reasons(ctx):
        return "not_possible"
    if state.flow == "reschedule" and ctx.examination(visit.examination_id) is None:
        return "not_possible"  # the examination is no longer booked in chat
    return None


def cancel_from_followup(state: State, visit: VisitInfo, ctx: Context) -> Decision:
    """ "Cancel" on a confirmation message: the cancel flow for that visit, straight to asking why."""
    why = _unchangeable(state.but(flow="cancel"), visit, ctx)
    if why is not None:
        return to_menu(state, template="cannot_change", values={**visit_vars(visit, ctx), "why": why})
    return start(state, "cancel", ctx, draft=Draft(visit_id=visit.id))


def on_pick(state: State, choice: str | None, text: str, ctx: Context) -> Decision | None:
    if choice is not None:
        visit = ctx.visit(_id(choice, "s:"))
        if visit is None:  # cancelled or moved since the list was shown
            return reask(state, "stale_button")
    else:
        code = normalise(text).replace(" ", "").upper()
        offered = [v for v in ctx.visits if f"s:{v.id}" in state.offered]
        visit = next((v for v in offered if v.booking_code.upper() == code), None)
        if visit is None:
            return None
    if state.flow == "queue":
        return advance(state.drafting(visit_id=visit.id), ctx)
    why = _unchangeable(state, visit, ctx)
    if why is not None:
        return to_menu(state, template="cannot_change", values={**visit_vars(visit, ctx), "why": why})
    if state.flow == "reschedule":
        preset = state.drafting(
            visit_id=visit.id, examination_id=visit.examination_id, branch_id=visit.branch_id,
            doctor_id=visit.doctor_id, doctor_chosen=True,
        )  # fmt: skip
        return advance(preset, ctx)
    return advance(state.drafting(visit_id=visit.id), ctx)


def on_reason(state: State, choice: str | None, text: str, ctx: Context) -> Decision | None:
    if choice is None or state.draft.visit_id is None:
        return None
    key = choice.removeprefix("rs:")
    reason = next((r for r in reasons(ctx) if r[0] == key), None)
    if reason is None:
        return reask(state, "stale_button")
    return Decision(state, (), (CancelVisit(state.draft.visit_id, reason[1], reason[2]),))


Handler = Callable[[State, str | None, str, Context], Decision | None]
HANDLERS: dict[str, Handler] = {
    "exam": on_exam,
    "branch": on_branch,
    "doctor": on_doctor,
    "day": on_day,
    "time": on_time,
    "name": on_name,
    "phone": on_phone,
    "confirm": on_confirm,
    "pick": on_pick,
    "reason": on_reason,
}
