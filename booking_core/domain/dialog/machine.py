"""The state machine's entry points, :func:`decide` and :func:`resume`, and what works at every step.

    decision = decide(state, event, ctx)        # replies to send, effects for the service to perform
    decision = resume(decision.state, outcome, ctx)   # after the service performed the last effect

The service (``booking_core.services.conversation``) loads ``ctx``, performs the effects (find days and slots,
hold, confirm, cancel, reschedule, queue place, handoff), feeds each outcome back through :func:`resume`, saves the
state and writes the replies to the outbox. Replies name templates in ``templates/messages/<lang>/``.

Rules every step follows:

* Button data is user-controlled: id-bearing data (``ex:``, ``br:``, ``dr:``, ``day:``, ``t:``, ``s:``, ``rs:``,
  ``cf:``) counts only if the last question offered it; anything else re-asks with the "stale_button" hint.
  ``menu:``, ``nav:`` and ``lang:`` data carry no ids and work from any old message.
* A reply "1".."n" picks the n-th button of the last question (WhatsApp shows buttons as numbered options);
  right after a follow-up message (confirmation, thank-you) and outside a flow, it picks that message's button.
* The follow-up buttons ``cf:yes:<visit>``, ``cf:no:<visit>`` and ``rate:<visit>:<n>`` name their visit and work
  from any old message: confirming, cancelling (the cancel flow, asking why) or rating one's own visit.
* "back" and "cancel"/"batal" work at every step; "help", "/lang" and "staff" too. A wrong answer re-asks with a
  hint; the third one in a row also offers a member of staff.
* Outside every branch's opening hours, the first reply says when the clinic opens (once per closed spell).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from booking_core.domain import dates
from booking_core.domain.dialog.answers import HANDLERS, HINTS, cancel_from_followup
from booking_core.domain.dialog.ask import iso, question, reask, reset, to_menu, tz_of, wrong
from booking_core.domain.dialog.context import BranchInfo, Context
from booking_core.domain.dialog.effects import ConfirmVisit, Decision, Handoff, Outcome, RateVisit
from booking_core.domain.dialog.flows import advance, list_visits, rewind, start
from booking_core.domain.dialog.outcomes import OUTCOMES, aside
from booking_core.domain.dialog.state import LANGUAGES, Choice, Draft, Event, Reply, State
from booking_core.domain.dialog.words import (
    choose_language,
    command,
    intent,
    language_named,
    match_names,
    phone_e164,
)
from booking_core.domain.links import rating_answer, visit_answer

__all__ = ["decide", "first_state", "is_open", "next_opening", "resume"]


def first_state(stored: dict[str, Any] | None, *preferred: str | None, default_language: str = "en") -> State:
    """The conversation's state as stored, or a fresh one in the first ``preferred`` language we speak
    ("id-ID", "en", None...), else ``default_language``."""
    return State.from_json(stored, lang=choose_language(*preferred, default=default_language))


def decide(state: State, event: Event, ctx: Context) -> Decision:
    """The bot's answer to one inbound message."""
    state, notice = _closed_notice(state, ctx)
    decision = _respond(state, event, ctx)
    return Decision(decision.state.but(greeted=True), (*notice, *decision.replies), decision.effects)


def resume(state: State, outcome: Outcome, ctx: Context) -> Decision:
    """Continue after the service performed the decision's last effect and found ``outcome``."""
    return OUTCOMES[type(outcome)](state, outcome, ctx)


# --- opening hours ----------------------------------------------------------------------------------------


def is_open(branch: BranchInfo, now: datetime) -> bool:
    local = now.astimezone(ZoneInfo(branch.tz))
    return any(h.weekday == local.weekday() and h.opens <= local.time() < h.closes for h in branch.hours)


def next_opening(branches: tuple[BranchInfo, ...], now: datetime) -> tuple[datetime, BranchInfo] | None:
    """The next time any branch opens (within two weeks), and which."""
    found: list[tuple[datetime, int, BranchInfo]] = []
    for branch in branches:
        zone = ZoneInfo(branch.tz)
        today = now.astimezone(zone).date()
        for ahead in range(15):
            day = today + timedelta(days=ahead)
            opens = sorted(datetime.combine(day, h.opens, zone) for h in branch.hours if h.weekday == day.weekday())
            upcoming = [at for at in opens if at > now]
            if upcoming:
                found.append((upcoming[0], branch.id, branch))
                break
    if not found:
        return None
    at, _, branch = min(found, key=lambda item: (item[0], item[1]))
    return at, branch


