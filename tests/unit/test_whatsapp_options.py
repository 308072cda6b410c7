"""Buttons on WhatsApp become numbered options under the text, in the order the dialog offered them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from booking_core.domain.messages import Button
from channels.whatsapp import options

SLOTS = (Button("Tue 09:00", "slot:2026-11-24T09:00"), Button("Another day", "slot:more"))


def test_offered_slots_are_numbered_from_one_under_the_question() -> None:
    assert options.render("Which time suits you?", SLOTS) == (
        "Which time suits you?\n\nReply with a number:\n1 = Tue 09:00\n2 = Another day"
    )


def test_a_message_without_buttons_is_just_its_text() -> None:
    assert options.render("  Your visit is confirmed.  ", ()) == "Your visit is confirmed."


def test_options_without_a_question_still_carry_the_prompt() -> None:
    assert options.render("", SLOTS) == "Reply with a number:\n1 = Tue 09:00\n2 = Another day"


def test_a_label_spread_over_lines_stays_on_one_option_line() -> None:
    assert options.option_lines([Button("Dr. Sari\n(dentist)", "doctor:7")]) == ["1 = Dr. Sari (dentist)"]


def test_a_text_too_long_for_twilio_is_cut_and_the_options_survive() -> None:
    rendered = options.render("Please read our clinic rules. " * 100, SLOTS)

    assert len(rendered) == options.MAX_BODY
    assert rendered.endswith("\n\nReply with a number:\n1 = Tue 09:00\n2 = Another day")
    assert "…\n\nReply with a number:" in rendered


labels = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(str.strip)


@given(text=st.text(max_size=3000), labels=st.lists(labels, max_size=10))
def test_every_rendering_fits_twilio_and_numbers_each_option_in_order(text: str, labels: list[str]) -> None:
    buttons = [Button(label, f"option:{n}") for n, label in enumerate(labels)]

    rendered = options.render(text, buttons)

    assert len(rendered) <= options.MAX_BODY
    lines = rendered.splitlines()
    numbered = [line for line in lines[len(lines) - len(buttons) :]] if buttons else []
    assert [line.split(" = ", 1)[0] for line in numbered] == [str(n) for n in range(1, len(buttons) + 1)]
