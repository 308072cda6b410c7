"""The chatbot answering a follow-up: the confirmation's "1" / "2" (or its buttons) and the thank-you's rating.

Transcripts against the same fake clinic as ``test_dialog.py``; ``ctx.followup`` carries the buttons of the
follow-up message when it is the latest thing the bot wrote in the chat (the service reads it from the outbox).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from booking_core.domain.dialog import (
    AlreadyRated,
    CancelVisit,
    ConfirmVisit,
    Context,
    NotChanged,
    Outcome,
    Rated,
    RateVisit,
    VisitConfirmed,
)
from booking_core.domain.links import confirm_buttons, rating_answer, rating_buttons, visit_answer
from tests.unit.test_dialog import CTX, MENU, MONDAY_9, TOMORROW_VISIT, Bot, FakeClinic, at_step

CONFIRMATION = confirm_buttons(TOMORROW_VISIT.id)  # ("cf:yes:501", "cf:no:501")
THANK_YOU = rating_buttons(77)


@dataclass
class FollowupClinic(FakeClinic):
    """Also answers the follow-up effects, as the service would."""

    already_confirmed: bool = False
    rated: int | None = None

    def perform(self, effect: object) -> Outcome | None:
        if isinstance(effect, ConfirmVisit):
            if effect.visit_id != TOMORROW_VISIT.id:
                return NotChanged("not_found")
            return VisitConfirmed(TOMORROW_VISIT.booking_code, TOMORROW_VISIT.starts_at, self.already_confirmed)
        if isinstance(effect, RateVisit):
            if self.rated is not None:
                return AlreadyRated()
            self.rated = effect.rating
            return Rated(effect.rating)
        return super().perform(effect)


def after(followup: tuple[str, ...], *, ctx: Context = CTX, **clinic: object) -> Bot:
    """A patient at the menu whose latest message from us is a follow-up with ``followup`` buttons."""
    bot = Bot(ctx=ctx, clinic=FollowupClinic(**clinic))  # type: ignore[arg-type]
    bot.say("hello")
    bot.ctx = replace(bot.ctx, followup=followup)
    return bot


# --- the confirmation ------------------------------------------------------------------------------------


def test_1_after_the_confirmation_confirms_the_visit() -> None:
    bot = after(CONFIRMATION)
    turn = bot.say("1")
    assert turn.effects == [ConfirmVisit(TOMORROW_VISIT.id)]
    assert turn.templates == ["confirmation_confirmed"] and turn.replies[0].vars["code"] == "AB501XYZ"
    assert turn.replies[0].vars["start"] == "2026-11-24T10:00+07:00" and turn.buttons == MENU
    assert bot.state.step == "menu" and bot.state.flow is None


def test_a_second_confirmation_says_it_was_already_confirmed() -> None:
    turn = after(CONFIRMATION, already_confirmed=True).press(CONFIRMATION[0])
    assert turn.templates == ["confirmation_confirmed"] and turn.replies[0].vars["already"] is True


def test_2_after_the_confirmation_asks_why_then_cancels_that_visit() -> None:
    bot = after(CONFIRMATION)
    turn = bot.say("2")
    assert turn.effects == [] and turn.templates == ["ask_reason"]
    assert turn.replies[0].vars["code"] == "AB501XYZ" and bot.state.flow == "cancel"
    bot.ctx = replace(bot.ctx, followup=())  # the reason question is now the latest message
    turn = bot.say("1")  # WhatsApp: the first reason
    assert turn.effect(CancelVisit) == CancelVisit(501, "patient_request", "Patient cannot come (said in chat).")
    assert turn.templates == ["cancelled"]


def test_cancel_from_the_confirmation_inside_the_cut_off_is_not_done_in_chat() -> None:
    soon = replace(TOMORROW_VISIT, starts_at=MONDAY_9 + timedelta(minutes=90))
    turn = after(CONFIRMATION, ctx=replace(CTX, visits=(soon,))).say("2")
    assert turn.templates == ["cannot_change"] and turn.replies[0].vars["why"] == "too_late"
    assert turn.effects == [] and "menu:staff" in turn.buttons


def test_a_button_for_a_visit_that_is_not_the_patients_changes_nothing() -> None:
    bot = after(())
    for data in ("cf:yes:999", "cf:no:999"):
        turn = bot.press(data)
        assert turn.effects == [] and turn.templates == ["not_changed"]


def test_the_confirmation_buttons_work_in_the_middle_of_a_booking_and_the_question_stands() -> None:
    bot = at_step("time")
    bot.clinic = FollowupClinic()
    turn = bot.press(CONFIRMATION[0])
    assert turn.effects == [ConfirmVisit(501)]
    assert turn.templates == ["confirmation_confirmed", "ask_time"]
    assert bot.state.step == "time" and bot.state.flow == "book"


def test_during_a_booking_a_number_answers_the_bookings_question_not_the_confirmation() -> None:
    bot = at_step("exam")
    bot.ctx = replace(bot.ctx, followup=CONFIRMATION)
    turn = bot.say("2")
    assert not any(isinstance(e, ConfirmVisit) for e in turn.effects)
    assert bot.state.draft.examination_id == 2  # the second examination offered


def test_without_a_follow_up_1_is_still_the_menus_first_option() -> None:
    assert after(()).say("1").templates == ["ask_examination"]


def test_the_booking_summarys_yes_is_not_taken_for_a_confirmation() -> None:
    bot = at_step("confirm")
    turn = bot.press("cf:yes")
    assert not any(isinstance(e, ConfirmVisit) for e in turn.effects) and turn.templates == ["booking_received"]


# --- the rating ------------------------------------------------------------------------------------------


def test_a_number_after_the_thank_you_rates_the_visit_once() -> None:
    bot = after(THANK_YOU)
    turn = bot.say("4")
    assert turn.effects == [RateVisit(77, 4)] and turn.templates == ["rating_thanks"]
    assert turn.replies[0].vars["rating"] == 4
    again = bot.press(THANK_YOU[0])
    assert again.effects == [RateVisit(77, 1)] and again.templates == ["rating_already"]


def test_a_number_beyond_the_ratings_is_not_understood_and_not_the_menus_option() -> None:
    turn = after(THANK_YOU).say("6")  # the menu's sixth option would be "talk to staff"
    assert turn.effects == [] and turn.hints == ["not_understood"] and turn.buttons == MENU


@given(st.integers(min_value=1, max_value=10**17))
def test_follow_up_button_data_reads_back_and_fits_telegram(session_id: int) -> None:
    yes, no = confirm_buttons(session_id)
    assert visit_answer(yes) == ("yes", session_id) and visit_answer(no) == ("no", session_id)
    for n, data in enumerate(rating_buttons(session_id), start=1):
        assert rating_answer(data) == (session_id, n) and len(data.encode()) <= 64


def test_anything_else_is_not_a_follow_up_answer() -> None:
    for data in ("cf:yes", "cf:maybe:1", "cf:yes:0", "cf:yes:12x", "rate:1:6", "rate:1:0", "rate::3", "s:501"):
        assert visit_answer(data) is None and rating_answer(data) is None
