"""An outbox row keeps a message as JSON: what comes back out is the message that went in, template values in order.

Rows planned before the template values were named (``template_variables``, numbered) are still sent with the
same variables.
"""

from __future__ import annotations

from booking_core.domain.messages import Button, OutboundMessage
from channels.whatsapp.adapter import content_variables

REMINDER = OutboundMessage(
    channel="whatsapp",
    recipient="+6281234567890",
    text="Reminder: your visit is tomorrow at 09:00.",
    buttons=(Button("Reschedule", "menu:resched"), Button("Cancel visit", "menu:cancel")),
    template="HX" + "5a1b" * 8,
    template_fields=(
        ("name", "Siti Rahmawati"),
        ("when", "Sel 8 Des, 09:00"),
        ("doctor", "dr. Andi Wijaya"),
        ("branch", "Klinik Sehat"),
        ("code", "K7MX2PQA"),
    ),
)


def test_a_planned_message_comes_back_as_it_was_planned() -> None:
    assert OutboundMessage.from_payload(REMINDER.to_payload()) == REMINDER


def test_whatsapp_numbers_the_template_values_in_their_order() -> None:
    assert content_variables(REMINDER) == {
        "1": "Siti Rahmawati",
        "2": "Sel 8 Des, 09:00",
        "3": "dr. Andi Wijaya",
        "4": "Klinik Sehat",
        "5": "K7MX2PQA",
    }


def test_a_row_planned_with_numbered_variables_is_sent_with_the_same_variables() -> None:
    numbered = {str(n): f"value {n}" for n in range(1, 12)}
    payload = {
        "channel": "whatsapp",
        "recipient": "+6281234567890",
        "text": "Your visit is confirmed.",
        "buttons": [],
        "template": "HX" + "ab" * 16,
        "template_variables": dict(reversed(numbered.items())),
    }

    assert content_variables(OutboundMessage.from_payload(payload)) == numbered
