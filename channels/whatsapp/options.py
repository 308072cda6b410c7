"""Buttons on WhatsApp: a numbered list under the text (free-form WhatsApp messages have no inline keyboards).

The patient answers "1".."n"; the dialog maps that number back to the n-th button it offered, so the numbering
here is simply the order of ``buttons``, starting at 1, every time.
"""

from __future__ import annotations

from collections.abc import Sequence

from booking_core.domain.messages import Button

#: Twilio refuses a WhatsApp/SMS body longer than this (error 21617).
MAX_BODY = 1600
PROMPT = "Reply with a number:"
ELLIPSIS = "…"


def option_lines(buttons: Sequence[Button]) -> list[str]:
    """``["1 = Tue 09:00", "2 = Another day"]``; labels are kept on one line each."""
    return [f"{number} = {' '.join(button.label.split())}" for number, button in enumerate(buttons, start=1)]


def render(text: str, buttons: Sequence[Button], *, prompt: str = PROMPT, limit: int = MAX_BODY) -> str:
    """``text``, then (if there are buttons) a blank line, ``prompt`` and one numbered option per line.

    The result fits ``limit``: a long text is cut (ending in "…") so that the options always survive.
    """
    text = text.strip()
    if not buttons:
        return _cut(text, limit)
    block = "\n".join([prompt, *option_lines(buttons)]) if prompt else "\n".join(option_lines(buttons))
    if not text:
        return _cut(block, limit)
    room = limit - len(block) - 2  # the blank line between text and options
    if room < len(ELLIPSIS) + 1:
        return _cut(block, limit)
    return f"{_cut(text, room)}\n\n{block}"


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(ELLIPSIS))].rstrip() + ELLIPSIS