def _closed_notice(state: State, ctx: Context) -> tuple[State, tuple[Reply, ...]]:
    # A branch without hours is unknown, not closed: then nobody can say the clinic is closed.
    if not ctx.branches or any(not b.hours or is_open(b, ctx.now) for b in ctx.branches):
        return state.but(closed_notice=None), ()
    found = next_opening(ctx.branches, ctx.now)
    if found is None:
        return state, ()
    at, branch = found
    key = at.isoformat()
    if state.closed_notice == key:  # already told during this closed spell
        return state, ()
    notice = Reply("closed", {"opens_at": iso(at, branch.tz), "branch": branch.name, "several": len(ctx.branches) > 1})
    return state.but(closed_notice=key), (notice,)


# --- one message ------------------------------------------------------------------------------------------


def _respond(state: State, event: Event, ctx: Context) -> Decision:
    text = event.text.strip()
    if event.kind == "media" and not text and event.button_data is None:
        return Decision(state, (Reply("media_only", {}),))
    if event.kind == "start":
        return _welcome(state, ctx)
    choice = event.button_data
    offered = state.offered
    if choice is None and text.isdigit() and ctx.followup and state.flow is None:
        # Just after a confirmation or thank-you, a bare number answers that message, not the menu.
        if not 1 <= int(text) <= len(ctx.followup):
            return to_menu(state, hint="not_understood")
        choice = ctx.followup[int(text) - 1]
    if choice is None and text.isdigit() and 1 <= int(text) <= len(offered):
        choice = offered[int(text) - 1]
    if choice is not None:
        return _on_choice(state, choice.strip(), ctx)
    if event.kind == "contact" and event.contact_phone:
        return _on_contact(state, event.contact_phone, ctx)
    if not text:
        return reask(state) if state.question is not None else _welcome(state, ctx)
    return _on_text(state, text, ctx)


def _on_choice(state: State, choice: str, ctx: Context) -> Decision:
    if choice.startswith(("menu:", "nav:", "lang:")):
        action = _GLOBAL.get(choice)
        return action(state, ctx) if action else reask(state, "stale_button")
    followup = _on_followup(state, choice, ctx)
    if followup is not None:
        return followup
    handler = HANDLERS.get(state.step)
    if handler is None or choice not in state.offered:
        return reask(state, "stale_button")
    return handler(state, choice, "", ctx) or reask(state, "stale_button")


def _on_followup(state: State, choice: str, ctx: Context) -> Decision | None:
    """The confirmation's and thank-you's buttons (None: not one of them). They carry their visit's id, so only
    the patient's own visits count; the service checks ownership again before it changes anything."""
    answer = visit_answer(choice)
    if answer is not None:
        said, visit_id = answer
        visit = ctx.visit(visit_id)
        if visit is None:  # cancelled, already over, or not this patient's
            return aside(state, "not_changed", {"code": "not_found"})
        if said == "yes":
            return Decision(state, (), (ConfirmVisit(visit.id),))
        return cancel_from_followup(state, visit, ctx)
    rated = rating_answer(choice)
    if rated is not None:
        return Decision(state, (), (RateVisit(*rated),))
    return None


def _on_contact(state: State, phone: str, ctx: Context) -> Decision:
    number = phone_e164(phone)
    if state.step == "phone":
        return advance(state.drafting(phone=number), ctx) if number else wrong(state, HINTS["phone"])
    # A contact shared out of turn is kept for later; the question stands.
    return reask(state.drafting(phone=number) if number else state)


def _on_text(state: State, text: str, ctx: Context) -> Decision:
    said = command(text)
    if said in _COMMANDS:
        return _COMMANDS[said](state, ctx)
    if state.step == "lang":
        code = language_named(text)
        return _set_language(state, code) if code else wrong(state, HINTS["lang"])
    if state.step == "menu" or state.step not in HANDLERS:
        return _at_menu(state, text, ctx)
    decision = HANDLERS[state.step](state, None, text, ctx)
    if decision is not None:
        return decision
    switch = intent(text)  # not an answer: perhaps the patient wants something else now
    if switch in ("queue", "mine", "reschedule", "staff"):
        return _GLOBAL[_INTENT_CHOICE[switch]](state, ctx)
    return wrong(state, HINTS[state.step])


def _at_menu(state: State, text: str, ctx: Context) -> Decision:
    wanted = intent(text)
    if wanted in (None, "book"):
        exams = match_names(text, ctx.examinations, [(e.name, *e.keywords) for e in ctx.examinations])
        if exams or wanted == "book":
            return start(state, "book", ctx, draft=_draft_from(text, exams, ctx))
    if wanted is not None:
        return _GLOBAL[_INTENT_CHOICE[wanted]](state, ctx)
    if not state.greeted:
        return _welcome(state, ctx)
    if state.question is None:
        return to_menu(state, hint="not_understood")
    return wrong(state, HINTS["menu"])


