"""The booking chatbot as transcripts: what the patient says, which messages the bot answers, what it asks done.

A small fake clinic answers the dialog's effects the way the conversation service would. Every turn's state goes
through JSON (as it does in ``conversations.dialog_state``) and every reply is rendered in English and Indonesian,
so a template with a missing value fails here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from booking_core.domain.dialog import (
    Booked,
    BookingReceived,
    BranchInfo,
    CancelVisit,
    Choice,
    ConfirmBooking,
    Context,
    DaysFound,
    DoctorInfo,
    Event,
    ExaminationInfo,
    FindDays,
    FindSlots,
    Handoff,
    Held,
    HoldSlot,
    NotInQueue,
    OpeningHours,
    Outcome,
    QueuePlace,
    QueuePosition,
    ReleaseHold,
    Reply,
    Reschedule,
    Rescheduled,
    SlotsFound,
    SlotTaken,
    State,
    VisitCancelled,
    VisitInfo,
    decide,
    first_state,
    resume,
)
from booking_core.services.messages import TEMPLATES, render_reply

JAKARTA = ZoneInfo("Asia/Jakarta")
MONDAY_9 = datetime(2026, 11, 23, 9, 0, tzinfo=JAKARTA)  # the clinic is open
TODAY = MONDAY_9.date()
TUESDAY, WEDNESDAY, FRIDAY = TODAY + timedelta(days=1), TODAY + timedelta(days=2), TODAY + timedelta(days=4)
SUNDAY_NIGHT = datetime(2026, 11, 22, 21, 0, tzinfo=JAKARTA)  # closed until Monday 08:00

GP, DENTAL, FACIAL = 1, 2, 3
ANDI, SARI, BUDI = 21, 22, 23
MENU = ["menu:book", "menu:mine", "menu:resched", "menu:cancel", "menu:queue", "menu:staff", "menu:lang"]


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), JAKARTA)


def t(day: date, hour: int, minute: int = 0) -> str:
    return "t:" + at(day, hour, minute).isoformat(timespec="minutes")


def visit(visit_id: int, starts_at: datetime, **changes: Any) -> VisitInfo:
    base = VisitInfo(id=visit_id, booking_code=f"AB{visit_id}XYZ", branch_id=10, examination_id=GP,
                 examination_name="General consultation", doctor_id=ANDI, doctor_name="dr. Andi Wijaya",
                 starts_at=starts_at, cancel_cutoff_min=120)  # fmt: skip
    return replace(base, **changes)


TOMORROW_VISIT = visit(501, at(TUESDAY, 10))
LATER_VISIT = visit(502, at(FRIDAY, 11), examination_id=DENTAL, examination_name="Dental check-up",
                    doctor_id=SARI, doctor_name="drg. Sari Lestari")  # fmt: skip

CTX = Context(
    now=MONDAY_9,
    examinations=(
        ExaminationInfo(GP, "General consultation", ("umum", "dokter umum"), (10,), (ANDI,)),
        ExaminationInfo(DENTAL, "Dental check-up", ("gigi", "dokter gigi", "periksa gigi"), (10,), (SARI, BUDI)),
        ExaminationInfo(FACIAL, "Acne facial treatment", ("facial", "jerawat"), (10,), (ANDI,)),
    ),
    branches=(
        BranchInfo(
            10,
            "Klinik Sehat Kemang",
            "Asia/Jakarta",
            tuple(OpeningHours(d, time(8), time(20)) for d in range(6)),
            (ANDI, SARI, BUDI),
        ),
    ),
    doctors=(
        DoctorInfo(ANDI, "dr. Andi Wijaya"),
        DoctorInfo(SARI, "drg. Sari Lestari"),
        DoctorInfo(BUDI, "drg. Budi Santoso"),
    ),
    visits=(TOMORROW_VISIT, LATER_VISIT),
)
KNOWN = replace(CTX, patient_name="Siti Rahmawati", patient_phone="+6281234567890")


# --- the harness ------------------------------------------------------------------------------------------


@dataclass
class FakeClinic:
    """Answers effects like the service would, with knobs for the awkward cases."""

    full_days: set[date] = field(default_factory=set)
    no_days: bool = False
    taken: set[datetime] = field(default_factory=set)
    books_directly: bool = False
    queue_place: QueuePlace | None = None

    def perform(self, effect: object) -> Outcome | None:
        if isinstance(effect, FindDays):
            return DaysFound(() if self.no_days else (TUESDAY, WEDNESDAY, FRIDAY))
        if isinstance(effect, FindSlots):
            if effect.day in self.full_days:
                return SlotsFound(effect.day, ())
            return SlotsFound(effect.day, tuple(at(effect.day, 9, 0) + timedelta(minutes=30 * i) for i in range(16)))
        if isinstance(effect, HoldSlot):
            if effect.start in self.taken:
                return SlotTaken((effect.start + timedelta(minutes=30), effect.start + timedelta(days=1)))
            return Held(901, effect.start, effect.doctor_id or SARI)
        if isinstance(effect, ConfirmBooking):
            return Booked("NEW12345", effect.start) if self.books_directly else BookingReceived(55)
        if isinstance(effect, CancelVisit):
            return VisitCancelled(f"AB{effect.visit_id}XYZ")
        if isinstance(effect, Reschedule):
            return Rescheduled("NEW67890", at(WEDNESDAY, 9))
        if isinstance(effect, QueuePosition):
            return self.queue_place or NotInQueue()
        return None


@dataclass
class Turn:
    replies: list[Reply]
    effects: list[object]
    state: State

    @property
    def templates(self) -> list[str]:
        return [r.template for r in self.replies]

    @property
    def hints(self) -> list[str | None]:
        return [r.vars.get("hint") for r in self.replies]

    @property
    def buttons(self) -> list[str]:
        with_buttons = [r for r in self.replies if r.buttons]
        return [b.data for b in with_buttons[-1].buttons] if with_buttons else []

    def effect(self, kind: type) -> Any:
        return next(e for e in self.effects if isinstance(e, kind))


@dataclass
class Bot:
    ctx: Context = CTX
    clinic: FakeClinic = field(default_factory=FakeClinic)
    state: State = field(default_factory=lambda: first_state(None, "en"))

    def send(self, event: Event) -> Turn:
        decision = decide(self.state, event, self.ctx)
        replies, effects = list(decision.replies), []
        for _ in range(6):
            outcome = None
            for effect in decision.effects:
                effects.append(effect)
                outcome = self.clinic.perform(effect)
            if outcome is None:
                break
            decision = resume(decision.state, outcome, self.ctx)
            replies += decision.replies
        # As in conversations.dialog_state: every step is saved as JSON and read back.
        self.state = State.from_json(json.loads(json.dumps(decision.state.to_json())))
        for lang in ("en", "id"):
            for reply in replies:
                text, buttons = render_reply(lang, reply)
                assert text and all(b.label for b in buttons)
        return Turn(replies, effects, self.state)

    def say(self, text: str) -> Turn:
        return self.send(Event(text=text))

    def press(self, data: str) -> Turn:
        return self.send(Event(kind="button", button_data=data))


def booking_bot(**clinic: Any) -> Bot:
    bot = Bot(clinic=FakeClinic(**clinic))
    bot.say("hello")
    return bot


def at_step(step: str, *, ctx: Context = CTX) -> Bot:
    """A bot in the middle of booking a dental check-up, waiting at ``step``."""
    bot = Bot(ctx=ctx)
    bot.say("hello")
    path = [("exam", lambda: bot.press("menu:book")), ("doctor", lambda: bot.press(f"ex:{DENTAL}")),
            ("day", lambda: bot.press("dr:any")), ("time", lambda: bot.press(f"day:{TUESDAY}")),
            ("name", lambda: bot.press(t(TUESDAY, 10))), ("phone", lambda: bot.say("Siti Rahmawati")),
            ("confirm", lambda: bot.say("0812 3456 7890"))]  # fmt: skip
    for name, action in path:
        action()
        if name == step:
            break
    assert bot.state.step == step
    return bot


# --- booking ----------------------------------------------------------------------------------------------


def test_a_patient_books_a_dental_check_up_from_greeting_to_request() -> None:
    bot = Bot()
    transcript: list[tuple[str, str | None, list[str], list[type]]] = [
        # (typed text, pressed button, expected templates, expected effects)
        ("hello", None, ["welcome"], []),
        ("", "menu:book", ["ask_examination"], []),
        ("", f"ex:{DENTAL}", ["ask_doctor"], []),
        ("", "dr:any", ["ask_day"], [FindDays]),
        ("", f"day:{TUESDAY}", ["ask_time"], [FindSlots]),
        ("", "t:more", ["ask_time"], []),
        ("", t(TUESDAY, 14), ["ask_name"], []),
        ("Siti Rahmawati", None, ["ask_phone"], []),
        ("0812 3456 7890", None, ["confirm_booking"], [HoldSlot]),
        ("yes", None, ["booking_received"], [ConfirmBooking]),
    ]
    for text, button, templates, effects in transcript:
        turn = bot.press(button) if button else bot.say(text)
        assert turn.templates == templates, (text, button)
        assert [type(e) for e in turn.effects] == effects, (text, button)
    assert turn.effect(ConfirmBooking) == ConfirmBooking(
        hold_id=901, branch_id=10, examination_id=DENTAL, doctor_id=SARI, start=at(TUESDAY, 14),
        name="Siti Rahmawati", phone="+6281234567890",
    )  # fmt: skip
    assert turn.buttons == MENU and bot.state.step == "menu"


def test_the_first_buttons_of_each_question_are_what_the_clinic_offers() -> None:
    bot = booking_bot()
    assert bot.press("menu:book").buttons == [f"ex:{GP}", f"ex:{DENTAL}", f"ex:{FACIAL}", "nav:back"]
    assert bot.press(f"ex:{DENTAL}").buttons == [f"dr:{SARI}", f"dr:{BUDI}", "dr:any", "nav:back"]
    assert bot.press(f"dr:{BUDI}").buttons == [f"day:{TUESDAY}", f"day:{WEDNESDAY}", f"day:{FRIDAY}", "nav:back"]
    times = bot.press(f"day:{WEDNESDAY}").buttons
    assert times[:8] == [t(WEDNESDAY, 9 + i // 2, 30 * (i % 2)) for i in range(8)]
    assert times[8:] == ["t:more", "nav:back"]
    assert bot.press("t:more").buttons[:8] == [t(WEDNESDAY, 13 + i // 2, 30 * (i % 2)) for i in range(8)]
    assert bot.press("t:more").buttons[0] == t(WEDNESDAY, 9), "more wraps around to the first page"


def test_a_single_doctor_is_not_asked_for_and_any_doctor_lets_the_clinic_choose() -> None:
    bot = booking_bot()
    bot.press("menu:book")
    turn = bot.press(f"ex:{GP}")  # only dr. Andi performs it
    assert turn.templates == ["ask_day"] and turn.effect(FindDays).doctor_id is None


def test_a_known_patient_goes_from_the_time_straight_to_the_summary() -> None:
    bot = Bot(ctx=KNOWN)
    bot.say("hello")
    bot.press("menu:book")
    bot.press(f"ex:{DENTAL}")
    bot.press(f"dr:{SARI}")
    bot.press(f"day:{TUESDAY}")
    turn = bot.press(t(TUESDAY, 11))
    assert turn.templates == ["confirm_booking"]
    assert turn.effect(HoldSlot) == HoldSlot(10, DENTAL, SARI, at(TUESDAY, 11))
    assert turn.replies[0].vars["name"] == "Siti Rahmawati"


def test_besok_jam_3_in_the_first_message_books_tomorrow_at_three_in_indonesian() -> None:
    bot = Bot(ctx=KNOWN, state=first_state(None, "id-ID"))
    turn = bot.say("mau periksa gigi besok jam 3")
    assert turn.templates == ["ask_doctor"] and bot.state.lang == "id"
    turn = bot.say("siapa saja")
    assert turn.effect(FindSlots).day == TUESDAY
    assert turn.templates == ["confirm_booking"]
    assert turn.effect(HoldSlot).start == at(TUESDAY, 15)
    assert "Sel 24 Nov, 15:00" in render_reply("id", turn.replies[-1])[0]


@pytest.mark.parametrize(
    ("said", "examination"),
    [
        ("Dental check-up", DENTAL),
        ("dental", DENTAL),
        ("dentl chekup", DENTAL),
        ("periksa gigi", DENTAL),
        ("saya mau ke dokter gigi", DENTAL),
        ("general consultation please", GP),
        ("dokter umum", GP),
        ("jerawat", FACIAL),
    ],
)
def test_an_examination_is_found_by_name_keyword_or_a_typo(said: str, examination: int) -> None:
    bot = booking_bot()
    bot.press("menu:book")
    bot.say(said)
    assert bot.state.draft.examination_id == examination


def test_an_unknown_examination_is_asked_again_with_a_hint() -> None:
    bot = booking_bot()
    bot.press("menu:book")
    turn = bot.say("x-ray of my knee")
    assert turn.templates == ["ask_examination"] and turn.hints == ["unknown_examination"]


def test_a_time_that_is_not_free_shows_the_nearest_free_times() -> None:
    bot = at_step("day")
    turn = bot.say("tuesday 7pm")
    assert turn.templates == ["ask_time"] and turn.hints == ["time_not_free"]
    assert turn.replies[0].vars["wanted"] == "19:00"
    assert t(TUESDAY, 16, 30) in turn.buttons, "the page with the nearest time is shown"


def test_a_typed_free_time_at_the_time_step_is_taken() -> None:
    bot = at_step("time")
    turn = bot.say("jam 15.30")
    assert turn.templates == ["ask_name"] and bot.state.draft.start == at(TUESDAY, 15, 30)


def test_a_typed_other_day_at_the_time_step_looks_that_day_up() -> None:
    bot = at_step("time")
    turn = bot.say("friday")
    assert turn.effect(FindSlots).day == FRIDAY and turn.templates == ["ask_time"]


@pytest.mark.parametrize(("step", "said"), [("day", "yesterday"), ("day", "kemarin"), ("time", "today 8am")])
def test_a_day_or_time_in_the_past_is_refused(step: str, said: str) -> None:
    bot = at_step(step)
    turn = bot.say(said)
    assert turn.hints in (["past_day"], ["past_time"]) and bot.state.step == step


def test_a_full_day_says_so_and_offers_the_days_again() -> None:
    bot = Bot(clinic=FakeClinic(full_days={TUESDAY}))
    bot.say("hello")
    bot.press("menu:book")
    bot.press(f"ex:{GP}")
    turn = bot.press(f"day:{TUESDAY}")
    assert turn.templates == ["no_times", "ask_day"] and bot.state.draft.day is None


def test_no_free_days_at_all_offers_a_member_of_staff() -> None:
    bot = booking_bot(no_days=True)
    bot.press("menu:book")
    turn = bot.press(f"ex:{GP}")
    assert turn.hints == ["no_free_days"] and "menu:staff" in turn.buttons


def test_a_slot_taken_meanwhile_offers_the_alternatives_from_the_refusal() -> None:
    bot = Bot(ctx=KNOWN, clinic=FakeClinic(taken={at(TUESDAY, 10)}))
    bot.say("hello")
    bot.press("menu:book")
    bot.press(f"ex:{GP}")
    bot.press(f"day:{TUESDAY}")
    turn = bot.press(t(TUESDAY, 10))
    assert turn.templates == ["ask_time"] and turn.hints == ["slot_taken"]
    assert turn.buttons == [t(TUESDAY, 10, 30), t(WEDNESDAY, 10), "nav:back"]
    assert turn.replies[0].buttons[0].label == "slot", "alternatives on several days name their day"
    turn = bot.press(t(WEDNESDAY, 10))
    assert turn.templates == ["confirm_booking"]


def test_a_patient_whose_phone_is_shared_as_a_contact_is_not_asked_to_type_it() -> None:
    bot = at_step("phone")
    turn = bot.send(Event(kind="contact", contact_phone="6281298765432"))
    assert turn.templates == ["confirm_booking"] and bot.state.draft.phone == "+6281298765432"


@pytest.mark.parametrize("said", ["12345", "call me", "+1 555"])
def test_a_wrong_phone_number_is_asked_again(said: str) -> None:
    bot = at_step("phone")
    turn = bot.say(said)
    assert turn.templates == ["ask_phone"] and turn.hints == ["invalid_phone"]


def test_a_name_without_letters_is_asked_again() -> None:
    bot = at_step("name")
    assert bot.say("12").hints == ["invalid_name"]


@pytest.mark.parametrize(
    ("answer", "templates", "effects"),
    [
        ("change", ["ask_day"], [ReleaseHold, FindDays]),
        ("no", ["booking_abandoned"], [ReleaseHold]),
        ("tidak", ["booking_abandoned"], [ReleaseHold]),
        ("ya", ["booking_received"], [ConfirmBooking]),
    ],
)
def test_the_summary_answers(answer: str, templates: list[str], effects: list[type]) -> None:
    bot = at_step("confirm")
    turn = bot.say(answer)
    assert turn.templates == templates and [type(e) for e in turn.effects] == effects


def test_a_clinic_that_lets_the_bot_book_says_booked_with_the_code() -> None:
    bot = at_step("confirm")
    bot.clinic.books_directly = True
    turn = bot.press("cf:yes")
    assert turn.templates == ["booked"] and turn.replies[0].vars["code"] == "NEW12345"


# --- back, cancel, wrong answers, buttons -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "templates", "effects"),
    [
        ("exam", ["menu"], []),
        ("doctor", ["ask_examination"], []),
        ("day", ["ask_doctor"], []),
        ("time", ["ask_day"], [FindDays]),
        ("name", ["ask_time"], [FindSlots]),
        ("phone", ["ask_name"], []),
        ("confirm", ["ask_phone"], [ReleaseHold]),
    ],
)
def test_back_at_every_step_asks_the_previous_question(step: str, templates: list[str], effects: list[type]) -> None:
    bot = at_step(step)
    turn = bot.say("back")
    assert turn.templates == templates and [type(e) for e in turn.effects] == effects


@pytest.mark.parametrize("step", ["exam", "doctor", "day", "time", "name", "phone", "confirm"])
@pytest.mark.parametrize("word", ["cancel", "batal", "Batal!"])
def test_cancel_at_every_step_stops_the_booking(step: str, word: str) -> None:
    bot = at_step(step)
    turn = bot.say(word)
    assert turn.templates == ["flow_cancelled"] and bot.state.flow is None
    assert [type(e) for e in turn.effects] == ([ReleaseHold] if step == "confirm" else [])


def test_the_back_button_and_kembali_work_like_back() -> None:
    assert at_step("time").press("nav:back").templates == ["ask_day"]
    assert at_step("time").say("kembali").templates == ["ask_day"]


def test_going_back_and_forward_again_books_the_new_choice() -> None:
    bot = at_step("name")
    bot.say("back")
    assert bot.press(t(TUESDAY, 16)).hints == ["stale_button"], "16:00 is on the second page, not shown yet"
    bot.press(t(TUESDAY, 11))
    bot.say("Siti")
    turn = bot.say("081234567890")
    assert turn.effect(HoldSlot).start == at(TUESDAY, 11)


def test_the_third_wrong_answer_in_a_row_offers_a_member_of_staff() -> None:
    bot = at_step("day")
    assert bot.say("purple").hints == ["unknown_day"]
    assert bot.say("banana").hints == ["unknown_day"]
    third = bot.say("whatever")
    assert third.hints == ["offer_staff"] and third.buttons[-1] == "menu:staff"
    assert third.replies[0].vars["reason"] == "unknown_day"
    bot.press(f"day:{TUESDAY}")
    assert bot.state.misses == 0, "a right answer starts the count again"


@pytest.mark.parametrize(
    "forged",
    [
        f"ex:{DENTAL}",  # a button of an earlier question
        t(TUESDAY, 9),  # a time never offered
        "dr:999",
        "day:2099-01-01",
        "s:501",
        "t:not-a-time",
        "menu:nonsense",
        "lang:fr",
        "x" * 300,
        "",
    ],
)
def test_stale_or_forged_button_data_re_asks_with_a_hint(forged: str) -> None:
    bot = at_step("day")
    before = bot.state
    turn = bot.press(forged)
    assert turn.templates == ["ask_day"] and turn.hints == ["stale_button"]
    assert bot.state.draft == before.draft and turn.effects == []


@given(data=st.text(max_size=80))
@settings(max_examples=200, deadline=None)
def test_no_button_data_crashes_the_dialog(data: str) -> None:
    state = at_step("time").state
    decision = decide(state, Event(kind="button", button_data=data), CTX)
    assert decision.replies


@pytest.mark.parametrize(("number", "examination"), [("1", GP), ("2", DENTAL), ("3", FACIAL)])
def test_a_number_picks_the_nth_option_of_the_last_question(number: str, examination: int) -> None:
    bot = booking_bot()
    bot.press("menu:book")
    bot.say(number)
    assert bot.state.draft.examination_id == examination


def test_a_number_beyond_the_options_is_a_wrong_answer() -> None:
    bot = booking_bot()
    bot.press("menu:book")
    assert bot.say("9").hints == ["unknown_examination"]


def test_numbers_work_on_the_menu_like_whatsapp_options() -> None:
    bot = booking_bot()
    assert bot.say("1").templates == ["ask_examination"]


def test_help_explains_and_asks_the_same_question_again() -> None:
    bot = at_step("day")
    turn = bot.say("help")
    assert turn.templates == ["help", "ask_day"] and bot.state.step == "day"


def test_a_greeting_in_the_middle_of_booking_repeats_the_question() -> None:
    bot = at_step("time")
    assert bot.say("halo").templates == ["ask_time"] and bot.state.step == "time"


def test_a_photo_without_words_gets_the_text_only_reply() -> None:
    bot = at_step("day")
    turn = bot.send(Event(kind="media", media_count=1))
    assert turn.templates == ["media_only"] and bot.state.step == "day"


def test_a_photo_with_a_caption_is_read_as_text() -> None:
    bot = at_step("day")
    assert bot.send(Event(kind="media", text="tomorrow", media_count=1)).effect(FindSlots).day == TUESDAY


# --- language ---------------------------------------------------------------------------------------------


def test_lang_switches_the_language_and_asks_the_same_question_again() -> None:
    bot = at_step("day")
    turn = bot.say("/lang")
    assert turn.templates == ["ask_language"] and turn.buttons == ["lang:en", "lang:id"]
    turn = bot.press("lang:id")
    assert turn.templates == ["language_set", "ask_day"] and bot.state.lang == "id" and bot.state.step == "day"
    assert "Hari apa" in render_reply(bot.state.lang, turn.replies[-1])[0]
    assert bot.press(f"day:{TUESDAY}").templates == ["ask_time"], "the day buttons still work afterwards"


def test_the_language_can_be_typed_by_name() -> None:
    bot = booking_bot()
    bot.press("menu:lang")
    assert bot.say("Bahasa Indonesia").templates == ["language_set", "menu"] and bot.state.lang == "id"


@pytest.mark.parametrize(
    ("preferred", "default", "expected"),
    [(("id-ID",), "en", "id"), (("in",), "en", "id"), (("en-GB",), "id", "en"), (("fr", None), "id", "id"),
     ((None, "id"), "en", "id"), ((), "en", "en")],
)  # fmt: skip
def test_the_first_language_is_the_phones_the_patients_or_the_clinics(
    preferred: tuple[str | None, ...], default: str, expected: str
) -> None:
    assert first_state(None, *preferred, default_language=default).lang == expected


def test_a_stored_state_keeps_its_language_and_a_damaged_one_starts_afresh() -> None:
    stored = at_step("time").state.but(lang="id").to_json()
    assert first_state(stored, "en").lang == "id" and first_state(stored, "en").step == "time"
    assert first_state({"v": 1, "step": "nowhere"}, "en").step == "menu"
    assert first_state({"v": 1, "slots": ["not a time"]}, "id") == State(lang="id")
    assert first_state({"v": 99}, "en") == State(lang="en")


# --- opening hours ----------------------------------------------------------------------------------------


def test_outside_opening_hours_the_first_reply_says_when_the_clinic_opens() -> None:
    bot = Bot(ctx=replace(CTX, now=SUNDAY_NIGHT.astimezone(UTC)))
    turn = bot.say("hello")
    assert turn.templates == ["closed", "welcome"]
    assert turn.replies[0].vars["opens_at"] == "2026-11-23T08:00+07:00"
    assert bot.press("menu:book").templates == ["ask_examination"], "said once, and the bot still works"


def test_inside_opening_hours_nothing_is_said_about_them() -> None:
    assert Bot().say("hello").templates == ["welcome"]


# --- my appointments, cancel, reschedule, queue -----------------------------------------------------------


def test_my_appointments_lists_the_upcoming_visits_with_their_codes() -> None:
    turn = booking_bot().say("my appointments")
    assert turn.templates == ["appointments"]
    assert [v["code"] for v in turn.replies[0].vars["visits"]] == ["AB501XYZ", "AB502XYZ"]


def test_without_visits_my_appointments_says_there_are_none() -> None:
    bot = Bot(ctx=replace(CTX, visits=()))
    bot.say("hello")
    assert bot.press("menu:mine").templates == ["no_visits"]


def test_a_patient_cancels_a_visit_with_a_reason() -> None:
    bot = booking_bot()
    turn = bot.say("batal")
    assert turn.templates == ["ask_visit"] and turn.buttons == ["s:501", "s:502", "nav:back"]
    turn = bot.press("s:501")
    assert turn.templates == ["ask_reason"]
    assert turn.buttons == ["rs:cant_come", "rs:feel_better", "rs:booked_twice", "rs:other", "nav:back"]
    turn = bot.press("rs:feel_better")
    assert turn.effect(CancelVisit) == CancelVisit(501, "patient_request", "Patient feels better (said in chat).")
    assert turn.templates == ["cancelled"] and bot.state.flow is None


def test_a_visit_can_be_picked_by_typing_its_booking_code() -> None:
    bot = booking_bot()
    bot.press("menu:cancel")
    assert bot.say("ab502xyz").templates == ["ask_reason"] and bot.state.draft.visit_id == 502


def test_only_the_clinics_cancel_reasons_are_offered() -> None:
    bot = Bot(ctx=replace(CTX, cancel_reasons=("duplicate",)))
    bot.say("hello")
    bot.press("menu:cancel")
    assert bot.press("s:501").buttons == ["rs:booked_twice", "nav:back"]


@pytest.mark.parametrize(
    ("changed", "why"),
    [
        ({"starts_at": MONDAY_9 + timedelta(minutes=90)}, "too_late"),  # inside the 2-hour cutoff
        ({"in_queue": True}, "checked_in"),
        ({"status": "open"}, "checked_in"),
    ],
)
def test_a_visit_too_soon_or_already_started_is_not_changed_in_chat(changed: dict[str, Any], why: str) -> None:
    soon = replace(TOMORROW_VISIT, **changed)
    bot = Bot(ctx=replace(CTX, visits=(soon,)))
    bot.say("hello")
    bot.press("menu:cancel")
    turn = bot.press("s:501")
    assert turn.templates == ["cannot_change"] and turn.replies[0].vars["why"] == why
    assert "menu:staff" in turn.buttons and turn.effects == []


def test_a_visit_cancelled_since_the_list_was_shown_is_a_stale_choice() -> None:
    bot = booking_bot()
    bot.press("menu:cancel")
    bot.ctx = replace(CTX, visits=(LATER_VISIT,))
    assert bot.press("s:501").hints == ["stale_button"]


def test_back_from_the_reason_asks_which_visit_again() -> None:
    bot = booking_bot()
    bot.press("menu:cancel")
    bot.press("s:501")
    assert bot.say("back").templates == ["ask_visit"]


def test_a_patient_reschedules_a_visit_to_a_new_time() -> None:
    bot = Bot(ctx=KNOWN)
    bot.say("hello")
    turn = bot.say("ubah jadwal")
    assert turn.templates == ["ask_visit"]
    turn = bot.press("s:502")
    assert turn.templates == ["ask_day"] and turn.effect(FindDays) == FindDays(10, DENTAL, SARI, TODAY, 14)
    bot.press(f"day:{WEDNESDAY}")
    turn = bot.press(t(WEDNESDAY, 9))
    assert turn.templates == ["confirm_reschedule"] and turn.replies[0].vars["code"] == "AB502XYZ"
    turn = bot.say("yes")
    assert turn.effect(Reschedule) == Reschedule(502, 901)
    assert turn.templates == ["rescheduled"] and turn.replies[0].vars["old_code"] == "AB502XYZ"


def test_back_from_the_rescheduling_day_asks_which_visit_again() -> None:
    bot = booking_bot()
    bot.press("menu:resched")
    bot.press("s:501")
    assert bot.say("back").templates == ["ask_visit"] and bot.state.draft.examination_id is None


def test_the_queue_place_of_todays_visit() -> None:
    today = visit(503, at(TODAY, 10), in_queue=True)
    eta = at(TODAY, 10, 20).astimezone(UTC)
    bot = Bot(ctx=replace(CTX, visits=(today, TOMORROW_VISIT)),
              clinic=FakeClinic(queue_place=QueuePlace("A-003", 2, 1, eta, "dr. Andi Wijaya")))  # fmt: skip
    bot.say("hello")
    turn = bot.say("antrian saya berapa?")
    assert turn.effect(QueuePosition) == QueuePosition(503)
    assert turn.templates == ["queue_position"] and turn.replies[0].vars["token"] == "A-003"
    assert turn.replies[0].vars["eta"] == "2026-11-23T10:20+07:00"


def test_a_visit_today_not_yet_checked_in_asks_the_patient_to_check_in() -> None:
    bot = Bot(ctx=replace(CTX, visits=(visit(503, at(TODAY, 10)),)))
    bot.say("hello")
    assert bot.press("menu:queue").templates == ["not_in_queue"]


def test_without_a_visit_today_the_queue_has_nothing_to_say() -> None:
    bot = booking_bot()
    turn = bot.say("queue")
    assert turn.templates == ["no_visits"] and turn.replies[0].vars["purpose"] == "queue"


# --- staff ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("said", ["talk to staff", "petugas", "admin", "I want to speak to a human"])
def test_asking_for_staff_hands_the_conversation_over(said: str) -> None:
    bot = booking_bot()
    turn = bot.say(said)
    assert turn.templates == ["handoff"] and turn.effects == [Handoff()]


def test_a_handoff_during_confirmation_gives_the_held_slot_back() -> None:
    bot = at_step("confirm")
    turn = bot.press("menu:staff")
    assert [type(e) for e in turn.effects] == [ReleaseHold, Handoff]


def test_a_menu_button_from_an_old_message_abandons_the_booking_and_its_hold() -> None:
    bot = at_step("confirm")
    turn = bot.press("menu:mine")
    assert turn.templates == ["appointments"] and turn.effects == [ReleaseHold(901)]


def test_button_data_longer_than_telegram_allows_is_refused_when_built() -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        Choice("slot", "t:" + "9" * 70)
    longest = t(TUESDAY, 9).replace("+07:00", "+05:45")  # the longest time button, in a quarter-hour zone
    assert len(longest.encode()) <= 64


def test_every_message_exists_in_both_languages() -> None:
    names = {lang: sorted(p.name for p in (TEMPLATES / lang).glob("*.txt")) for lang in ("en", "id")}
    assert names["en"] == names["id"] and "welcome.txt" in names["en"]
