"""Asking, re-asking and leaving: the small helpers every dialog step uses.

A question is stored in the state without its hint, so a wrong answer, a stale button or a language switch can ask
it again exactly (re-rendered in the conversation's language at send time).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from booking_core.domain.dialog.context import Context
from booking_core.domain.dialog.effects import Decision, Effect, ReleaseHold
from booking_core.domain.dialog.state import Choice, Draft, Reply, State, Step

__all__ = [
    "BACK",
    "MENU",
    "MISSES_BEFORE_STAFF",
    "PAGE",
    "STAFF",
    "done",
    "iso",
    "question",
    "reask",
    "reset",
    "to_menu",
    "tz_of",
    "wrong",
]

#: Time buttons per message; a "more" button pages through the rest.
PAGE = 8
#: Wrong answers in a row after which the re-ask offers a member of staff.
MISSES_BEFORE_STAFF = 3

BACK = Choice("back", "nav:back")
STAFF = Choice("staff", "menu:staff")
MENU: tuple[Choice, ...] = (
    Choice("book", "menu:book"),
    Choice("mine", "menu:mine"),
    Choice("reschedule", "menu:resched"),
    Choice("cancel_visit", "menu:cancel"),
    Choice("queue", "menu:queue"),
    STAFF,
    Choice("language", "menu:lang"),
)
_MENU_QUESTION = Reply("menu", {"hint": None}, MENU)


def tz_of(ctx: Context, branch_id: int | None) -> str:
    """The branch's time zone (the first branch's when none is chosen yet)."""
    branch = ctx.branch(branch_id) or (ctx.branches[0] if ctx.branches else None)
    return branch.tz if branch else "UTC"


def iso(instant: datetime, tz: str) -> str:
    """``instant`` as local ISO time with its offset, to the minute ("2026-12-01T09:00+07:00")."""
    return instant.astimezone(ZoneInfo(tz)).isoformat(timespec="minutes")


def _with_hint(reply: Reply, hint: str | None, hint_vars: dict[str, Any]) -> Reply:
    return replace(reply, vars={**reply.vars, "hint": hint, **hint_vars})


def question(
    state: State,
    template: str,
    values: dict[str, Any],
    buttons: tuple[Choice, ...],
    *,
    step: Step,
    hint: str | None = None,
    hint_vars: dict[str, Any] | None = None,
    before: tuple[Reply, ...] = (),
    effects: tuple[Effect, ...] = (),
) -> Decision:
    """Ask a new question: it becomes the state's question (for numeric replies and button checks)."""
    asked = Reply(template, {**values, "hint": None}, buttons)
    trail = state.trail
    if state.flow is not None and step not in ("menu", "lang") and (not trail or trail[-1] != step):
        trail = (*trail, step)
    same = state.step == step and state.question is not None and state.question.template == template
    next_state = state.but(step=step, question=asked, trail=trail, misses=state.misses if same else 0)
    return Decision(next_state, (*before, _with_hint(asked, hint, hint_vars or {})), effects)


def reask(state: State, hint: str | None = None, **hint_vars: Any) -> Decision:
    """The last question again, with a hint in front."""
    if state.question is None:
        return to_menu(state, hint=hint, **hint_vars)
    return Decision(state, (_with_hint(state.question, hint, hint_vars),))


def wrong(state: State, hint: str = "not_understood", **hint_vars: Any) -> Decision:
    """A wrong answer: re-ask with a hint; from the third one in a row, offer a member of staff."""
    misses = state.misses + 1
    state = state.but(misses=misses)
    if misses >= MISSES_BEFORE_STAFF and state.question is not None:
        if STAFF.data not in state.offered:
            state = state.but(question=replace(state.question, buttons=(*state.question.buttons, STAFF)))
        return reask(state, "offer_staff", reason=hint, **hint_vars)
    return reask(state, hint, **hint_vars)


def reset(state: State) -> tuple[State, tuple[Effect, ...]]:
    """Leave the current flow: keep name, phone and language; give back a held slot."""
    effects: tuple[Effect, ...] = (ReleaseHold(state.draft.hold_id),) if state.draft.hold_id is not None else ()
    draft = Draft(name=state.draft.name, phone=state.draft.phone)
    left = state.but(flow=None, step="menu", trail=(), draft=draft, slots=(), page=0, misses=0)
    return left.but(resume_step=None, resume_question=None), effects


def to_menu(
    state: State,
    *,
    template: str = "menu",
    values: dict[str, Any] | None = None,
    hint: str | None = None,
    before: tuple[Reply, ...] = (),
    effects: tuple[Effect, ...] = (),
    **hint_vars: Any,
) -> Decision:
    """Back at the menu: ``template`` says what happened (the menu buttons come with it)."""
    left, released = reset(state)
    left = left.but(question=_MENU_QUESTION)
    reply = Reply(template, {**(values or {}), "hint": hint, **hint_vars}, MENU)
    return Decision(left, (*before, reply), (*released, *effects))


def done(state: State, template: str, values: dict[str, Any]) -> Decision:
    """A flow finished: say so, with the menu buttons (the hold, if any, was used: nothing to release)."""
    return to_menu(state.drafting(hold_id=None), template=template, values=values)