def _draft_from(text: str, exams: list[Any], ctx: Context) -> Draft:
    """What a first message already says: "periksa gigi besok jam 3" names the examination, day and time."""
    when = dates.understand(text, now=ctx.now, tz=tz_of(ctx, None))
    draft = Draft(examination_id=exams[0].id if len(exams) == 1 else None)
    if when is None or when.past or (when.day is None and when.at is None):
        return draft
    today = ctx.now.astimezone(ZoneInfo(tz_of(ctx, None))).date()
    return replace(draft, day=when.day or today, wanted=when.at)


# --- global commands --------------------------------------------------------------------------------------


def _welcome(state: State, ctx: Context) -> Decision:
    return to_menu(state, template="welcome", values={"name": ctx.patient_name or None})


def _menu(state: State, ctx: Context) -> Decision:
    if state.flow is not None:
        return to_menu(state, template="flow_cancelled")
    return to_menu(state)


def _greeting(state: State, ctx: Context) -> Decision:
    if state.flow is not None and state.question is not None:
        return reask(state)  # "halo?" in the middle of booking: the question still stands
    return _welcome(state, ctx) if not state.greeted else to_menu(state)


def _cancel(state: State, ctx: Context) -> Decision:
    if state.step == "lang":
        return _leave_side(state)
    if state.flow is not None:
        return to_menu(state, template="flow_cancelled")
    return start(state, "cancel", ctx)  # at the menu, "cancel" means cancelling an appointment


def _back(state: State, ctx: Context) -> Decision:
    if state.step == "lang":
        return _leave_side(state)
    if state.flow is None or len(state.trail) <= 1:
        return to_menu(state)
    rewound, released = rewind(state, state.trail[-2])
    decision = advance(rewound, ctx)
    return replace(decision, effects=(*released, *decision.effects))


def _help(state: State, ctx: Context) -> Decision:
    if state.question is None:
        return to_menu(state, template="help")
    return Decision(state, (Reply("help", {}), *reask(state).replies))


def _handoff(state: State, ctx: Context) -> Decision:
    left, released = reset(state)
    menu = to_menu(left).state
    return Decision(menu, (Reply("handoff", {}),), (*released, Handoff()))


def _ask_language(state: State, ctx: Context) -> Decision:
    if state.step == "lang":
        return reask(state)
    side = state.but(resume_step=state.step, resume_question=state.question)
    buttons = (Choice("lang_en", "lang:en"), Choice("lang_id", "lang:id"))
    return question(side, "ask_language", {}, buttons, step="lang")


def _leave_side(state: State, *, before: tuple[Reply, ...] = ()) -> Decision:
    back = state.but(step=state.resume_step or "menu", question=state.resume_question, misses=0)
    back = back.but(resume_step=None, resume_question=None)
    if back.question is None or back.step == "menu":
        return to_menu(back, before=before)
    return Decision(back, (*before, *reask(back).replies))


def _set_language(state: State, code: str) -> Decision:
    if state.step != "lang":  # a language button from an old message: switch, and ask the same again
        state = state.but(resume_step=state.step, resume_question=state.question)
    return _leave_side(state.but(lang=code), before=(Reply("language_set", {}),))


def _flow(name: str) -> Callable[[State, Context], Decision]:
    return lambda state, ctx: start(state, name, ctx)


def _language(code: str) -> Callable[[State, Context], Decision]:
    return lambda state, ctx: _set_language(state, code)


_GLOBAL: dict[str, Callable[[State, Context], Decision]] = {
    "menu:book": _flow("book"),
    "menu:mine": lambda state, ctx: list_visits(state, ctx),
    "menu:cancel": _flow("cancel"),
    "menu:resched": _flow("reschedule"),
    "menu:queue": _flow("queue"),
    "menu:staff": _handoff,
    "menu:lang": _ask_language,
    "menu:help": _help,
    "menu:home": _menu,
    "nav:back": _back,
    **{f"lang:{code}": _language(code) for code in LANGUAGES},
}
_INTENT_CHOICE = {
    "book": "menu:book",
    "mine": "menu:mine",
    "cancel": "menu:cancel",
    "reschedule": "menu:resched",
    "queue": "menu:queue",
    "staff": "menu:staff",
    "help": "menu:help",
}
_COMMANDS: dict[str, Callable[[State, Context], Decision]] = {
    "back": _back,
    "cancel": _cancel,
    "menu": _menu,
    "greeting": _greeting,
    "help": _help,
    "lang": _ask_language,
    "staff": _handoff,
}
